"""Escape sequences: every sequence type, python-hl7 #84 and the escape round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.hl7 import Delimiters, escape, unescape

D = Delimiters()
D27 = Delimiters(truncation="#")
ODD = Delimiters("*", ":", "!", "?", "$", "")


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("\\E\\\\T\\", "\\&"),  # consecutive escapes
        ("\\F\\\\S\\\\T\\\\R\\\\E\\", "|^&~\\"),
        ("line1\\X0D\\line2", "line1\rline2"),
        ("\\X0D0A\\", "\r\n"),
        ("\\XE9\\", "é"),  # single byte: latin-1
        ("\\xe9\\", "\\xe9\\"),  # lower-case x is not a hex escape
        ("\\XC3A9\\", "é"),  # valid UTF-8
        ("\\XE9E9\\", "éé"),  # invalid UTF-8: latin-1
        ("\\XE282AC\\", "€"),
        ("\\XZZ\\", "\\XZZ\\"),  # not hex: verbatim
        ("\\X0\\", "\\X0\\"),  # odd digit count: verbatim
        ("\\X\\", "\\X\\"),
    ],
)
def test_unescape_sequences(raw: str, text: str) -> None:
    assert unescape(raw, D) == text


@pytest.mark.parametrize(
    "raw",
    ["\\H\\bold\\N\\", "a\\.br\\b", "\\.sp2\\", "\\.in+4\\", "\\Zlocal\\", "\\C2842\\x",
     "\\M2442\\", "\\Q\\", "\\\\"],
)
def test_formatting_highlight_and_local_sequences_kept_verbatim(raw: str) -> None:
    assert unescape(raw, D) == raw


def test_line_break_can_be_translated() -> None:
    assert unescape("a\\.br\\b\\H\\c\\N\\", D, line_break="\n") == "a\nb\\H\\c\\N\\"


def test_python_hl7_issue_84_trailing_backslash_is_not_swallowed() -> None:
    # \E\ is a literal backslash; the trailing lone "\" is an unterminated escape.
    assert unescape("\\E\\R\\", D) == "\\R\\"
    assert unescape("text\\", D) == "text\\"


def test_unterminated_escape_is_kept_verbatim() -> None:
    assert unescape("a\\T\\b\\Fc", D) == "a&b\\Fc"


def test_truncation_escape_only_with_v27_delimiters() -> None:
    assert unescape("a\\P\\b", D27) == "a#b"
    assert unescape("a\\P\\b", D) == "a\\P\\b"
    assert escape("a#b", D27) == "a\\P\\b"
    assert escape("a#b", D) == "a#b"


def test_custom_escape_character() -> None:
    assert unescape("a?F?b?S?c?E?", ODD) == "a*b:c?"
    assert escape("a*b:c?d!e$f\\", ODD) == "a?F?b?S?c?E?d?R?e?T?f\\"


def test_escape_delimiters_and_line_breaks() -> None:
    assert escape("A|B^C~D\\E&F\rG\nH", D) == (
        "A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F\\X0D\\G\\X0A\\H"
    )


def test_fast_paths_return_the_same_object() -> None:
    s = "PLAIN TEXT 123"
    assert unescape(s, D) is s
    assert escape(s, D) == s


_ALPHABET = st.sampled_from(list("|^~\\&#*:!?$\r\nXE0DAFSTRHN.brZ aé€\u0000"))


@given(st.text(_ALPHABET, max_size=40), st.sampled_from([D, D27, ODD]))
def test_unescape_inverts_escape_for_any_text(s: str, d: Delimiters) -> None:
    encoded = escape(s, d)
    for ch in (d.field, d.component, d.repetition, d.subcomponent, "\r", "\n"):
        assert ch not in encoded
    assert unescape(encoded, d) == s


@given(st.text(max_size=60))
def test_unescape_inverts_escape_for_arbitrary_unicode(s: str) -> None:
    assert unescape(escape(s, D), D) == s
