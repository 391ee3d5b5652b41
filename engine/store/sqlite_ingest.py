"""Ingest rows for the SQLite writer: one message with its deliveries and effects.

The writer thread takes a batch of these; plain ones (no effects) are inserted with one
multi-row INSERT per table, the others one by one in their own savepoint. Row tuples are
built on the event loop so the writer holds the GIL as briefly as possible.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

from engine.errors import MessageRejected
from engine.store.base import Completion, Effect

# A message row is two tuples: ``const`` (the same for most messages of a channel, bound
# once per multi-row INSERT as ?1..?6) and ``row`` (8 values per message).
_CONST_COLUMNS = "channel, status, ack_code, error, revision, warnings"
_ROW_COLUMNS = "received_at, peer, control_id, message_type, version, charset, size, raw"
_N_CONST, _N_ROW = 6, 8
_MESSAGE_COLUMNS = f"{_CONST_COLUMNS}, {_ROW_COLUMNS}"
_MESSAGE_SQL = f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_DELIVERY_COLUMNS = "message_id, destination, status, order_key, created_at, updated_at, payload"
_DELIVERY_SQL = f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (?,?,'pending',?,?,?,?)"
_MAX_ROWID = (1 << 63) - 1
_ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}
_ROW = attrgetter("row")


class Ingest:
    """One ``ingest`` as queued for the writer: the ``messages`` row and the delivery rows
    built on the loop thread, so that the writer thread only binds and steps them."""

    __slots__ = ("const", "drows", "effects", "enhanced", "fut", "row")

    def __init__(
        self, const: tuple[Any, ...], row: tuple[Any, ...], drows: list[tuple[Any, ...]],
        effects: Sequence[Effect], enhanced: bool,
        fut: Completion,
    ) -> None:
        self.const = const
        self.row = row
        self.drows = drows
        self.effects = effects
        self.enhanced = enhanced
        self.fut = fut

    def run(self, conn: sqlite3.Connection) -> tuple[int, MessageRejected | None]:
        """The message alone (its own savepoint is the caller's): row, effects, deliveries."""
        mid = conn.execute(_MESSAGE_SQL, self.const + self.row).lastrowid
        assert mid is not None
        if self.effects:
            conn.execute("SAVEPOINT effects")
            try:
                for effect in self.effects:
                    effect(conn, mid)
            except MessageRejected as rej:
                conn.execute("ROLLBACK TO effects")
                conn.execute("RELEASE effects")
                code = _ENHANCED[rej.code] if self.enhanced else rej.code
                conn.execute(
                    "UPDATE messages SET status='rejected', error=?, ack_code=? WHERE id=?",
                    (rej.reason, code, mid),
                )
                return mid, rej
            conn.execute("RELEASE effects")
        if self.drows:
            conn.executemany(_DELIVERY_SQL, [(mid, *r) for r in self.drows])
        return mid, None


_multi_sql_cache: dict[tuple[str, int], str] = {}


def multi_sql(prefix: str, one: str, n: int) -> str:
    sql = _multi_sql_cache.get((prefix, n))
    if sql is None:
        sql = prefix + ",".join([one] * n)
        if len(_multi_sql_cache) < 4096:
            _multi_sql_cache[(prefix, n)] = sql
    return sql


def _values_sql(n: int) -> str:
    """``INSERT INTO messages ... VALUES`` for ``n`` rows sharing ?1..?6 (the const)."""
    key = ("messages", n)
    sql = _multi_sql_cache.get(key)
    if sql is None:
        rows = []
        for i in range(n):
            first = _N_CONST + 1 + i * _N_ROW
            rows.append("(?1,?2,?3,?4,?5,?6," + ",".join(
                f"?{j}" for j in range(first, first + _N_ROW)) + ")")
        sql = f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES " + ",".join(rows)
        if len(_multi_sql_cache) < 4096:
            _multi_sql_cache[key] = sql
    return sql


def insert_plain(conn: sqlite3.Connection, run: list[Ingest], max_vars: int) -> list[int]:
    """Insert the messages (and deliveries) of ingests without effects with one multi-row
    INSERT per table (one sqlite3 step, one GIL release, instead of one per row); return
    the message ids. Consecutive messages with the same ``const`` share its six bound
    values. Ids are consecutive: an INTEGER PRIMARY KEY without AUTOINCREMENT takes
    max(rowid) + 1, and this thread is the only writer inside the transaction."""
    ids: list[int] = []
    per = max(1, (max_vars - _N_CONST) // _N_ROW)
    start, total = 0, len(run)
    while start < total:
        const = run[start].const
        end = start + 1
        limit = min(total, start + per)
        while end < limit and run[end].const == const:
            end += 1
        part = run[start:end]
        n = end - start
        params = list(chain(const, chain.from_iterable(map(_ROW, part))))
        cur = conn.execute(_values_sql(n), params)
        last = cur.lastrowid
        if last is None or last >= _MAX_ROWID:
            raise sqlite3.IntegrityError("rowid space exhausted: use the per-item path")
        ids.extend(range(last - n + 1, last + 1))
        start = end
    drows = [(mid, *r) for mid, it in zip(ids, run, strict=True) if it.drows for r in it.drows]
    per = max(1, max_vars // 6)
    for start in range(0, len(drows), per):
        dpart = drows[start:start + per]
        conn.execute(
            multi_sql(f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES ",
                       "(?,?,'pending',?,?,?,?)", len(dpart)),
            [x for r in dpart for x in r],
        )
    return ids


def requeue_rows(conn: sqlite3.Connection, ids: Sequence[int], destination: str,
                 payloads: Sequence[bytes] | None, now: float) -> int:
    """New pending deliveries of messages ``ids`` to ``destination``: the given payloads,
    else the last payload sent there, else the raw message. Returns how many were made."""
    count = 0
    for i, mid in enumerate(ids):
        if payloads is not None:
            payload = payloads[i]
        else:
            found = conn.execute(
                "SELECT payload FROM deliveries WHERE message_id=? AND destination=?"
                " ORDER BY id DESC LIMIT 1",
                (mid, destination),
            ).fetchone()
            if found is None:
                found = conn.execute("SELECT raw FROM messages WHERE id=?", (mid,)).fetchone()
            if found is None:
                continue
            payload = found[0]
        conn.execute(
            "INSERT INTO deliveries (message_id, destination, status, created_at,"
            " updated_at, payload) VALUES (?,?,'pending',?,?,?)",
            (mid, destination, now, now, payload),
        )
        count += 1
    return count


class RetryAlone(Exception):
    """A batch-wide insert failed: redo the batch item by item."""


def future_of(item: Any) -> Completion:
    return item.fut if item.__class__ is Ingest else item[1]


def resolve_all(results: list[tuple[Completion, bool, Any]]) -> None:
    for fut, ok, value in results:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


CONTROL_MARK = "control_indexed_upto"  # meta key: messages up to this id are indexed
RECEIVED_MARK = "received_indexed_upto"  # ...in received_index
# The indexes filled off the ingest commit: (meta key of the mark, the INSERT of the
# index rows of the messages with ? < id <= ?).
_INDEXES = (
    (CONTROL_MARK, "INSERT OR IGNORE INTO control_index (control_id, message_id)"
                   " SELECT control_id, id FROM messages"
                   " WHERE id > ? AND id <= ? AND control_id != ''"),
    (RECEIVED_MARK, "INSERT OR IGNORE INTO received_index (received_at, message_id)"
                    " SELECT received_at, id FROM messages WHERE id > ? AND id <= ?"),
)
MARKS = tuple(key for key, _ in _INDEXES)
KEY_IN_MARKS = f"key IN ({','.join('?' * len(MARKS))})"  # bound to MARKS


def index_messages(conn: sqlite3.Connection, limit: int = 50_000) -> bool:
    """Add the messages stored since the last call to ``control_index`` and
    ``received_index`` (at most ``limit`` ids' worth each, so that a large backlog, e.g.
    a database of an earlier version, does not hold the writer for long), in a
    transaction of its own (writer thread, connection in autocommit mode). True when
    more remain."""
    marks = dict(conn.execute(
        f"SELECT key, value FROM meta WHERE {KEY_IN_MARKS}",
        MARKS).fetchall())
    last = conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
    todo = []
    for key, sql in _INDEXES:
        mark = marks.get(key)
        upto = int(mark) if mark is not None else 0
        if upto != last or mark is None:
            start = min(upto, last)
            todo.append((key, sql, start, min(last, start + limit)))
    if not todo:
        return False
    conn.execute("BEGIN IMMEDIATE")
    try:
        for key, sql, start, end in todo:
            conn.execute(sql, (start, end))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         (key, str(end)))
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise
    return any(end < last for _, _, _, end in todo)


def _above_mark(key: str) -> str:
    """The messages not yet in an index: a rowid range, about a second of traffic."""
    return (f"id > coalesce((SELECT CAST(value AS INTEGER) FROM meta"
            f" WHERE key = '{key}'), 0)")


# A search by control id: the indexed ones, plus the messages above the mark.
CONTROL_ID_WHERE = (
    "m.id IN (SELECT message_id FROM control_index WHERE control_id = ?"
    f" UNION ALL SELECT id FROM messages WHERE {_above_mark(CONTROL_MARK)}"
    " AND control_id = ?)"
)


def received_ids(since: float | None, until: float | None) -> tuple[str, list[Any]]:
    """A compound SELECT of the ids (column ``id``) of the messages received in
    [since, until) (either bound may be None, not both): the indexed ones plus those
    above the mark. Streamed: a LIMIT over it in a FROM clause stops early."""
    cond, params = [], []
    if since is not None:
        cond.append("received_at >= ?")
        params.append(since)
    if until is not None:
        cond.append("received_at < ?")
        params.append(until)
    where = " AND ".join(cond)
    return (f"SELECT message_id AS id FROM received_index WHERE {where}"
            f" UNION ALL SELECT id FROM messages WHERE {_above_mark(RECEIVED_MARK)}"
            f" AND {where}", params * 2)


def received_where(since: float | None, until: float | None) -> tuple[str, list[Any]]:
    """``m.id IN (...)`` for the messages received in [since, until), for searches that
    sort by id (the ids of the range are collected first)."""
    sql, params = received_ids(since, until)
    return f"m.id IN ({sql})", params


def prune_batch_sql(older_than: float, batch: int) -> tuple[str, list[Any]]:
    """The ids of up to ``batch`` messages received before ``older_than`` with no
    pending delivery, read in receive-time order and stopped at ``batch`` (a ``m.id IN
    (...)`` form would collect every old id first, for every batch)."""
    sql, params = received_ids(None, older_than)
    return (f"SELECT o.id FROM ({sql}) AS o WHERE NOT EXISTS (SELECT 1 FROM deliveries d"
            " WHERE d.message_id = o.id AND d.status = 'pending') LIMIT ?", [*params, batch])
