"""Where the SQLite store commits: inline at the end of a loop pass while commits are fast,
in the writer thread when they are slow or the writer is busy; WAL checkpoints in a thread
of their own."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import MessageRejected, StoreError
from engine.store.base import InboundRecord
from engine.store.sqlite import _INLINE_MAX_S, SQLiteStore

RAW = b"MSH|^~\\&|RIS|H|RB|H|20261122||ORM^O01|C|P|2.5\r" + b"OBX|1|TX|||" + b"x" * 1200 + b"\r"


def record(i: int) -> InboundRecord:
    return InboundRecord("ris", RAW, time.time(), "peer", f"C{i}", "ORM^O01", "2.5", "ascii",
                         "processed", "AA", "", "")


class Done:
    """A ``Completion`` recording the thread it was completed on and the message id."""

    def __init__(self, into: list[tuple[int, str]]) -> None:
        self.into = into

    def done(self) -> bool:
        return False

    def set_result(self, value: tuple[int, MessageRejected | None]) -> None:
        self.into.append((value[0], threading.current_thread().name))

    def set_exception(self, exc: BaseException) -> None:  # pragma: no cover - not expected
        raise AssertionError(f"ingest failed: {exc!r}")




def committing_thread(store: SQLiteStore, seen: list[str]) -> None:
    run_batch = store._run_batch

    def spy(conn: Any, batch: list[Any], inline: bool = False) -> None:
        seen.append(threading.current_thread().name)
        run_batch(conn, batch, inline)

    store._run_batch = spy  # type: ignore[method-assign]


async def submit_pass(store: SQLiteStore, first: int, n: int) -> list[tuple[int, str]]:
    """``n`` ingests in one loop pass; wait until all are completed."""
    got: list[tuple[int, str]] = []
    for i in range(first, first + n):
        store.ingest_then(record(i), [], Done(got))
    for _ in range(500):
        if len(got) == n:
            break
        await asyncio.sleep(0.01)
    return got


async def test_the_ingests_of_one_pass_are_committed_together_on_the_loop(
    store: SQLiteStore,
) -> None:
    await submit_pass(store, 1, 1)  # (the first pass also queues the control-id indexing)
    seen: list[str] = []
    committing_thread(store, seen)
    batches = store.batches
    got = await submit_pass(store, 2, 5)
    assert [mid for mid, _ in got] == [2, 3, 4, 5, 6]
    assert seen == [threading.current_thread().name]  # the loop's thread, one commit
    assert {name for _, name in got} == {threading.current_thread().name}
    assert store.batches == batches + 1
    assert 0 < store._commit_s < _INLINE_MAX_S


async def test_slow_commits_move_the_ingests_to_the_writer_thread_until_a_probe(
    store: SQLiteStore,
) -> None:
    seen: list[str] = []
    committing_thread(store, seen)
    store._commit_s = 1.0  # as after a run of slow inline commits
    store._probe_at = time.monotonic() + 3600
    got = await submit_pass(store, 1, 3)
    assert [mid for mid, _ in got] == [1, 2, 3]
    assert seen == ["store-writer"]
    store._probe_at = 0.0  # the once-a-second probe is due: committed inline, re-measured
    got = await submit_pass(store, 4, 3)
    assert [mid for mid, _ in got] == [4, 5, 6]
    assert seen[1:] == [threading.current_thread().name]
    assert store._commit_s < 1.0


async def test_a_busy_writer_gets_the_batch_queued_behind_its_work_in_order(
    store: SQLiteStore,
) -> None:
    seen: list[str] = []
    release = threading.Event()

    def slow(conn: Any) -> None:
        release.wait(5)

    busy = asyncio.ensure_future(store.write_tx(slow))
    await asyncio.sleep(0.05)  # the writer thread holds the connection
    committing_thread(store, seen)
    got: list[tuple[int, str]] = []
    for i in range(1, 4):
        store.ingest_then(record(i), [], Done(got))
    await asyncio.sleep(0.05)
    assert got == []  # not committed around the writer's transaction
    release.set()
    await busy
    for _ in range(500):
        if len(got) == 3:
            break
        await asyncio.sleep(0.01)
    assert [mid for mid, _ in got] == [1, 2, 3]
    assert seen == ["store-writer"]


def wal_size(store: SQLiteStore) -> int:
    return os.path.getsize(f"{store.path}-wal")


async def test_the_checkpointer_lets_the_wal_start_over(tmp_path: Path) -> None:
    """Commits never checkpoint (autocheckpoint is off on the writer connection); the
    checkpointer copies the WAL back (here every 0.1 s) and the WAL file starts over,
    so it stays far smaller than everything written through it."""
    store = SQLiteStore(tmp_path / "db.sqlite", checkpoint_every_s=0.1)
    await store.open()
    try:
        await _fill_in_bursts(store)
    finally:
        await store.aclose()


async def _fill_in_bursts(store: SQLiteStore) -> None:
    """12 bursts of 250 messages with a pause after each; the WAL size after each."""
    n = 0
    sizes = []
    for _burst in range(12):
        for _ in range(10):
            await submit_pass(store, n + 1, 25)
            n += 25
        await asyncio.sleep(0.3)  # at least one checkpoint per burst
        sizes.append(wal_size(store))
    # Each burst appends ~0.45 MB to the WAL; one that never started over would have
    # grown by that much eleven times after the first burst (schema pages included).
    assert n == 3000 and n * len(RAW) > 3_700_000
    assert sizes[-1] <= sizes[1] < n * len(RAW) / 2, sizes
    assert store.checkpoint_errors == 0
    assert store._wconn is not None
    assert store._wconn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0


async def test_a_smaller_batch_than_the_last_waits_one_loop_pass_for_more(
    store: SQLiteStore,
) -> None:
    await submit_pass(store, 1, 1)  # (the first pass also queues the control-id indexing)
    await submit_pass(store, 2, 3)  # the last inline commit held 3
    seen: list[str] = []
    committing_thread(store, seen)
    got: list[tuple[int, str]] = []
    store.ingest_then(record(5), [], Done(got))

    def more() -> None:  # runs in the same pass, after the hand-over deferred itself
        store.ingest_then(record(6), [], Done(got))
        store.ingest_then(record(7), [], Done(got))

    asyncio.get_running_loop().call_soon(more)
    for _ in range(500):
        if len(got) == 3:
            break
        await asyncio.sleep(0.01)
    assert [mid for mid, _ in got] == [5, 6, 7]
    assert len(seen) == 1  # one commit for the three
    got.clear()
    await submit_pass(store, 8, 1)  # a smaller batch still commits after one pass
    assert [mid for mid, _ in got] == []  # (submit_pass collects its own)
    assert len(seen) == 2


async def test_an_ingest_queued_just_before_close_is_committed_and_answered(
    tmp_path: Path,
) -> None:
    s = SQLiteStore(tmp_path / "db.sqlite")
    await s.open()
    got: list[tuple[int, str]] = []
    s.ingest_then(record(1), [], Done(got))
    await s.aclose()  # before the loop got to the hand-over
    await asyncio.sleep(0.05)
    assert [mid for mid, _ in got] == [1]
    with pytest.raises(StoreError):  # a closed store refuses at once
        s.ingest_then(record(2), [], Done(got))
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    assert conn.execute("SELECT control_id FROM messages").fetchall() == [("C1",)]
    conn.close()


async def test_a_write_lock_held_by_another_process_never_blocks_the_loop(
    store: SQLiteStore,
) -> None:
    """Another connection (as the CLI in another process) holds the write lock: the
    inline commit does not wait for it on the loop; the writer thread commits the batch
    once the lock is released, and the loop keeps running meanwhile."""
    await submit_pass(store, 1, 1)
    seen: list[str] = []
    committing_thread(store, seen)
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    got: list[tuple[int, str]] = []
    for i in range(2, 5):
        store.ingest_then(record(i), [], Done(got))
    t0 = time.monotonic()
    for _ in range(30):  # 0.3 s: the loop turns while the lock is held
        await asyncio.sleep(0.01)
    blocked_for = time.monotonic() - t0  # ~30 s if the loop had waited for the lock
    assert got == []  # nothing committed around the other transaction
    other.execute("COMMIT")
    other.close()
    for _ in range(500):
        if len(got) == 3:
            break
        await asyncio.sleep(0.01)
    assert [mid for mid, _ in got] == [2, 3, 4]
    assert seen[0] == threading.current_thread().name  # tried inline, found it locked
    assert seen[-1] == "store-writer"
    assert blocked_for < 5
    assert store._wconn is not None  # the writer's own timeout is back for its waits
    assert store._wconn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


async def test_a_pass_that_makes_the_index_job_due_still_commits_on_the_loop(
    store: SQLiteStore,
) -> None:
    """The writer's control-id indexing (once a second) is queued after the pass's batch,
    not before it: the batch is not pushed off the loop by it, and gets indexed."""
    await store.update_indexes()  # the new database's own (empty) backlog
    await asyncio.sleep(0.05)  # the writer lets go of the connection
    seen: list[str] = []
    committing_thread(store, seen)
    store._next_index = 0.0  # a second is up
    got = await submit_pass(store, 1, 2)
    assert [mid for mid, _ in got] == [1, 2]
    assert seen == [threading.current_thread().name]

    def indexed(conn: sqlite3.Connection) -> list[Any]:
        return conn.execute("SELECT control_id FROM control_index ORDER BY 1").fetchall()

    for _ in range(500):
        if await store.read_tx(indexed) == [("C1",), ("C2",)]:
            break
        await asyncio.sleep(0.01)
    assert await store.read_tx(indexed) == [("C1",), ("C2",)]
