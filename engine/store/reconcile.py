"""Reconciliation storage: the PACS study snapshot and the de-duplicated mismatch list.

Functions take a ``sqlite3.Connection`` and are meant to run inside ``Store.write_tx`` /
``read_tx``. ``upsert_mismatches`` is idempotent per pass: a mismatch found again keeps its
row (and its status) and gets a new ``last_seen``; an ``open`` or ``acknowledged`` one not
found any more is resolved by ``reconciler``; a resolved one found again re-opens.
``ignored`` rows stay ignored (a person decided) but their ``last_seen`` is kept fresh.

A pass may cover only part of the data (a date window, or the study an MPPS reported): it
then passes a :class:`Scope` (the order and study references it evaluated) and only
mismatches about those are resolved when not found again. The ``load_*`` functions take
the same kind of bounds, so an incremental pass reads what it needs through the indexes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.store import reconcile_decisions as decisions
from transforms.reconcile.mismatch import Mismatch

STATUSES = ("open", "acknowledged", "resolved", "ignored")
AUTO = "reconciler"


@dataclass(frozen=True, slots=True)
class Flagged:
    """A mismatch a pass created, re-opened or changed (what gets published)."""

    id: int
    key: str
    change: str  # new | reopened | changed


@dataclass(frozen=True, slots=True)
class UpsertSummary:
    """What one pass changed."""

    new: int
    seen_again: int
    reopened: int
    resolved: int
    new_keys: tuple[str, ...]
    flagged: tuple[Flagged, ...] = ()
    """New, re-opened and changed (severity or values) mismatches, for events and HL7."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What a partial pass evaluated: order refs (``uid/sps_id``) and study refs (Study
    Instance UIDs, ``mpps:<uid>``). Only a mismatch whose every side is among these can be
    auto-resolved by it."""

    orders: frozenset[str] = frozenset()
    studies: frozenset[str] = frozenset()
    lone_orders: frozenset[str] | None = None
    """Orders whose order-only flags (no study side, e.g. order without study) the pass
    could judge, because it read every study they might pair with; None: ``orders``."""


def _text(value: object) -> str:
    if isinstance(value, list):
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def replace_studies(conn: sqlite3.Connection, studies: Iterable[Mapping[str, Any]],
                    source: str, now: float | None = None, *, clear: bool = True,
                    window: tuple[str, str] | None = None,
                    uids: Iterable[str] = ()) -> int:
    """Store a C-FIND pass; return the number of rows written.

    What it replaces of ``source``'s snapshot: everything (``clear``, a full pass), the
    studies dated inside ``window`` (``YYYYMMDD`` bounds, a windowed pass), or the
    Study Instance UIDs in ``uids`` (a targeted query). A study the PACS no longer returns
    disappears from the snapshot that way; ``clear=False`` without bounds only adds."""
    now = time.time() if now is None else now
    if window is not None:
        conn.execute("DELETE FROM pacs_studies WHERE source = ? AND study_date BETWEEN ? AND ?",
                     (source, *window))
    elif uids:
        conn.executemany("DELETE FROM pacs_studies WHERE source = ? AND study_instance_uid = ?",
                         [(source, u) for u in uids])
    elif clear:
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


def _in(column: str, values: Sequence[str]) -> tuple[str, list[str]]:
    """``column IN (SELECT value FROM json_each(?))``: one parameter for any count."""
    return f"{column} IN (SELECT value FROM json_each(?))", [json.dumps(list(values))]


def _where(clauses: list[tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    if not clauses:
        return "", []
    return (" WHERE " + " OR ".join(c for c, _ in clauses),
            [a for _, args in clauses for a in args])


def load_studies(conn: sqlite3.Connection, *, window: tuple[str, str] | None = None,
                 uids: Sequence[str] = (), accessions: Sequence[str] = ()
                 ) -> list[dict[str, Any]]:
    """Stored C-FIND answers (the ``studies`` argument of ``reconcile``): every one, or
    those dated in ``window`` or with one of the ``uids`` / ``accessions``."""
    clauses: list[tuple[str, list[Any]]] = []
    if window is not None:
        clauses.append(("study_date BETWEEN ? AND ?", list(window)))
    if uids:
        clauses.append(_in("study_instance_uid", uids))
    if accessions:
        clauses.append(_in("accession_number", accessions))
    bounded = window is not None or bool(uids) or bool(accessions)
    if bounded and not clauses:
        return []
    where, args = _where(clauses)
    return [json.loads(r[0]) for r in conn.execute(
        f"SELECT attributes FROM pacs_studies{where}", args)]


def load_orders(conn: sqlite3.Connection, *, window: tuple[str, str] | None = None,
                uids: Sequence[str] = (), accessions: Sequence[str] = ()
                ) -> list[dict[str, Any]]:
    """Worklist rows as ``reconcile`` reads them (``attributes`` + ``sps_status``): every
    one, or those scheduled in ``window`` or with one of the ``uids`` / ``accessions``."""
    clauses: list[tuple[str, list[Any]]] = []
    if window is not None:
        # sps_start is date + time (indexed): '~' sorts after every digit
        clauses.append(("sps_start BETWEEN ? AND ?", [window[0], window[1] + "~"]))
    if uids:
        clauses.append(_in("study_instance_uid", uids))
    if accessions:
        clauses.append(_in("accession_number", accessions))
    where, args = _where(clauses)
    return [{"sps_status": r[0], "sps_id": r[1], "attributes": json.loads(r[2])}
            for r in conn.execute(
                f"SELECT sps_status, sps_id, attributes FROM worklist{where}", args)]


_MPPS_KEYS = ("sop_instance_uid", "status", "study_instance_uid", "accession_number",
              "unscheduled", "reconciled_at")


def load_mpps(conn: sqlite3.Connection, *, study_uids: Sequence[str] | None = None,
              since: float | None = None) -> list[dict[str, Any]]:
    """MPPS rows (COMPLETED or unscheduled) for the MPPS checks: every one, or those of
    ``study_uids`` and those updated since ``since`` (epoch seconds)."""
    sql = ("SELECT sop_instance_uid, status, study_instance_uid, accession_number, unscheduled,"
           " reconciled_at, attributes FROM mpps WHERE (status = 'COMPLETED' OR unscheduled = 1)")
    args: list[Any] = []
    if study_uids is not None or since is not None:
        clauses: list[tuple[str, list[Any]]] = []
        if study_uids:
            clauses.append(_in("study_instance_uid", study_uids))
        if since is not None:
            clauses.append(("updated_at >= ?", [since]))
        if not clauses:
            return []
        where, more = _where(clauses)
        sql += " AND (" + where.removeprefix(" WHERE ") + ")"
        args += more
    return [{**dict(zip(_MPPS_KEYS, r[:6], strict=True)), "attributes": json.loads(r[6])}
            for r in conn.execute(sql, args)]


def snapshot_uids(conn: sqlite3.Connection, source: str, window: tuple[str, str]) -> set[str]:
    """Study Instance UIDs of ``source``'s snapshot dated inside ``window``."""
    return {r[0] for r in conn.execute(
        "SELECT study_instance_uid FROM pacs_studies WHERE source = ?"
        " AND study_date BETWEEN ? AND ?", (source, *window))}


def open_refs(conn: sqlite3.Connection, study_refs: Sequence[str]) -> list[str]:
    """Order refs of open or acknowledged mismatches about these studies."""
    if not study_refs:
        return []
    clause, args = _in("study_ref", study_refs)
    return sorted({r[0] for r in conn.execute(
        "SELECT order_ref FROM mismatches WHERE status IN ('open', 'acknowledged')"
        f" AND order_ref IS NOT NULL AND {clause}", args)})


def due_mpps(conn: sqlite3.Connection, after: float, until: float, limit: int = 500
             ) -> list[dict[str, Any]]:
    """MPPS instances that ended (COMPLETED / DISCONTINUED) in ``(after, until]``, oldest
    first: the reconciler checks each one's study once images had time to arrive."""
    cur = conn.execute(
        "SELECT sop_instance_uid, status, study_instance_uid, accession_number, updated_at"
        " FROM mpps WHERE updated_at > ? AND updated_at <= ?"
        " AND status IN ('COMPLETED', 'DISCONTINUED') ORDER BY updated_at LIMIT ?",
        (after, until, limit))
    keys = ("sop_instance_uid", "status", "study_instance_uid", "accession_number",
            "updated_at")
    return [dict(zip(keys, r, strict=True)) for r in cur]


def mpps_steps(conn: sqlite3.Connection, sop_instance_uid: str) -> list[tuple[str, str]]:
    """(Study Instance UID, SPS ID) of the worklist steps an MPPS performed."""
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT study_instance_uid, sps_id FROM mpps_steps WHERE sop_instance_uid = ?",
        (sop_instance_uid,))]


def get_state(conn: sqlite3.Connection, key: str, default: str = "") -> str:
    """A value the reconciler keeps between passes (e.g. its MPPS high-water mark)."""
    row = conn.execute("SELECT value FROM reconcile_state WHERE key = ?", (key,)).fetchone()
    return default if row is None else str(row[0])


def set_state(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO reconcile_state (key, value) VALUES (?, ?) ON CONFLICT (key)"
                 " DO UPDATE SET value = excluded.value", (key, value))


def _details(m: Mismatch) -> str:
    return json.dumps({"order_value": m.order_value, "study_value": m.study_value,
                       **m.details}, default=str, sort_keys=True)


def _scope_tables(conn: sqlite3.Connection, scope: Scope) -> None:
    lone = scope.orders if scope.lone_orders is None else scope.lone_orders
    for table, refs in (("_scope_orders", scope.orders), ("_scope_studies", scope.studies),
                        ("_scope_lone", lone)):
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} (ref TEXT PRIMARY KEY)"
                     " WITHOUT ROWID")
        conn.execute(f"DELETE FROM {table}")
        conn.executemany(f"INSERT OR IGNORE INTO {table} (ref) VALUES (?)",
                         [(r,) for r in refs])


def upsert_mismatches(conn: sqlite3.Connection, found: Sequence[Mismatch],
                      now: float | None = None, *, scope: Scope | None = None
                      ) -> UpsertSummary:
    """Record one pass (see the module docstring); ``scope``: a partial pass."""
    now = time.time() if now is None else now
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _seen (key TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute("DELETE FROM _seen")
    conn.executemany("INSERT OR IGNORE INTO _seen (key) VALUES (?)", [(m.key,) for m in found])
    existing = {r[0]: (r[1], r[2], r[3], r[4]) for r in conn.execute(
        "SELECT m.key, m.id, m.status, m.severity, m.details FROM mismatches m"
        " JOIN _seen s ON s.key = m.key")}
    new = [m for m in found if m.key not in existing]
    conn.executemany(
        "INSERT OR IGNORE INTO mismatches (key, type, severity, order_ref, study_ref, details,"
        " explanation, first_seen, last_seen) VALUES (?,?,?,?,?,?,?,?,?)",
        [(m.key, m.type, m.severity, m.order_ref, m.study_ref, _details(m), m.explanation,
          now, now) for m in new])
    again = [(m, _details(m)) for m in found if m.key in existing]
    conn.executemany(
        "UPDATE mismatches SET last_seen = ?, severity = ?, details = ?, explanation = ?"
        " WHERE key = ?", [(now, m.severity, d, m.explanation, m.key) for m, d in again])
    reopened = conn.execute(
        "UPDATE mismatches SET status = 'open', status_at = ?, who = ?, why = 'found again'"
        " WHERE status = 'resolved' AND key IN (SELECT key FROM _seen) AND last_seen = ?",
        (now, AUTO, now)).rowcount
    stale = ("status IN ('open', 'acknowledged') AND key NOT IN (SELECT key FROM _seen)")
    if scope is not None:
        _scope_tables(conn, scope)
        # both sides it is about must have been compared: an order checked against only
        # some studies must not clear its flag against another one (it would flap back)
        stale += (" AND (order_ref IS NULL OR order_ref IN (SELECT ref FROM _scope_orders))"
                  " AND (study_ref IS NULL OR study_ref IN (SELECT ref FROM _scope_studies))"
                  " AND (order_ref IS NOT NULL OR study_ref IS NOT NULL)"
                  " AND (study_ref IS NOT NULL OR order_ref IN (SELECT ref FROM _scope_lone))")
    resolved = conn.execute(
        f"UPDATE mismatches SET status = 'resolved', status_at = ?, who = ?,"
        f" why = 'no longer found' WHERE {stale}", (now, AUTO)).rowcount
    conn.execute("DELETE FROM _seen")
    decided = decisions.apply(conn, [m.key for m in new], now)  # remembered: not flagged
    flagged: list[Flagged] = []
    if new:
        ids = dict(conn.execute(
            "SELECT key, id FROM mismatches WHERE key IN (SELECT value FROM json_each(?))",
            (json.dumps([m.key for m in new]),)).fetchall())
        flagged += [Flagged(ids[m.key], m.key, "new") for m in new
                    if m.key in ids and m.key not in decided]
    for m, details in again:
        mid, status, severity, old_details = existing[m.key]
        if status == "resolved":
            flagged.append(Flagged(mid, m.key, "reopened"))
        elif status != "ignored" and (severity != m.severity or old_details != details):
            flagged.append(Flagged(mid, m.key, "changed"))
    return UpsertSummary(len(new), len(again), reopened, resolved,
                         tuple(m.key for m in new), tuple(flagged))


def get_mismatch(conn: sqlite3.Connection, mismatch_id: int) -> dict[str, Any] | None:
    """One mismatch row (``details`` decoded), or None."""
    cur = conn.execute("SELECT * FROM mismatches WHERE id = ?", (mismatch_id,))
    row = cur.fetchone()
    if row is None:
        return None
    names = [d[0] for d in cur.description]
    out = dict(zip(names, row, strict=True))
    out["details"] = json.loads(out["details"])
    return out


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
                    limit: int | None = 1000, type: str | None = None,
                    severity: str | None = None, since: float | None = None
                    ) -> list[dict[str, Any]]:
    """Mismatches matching every filter given (``since``: last seen at or after), most
    severe first, then most recently seen; ``details`` decoded."""
    order = ("CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2"
             " WHEN 'low' THEN 3 WHEN 'info' THEN 4 ELSE 5 END, last_seen DESC, id")
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("status", status), ("type", type), ("severity", severity)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if since is not None:
        where.append("last_seen >= ?")
        args.append(since)
    sql = "SELECT * FROM mismatches" + (" WHERE " + " AND ".join(where) if where else "")
    cur = conn.execute(f"{sql} ORDER BY {order} LIMIT ?", (*args, -1 if limit is None else limit))
    names = [d[0] for d in cur.description]
    return [{**dict(zip(names, r, strict=True)), "details": json.loads(r[names.index("details")])}
            for r in cur.fetchall()]
