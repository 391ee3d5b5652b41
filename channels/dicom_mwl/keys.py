"""The worklist matching keys and how one query value becomes match alternatives (sans-I/O).

:data:`KEYS` lists every attribute the SCP matches on: the required keys of PS3.4 Table K.6-1
(Scheduled Station AE Title, SPS Start Date and Time, Modality, Scheduled Performing
Physician's Name, Patient's Name, Patient ID) plus the optional keys dcm4chee supports and
DCMTK's extra ones. A key with a ``column`` is evaluated in SQL on an indexed column; one
without is evaluated in Python on the stored item. Any other attribute in a query is a return
key only.

A query value turns into *alternatives* (a backslash list gives several, any may match):

- :class:`Exact` — single value matching (UI, and string VRs without wildcards);
- :class:`Pattern` — ``*`` / ``?`` wildcards, on the VRs that allow them (AE CS LO LT PN SH ST
  UC UR UT); a value that is only ``*`` is universal matching;
- :class:`Range` — DA / TM ranges (``A-B``, ``A-``, ``-B``); a single date or time is the range
  its precision covers. Bounds are inclusive, both always set: an open bound becomes ``"0"``
  (below any stored value, above empty) or ``"~"`` (above any).

Person names are compared in normalised form (:func:`engine.dicom.values.normalize_pn`), so
PN matching ignores case and accents; every other VR is compared exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from engine.dicom.values import clean, normalize_da, normalize_pn, split_values, tm_bounds
from engine.errors import RadBridgeError

Level = Literal["top", "sps"]
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
LOW, HIGH = "0", "~"


class MWLQueryError(RadBridgeError, ValueError):
    """A query value cannot be interpreted (answered 0xA900 with this reason)."""


@dataclass(frozen=True, slots=True)
class Key:
    keyword: str
    vr: str
    level: Level
    column: str | None
    """Indexed column in ``worklist``; None: matched in Python on the stored item."""


_KEY_LIST = (
    Key("PatientName", "PN", "top", "patient_name_norm"),
    Key("PatientID", "LO", "top", "patient_id"),
    Key("IssuerOfPatientID", "LO", "top", "issuer_of_patient_id"),
    Key("PatientBirthDate", "DA", "top", "birth_date"),
    Key("PatientSex", "CS", "top", "sex"),
    Key("AccessionNumber", "SH", "top", "accession_number"),
    Key("RequestedProcedureID", "SH", "top", "requested_procedure_id"),
    Key("StudyInstanceUID", "UI", "top", "study_instance_uid"),
    Key("Modality", "CS", "sps", "modality"),
    Key("ScheduledStationAETitle", "AE", "sps", "ae_title"),  # side table, set semantics
    Key("ScheduledStationName", "SH", "sps", "scheduled_station_name"),
    Key("ScheduledProcedureStepStartDate", "DA", "sps", "sps_start"),
    Key("ScheduledProcedureStepStartTime", "TM", "sps", "sps_start_time"),
    Key("ScheduledPerformingPhysicianName", "PN", "sps", "performing_physician_norm"),
    Key("ScheduledProcedureStepID", "SH", "sps", "sps_id"),
    Key("ScheduledProcedureStepStatus", "CS", "sps", "sps_status"),
    # Matched in Python after SQL (DCMTK supports these too).
    Key("ReferringPhysicianName", "PN", "top", None),
    Key("RequestingPhysician", "PN", "top", None),
    Key("AdmissionID", "LO", "top", None),
    Key("RequestedProcedurePriority", "SH", "top", None),
    Key("ScheduledProcedureStepLocation", "SH", "sps", None),
)
KEYS: dict[str, Key] = {k.keyword: k for k in _KEY_LIST}
STATION = KEYS["ScheduledStationAETitle"]
START_DATE = KEYS["ScheduledProcedureStepStartDate"]
START_TIME = KEYS["ScheduledProcedureStepStartTime"]
STATUS = KEYS["ScheduledProcedureStepStatus"]


@dataclass(frozen=True, slots=True)
class Exact:
    value: str

    def test(self, text: str) -> bool:
        return text == self.value


@dataclass(frozen=True, slots=True)
class Pattern:
    value: str
    """``*`` any run of characters, ``?`` exactly one; everything else literal."""
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in self.value)
        object.__setattr__(self, "_regex", re.compile("".join(parts), re.DOTALL))

    def glob(self) -> str:
        """The SQLite GLOB pattern (``[`` is the only other GLOB metacharacter)."""
        return self.value.replace("[", "[[]")

    def test(self, text: str) -> bool:
        return self._regex.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Range:
    low: str
    high: str

    def test(self, text: str) -> bool:
        return self.low <= text <= self.high


Alternative = Exact | Pattern | Range


def _da_range(text: str, keyword: str) -> tuple[str, str]:
    low, sep, high = text.partition("-")
    bounds = []
    for raw in (low, high if sep else low):
        part = raw.strip()
        day = normalize_da(part) if part else ""
        if part and not day:
            raise MWLQueryError(f"{keyword}: {text!r} is not a date or date range")
        bounds.append(day)
    return bounds[0], bounds[1]


def _tm_range(text: str, keyword: str) -> tuple[str, str]:
    low, sep, high = text.partition("-")
    out = []
    for i, raw in enumerate((low, high if sep else low)):
        part = raw.strip()
        if not part:
            out.append("")
            continue
        bounds = tm_bounds(part)
        if bounds is None:
            raise MWLQueryError(f"{keyword}: {text!r} is not a time or time range")
        out.append(bounds[i])
    return out[0], out[1]


def date_ranges(raw: object, keyword: str) -> list[tuple[str, str]]:
    """The (low, high) dates of a DA query value; ``""`` for an open bound; [] = universal."""
    texts = [t for t in (v.strip() for v in split_values(raw)) if t and t != "-"]
    return [_da_range(t, keyword) for t in texts]


def time_ranges(raw: object, keyword: str) -> list[tuple[str, str]]:
    """The (low, high) normalised times of a TM query value; ``""`` for an open bound."""
    texts = [t for t in (v.strip() for v in split_values(raw)) if t and t != "-"]
    return [_tm_range(t, keyword) for t in texts]


def alternatives(key: Key, raw: object) -> tuple[Alternative, ...]:
    """What a query value for ``key`` matches; ``()`` means universal matching."""
    if key.vr == "DA":
        return tuple(Range(lo or LOW, hi or HIGH) for lo, hi in date_ranges(raw, key.keyword))
    if key.vr == "TM":
        return tuple(Range(lo or LOW, hi or HIGH) for lo, hi in time_ranges(raw, key.keyword))
    if key.vr == "PN":
        texts = [normalize_pn(v) for v in split_values(raw)]
    else:
        texts = [clean(v) for v in split_values(raw)]
    texts = [t for t in texts if t]
    if any(t.strip("*") == "" for t in texts):
        return ()  # '*' alone is universal matching
    out: list[Alternative] = []
    for t in dict.fromkeys(texts):
        wild = key.vr in WILDCARD_VRS and ("*" in t or "?" in t)
        out.append(Pattern(t) if wild else Exact(t))
    return tuple(out)
