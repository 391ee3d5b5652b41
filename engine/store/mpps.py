"""The MPPS tables: instances, their history, and the worklist steps each one performed.

Rows are keyed by the MPPS SOP Instance UID. ``attributes`` holds the instance as a record
(the N-CREATE merged with every N-SET, JSON); ``mpps_events`` keeps each operation with the
attributes it carried, so the history is complete. An MPPS that matched no scheduled step is
stored with ``unscheduled = 1`` for the reconciler (:func:`unscheduled`), never dropped.

The worklist link (:func:`find_steps`) follows the Scheduled Step Attributes Sequence: by
(Study Instance UID, SPS ID) as dcm4chee does, then, when that finds nothing, by accession
number (with the SPS ID when the item has one, else every step of that accession).

All functions run inside the caller's transaction (``store.write_tx`` / ``read_tx``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

_INSERT = (
    "INSERT INTO mpps (sop_instance_uid, channel, status, pps_id, study_instance_uid, sps_id,"
    " accession_number, patient_id, modality, station_aet, calling_aet, unscheduled,"
    " discontinuation_reason, attributes, created_at, updated_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key, "")
    if isinstance(value, list):
        return "\\".join(str(v) for v in value)
    return str(value or "").strip()


def get(conn: sqlite3.Connection, uid: str) -> tuple[str, dict[str, Any]] | None:
    """(status, record) of an MPPS instance, or None."""
    row = conn.execute(
        "SELECT status, attributes FROM mpps WHERE sop_instance_uid = ?", (uid,)
    ).fetchone()
    return None if row is None else (str(row[0]), dict(json.loads(row[1])))


def row(conn: sqlite3.Connection, uid: str) -> dict[str, Any] | None:
    """Every column of an MPPS instance (attributes decoded), or None."""
    cur = conn.execute("SELECT * FROM mpps WHERE sop_instance_uid = ?", (uid,))
    found = cur.fetchone()
    if found is None:
        return None
    out = dict(zip([d[0] for d in cur.description], found, strict=True))
    out["attributes"] = json.loads(out["attributes"])
    out["discontinuation_reason"] = json.loads(out["discontinuation_reason"] or "[]")
    return out


def find_steps(conn: sqlite3.Connection, items: Sequence[Mapping[str, Any]], *,
               by_accession: bool = True) -> list[tuple[str, str, str]]:
    """The worklist steps the items reference: (study UID, SPS ID, linked_by), distinct."""
    found: dict[tuple[str, str], str] = {}
    for item in items:
        study, sps = _text(item, "StudyInstanceUID"), _text(item, "ScheduledProcedureStepID")
        if study and sps and conn.execute(
            "SELECT 1 FROM worklist WHERE study_instance_uid = ? AND sps_id = ?", (study, sps)
        ).fetchone():
            found.setdefault((study, sps), "study_sps")
            continue
        accession = _text(item, "AccessionNumber")
        if not (by_accession and accession):
            continue
        sql = "SELECT study_instance_uid, sps_id FROM worklist WHERE accession_number = ?"
        params: tuple[str, ...] = (accession,)
        if sps:
            sql += " AND sps_id = ?"
            params = (accession, sps)
        for s, p in conn.execute(sql + " ORDER BY sps_start, id", params).fetchall():
            found.setdefault((str(s), str(p)), "accession")
    return [(s, p, how) for (s, p), how in found.items()]


def insert(conn: sqlite3.Connection, uid: str, channel: str, status: str,
           record: Mapping[str, Any], *, calling_aet: str = "",
           steps: Sequence[tuple[str, str, str]] = (), now: float | None = None) -> None:
    """Store a new instance and the steps it is linked to (none: unscheduled)."""
    stamp = time.time() if now is None else now
    items = record.get("ScheduledStepAttributesSequence") or [{}]
    first = items[0] if isinstance(items, list) and items and isinstance(items[0], Mapping) \
        else {}
    study = _text(first, "StudyInstanceUID") or (steps[0][0] if steps else "")
    conn.execute(_INSERT, (
        uid, channel, status, _text(record, "PerformedProcedureStepID"), study,
        _text(first, "ScheduledProcedureStepID"), _text(first, "AccessionNumber"),
        _text(record, "PatientID"), _text(record, "Modality"),
        _text(record, "PerformedStationAETitle"), calling_aet, 0 if steps else 1,
        "", _json(record), stamp, stamp,
    ))
    conn.executemany(
        "INSERT OR IGNORE INTO mpps_steps (sop_instance_uid, study_instance_uid, sps_id,"
        " linked_by) VALUES (?,?,?,?)", [(uid, s, p, how) for s, p, how in steps])


def update(conn: sqlite3.Connection, uid: str, status: str, record: Mapping[str, Any], *,
           now: float | None = None) -> None:
    """Store the instance after an N-SET (status, merged record, discontinuation reason)."""
    reason = record.get("PerformedProcedureStepDiscontinuationReasonCodeSequence") or []
    conn.execute(
        "UPDATE mpps SET status = ?, attributes = ?, discontinuation_reason = ?,"
        " modality = COALESCE(NULLIF(?, ''), modality), updated_at = ?"
        " WHERE sop_instance_uid = ?",
        (status, _json(record), _json(reason) if reason else "", _text(record, "Modality"),
         time.time() if now is None else now, uid))


def linked_steps(conn: sqlite3.Connection, uid: str) -> list[tuple[str, str]]:
    """(study UID, SPS ID) of the worklist steps an instance performed."""
    rows = conn.execute(
        "SELECT study_instance_uid, sps_id FROM mpps_steps WHERE sop_instance_uid = ?"
        " ORDER BY study_instance_uid, sps_id", (uid,)).fetchall()
    return [(str(s), str(p)) for s, p in rows]


def add_event(conn: sqlite3.Connection, uid: str, operation: str, before: str, after: str,
              changes: Mapping[str, Any], *, message_id: int | None = None,
              calling_aet: str = "", now: float | None = None) -> None:
    """Append one operation to the instance's history."""
    conn.execute(
        "INSERT INTO mpps_events (sop_instance_uid, operation, status_before, status_after,"
        " message_id, calling_aet, changes, received_at) VALUES (?,?,?,?,?,?,?,?)",
        (uid, operation, before, after, message_id, calling_aet, _json(changes),
         time.time() if now is None else now))


def history(conn: sqlite3.Connection, uid: str) -> list[dict[str, Any]]:
    """The operations of an instance, oldest first."""
    rows = conn.execute(
        "SELECT operation, status_before, status_after, message_id, calling_aet, changes,"
        " received_at FROM mpps_events WHERE sop_instance_uid = ? ORDER BY id", (uid,)
    ).fetchall()
    keys = ("operation", "status_before", "status_after", "message_id", "calling_aet",
            "changes", "received_at")
    return [{**dict(zip(keys, r, strict=True)), "changes": json.loads(r[5])} for r in rows]


def unscheduled(conn: sqlite3.Connection, *, include_reconciled: bool = False
                ) -> list[dict[str, Any]]:
    """Instances that matched no scheduled step (for the reconciler), oldest first."""
    sql = "SELECT sop_instance_uid FROM mpps WHERE unscheduled = 1"
    if not include_reconciled:
        sql += " AND reconciled_at IS NULL"
    uids = [r[0] for r in conn.execute(sql + " ORDER BY created_at").fetchall()]
    return [r for r in (row(conn, u) for u in uids) if r is not None]


def mark_reconciled(conn: sqlite3.Connection, uid: str, *, now: float | None = None) -> bool:
    cur = conn.execute("UPDATE mpps SET reconciled_at = ? WHERE sop_instance_uid = ?",
                       (time.time() if now is None else now, uid))
    return cur.rowcount > 0
