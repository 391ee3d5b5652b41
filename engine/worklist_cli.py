"""``radbridge worklist``: list the current entries, or show one with its HL7 messages."""

from __future__ import annotations

import argparse
import json
import sqlite3
from datetime import date
from typing import Any

_HIDDEN = ("STARTED", "DEPARTED", "CANCELED", "DISCONTINUED", "COMPLETED")


def list_entries(conn: sqlite3.Connection, args: argparse.Namespace) -> list[tuple[Any, ...]]:
    where, params = [], []
    if args.date:
        day = date.today().strftime("%Y%m%d") if args.date == "today" else \
            args.date.replace("-", "")
        where.append("sps_start_date = ?")
        params.append(day)
    if args.modality:
        where.append("modality = ?")
        params.append(args.modality.upper())
    if args.station:
        where.append("id IN (SELECT step_id FROM worklist_station WHERE ae_title = ?)")
        params.append(args.station)
    if args.status:
        where.append("sps_status = ?")
        params.append(args.status.upper())
    elif not args.all:
        where.append(f"sps_status NOT IN ({','.join('?' * len(_HIDDEN))})")
        params.extend(_HIDDEN)
    if args.accession:
        where.append("accession_number = ?")
        params.append(args.accession)
    sql = ("SELECT id, sps_start_date, sps_start_time, modality, scheduled_station_aet,"
           " accession_number, sps_id, sps_status, requested_procedure_id FROM worklist"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY sps_start, id LIMIT ?")
    params.append(args.limit)
    return conn.execute(sql, params).fetchall()


def show_entry(conn: sqlite3.Connection, key: str) -> tuple[dict[str, Any], list[Any]] | None:
    row = conn.execute(
        "SELECT attributes, study_instance_uid, sps_id FROM worklist"
        " WHERE CAST(id AS TEXT) = ? OR accession_number = ? ORDER BY id LIMIT 1", (key, key),
    ).fetchone()
    if row is None:
        return None
    msgs = conn.execute(
        "SELECT m.id, m.received_at, m.message_type, m.control_id, m.status"
        " FROM worklist_messages w JOIN messages m ON m.id = w.message_id"
        " WHERE w.study_instance_uid = ? AND w.sps_id = ? ORDER BY m.id",
        (row[1], row[2]),
    ).fetchall()
    return json.loads(row[0]), msgs
