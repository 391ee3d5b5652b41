"""The SQLite store's batch runner: the writer thread's loop and the group transaction.

A batch is what the writer took off its queue (or, committed inline, the ingests of one
loop pass): runs of plain ingests are inserted with one statement per table, every other
item runs in its own savepoint and fails alone; the results go back to the loop in one
hop (``_finish``)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from operator import attrgetter
from typing import Any

from engine.errors import StoreError
from engine.store.base import Completion
from engine.store.sqlite_ingest import (
    Ingest,
    RetryAlone,
    future_of,
    index_messages,
    insert_plain,
    resolve_all,
)

STOP = object()
INDEX = object()  # queue marker: bring the message indexes up to date after this batch
_DROWS = attrgetter("drows")
_CONST = attrgetter("const")
_MAX_BATCH = 512


class WriterBusy(Exception):
    """An inline commit found the database locked by another connection (another
    process, e.g. the CLI): nothing was written; commit the batch in the writer thread,
    which may wait for the lock without holding up the event loop."""


def _locked(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in {5, 6} or "locked" in str(exc)


BUSY_TIMEOUT_MS = 30_000  # how long the writer thread waits for another process's lock


class BatchWriter:
    """Mixed into ``SQLiteStore``: runs batches on the writer connection."""

    _busy_ms = BUSY_TIMEOUT_MS  # the writer connection's busy_timeout now

    def _busy_timeout(self, conn: sqlite3.Connection, ms: int) -> None:
        """Set the writer connection's busy timeout (under the connection lock): 0 for
        commits on the loop, ``BUSY_TIMEOUT_MS`` in the writer thread; set only when it
        changes (a PRAGMA per commit would cost ~5 µs)."""
        if ms != self._busy_ms:
            conn.execute(f"PRAGMA busy_timeout={ms}")
            self._busy_ms = ms

    _queue: queue.SimpleQueue[Any]
    _conn_lock: threading.Lock
    _loop: asyncio.AbstractEventLoop | None
    _max_vars: int
    _inflight: int
    batches: int
    items: int
    index_errors: int

    # -- the writer thread -----------------------------------------------------------
    def _write_loop(self, conn: sqlite3.Connection) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        try:
            while True:
                first = get()
                if first is STOP:
                    return
                index = first is INDEX
                batch = [] if index else [first]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        item = get_nowait()
                    except queue.Empty:
                        break
                    if item is STOP:
                        stop = True
                        break
                    if item is INDEX:
                        index = True
                        continue
                    batch.append(item)
                with self._conn_lock:
                    self._busy_timeout(conn, BUSY_TIMEOUT_MS)
                    if batch:
                        self._run_batch(conn, batch)
                    if index:
                        try:
                            if index_messages(conn):
                                self._queue.put(INDEX)  # more to do, after what queued
                        except sqlite3.Error:  # searches still read the messages above
                            self.index_errors += 1  # the mark; retried a second later
                if stop:
                    return
        finally:
            conn.close()

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[Any], inline: bool = False
    ) -> None:
        """One transaction for the batch. Runs of plain ingests (no effects) are inserted
        with one statement per table; every other item runs in its own savepoint and fails
        alone. If a run of plain ingests fails, it is rolled back and retried item by item
        (each in its savepoint), so one bad row still fails alone."""
        results: list[tuple[Completion, bool, Any]] = []
        # Queue items: a list (plain ingests handed over together by _hand_over), an
        # Ingest, or a (fn, future) write. Flatten them and group runs of plain ingests.
        items: list[Any] = []
        later: list[Any] = []
        runs: list[Any] = []  # a list of plain Ingest items, or a single other item
        for entry in batch:
            cls = entry.__class__
            if cls is list:
                items.extend(entry)
                if runs and runs[-1].__class__ is list:
                    runs[-1].extend(entry)
                else:
                    runs.append(list(entry))
            elif cls is tuple and getattr(entry[0], "outside_transaction", False):
                later.append(entry)
            else:
                items.append(entry)
                if cls is Ingest and not entry.effects:
                    if runs and runs[-1].__class__ is list:
                        runs[-1].append(entry)
                    else:
                        runs.append([entry])
                else:
                    runs.append(entry)
        batch = items
        alone = len(runs) == 1  # the whole transaction is the savepoint
        if (alone and runs[0].__class__ is list and len(runs[0]) * 8 + 6 <= self._max_vars
                and not any(map(_DROWS, runs[0])) and len(set(map(_CONST, runs[0]))) == 1):
            # The common case: messages only, one statement (one chunk, one shared const).
            # In autocommit mode it is its own transaction (committed, fsync'ed, before
            # execute returns): the writer drops and re-takes the GIL once for the batch
            # instead of once per statement.
            try:
                ids = insert_plain(conn, runs[0], self._max_vars)
            except sqlite3.Error as exc:
                if inline and _locked(exc):
                    raise WriterBusy from exc
                self._run_slow(conn, batch, results)
            else:
                results = [(item.fut, True, (mid, None))
                           for mid, item in zip(ids, runs[0], strict=True)]
            self._finish(conn, batch, later, results, inline)
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            for run in runs:
                if run.__class__ is list:
                    self._run_plain(conn, run, results, alone)
                else:
                    self._run_item(conn, run, results)
            conn.execute("COMMIT")
        except RetryAlone:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            results = []
            self._run_slow(conn, batch, results)
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if inline and not results and _locked(exc):  # at BEGIN: nothing written
                raise WriterBusy from exc
            err = StoreError(f"store commit failed: {exc}")
            results = [(future_of(item), False, err) for item in batch]
        self._finish(conn, batch, later, results, inline)

    def _finish(
        self, conn: sqlite3.Connection, batch: list[Any], later: list[Any],
        results: list[tuple[Completion, bool, Any]], inline: bool = False,
    ) -> None:
        for fn, fut in later:  # maintenance that must not run inside a transaction
            try:
                results.append((fut, True, fn(conn)))
            except sqlite3.Error as exc:
                results.append((fut, False, StoreError(f"store maintenance failed: {exc}")))
        self.batches += 1
        self.items += len(batch)
        ingests = sum(item.__class__ is Ingest for item in batch)
        if inline:
            self._resolve(results, ingests)
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._resolve, results, ingests)

    def _resolve(self, results: list[tuple[Completion, bool, Any]],
                 ingests: int) -> None:
        """On the loop: the batch is committed (or failed); wake its waiters."""
        self._inflight -= ingests
        resolve_all(results)

    def _run_plain(
        self, conn: sqlite3.Connection, run: list[Ingest],
        results: list[tuple[Completion, bool, Any]], alone: bool,
    ) -> None:
        if not alone:
            conn.execute("SAVEPOINT chunk")
        try:
            ids = insert_plain(conn, run, self._max_vars)
        except sqlite3.Error:
            if alone:
                raise RetryAlone from None
            conn.execute("ROLLBACK TO chunk")
            conn.execute("RELEASE chunk")
            for item in run:
                self._run_item(conn, item, results)
            return
        if not alone:
            conn.execute("RELEASE chunk")
        for mid, item in zip(ids, run, strict=True):
            results.append((item.fut, True, (mid, None)))

    def _run_item(
        self, conn: sqlite3.Connection, item: Any,
        results: list[tuple[Completion, bool, Any]],
    ) -> None:
        if item.__class__ is Ingest:
            fn, fut = item.run, item.fut
        else:
            fn, fut = item
        conn.execute("SAVEPOINT item")
        try:
            value = fn(conn)
        except Exception as exc:  # one bad item fails alone
            conn.execute("ROLLBACK TO item")
            results.append((fut, False, exc))
        else:
            results.append((fut, True, value))
        conn.execute("RELEASE item")

    def _run_slow(
        self, conn: sqlite3.Connection, batch: list[Any],
        results: list[tuple[Completion, bool, Any]],
    ) -> None:
        """Every item in its own savepoint (the fallback when a batch insert failed)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in batch:
                self._run_item(conn, item, results)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            err = StoreError(f"store commit failed: {exc}")
            results[:] = [(future_of(item), False, err) for item in batch]

