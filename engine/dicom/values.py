"""DICOM value normalisation shared by the worklist store and the worklist matcher (sans-I/O).

The store derives its indexed columns with these functions and the matcher normalises query
values with the same ones, so a stored value and a query value meet in one canonical form:

- **PN** (person names): the alphabetic component group only, accents removed (NFKD, combining
  marks dropped), upper case, trailing spaces of each component and trailing empty components
  removed: ``"Müller^Anna^^"`` → ``"MULLER^ANNA"``.
- **DA**: ``YYYYMMDD`` (the ACR-NEMA ``YYYY.MM.DD`` form is accepted); anything else → ``""``.
- **TM**: fixed width ``HHMMSS.ffffff`` (``"0830"`` → ``"083000.000000"``; the ACR-NEMA
  ``HH:MM:SS`` form is accepted), so stored times compare as strings; anything else → ``""``.
- **SPS start** (combined date and time): ``YYYYMMDD`` + normalised time, or the date alone
  when there is no time (an untimed step sorts first on its day and matches date queries, not
  time-bounded ones).

Range bounds of a partial time follow its precision: ``"16"`` covers ``160000.000000`` to
``165959.999999``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?$")
TIME_MAX = "235959.999999"
"""Above every normalised time; a date followed by it bounds a whole day."""


def split_values(value: object) -> list[str]:
    """Every value of a (possibly multi-valued) element as a list of strings.

    Accepts ``None``, a backslash-separated string, a list/tuple (pydicom ``MultiValue``), a
    pydicom ``PersonName`` or numbers. Empty input gives ``[]``.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return value.split("\\") if value else []
    if isinstance(value, bytes):
        raise TypeError("bytes are not a decoded DICOM value")
    if isinstance(value, Iterable) and not hasattr(value, "family_name"):
        out: list[str] = []
        for v in value:
            out.extend(split_values(v))
        return out
    return [str(value)]


def join_values(value: object) -> str:
    """The DICOM string form of a value (multiple values joined by backslash)."""
    return "\\".join(split_values(value))


def clean(value: object) -> str:
    """The string form with each value's insignificant leading/trailing spaces (and UID NUL
    padding) removed: what the store indexes and what exact matching compares."""
    return "\\".join(v.strip(" \x00") for v in split_values(value))


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_pn(value: object) -> str:
    """Canonical form of a person name for case- and accent-insensitive matching.

    Wildcards (``*``, ``?``) pass through unchanged, so a query pattern is normalised the
    same way as a stored name.
    """
    text = join_values(value).split("=", 1)[0]
    components = [c.rstrip(" ") for c in text.split("^")]
    while components and not components[-1]:
        components.pop()
    return strip_accents("^".join(components)).upper()


def normalize_da(value: object) -> str:
    """``YYYYMMDD`` or ``""`` when the value is not a valid date."""
    text = join_values(value).strip()
    m = _DA.match(text)
    if not m:
        return ""
    year, month, day = m.groups()
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return ""
    return year + month + day


def _tm_parts(text: str) -> tuple[str, str | None, str | None, str | None] | None:
    m = _TM.match(text.strip())
    if not m:
        return None
    hh, mm, ss, frac = m.groups()
    if int(hh) > 23 or (mm is not None and int(mm) > 59) or (ss is not None and int(ss) > 60):
        return None
    return hh, mm, ss, frac


def normalize_tm(value: object) -> str:
    """``HHMMSS.ffffff`` or ``""`` when the value is not a valid time."""
    parts = _tm_parts(join_values(value))
    if parts is None:
        return ""
    hh, mm, ss, frac = parts
    return f"{hh}{mm or '00'}{ss or '00'}.{(frac or '').ljust(6, '0')}"


def tm_bounds(value: str) -> tuple[str, str] | None:
    """The normalised times a (possibly partial) query time covers, or None if invalid."""
    parts = _tm_parts(value)
    if parts is None:
        return None
    hh, mm, ss, frac = parts
    low = f"{hh}{mm or '00'}{ss or '00'}.{(frac or '').ljust(6, '0')}"
    high = f"{hh}{mm or '59'}{ss or '59'}.{(frac or '').ljust(6, '9')}"
    return low, high


def sps_start(date: object, time: object) -> str:
    """The sortable combined start of a step: date + normalised time, or the date alone."""
    day = normalize_da(date)
    if not day:
        return ""
    return day + normalize_tm(time)
