"""Messages and deliveries written by code other than the ingest path, in the caller's
transaction (``Store.write_tx``): an MPPS operation, a reconciliation pass, an engine event.

The row a delivery hangs off is a ``messages`` row (what happened, kept like any inbound
message and shown by ``radbridge messages``); each ``queue`` row is picked up by the
destination's delivery worker like a routed HL7 message. Channels call these instead of
writing SQL, so a second store backend only has to provide them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable


def record(conn: sqlite3.Connection, *, channel: str, message_type: str, raw: bytes,
           received_at: float, control_id: str = "", peer: str = "", charset: str = "",
           ack_code: str = "") -> int:
    """A processed ``messages`` row; its id."""
    cur = conn.execute(
        "INSERT INTO messages (received_at, channel, peer, control_id, message_type, charset,"
        " status, ack_code, size, raw) VALUES (?,?,?,?,?,?,'processed',?,?,?)",
        (received_at, channel, peer, control_id, message_type, charset, ack_code, len(raw),
         raw))
    assert cur.lastrowid is not None
    return cur.lastrowid


def queue(conn: sqlite3.Connection, rows: Iterable[tuple[int, str, str, bytes]],
          now: float) -> int:
    """Pending deliveries ``(message_id, destination queue, order key, payload)``; how many."""
    data = [(mid, dest, key, now, now, payload) for mid, dest, key, payload in rows]
    conn.executemany(
        "INSERT INTO deliveries (message_id, destination, status, order_key, created_at,"
        " updated_at, payload) VALUES (?,?,'pending',?,?,?,?)", data)
    return len(data)


def queue_one(conn: sqlite3.Connection, message_id: int, destination: str, payload: bytes,
              now: float, order_key: str = "") -> int:
    """One pending delivery; its id."""
    cur = conn.execute(
        "INSERT INTO deliveries (message_id, destination, status, order_key, created_at,"
        " updated_at, payload) VALUES (?,?,'pending',?,?,?,?)",
        (message_id, destination, order_key, now, now, payload))
    assert cur.lastrowid is not None
    return cur.lastrowid
