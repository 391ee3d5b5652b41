"""Remembered decisions: a person's ignore / acknowledge applied to later mismatches.

PACS administrators do not want to dismiss the same known difference every time it shows up
again (ClearCanvas remembers such decisions). ``remember`` stores a decision for one
mismatch's *type and differing values* (e.g. ``name_mismatch`` ``MUELLER`` vs ``MULLER``);
``apply`` runs when a pass inserts new mismatches and gives every new one with the same type
and values that status at once (``who`` from the decision, ``why`` naming it), so it is not
flagged or notified. ``forget`` removes a decision; mismatches it already decided keep their
status. Decisions live in ``mismatch_decisions`` (engine/store/reconcile_schema.sql).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

REMEMBERABLE = ("acknowledged", "ignored")


def remember(conn: sqlite3.Connection, mismatch_id: int, status: str, who: str, why: str,
             now: float | None = None) -> int | None:
    """Remember ``status`` for mismatches like ``mismatch_id``; the decision id (None: no
    such mismatch)."""
    if status not in REMEMBERABLE:
        raise ValueError(f"only {' and '.join(REMEMBERABLE)} decisions can be remembered")
    row = conn.execute(
        "SELECT type, json_extract(details, '$.order_value'),"
        " json_extract(details, '$.study_value') FROM mismatches WHERE id = ?",
        (mismatch_id,)).fetchone()
    if row is None:
        return None
    cur = conn.execute(
        "INSERT INTO mismatch_decisions (type, order_value, study_value, status, who, why,"
        " created_at, source_id) VALUES (?,?,?,?,?,?,?,?)"
        " ON CONFLICT (type, order_value, study_value) DO UPDATE SET status = excluded.status,"
        " who = excluded.who, why = excluded.why, created_at = excluded.created_at,"
        " source_id = excluded.source_id RETURNING id",
        (row[0], str(row[1] or ""), str(row[2] or ""), status, who, why,
         time.time() if now is None else now, mismatch_id))
    found = cur.fetchone()
    return int(found[0]) if found else None


def apply(conn: sqlite3.Connection, keys: Sequence[str], now: float) -> set[str]:
    """Give the new mismatches ``keys`` the status of a matching decision; the keys decided."""
    if not keys:
        return set()
    if conn.execute("SELECT 1 FROM mismatch_decisions LIMIT 1").fetchone() is None:
        return set()
    decided = conn.execute(
        "SELECT m.key, d.id, d.status, d.who, d.why FROM mismatches m"
        " JOIN mismatch_decisions d ON d.type = m.type"
        " AND d.order_value = COALESCE(json_extract(m.details, '$.order_value'), '')"
        " AND d.study_value = COALESCE(json_extract(m.details, '$.study_value'), '')"
        " WHERE m.key IN (SELECT value FROM json_each(?))", (json.dumps(list(keys)),)
    ).fetchall()
    conn.executemany(
        "UPDATE mismatches SET status = ?, who = ?, why = ?, status_at = ? WHERE key = ?",
        [(status, who, f"remembered decision {did}: {why}".rstrip(": "), now, key)
         for key, did, status, who, why in decided])
    if decided:
        conn.executemany(
            "UPDATE mismatch_decisions SET applied = applied + 1 WHERE id = ?",
            [(d[1],) for d in decided])
    return {d[0] for d in decided}


def forget(conn: sqlite3.Connection, decision_id: int) -> bool:
    return conn.execute("DELETE FROM mismatch_decisions WHERE id = ?",
                        (decision_id,)).rowcount > 0


def decisions(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT * FROM mismatch_decisions ORDER BY id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
