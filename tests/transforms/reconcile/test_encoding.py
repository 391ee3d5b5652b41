"""Encoding and length defects: charset damage and truncation explain a difference."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from transforms.reconcile import load_rules, parse_rules
from transforms.reconcile.encoding import defect

RULES_PATH = Path(__file__).resolve().parents[3] / "mappings" / "reconcile.yml"
RULES = load_rules(RULES_PATH)

ascii_text = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789^ ", min_size=1, max_size=20)
accented = st.sampled_from("ÄÖÜÉÈÀÇÑØÅßäöüéèàçñøå")


@st.composite
def names_with_non_ascii(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(ascii_text, accented), min_size=2, max_size=8))
    value = "".join(parts).strip()
    if value.isascii():
        value = "M" + draw(accented) + value
    return value


def test_equal_values_have_no_defect() -> None:
    assert defect("MÜLLER", "Müller", 64, RULES) is None


@pytest.mark.parametrize(("order", "study", "what", "side"), [
    ("MÜLLER^JANE", "M?LLER^JANE", "'?' in place", "study"),
    ("M?LLER^JANE", "MÜLLER^JANE", "'?' in place", "order"),
    ("MÜLLER^JANE", "M\ufffd\ufffdLLER^JANE", "replaced (U+FFFD)", "study"),
    ("Müller^Jane", "MÃ¼ller^Jane", "UTF-8 read as", "study"),
    ("Sørensen", "S\u00c3\u00b8rensen", "UTF-8 read as", "study"),
])
def test_charset_damage_is_recognised_on_either_side(order: str, study: str, what: str,
                                                     side: str) -> None:
    found = defect(order, study, 64, RULES)
    assert found is not None
    assert what in found.what and found.side == side


def test_question_mark_where_the_other_side_has_ascii_is_a_real_difference() -> None:
    assert defect("MILLER", "M?LLER", 64, RULES) is None


def test_damage_plus_another_difference_is_not_explained_by_the_damage() -> None:
    assert defect("MÜLLER^JANE", "M?LLER^JOAN", 64, RULES) is None
    assert defect("MÜLLER", "MEYER", 64, RULES) is None


@given(names_with_non_ascii())
def test_question_marks_for_every_non_ascii_letter_are_found(name: str) -> None:
    damaged = "".join(c if c.isascii() else "?" for c in name)
    found = defect(name, damaged, 64, RULES)
    assert found is not None and found.side == "study"


@given(names_with_non_ascii())
def test_utf8_read_as_latin1_is_found(name: str) -> None:
    damaged = name.encode("utf-8").decode("latin-1")
    found = defect(name, damaged, 64, RULES)
    assert found is not None and found.side == "study"


@given(st.text(alphabet="ABC0123456789", min_size=17, max_size=40), st.booleans())
def test_a_value_cut_at_the_maximum_is_truncated(value: str, order_short: bool) -> None:
    short, long = value[:16], value
    found = (defect(short, long, 16, RULES) if order_short else defect(long, short, 16, RULES))
    assert found is not None
    assert found.what == "truncated at 16 characters"
    assert found.side == ("order" if order_short else "study")


@given(ascii_text, ascii_text)
def test_two_short_ascii_values_never_have_a_defect(a: str, b: str) -> None:
    assert defect(a.strip(), b.strip(), 64, RULES) is None


def test_shorter_than_the_maximum_is_not_truncation() -> None:
    assert defect("ACC000123456789", "ACC0001234567890", 16, RULES) is None


def test_knobs_turn_the_checks_off() -> None:
    doc = yaml.safe_load(RULES_PATH.read_text())
    doc["encoding"]["mojibake"] = False
    doc["encoding"]["replacement_chars"] = ""
    doc["normalise"]["patient_name"]["unknown_chars"] = ""
    rules = parse_rules(doc)
    assert defect("Müller", "MÃ¼ller", 64, rules) is None
    assert defect("MÜLLER", "M\ufffd\ufffdLLER", 64, rules) is None
    assert defect("MÜLLER", "M?LLER", 64, rules) is None
