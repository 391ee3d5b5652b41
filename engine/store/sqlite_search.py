"""The SQL of message searches (``radbridge messages``) for the SQLite store."""

from __future__ import annotations

from typing import Any

from engine.store.base import MessageFilter
from engine.store.sqlite_ingest import CONTROL_ID_WHERE


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
    if flt.since is not None:
        where.append("m.received_at >= ?")
        params.append(flt.since)
    if flt.until is not None:
        where.append("m.received_at < ?")
        params.append(flt.until)
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
