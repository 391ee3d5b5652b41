"""Reconciliation storage: the PACS study snapshot and the de-duplicated mismatch list.

Functions take a ``sqlite3.Connection`` and are meant to run inside ``Store.write_tx`` /
``read_tx``. ``upsert_mismatches`` is idempotent per pass: a mismatch found again keeps its
row (and its status) and gets a new ``last_seen``; an ``open`` or ``acknowledged`` one not
found any more is resolved by ``reconciler``; a resolved one found again re-opens.
``ignored`` rows stay ignored (a person decided) but their ``last_seen`` is kept fresh.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transforms.reconcile.mismatch import Mismatch

STATUSES = ("open", "acknowledged", "resolved", "ignored")
AUTO = "reconciler"


@dataclass(frozen=True, slots=True)
class UpsertSummary:
    """What one pass changed."""

    new: int
    seen_again: int
    reopened: int
    resolved: int
    new_keys: tuple[str, ...]   # for `mismatch_flagged` events


def _text(value: object) -> str:
    if isinstance(value, list):
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def replace_studies(conn: sqlite3.Connection, studies: Iterable[Mapping[str, Any]],
                    source: str, now: float | None = None, *, clear: bool = True) -> int:
    """Store a C-FIND pass (replacing ``source``'s previous snapshot unless ``clear`` is
    false, for a windowed pass); return the number of rows written."""
    now = time.time() if now is None else now
    if clear:
        conn.execute("DELETE FROM pacs_studies WHERE source = ?", (source,))
    rows = [
        (_text(s.get("StudyInstanceUID")), source, _text(s.get("AccessionNumber")),
         _text(s.get("PatientID")), _text(s.get("IssuerOfPatientID")),
         _text(s.get("StudyDate")), _text(s.get("ModalitiesInStudy")),
         int(s["NumberOfStudyRelatedInstances"])
         if str(s.get("NumberOfStudyRelatedInstances", "")).isdigit() else None,
         json.dumps(dict(s), default=str), now)
        for s in studies if s.get("StudyInstanceUID")
    ]
    conn.executemany(
        "INSERT OR REPLACE INTO pacs_studies (study_instance_uid, source, accession_number,"
        " patient_id, issuer_of_patient_id, study_date, modalities, instances, attributes,"
        " fetched_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    return len(rows)


def load_studies(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every stored C-FIND answer (the ``studies`` argument of ``reconcile``)."""
    return [json.loads(r[0]) for r in conn.execute("SELECT attributes FROM pacs_studies")]


def load_orders(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every worklist row as ``reconcile`` reads it (``attributes`` + ``sps_status``)."""
    return [{"sps_status": r[0], "sps_id": r[1], "attributes": json.loads(r[2])}
            for r in conn.execute("SELECT sps_status, sps_id, attributes FROM worklist")]


def load_mpps(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """MPPS rows (COMPLETED or unscheduled) for the MPPS checks."""
    cur = conn.execute(
        "SELECT sop_instance_uid, status, study_instance_uid, accession_number, unscheduled,"
        " reconciled_at, attributes FROM mpps WHERE status = 'COMPLETED' OR unscheduled = 1")
    keys = ("sop_instance_uid", "status", "study_instance_uid", "accession_number",
            "unscheduled", "reconciled_at")
    return [{**dict(zip(keys, r[:6], strict=True)), "attributes": json.loads(r[6])}
            for r in cur]


def _details(m: Mismatch) -> str:
    return json.dumps({"order_value": m.order_value, "study_value": m.study_value,
                       **m.details}, default=str, sort_keys=True)


def upsert_mismatches(conn: sqlite3.Connection, found: Sequence[Mismatch],
                      now: float | None = None) -> UpsertSummary:
    """Record one full pass (see the module docstring)."""
    now = time.time() if now is None else now
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _seen (key TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute("DELETE FROM _seen")
    conn.executemany("INSERT OR IGNORE INTO _seen (key) VALUES (?)", [(m.key,) for m in found])
    existing = {r[0]: r[1] for r in conn.execute(
        "SELECT m.key, m.status FROM mismatches m JOIN _seen s ON s.key = m.key")}
    new = [m for m in found if m.key not in existing]
    conn.executemany(
        "INSERT OR IGNORE INTO mismatches (key, type, severity, order_ref, study_ref, details,"
        " explanation, first_seen, last_seen) VALUES (?,?,?,?,?,?,?,?,?)",
        [(m.key, m.type, m.severity, m.order_ref, m.study_ref, _details(m), m.explanation,
          now, now) for m in new])
    again = [m for m in found if m.key in existing]
    conn.executemany(
        "UPDATE mismatches SET last_seen = ?, severity = ?, details = ?, explanation = ?"
        " WHERE key = ?", [(now, m.severity, _details(m), m.explanation, m.key) for m in again])
    reopened = conn.execute(
        "UPDATE mismatches SET status = 'open', status_at = ?, who = ?, why = 'found again'"
        " WHERE status = 'resolved' AND key IN (SELECT key FROM _seen) AND last_seen = ?",
        (now, AUTO, now)).rowcount
    resolved = conn.execute(
        "UPDATE mismatches SET status = 'resolved', status_at = ?, who = ?,"
        " why = 'no longer found' WHERE status IN ('open', 'acknowledged')"
        " AND key NOT IN (SELECT key FROM _seen)", (now, AUTO)).rowcount
    conn.execute("DELETE FROM _seen")
    return UpsertSummary(len(new), len(again), reopened, resolved,
                         tuple(m.key for m in new))


def set_status(conn: sqlite3.Connection, mismatch_id: int, status: str, who: str, why: str,
               now: float | None = None) -> bool:
    """A person's decision on one mismatch; False when the id is unknown."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    cur = conn.execute(
        "UPDATE mismatches SET status = ?, who = ?, why = ?, status_at = ? WHERE id = ?",
        (status, who, why, time.time() if now is None else now, mismatch_id))
    return cur.rowcount > 0


def list_mismatches(conn: sqlite3.Connection, *, status: str | None = "open",
                    limit: int = 1000) -> list[dict[str, Any]]:
    """Mismatches (most severe, then most recent first)."""
    order = ("CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2"
             " WHEN 'low' THEN 3 ELSE 4 END, last_seen DESC, id")
    sql = "SELECT * FROM mismatches"
    args: list[Any] = []
    if status is not None:
        sql += " WHERE status = ?"
        args.append(status)
    cur = conn.execute(f"{sql} ORDER BY {order} LIMIT ?", (*args, limit))
    names = [d[0] for d in cur.description]
    return [{**dict(zip(names, r, strict=True)), "details": json.loads(r[names.index("details")])}
            for r in cur.fetchall()]
