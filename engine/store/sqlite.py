"""SQLite store: WAL mode, group commit, readers on their own.

Ingests are gathered per pass of the event loop and committed together, in one
transaction with ``synchronous=FULL`` by default: on the loop thread itself while commits
are fast, else by the writer thread (``_hand_over``). Every other write is a small function
run by the writer thread (``engine.store.sqlite_writer``), which takes whatever has queued
up, runs it in one transaction and resolves the futures with a single hop back to the
loop; a failing item is rolled back to its savepoint and fails alone. WAL checkpoints run
in a thread of their own (``engine.store.sqlite_checkpoint``). Reads run on a separate
connection in a reader thread, so a slow search never holds up ingest.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import MessageRejected, StoreError
from engine.store.base import (
    Completion,
    DeliveryUpdate,
    Effect,
    InboundRecord,
    MessageDetail,
    MessageFilter,
    MessageSummary,
    NewDelivery,
    PendingDelivery,
    Store,
)
from engine.store.sqlite_checkpoint import Checkpointer
from engine.store.sqlite_ingest import (
    KEY_IN_MARKS,
    MARKS,
    Ingest,
    index_messages,
    prune_batch_sql,
    requeue_rows,
    resolve_all,
)
from engine.store.sqlite_search import message_detail, search_sql
from engine.store.sqlite_writer import BUSY_TIMEOUT_MS, INDEX, STOP, BatchWriter, WriterBusy

T = TypeVar("T")
_INDEX_EVERY_S = 1.0
# Ingests are committed on the loop thread while inline commits average less than this
# (see SQLiteStore._hand_over); above it the writer thread commits them.
_INLINE_MAX_S = 0.005
# WAL checkpoints run in a thread of their own, not inside a commit (see Checkpointer).
_CHECKPOINT_EVERY_S = 1.0
# Page cache of the writer connection, KiB (SQLite's default is 2,000). The writer indexes
# the messages of the last second (control_index, received_index) by reading them back:
# with the default cache those pages come from the WAL and the file again (one pread
# each, ~6,000 a second at 18,000 msg/s), with this one mostly from memory (the index
# pass of 19,000 messages: 48 -> 26 ms). SQLite takes the memory only as pages are used.
_WRITER_CACHE_KIB = 65536
SCHEMA_VERSION = "1"

def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    # Must precede the first table (and WAL): lets pruning give space back to the disk.
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


class SQLiteStore(BatchWriter, Store):
    """The default store: a single SQLite file in the data directory."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL",
                 checkpoint_every_s: float = _CHECKPOINT_EVERY_S) -> None:
        self.path = str(path)
        self.synchronous = synchronous.upper()
        if self.synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise StoreError(f"unsupported synchronous={synchronous!r}")
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._rconn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        self.items = 0
        self._max_vars = 999
        self._conn_lock = threading.Lock()  # the writer connection: writer thread or loop
        self._wconn: sqlite3.Connection | None = None  # set when inline commits are allowed
        self._gathered: list[Ingest] = []
        self._inflight = 0  # ingests awaiting their commit
        self._next_index = 0.0  # when to ask the writer to update control_index
        self._index_due = False  # ...and that time has come (queued after the next batch)
        self._commit_s = 0.0  # moving average of the inline commits' duration (seconds)
        self._probe_at = 0.0  # when commits are slow: the next inline one, to re-measure
        self._last_batch = 0  # ingests in the last inline commit
        self.inline_commits = 0
        self._polled = False  # this batch already waited one loop pass for more
        self._checkpointer: Checkpointer | None = None
        self._checkpoint_every_s = checkpoint_every_s
        self.index_errors = 0

    @property
    def checkpoint_errors(self) -> int:
        return self._checkpointer.errors if self._checkpointer is not None else 0

    def status(self) -> dict[str, Any]:
        """For /health: where commits happen and how they go."""
        slow = self._commit_s >= _INLINE_MAX_S
        return {"commits": self.batches, "items": self.items,
                "inline_commits": self.inline_commits,
                "commit_mode": "writer thread (slow commits)" if slow else "inline",
                "inline_commit_ms_avg": round(self._commit_s * 1000, 3),
                "checkpoint_errors": self.checkpoint_errors,
                "index_errors": self.index_errors}

    # -- lifecycle -------------------------------------------------------------------
    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            wconn = _connect(self.path, self.synchronous)
            wconn.execute(f"PRAGMA cache_size=-{_WRITER_CACHE_KIB}")
            for schema in sorted(resources.files("engine.store").iterdir(), key=lambda p: p.name):
                if schema.name.endswith(".sql"):
                    wconn.executescript(schema.read_text())
            wconn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )
            backlog = wconn.execute(  # e.g. a database of a version without the tables
                f"SELECT count(*) FROM meta WHERE {KEY_IN_MARKS}",
                MARKS).fetchone()[0] < len(MARKS)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        try:
            self._max_vars = min(wconn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), 32766)
        except (AttributeError, sqlite3.Error):  # pragma: no cover - old sqlite3 module
            self._max_vars = 999
        self._wconn = wconn
        self._writer = threading.Thread(
            target=self._write_loop, args=(wconn,), name="store-writer", daemon=True
        )
        self._writer.start()
        if self.path != ":memory:":
            wconn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
            self._checkpointer = Checkpointer(
                _connect(self.path, self.synchronous), self._conn_lock, self._checkpoint_every_s)
        if backlog:  # indexed by the writer in chunks (searches read above the mark)
            self._queue.put(INDEX)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._rconn = await self._in_reader(lambda: _connect(self.path, self.synchronous))

    async def aclose(self) -> None:
        self._wconn = None
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        if self._writer is not None:
            self._queue.put(STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._reader is not None:
            rconn = self._rconn
            if rconn is not None:
                await self._in_reader(rconn.close)
            self._reader.shutdown(wait=True)
            self._reader = None

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreError("store is not open")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((fn, fut))
        return await fut

    async def write_tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in the writer thread, inside a committed group transaction.

        For domain modules that keep their own tables (worklist, MPPS, reconciliation):
        ``fn`` runs in a savepoint; if it raises, its changes are rolled back alone."""
        return await self._write(fn)

    async def read_tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the reader connection (reader thread)."""

        def run() -> T:
            assert self._rconn is not None
            try:
                return fn(self._rconn)
            except sqlite3.Error as exc:
                raise StoreError(f"store read failed: {exc}") from exc

        return await self._in_reader(run)

    async def _in_reader(self, fn: Callable[[], T]) -> T:
        if self._reader is None:
            raise StoreError("store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        assert self._rconn is not None
        try:
            return self._rconn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store read failed: {exc}") from exc

    # -- writes ----------------------------------------------------------------------
    async def ingest(
        self, record: InboundRecord, deliveries: Sequence[NewDelivery],
        effects: Sequence[Effect] = (),
    ) -> tuple[int, MessageRejected | None]:
        return await self._submit(record, deliveries, effects)

    def ingest_nowait(
        self, record: InboundRecord, deliveries: Sequence[NewDelivery],
    ) -> asyncio.Future[tuple[int, MessageRejected | None]]:
        """Queue the ingest now and return its future (resolved on the loop after the
        commit): no coroutine per message on the hot path."""
        return self._submit(record, deliveries, ())

    def ingest_then(
        self, record: InboundRecord, deliveries: Sequence[NewDelivery], done: Completion,
    ) -> None:
        """Queue the ingest now; ``done`` is completed in ``_resolve`` with the batch (no
        future, no task per message)."""
        self._enqueue(record, deliveries, (), done)

    def _submit(
        self, record: InboundRecord, deliveries: Sequence[NewDelivery],
        effects: Sequence[Effect],
    ) -> asyncio.Future[tuple[int, MessageRejected | None]]:
        loop = self._loop
        if self._writer is None or loop is None:
            raise StoreError("store is not open")
        fut: asyncio.Future[tuple[int, MessageRejected | None]] = loop.create_future()
        self._enqueue(record, deliveries, effects, fut)
        return fut

    def _enqueue(
        self, record: InboundRecord, deliveries: Sequence[NewDelivery],
        effects: Sequence[Effect], fut: Completion,
    ) -> None:
        loop = self._loop
        if self._writer is None or loop is None:
            raise StoreError("store is not open")
        now = record.received_at
        raw = record.raw
        const = (record.channel, record.status, record.ack_code, record.error,
                 record.revision, json.dumps(record.warnings) if record.warnings else "")
        row = (now, record.peer, record.control_id, record.message_type, record.version,
               record.charset, len(raw), raw)
        drows = [(d.destination, d.order_key, now, now, d.payload) for d in deliveries] \
            if deliveries else []
        item = Ingest(const, row, drows, effects, record.ack_code.startswith("C"), fut)
        if now >= self._next_index:
            self._next_index = now + _INDEX_EVERY_S
            self._index_due = True
        if effects or self._wconn is None:
            self._queue.put(item)
            self._index_if_due()
        else:
            self._gathered.append(item)
            if len(self._gathered) == 1:
                loop.call_soon(self._hand_over)
        self._inflight += 1  # back down when the batch is resolved (_resolve)

    def _index_if_due(self) -> None:
        """Queue the writer's control-id indexing once its second is up: after the batch
        just handed over (a marker queued before it would keep that batch off the loop)."""
        if self._index_due:
            self._index_due = False
            self._queue.put(INDEX)

    def _hand_over(self) -> None:
        """End of a loop pass: commit the ingests of this pass. When nothing else is in
        flight and the writer thread is idle, they are committed right here on the loop
        thread, as one transaction (group commit at the end of the pass, as Redis does its
        ``appendfsync always``): no thread hand-off, no GIL ping-pong with the writer, the
        ACKs written at once. The loop waits for the fsync meanwhile, so this is done only
        while commits are fast: when the recent inline commits took longer than
        ``_INLINE_MAX_S`` on average (a slow disk), the batches go to the writer thread,
        which lets the loop keep parsing during the fsync; one batch a second is still
        committed inline to notice when the disk is fast again. A batch smaller than the
        last inline one waits for one more pass of the loop first (see below)."""
        items = self._gathered
        conn = self._wconn
        if self._writer is None:  # closed meanwhile: nothing will commit these
            self._gathered = []
            self._inflight -= len(items)
            resolve_all([(item.fut, False, StoreError("store is closed")) for item in items])
            return
        inline = (self._inflight == len(items) and conn is not None and self._queue.empty()
                  and (self._commit_s < _INLINE_MAX_S or time.monotonic() >= self._probe_at))
        if (inline and len(items) < self._last_batch and not self._polled
                and not self._conn_lock.locked()):
            # Fewer than last time: the senders ACKed by the last commit are likely
            # answering right now. One more pass of the loop (it polls the sockets
            # without waiting) lets their frames join this commit.
            self._polled = True
            assert self._loop is not None
            self._loop.call_soon(self._hand_over)
            return
        self._gathered = []
        self._polled = False
        if not (inline and conn is not None and self._commit_inline(conn, items)):
            self._queue.put(items)  # one queue item for the pass (see _run_batch)
        self._index_if_due()

    def _commit_inline(self, conn: sqlite3.Connection, items: list[Ingest]) -> bool:
        """Commit on the loop thread; False (nothing done) when the connection is busy in
        the writer thread or another process holds the write lock."""
        if not self._conn_lock.acquire(blocking=False):
            return False
        self._last_batch = len(items)
        t0 = time.monotonic()
        try:
            # Never wait on the loop for another process's write lock (see WriterBusy).
            self._busy_timeout(conn, 0)
            self._run_batch(conn, items, inline=True)
        except WriterBusy:
            return False
        finally:
            self._conn_lock.release()
        took = time.monotonic() - t0
        self.inline_commits += 1
        # A single slow commit (the disk's hiccup) moves the average a little only.
        self._commit_s += (min(took, 2 * _INLINE_MAX_S) - self._commit_s) * 0.1
        if self._commit_s >= _INLINE_MAX_S:
            self._probe_at = t0 + took + 1.0
        return True

    async def update_deliveries(self, updates: Sequence[DeliveryUpdate]) -> None:
        now = time.time()
        rows = [
            (u.status, u.attempts, u.next_attempt, u.error, u.response, now, u.id)
            for u in updates
        ]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE deliveries SET status=?, attempts=?, next_attempt=?, last_error=?,"
                " response=?, updated_at=? WHERE id=?",
                rows,
            )

        await self._write(op)

    async def requeue(
        self, message_ids: Sequence[int], destination: str, payloads: Sequence[bytes] | None = None
    ) -> int:
        now = time.time()
        ids = list(message_ids)
        pays = list(payloads) if payloads is not None else None

        def op(conn: sqlite3.Connection) -> int:
            return requeue_rows(conn, ids, destination, pays, now)

        return await self._write(op)

    async def update_indexes(self) -> None:
        """Bring ``control_index`` and ``received_index`` up to date now (the writer
        does it about once a second while messages arrive)."""
        def op(conn: sqlite3.Connection) -> None:
            while index_messages(conn):
                pass

        op.outside_transaction = True  # type: ignore[attr-defined]
        await self._write(op)

    async def prune(self, older_than: float, batch: int = 5000) -> int:
        """Delete messages received before ``older_than`` whose deliveries are all final,
        in batches, then return the freed pages to the file system."""
        total = 0
        old_sql, old_params = prune_batch_sql(older_than, batch)
        while True:
            def op(conn: sqlite3.Connection) -> int:
                cur = conn.execute(f"DELETE FROM messages WHERE id IN ({old_sql})", old_params)
                # New ids are max(id) + 1: if the newest rows went, lower the marks so
                # the next ones are searched above them until they are indexed.
                conn.execute(
                    "UPDATE meta SET value = min(CAST(value AS INTEGER),"
                    " (SELECT coalesce(max(id), 0) FROM messages))"
                    f" WHERE {KEY_IN_MARKS}", MARKS,
                )
                return cur.rowcount

            n = await self._write(op)
            total += n
            if n < batch:
                break
        if total:
            def vacuum(conn: sqlite3.Connection) -> None:
                # executescript steps the row-less PRAGMA to the end (execute frees one page).
                conn.executescript("PRAGMA incremental_vacuum;")

            vacuum.outside_transaction = True  # type: ignore[attr-defined]
            await self._write(vacuum)
        return total

    # -- reads -----------------------------------------------------------------------
    async def fetch_pending(
        self, destination: str, limit: int, exclude: frozenset[int] = frozenset(),
        after: int = 0,
    ) -> list[PendingDelivery]:
        # The excluded ids are filtered in SQL (an ephemeral table of the JSON array),
        # so only the rows returned are read out, payloads included: a delivery worker
        # excludes up to ~1,000 rows whose outcome is not committed yet plus those its
        # connections are about to send.
        cols = ("SELECT id, message_id, destination, attempts, next_attempt, order_key,"
                " payload FROM deliveries WHERE destination=? AND status='pending'"
                " AND id > ?")
        if exclude:
            sql = f"{cols} AND id NOT IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?"
            params: tuple[Any, ...] = (destination, after, json.dumps(list(exclude)), limit)
        else:
            sql = f"{cols} ORDER BY id LIMIT ?"
            params = (destination, after, limit)
        rows = await self._in_reader(lambda: self._read(sql, params))
        return [PendingDelivery(*r) for r in rows]

    async def search_messages(self, flt: MessageFilter) -> list[MessageSummary]:
        sql, params = search_sql(flt)
        rows = await self._in_reader(lambda: self._read(sql, params))
        return [MessageSummary(*r) for r in rows]

    async def get_message(self, message_id: int) -> MessageDetail | None:
        def read() -> MessageDetail | None:
            assert self._rconn is not None
            try:
                return message_detail(self._rconn, message_id)
            except sqlite3.Error as exc:
                raise StoreError(f"store read failed: {exc}") from exc

        return await self._in_reader(read)

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT destination, status, count(*) FROM deliveries"
                " WHERE status IN ('pending', 'dead') GROUP BY destination, status"
            )
        )
        return {(d, s): n for d, s, n in rows}
