"""Date and time reformatting with partial precision: HL7 TS ↔ DICOM DA / TM / DT.

A format is a strftime-like text using ``%Y %m %d %H %M %S %f %z`` and literal
characters, or one of the names:

====  ==============================  ==========================================
name  format                          meaning
====  ==============================  ==========================================
hl7   ``%Y%m%d%H%M%S.%f%z``           HL7 TS/DTM: ``YYYY[MM[DD[HH[MM[SS[.S…]]]]]][±ZZZZ]``
DA    ``%Y%m%d``                      DICOM date
TM    ``%H%M%S.%f``                   DICOM time (``HH``, ``HHMM`` … are valid)
DT    ``%Y%m%d%H%M%S.%f%z``           DICOM date-time
====  ==============================  ==========================================

Reading: everything after the first directive may be missing from the end (partial
precision, ``202611220900`` is fine for ``hl7``); ``%f`` takes 1-6 digits and ``%z`` is
always optional.  Values are range-checked (month 1-12, a real day of that month, hour
0-23, minute 0-59, second 0-60, offset at most ±14:00).

Writing: output stops at the first date/time directive the value does not have (with
the literal before it), so precision is never invented, e.g. ``202611220900`` → TM
``0900``.  A missing ``%f`` is skipped, ``%z`` is written whenever the value has an
offset.  ``pad=True`` instead fills missing month/day with ``01`` and hours, minutes,
seconds with ``00``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["NAMED_FORMATS", "DateFormat", "DateFormatError", "compile_format", "reformat"]

NAMED_FORMATS: dict[str, str] = {
    "hl7": "%Y%m%d%H%M%S.%f%z",
    "DA": "%Y%m%d",
    "TM": "%H%M%S.%f",
    "DT": "%Y%m%d%H%M%S.%f%z",
}
_PATTERNS = {"Y": r"[0-9]{4}", "m": r"[0-9]{2}", "d": r"[0-9]{2}", "H": r"[0-9]{2}",
             "M": r"[0-9]{2}", "S": r"[0-9]{2}", "f": r"[0-9]{1,6}", "z": r"[+-][0-9]{4}"}
_PAD = {"m": "01", "d": "01", "H": "00", "M": "00", "S": "00"}
_DIRECTIVE = re.compile(r"%(.)")
_CACHE_SIZE = 4096
_PARSED: dict[str, dict[str, dict[str, str | None]]] = {}  # format → text → parts


class DateFormatError(ValueError):
    """A format string is invalid, or a value does not fit its format."""


@dataclass(frozen=True)
class DateFormat:
    """A compiled format: ``parse`` text into parts, ``format`` parts into text."""

    source: str
    pieces: tuple[tuple[str, str], ...]  # (literal before, directive letter)
    trailing: str
    regex: re.Pattern[str]

    def parse_cached(self, text: str) -> dict[str, str | None]:
        """``parse`` remembering recent answers (parts must not be modified)."""
        cache = _PARSED.setdefault(self.source, {})
        parts = cache.get(text)
        if parts is None:
            parts = self.parse(text)
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[text] = parts
        return parts

    def parse(self, text: str) -> dict[str, str | None]:
        """Parts by directive letter (``"Y"``, ``"m"`` …); a missing part is ``None``."""
        m = self.regex.fullmatch(text)
        if m is None:
            m = self.regex.fullmatch(text.strip())
            if m is None:
                raise DateFormatError(f"not a date/time in the format {self.source!r}")
        parts = m.groupdict()
        _check(parts)
        return parts

    def format(self, parts: dict[str, str | None], pad: bool = False) -> str:
        out: list[str] = []
        truncated = False
        for literal, code in self.pieces:
            value = parts.get(code)
            if code in ("z", "f"):
                if value is not None and not (code == "f" and truncated):
                    out.append(literal + value)
                continue
            if truncated:
                continue
            if value is None and pad and code in _PAD:
                value = _PAD[code]
            if value is None:
                truncated = True
                continue
            out.append(literal + value)
        if not truncated:
            out.append(self.trailing)
        return "".join(out)


@lru_cache(maxsize=256)
def compile_format(fmt: str) -> DateFormat:
    """Compile a format (or one of ``NAMED_FORMATS``); raises ``DateFormatError``."""
    source = NAMED_FORMATS.get(fmt, fmt)
    pieces: list[tuple[str, str]] = []
    pos = 0
    for m in _DIRECTIVE.finditer(source):
        code = m.group(1)
        if code not in _PATTERNS:
            raise DateFormatError(f"unsupported directive %{code} in {fmt!r} "
                                  "(use %Y %m %d %H %M %S %f %z)")
        if any(code == c for _, c in pieces):
            raise DateFormatError(f"%{code} appears twice in {fmt!r}")
        pieces.append((source[pos : m.start()], code))
        pos = m.end()
    if not pieces:
        raise DateFormatError(f"format {fmt!r} has no %-directive")
    if "%" in source[pos:] or any("%" in lit for lit, _ in pieces):
        raise DateFormatError(f"a lone '%' in {fmt!r}")
    core = [(lit, c) for lit, c in pieces if c != "z"]
    zones = [(lit, c) for lit, c in pieces if c == "z"]
    if zones and pieces[-1][1] != "z":
        raise DateFormatError(f"%z must be the last directive in {fmt!r}")
    regex = ""
    for i in range(len(core) - 1, -1, -1):
        lit, code = core[i]
        piece = re.escape(lit) + f"(?P<{code}>{_PATTERNS[code]})"
        regex = piece + regex if i == 0 else f"(?:{piece}{regex})?"
    for lit, _ in zones:
        regex += f"(?:{re.escape(lit)}(?P<z>{_PATTERNS['z']}))?"
    regex += f"(?:{re.escape(source[pos:])})?" if source[pos:] else ""
    return DateFormat(fmt, tuple(pieces), source[pos:], re.compile(regex))


def reformat(text: str, source: str, target: str, pad: bool = False) -> str:
    """``text`` read with format ``source`` and written with format ``target``."""
    return compile_format(target).format(compile_format(source).parse(text), pad)


def _check(parts: dict[str, str | None]) -> None:
    """Range checks on the fixed-width digit strings (compared as text)."""
    get = parts.get
    month, day, hour = get("m"), get("d"), get("H")
    minute, second, zone = get("M"), get("S"), get("z")
    if month is not None and not "01" <= month <= "12":
        raise DateFormatError("invalid month")
    if day is not None and (day < "01" or (day > "28" and int(day) > calendar.monthrange(
            int(get("Y") or 2000), int(month or 1))[1])):
        raise DateFormatError("invalid day of month")
    if hour is not None and hour > "23":
        raise DateFormatError("invalid hour")
    if minute is not None and minute > "59":
        raise DateFormatError("invalid minute")
    if second is not None and second > "60":
        raise DateFormatError("invalid second")
    if zone is not None and (zone[1:3] > "14" or zone[3:5] > "59"):
        raise DateFormatError("invalid time zone offset")
