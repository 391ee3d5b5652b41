"""The modality worklist table: one row per scheduled procedure step (SPS).

An *item* is the dict the order → worklist mapping produces, DICOM keyword → value, sequences
as lists of dicts, with exactly one ``ScheduledProcedureStepSequence`` item (this row's step)::

    {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "DOE^JANE", "PatientID": "P1",
     "AccessionNumber": "A1", "StudyInstanceUID": "1.2.3", "RequestedProcedureID": "RP1",
     "ScheduledProcedureStepSequence": [{"Modality": "CT", "ScheduledStationAETitle": "CT1",
         "ScheduledProcedureStepStartDate": "20261122", "ScheduledProcedureStepID": "S1"}]}

Rows are keyed by (Study Instance UID, SPS ID), as dcm4chee keys its MWL. Every matching key
of the worklist SCP has an indexed column derived on write (:func:`upsert_step`); the item is
kept whole as JSON and returned as is by :func:`find`. Multi-valued Scheduled Station AE Titles
go to a side table, one row per title, so they match as a set.

All functions take a :class:`sqlite3.Connection` and run inside the caller's transaction:
``await store.write_tx(lambda c: upsert_step(c, item))``, ``await store.read_tx(...)``.
A query is any object with the :class:`StepQuery` shape (the MWL matcher compiles one); this
module knows the columns, not the matching rules.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

from pydicom.datadict import tag_for_keyword

from engine.dicom.values import (
    clean,
    join_values,
    normalize_da,
    normalize_pn,
    normalize_tm,
    split_values,
    sps_start,
)
from engine.errors import RadBridgeError

SPS = "ScheduledProcedureStepSequence"
SCHEDULED = "SCHEDULED"
STATUSES = frozenset(
    {"SCHEDULED", "ARRIVED", "READY", "STARTED", "DEPARTED", "CANCELED", "DISCONTINUED",
     "COMPLETED"}
)
_COLUMNS = (
    "study_instance_uid", "sps_id", "patient_id", "issuer_of_patient_id", "patient_name",
    "patient_name_norm", "birth_date", "sex", "accession_number", "requested_procedure_id",
    "modality", "scheduled_station_aet", "scheduled_station_name", "sps_start_date",
    "sps_start_time", "sps_start", "sps_status", "performing_physician",
    "performing_physician_norm", "attributes", "specific_character_set", "message_id",
)
_UPSERT = (
    f"INSERT INTO worklist ({', '.join(_COLUMNS)}, created_at, updated_at)"
    f" VALUES ({', '.join('?' * (len(_COLUMNS) + 2))})"
    " ON CONFLICT (study_instance_uid, sps_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
    + ", updated_at = excluded.updated_at RETURNING id"
)


class WorklistItemError(RadBridgeError, ValueError):
    """An item cannot be stored as a scheduled procedure step (the reason says why)."""


class StepQuery(Protocol):
    """A compiled worklist query (see ``channels.dicom_mwl.matching.MWLQuery``)."""

    @property
    def needs_python(self) -> bool:
        """True when :meth:`accepts` must still check rows the SQL returned."""

    def where(self) -> tuple[str, Sequence[object]]:
        """SQL condition over ``worklist w`` and its parameters."""

    def accepts(self, item: Mapping[str, Any]) -> bool:
        """The part of the query SQL cannot evaluate, applied to a stored item."""


@lru_cache(maxsize=4096)
def _known_keyword(keyword: str) -> bool:
    return tag_for_keyword(keyword) is not None


def _check_keywords(item: Mapping[str, Any], path: str = "") -> list[str]:
    bad: list[str] = []
    for key, value in item.items():
        if not _known_keyword(key):
            bad.append(path + key)
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            for i, sub in enumerate(value):
                bad.extend(_check_keywords(sub, f"{path}{key}[{i}]."))
    return bad


def _jsonable(value: object) -> object:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return str(value)  # pydicom PersonName, UID, DA...


def step_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """The one SPS item of a worklist item (raises WorklistItemError otherwise)."""
    seq = item.get(SPS)
    if not isinstance(seq, list) or len(seq) != 1 or not isinstance(seq[0], Mapping):
        raise WorklistItemError(f"{SPS} must hold exactly one item (one row per step)")
    return dict(seq[0])


def _row(item: Mapping[str, Any], message_id: int | None) -> tuple[tuple[Any, ...], list[str]]:
    study_uid = clean(item.get("StudyInstanceUID"))
    step = step_of(item)
    sps_id = clean(step.get("ScheduledProcedureStepID"))
    missing = [k for k, v in (("StudyInstanceUID", study_uid), ("ScheduledProcedureStepID", sps_id))
               if not v]
    if missing:
        raise WorklistItemError(f"missing {' and '.join(missing)}")
    bad = _check_keywords(item)
    if bad:
        raise WorklistItemError(f"unknown DICOM keyword(s): {', '.join(bad)}")
    status = clean(step.get("ScheduledProcedureStepStatus")) or SCHEDULED
    step["ScheduledProcedureStepStatus"] = status
    item = {**item, SPS: [step]}
    aets = station_aets(step)
    date = step.get("ScheduledProcedureStepStartDate")
    tm = step.get("ScheduledProcedureStepStartTime")
    name = join_values(item.get("PatientName"))
    physician = join_values(step.get("ScheduledPerformingPhysicianName"))
    row = (
        study_uid, sps_id,
        clean(item.get("PatientID")), clean(item.get("IssuerOfPatientID")),
        name, normalize_pn(name), normalize_da(item.get("PatientBirthDate")),
        clean(item.get("PatientSex")), clean(item.get("AccessionNumber")),
        clean(item.get("RequestedProcedureID")), clean(step.get("Modality")),
        "\\".join(aets), clean(step.get("ScheduledStationName")),
        normalize_da(date), normalize_tm(tm), sps_start(date, tm), status,
        physician, normalize_pn(physician),
        json.dumps(item, ensure_ascii=False, separators=(",", ":"), default=_jsonable),
        clean(item.get("SpecificCharacterSet")), message_id,
    )
    return row, aets


def station_aets(step: Mapping[str, Any]) -> list[str]:
    """The distinct Scheduled Station AE Titles of an SPS item (a set, in stored order)."""
    titles = (a.strip() for a in split_values(step.get("ScheduledStationAETitle")))
    return list(dict.fromkeys(a for a in titles if a))


def upsert_step(
    conn: sqlite3.Connection, item: Mapping[str, Any], *, message_id: int | None = None,
    now: float | None = None,
) -> int:
    """Insert or replace the step (Study Instance UID, SPS ID) of ``item``; return its row id.

    An absent SPS Status is stored as SCHEDULED (and added to the item)."""
    row, aets = _row(item, message_id)
    stamp = time.time() if now is None else now
    step_id = int(conn.execute(_UPSERT, (*row, stamp, stamp)).fetchone()[0])
    conn.execute("DELETE FROM worklist_station WHERE step_id = ?", (step_id,))
    start = row[_COLUMNS.index("sps_start")]
    conn.executemany(
        "INSERT INTO worklist_station (ae_title, sps_start, step_id) VALUES (?, ?, ?)",
        [(aet, start, step_id) for aet in aets],
    )
    return step_id


def delete_step(conn: sqlite3.Connection, study_uid: str, sps_id: str) -> bool:
    """Remove a step; True when it existed."""
    found = conn.execute(
        "SELECT id FROM worklist WHERE study_instance_uid = ? AND sps_id = ?", (study_uid, sps_id)
    ).fetchone()
    if found is None:
        return False
    conn.execute("DELETE FROM worklist_station WHERE step_id = ?", (found[0],))
    conn.execute("DELETE FROM worklist WHERE id = ?", (found[0],))
    return True


def get_step(conn: sqlite3.Connection, study_uid: str, sps_id: str) -> dict[str, Any] | None:
    found = conn.execute(
        "SELECT attributes FROM worklist WHERE study_instance_uid = ? AND sps_id = ?",
        (study_uid, sps_id),
    ).fetchone()
    return None if found is None else dict(json.loads(found[0]))


def set_status(
    conn: sqlite3.Connection, study_uid: str, sps_id: str, status: str, *,
    now: float | None = None,
) -> bool:
    """Set the SPS Status of a step (column and stored item); True when the step exists."""
    status = status.strip().upper()
    if status not in STATUSES:
        raise WorklistItemError(f"unknown SPS status {status!r}")
    item = get_step(conn, study_uid, sps_id)
    if item is None:
        return False
    step = step_of(item)
    step["ScheduledProcedureStepStatus"] = status
    item[SPS] = [step]
    conn.execute(
        "UPDATE worklist SET sps_status = ?, attributes = ?, updated_at = ?"
        " WHERE study_instance_uid = ? AND sps_id = ?",
        (status, json.dumps(item, ensure_ascii=False, separators=(",", ":")),
         time.time() if now is None else now, study_uid, sps_id),
    )
    return True


def steps_for_study(conn: sqlite3.Connection, study_uid: str) -> list[dict[str, Any]]:
    """Every step of a requested procedure's study, in start order."""
    rows = conn.execute(
        "SELECT attributes FROM worklist WHERE study_instance_uid = ? ORDER BY sps_start, id",
        (study_uid,),
    ).fetchall()
    return [json.loads(r[0]) for r in rows]


def _matching(conn: sqlite3.Connection, query: StepQuery, limit: int | None
              ) -> Iterator[dict[str, Any]]:
    where, params = query.where()
    sql = f"SELECT w.attributes FROM worklist w WHERE {where} ORDER BY w.sps_start, w.id"
    if limit is not None and not query.needs_python:
        sql += f" LIMIT {int(limit)}"
    cursor = conn.execute(sql, tuple(params))
    while rows := cursor.fetchmany(256):
        for (attributes,) in rows:
            item: dict[str, Any] = json.loads(attributes)
            if not query.needs_python or query.accepts(item):
                yield item


def find(conn: sqlite3.Connection, query: StepQuery, *, limit: int | None = None
         ) -> list[dict[str, Any]]:
    """The items of the steps that match ``query`` (at most ``limit``), in start order."""
    out: list[dict[str, Any]] = []
    for item in _matching(conn, query, limit):
        out.append(item)
        if limit is not None and len(out) >= limit:
            break
    return out


def count(conn: sqlite3.Connection, query: StepQuery | None = None) -> int:
    """How many steps match ``query`` (all steps when None)."""
    if query is None:
        return int(conn.execute("SELECT count(*) FROM worklist").fetchone()[0])
    if not query.needs_python:
        where, params = query.where()
        sql = f"SELECT count(*) FROM worklist w WHERE {where}"
        return int(conn.execute(sql, tuple(params)).fetchone()[0])
    return sum(1 for _ in _matching(conn, query, None))
