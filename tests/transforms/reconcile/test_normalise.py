"""Normalisers: person names, patient IDs, dates, sex and modality codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.reconcile import load_rules
from transforms.reconcile import normalise as n

RULES = load_rules(Path(__file__).resolve().parents[3] / "mappings" / "reconcile.yml")
CFG = RULES.normalise


def test_person_name_ignores_case_accents_spaces_and_trailing_carets() -> None:
    assert n.person_name("Doé^ Jane ^Q^^", CFG) == n.person_name("DOE^JANE^Q", CFG)


def test_person_name_ignores_prefix_suffix_and_ideographic_groups() -> None:
    assert n.person_name("DOE^JANE^Q^DR^III=ド^ジ", CFG) == ("DOE", "JANE", "Q")


def test_person_name_accepts_the_dicom_json_model() -> None:
    assert n.person_name([{"Alphabetic": "Doe^Jane"}], CFG) == ("DOE", "JANE")


def test_names_differ_names_the_components() -> None:
    assert n.names_differ(("DOE", "JANE"), ("DOE", "JOAN", "Q"), CFG) == ["given", "middle"]


def test_question_mark_matches_one_letter_only() -> None:
    assert n.names_differ(("M?LLER",), ("MULLER",), CFG) == []
    assert n.names_differ(("M?LLER",), ("MUELLER",), CFG) == ["family"]


def test_patient_id_strips_leading_zeros_but_keeps_zero() -> None:
    assert n.patient_id("000123", CFG) == "123"
    assert n.patient_id("000", CFG) == "0"
    assert n.patient_id("", CFG) == ""


@pytest.mark.parametrize("raw", ["20240110", "2024-01-10", "2024.01.10", "20240110123000"])
def test_dates_in_every_common_form_parse_to_the_same_day(raw: str) -> None:
    assert n.date_text(n.date_ordinal(raw)) == "20240110"


@pytest.mark.parametrize("raw", ["", "2024", "20241340", "abcdefgh"])
def test_bad_dates_parse_to_none(raw: str) -> None:
    assert n.date_ordinal(raw) is None


def test_placeholder_birth_dates_are_unknown() -> None:
    assert n.birth_date("19000101", CFG) == ""
    assert n.birth_date("19700101", CFG) == "19700101"


def test_sex_maps_hl7_codes_to_dicom() -> None:
    assert [n.sex(x, CFG) for x in ("U", "A", "f", "M", "")] == ["O", "O", "F", "M", ""]


def test_modalities_drop_non_image_objects_and_fold_synonyms() -> None:
    assert n.modalities("CT\\SR\\KO\\PR\\OT", CFG) == {"CT"}
    assert n.modalities(["DX"], CFG) == {n.modality("CR", CFG)}


@given(st.text(alphabet="ABCabcéÉ ^", max_size=30))
def test_person_name_is_idempotent(raw: str) -> None:
    once = n.person_name(raw, CFG)
    assert n.person_name("^".join(once), CFG) == once


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=5))
def test_leading_zeros_never_matter(value: int, zeros: int) -> None:
    assert n.patient_id("0" * zeros + str(value), CFG) == n.patient_id(str(value), CFG)
