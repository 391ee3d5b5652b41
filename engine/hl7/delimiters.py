"""HL7 v2 delimiters (MSH-1 and MSH-2) and their validation.

``Delimiters`` is an immutable tuple so it is cheap to build, hash and compare; a
small cache maps each distinct ``(MSH-1, MSH-2)`` pair seen on the wire to its
validated ``Delimiters`` so the hot parse path does a single dict lookup.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.hl7.errors import HL7ParseError

__all__ = ["DEFAULT_DELIMITERS", "Delimiters", "delimiters_from_msh"]


class Delimiters(NamedTuple):
    """The delimiter characters of one message.

    ``truncation`` is the v2.7+ truncation character (5th character of MSH-2),
    or ``""`` when the message does not declare one.
    """

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as it is written on the wire (e.g. ``^~\\&``)."""
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation

    @classmethod
    def default(cls) -> Delimiters:
        """``|^~\\&`` — the delimiters every real-world sender uses."""
        return DEFAULT_DELIMITERS


DEFAULT_DELIMITERS = Delimiters()

_EXAMPLE = "^~\\&"
_CACHE: dict[tuple[str, str], Delimiters] = {}
_CACHE_MAX = 256


def _bad_char(ch: str) -> bool:
    # ASCII only: the delimiters are read before MSH-18 says how to decode the rest, and a
    # non-ASCII one is a corrupted byte (e.g. U+FFFD where invalid UTF-8 was replaced).
    return not ch.isascii() or ch.isalnum() or ch.isspace() or not ch.isprintable()


def _validate(fs: str, enc: str) -> Delimiters:
    if not fs:
        raise HL7ParseError("MSH-1 field separator is missing", "101", "MSH^1^1")
    if _bad_char(fs):
        raise HL7ParseError(
            f"MSH-1 field separator {fs!r} is invalid: expected a printable ASCII "
            "non-alphanumeric character such as |",
            "102",
            "MSH^1^1",
        )
    if len(enc) < 4 or len(enc) > 5:
        raise HL7ParseError(
            f"MSH-2 encoding characters '{enc}' are invalid: expected 4 characters "
            f"such as {_EXAMPLE} (5 with the v2.7 truncation character)",
            "102",
            "MSH^1^2",
        )
    if any(_bad_char(ch) for ch in enc):
        raise HL7ParseError(
            f"MSH-2 encoding characters '{enc}' are invalid: delimiters must be printable "
            f"ASCII, not letters, digits, whitespace or control characters "
            f"(expected e.g. {_EXAMPLE})",
            "102",
            "MSH^1^2",
        )
    if len(set(enc + fs)) != len(enc) + 1:
        raise HL7ParseError(
            f"MSH-2 encoding characters '{enc}' are invalid: each delimiter must be distinct "
            f"and differ from the field separator '{fs}' (expected e.g. {_EXAMPLE})",
            "102",
            "MSH^1^2",
        )
    return Delimiters(fs, enc[0], enc[1], enc[2], enc[3], enc[4:5])


def delimiters_from_msh(fs: str, enc: str) -> Delimiters:
    """Return validated delimiters for MSH-1 ``fs`` and MSH-2 ``enc``.

    Raises ``HL7ParseError`` (code 102, location ``MSH^1^1``/``MSH^1^2``) when invalid.
    """
    key = (fs, enc)
    d = _CACHE.get(key)
    if d is None:
        d = _validate(fs, enc)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = d
    return d
