"""Normalisers: turn order and study values into comparable forms, driven by the rules.

Pure and cheap (called for every record of a 100,000 x 100,000 pass). Person names compare
on their first N components, accent- and case-insensitively, ignoring trailing ``^`` and
the ideographic/phonetic groups; ``?`` (charset damage) matches any one letter.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from transforms.reconcile.rules import NormaliseConfig


def text(value: object) -> str:
    """A DICOM/JSON value as one stripped string (first value of a list)."""
    if type(value) is str:  # the common case first (called ~15 times per record)
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return text(value[0]) if value else ""
    if isinstance(value, dict):  # PN as JSON model: {"Alphabetic": ...}
        return text(value.get("Alphabetic", ""))
    return str(value).strip()


@lru_cache(maxsize=65536)
def _fold(value: str, strip_accents: bool, upper: bool) -> str:
    if strip_accents:
        value = "".join(c for c in unicodedata.normalize("NFKD", value)
                        if not unicodedata.combining(c))
    return value.upper() if upper else value


def person_name(value: object, cfg: NormaliseConfig) -> tuple[str, ...]:
    """PN -> its first ``components`` components, folded, spaces collapsed."""
    pn = cfg.patient_name
    return _person_name(text(value), pn.components, pn.strip_accents, pn.case_insensitive)


@lru_cache(maxsize=65536)
def _person_name(raw: str, components: int, strip_accents: bool, upper: bool
                 ) -> tuple[str, ...]:
    parts = raw.split("=", maxsplit=1)[0].split("^")[:components]
    folded = [" ".join(_fold(p, strip_accents, upper).split()) for p in parts]
    while folded and not folded[-1]:
        folded.pop()
    return tuple(folded)


def _component_equal(a: str, b: str, unknown: str) -> bool:
    if a == b:
        return True
    if not unknown or len(a) != len(b):
        return False
    return all(x == y or x in unknown or y in unknown for x, y in zip(a, b, strict=True))


def names_differ(a: tuple[str, ...], b: tuple[str, ...], cfg: NormaliseConfig) -> list[str]:
    """Names of the PN components that differ (``family``, ``given``, ``middle``...)."""
    labels = ("family", "given", "middle", "prefix", "suffix")
    out: list[str] = []
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else ""
        y = b[i] if i < len(b) else ""
        if not _component_equal(x, y, cfg.patient_name.unknown_chars):
            out.append(labels[i])
    return out


def patient_id(value: object, cfg: NormaliseConfig) -> str:
    pid = text(value)
    if cfg.patient_id.case_insensitive:
        pid = pid.upper()
    if cfg.patient_id.strip_leading_zeros:
        pid = pid.lstrip("0") or ("0" if pid else "")
    return pid


def issuer(value: object, cfg: NormaliseConfig) -> str:
    raw = " ".join(text(value).upper().split())
    return cfg.issuer.aliases.get(raw, raw)


def issuers_differ(a: str, b: str, cfg: NormaliseConfig) -> bool:
    if cfg.issuer.empty_matches_any and (not a or not b):
        return False
    return a != b


@lru_cache(maxsize=65536)
def _parse_date(value: str) -> int | None:
    digits = value.replace("-", "").replace(".", "")[:8]
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8])).toordinal()
    except ValueError:
        return None


def date_ordinal(value: object) -> int | None:
    """A DA (``YYYYMMDD``, ``YYYY-MM-DD``, ``YYYY.MM.DD``, or DT prefix) as a day number."""
    return _parse_date(text(value))


def date_text(ordinal: int | None) -> str:
    return "" if ordinal is None else dt.date.fromordinal(ordinal).strftime("%Y%m%d")


@lru_cache(maxsize=65536)
def _date_digits(value: str) -> str:
    """``YYYYMMDD`` of a valid date (the same digits ``date_text(date_ordinal())`` gives,
    without the round trip), else ``""``."""
    return value.replace("-", "").replace(".", "")[:8] if _parse_date(value) is not None else ""


def birth_date(value: object, cfg: NormaliseConfig) -> str:
    """``YYYYMMDD`` or ``""`` for empty, unparsable or placeholder dates."""
    out = _date_digits(text(value))
    return "" if out in cfg.birth_date.unknown else out


def sex(value: object, cfg: NormaliseConfig) -> str:
    code = text(value).upper()[:1]
    return cfg.sex.map.get(code, code)


def modality(value: object, cfg: NormaliseConfig) -> str:
    code = text(value).upper()
    return cfg.modality.canonical.get(code, code)


def modalities(values: object, cfg: NormaliseConfig) -> frozenset[str]:
    """ModalitiesInStudy (list or ``\\``-joined) -> canonical image modalities only."""
    items: Iterable[object]
    if isinstance(values, str):
        items = values.split("\\")
    elif isinstance(values, list | tuple | set | frozenset):
        items = values
    else:
        items = [] if values is None else [values]
    ignored = cfg.modality.ignored
    out = {modality(v, cfg) for v in items}
    return frozenset(m for m in out if m and m not in ignored)


def accession(value: object, case_insensitive: bool) -> str:
    acc = text(value)
    return acc.upper() if case_insensitive else acc
