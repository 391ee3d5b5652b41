"""The SQL of message searches and reads (``radbridge messages``) for the SQLite store."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from engine.store.base import DeliveryRow, MessageDetail, MessageFilter, MessageSummary
from engine.store.sqlite_ingest import CONTROL_ID_WHERE, received_where


def search_sql(flt: MessageFilter) -> tuple[str, list[Any]]:
    """The SELECT (and its parameters) of ``Store.search_messages`` for ``flt``."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("m.channel", flt.channel),
        ("m.message_type", flt.message_type),
    ):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if flt.control_id:
        where.append(CONTROL_ID_WHERE)
        params += [flt.control_id, flt.control_id]
    if flt.status:
        where.append("m.status = ?")
        params.append(flt.status)
        if flt.status != "processed":
            # The partial index's own term, so that the planner may use it.
            where.append("m.status != 'processed'")
    if flt.id is not None:
        where.append("m.id = ?")
        params.append(flt.id)
    if flt.since is not None or flt.until is not None:
        sql, more = received_where(flt.since, flt.until)
        where.append(sql)
        params += more
    if flt.delivery_status or flt.destination:
        sub = ["d.message_id = m.id"]
        if flt.delivery_status:
            sub.append("d.status = ?")
            params.append(flt.delivery_status)
        if flt.destination:
            sub.append("d.destination = ?")
            params.append(flt.destination)
        where.append(f"EXISTS (SELECT 1 FROM deliveries d WHERE {' AND '.join(sub)})")
    sql = (
        "SELECT m.id, m.received_at, m.channel, m.control_id, m.message_type, m.status,"
        " m.ack_code, m.error, m.size FROM messages m"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY m.id DESC LIMIT ?"
    )
    params.append(flt.limit)
    return sql, params


def message_detail(conn: sqlite3.Connection, message_id: int) -> MessageDetail | None:
    """One message with its deliveries (``Store.get_message``)."""
    r = conn.execute(
        "SELECT id, received_at, channel, control_id, message_type, status, ack_code,"
        " error, size, peer, version, charset, revision, raw, warnings"
        " FROM messages WHERE id=?",
        (message_id,),
    ).fetchone()
    if r is None:
        return None
    drows = conn.execute(
        "SELECT id, destination, status, attempts, next_attempt, last_error, response,"
        " updated_at FROM deliveries WHERE message_id=? ORDER BY id",
        (message_id,),
    ).fetchall()
    return MessageDetail(
        summary=MessageSummary(*r[:9]),
        peer=r[9], version=r[10], charset=r[11], revision=r[12], raw=r[13],
        warnings=json.loads(r[14]) if r[14] else [],
        deliveries=[DeliveryRow(*d) for d in drows],
    )
