"""The SQLite store: atomic ingest, group commit, pending queue reads, durability flags."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import StoreError
from engine.store import open_store
from engine.store.base import DeliveryUpdate, InboundRecord, MessageFilter, NewDelivery
from engine.store.sqlite import SQLiteStore
from engine.store.sqlite_ingest import index_messages, prune_batch_sql, received_where


def record(i: int, **kw: object) -> InboundRecord:
    base: dict[str, object] = dict(
        channel="ris", raw=f"MSH|{i}".encode(), received_at=time.time(),
        control_id=f"C{i}", message_type="ORM^O01", version="2.3.1",
    )
    base.update(kw)
    return InboundRecord(**base)  # type: ignore[arg-type]




async def test_ingest_commits_message_and_deliveries_atomically(store: SQLiteStore) -> None:
    mid, _ = await store.ingest(
        record(1), [NewDelivery("ris/a", b"P1"), NewDelivery("ris/b", b"P2")])
    detail = await store.get_message(mid)
    assert detail is not None
    assert detail.summary.control_id == "C1"
    assert [d.destination for d in detail.deliveries] == ["ris/a", "ris/b"]
    assert all(d.status == "pending" for d in detail.deliveries)
    # visible to a brand-new connection: committed
    conn = sqlite3.connect(store.path)
    assert conn.execute("select count(*) from deliveries").fetchone()[0] == 2
    conn.close()


async def test_concurrent_ingests_are_grouped_into_fewer_commits(store: SQLiteStore) -> None:
    results = await asyncio.gather(*(store.ingest(record(i), []) for i in range(200)))
    ids = [mid for mid, _ in results]
    assert sorted(ids) == list(range(1, 201))
    assert store.items == 200
    assert store.batches < 200


async def test_failing_item_fails_alone_and_batch_commits(store: SQLiteStore) -> None:
    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    good = asyncio.ensure_future(store.ingest(record(1), []))
    failing = asyncio.ensure_future(store._write(bad))
    good2 = asyncio.ensure_future(store.ingest(record(2), []))
    results = await asyncio.gather(good, failing, good2, return_exceptions=True)
    assert isinstance(results[1], sqlite3.OperationalError)
    assert results[0] == (1, None) and results[2] == (2, None)


async def test_fetch_pending_is_oldest_first_and_excludes_given_ids(store: SQLiteStore) -> None:
    for i in range(5):
        await store.ingest(record(i), [NewDelivery("q", f"P{i}".encode(), order_key=f"K{i % 2}")])
    rows = await store.fetch_pending("q", 10)
    assert [r.payload for r in rows] == [b"P0", b"P1", b"P2", b"P3", b"P4"]
    first = rows
    rows = await store.fetch_pending("q", 2, frozenset({rows[0].id}))
    assert [r.payload for r in rows] == [b"P1", b"P2"]
    # above an id, excluding some: the limit counts the rows returned
    above = await store.fetch_pending("q", 2, frozenset({first[2].id}), after=first[1].id)
    assert [r.payload for r in above] == [b"P3", b"P4"]
    many = frozenset(range(first[0].id, first[0].id + 2000))  # a long exclusion list
    assert await store.fetch_pending("q", 10, many - {first[4].id}) == [first[4]]
    await store.update_deliveries([DeliveryUpdate(rows[0].id, "sent", 1)])
    rest = await store.fetch_pending("q", 10)
    assert b"P1" not in [r.payload for r in rest]


async def test_search_filters_and_requeue(store: SQLiteStore) -> None:
    await store.ingest(record(1), [NewDelivery("q", b"P1")])
    await store.ingest(record(2, status="rejected", error="bad"), [])
    rejected = await store.search_messages(MessageFilter(status="rejected"))
    assert [r.control_id for r in rejected] == ["C2"]
    by_cid = await store.search_messages(MessageFilter(control_id="C1"))
    assert len(by_cid) == 1
    pending = await store.search_messages(MessageFilter(delivery_status="pending"))
    assert [r.control_id for r in pending] == ["C1"]
    assert await store.requeue([1, 2], "q2") == 2
    q2 = await store.fetch_pending("q2", 10)
    assert [r.payload for r in q2] == [b"MSH|1", b"MSH|2"]  # no delivery to q2 yet: the raw
    assert await store.requeue([1], "q") == 1
    q = await store.fetch_pending("q", 10)
    assert [r.payload for r in q] == [b"P1", b"P1"]  # the payload already made for q
    depths = await store.queue_depths()
    assert depths[("q", "pending")] == 2 and depths[("q2", "pending")] == 2


async def test_store_uses_wal_and_full_sync(store: SQLiteStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert store.synchronous == "FULL"


async def test_the_writer_connection_keeps_a_second_of_pages_in_its_cache(
        store: SQLiteStore) -> None:
    # The index pass reads back the messages of the last second (~26 MB at 18,000 msg/s).
    size = await store.write_tx(lambda c: c.execute("PRAGMA cache_size").fetchone()[0])
    assert size == -65536
    # Readers keep SQLite's default.
    assert await store.read_tx(lambda c: c.execute("PRAGMA cache_size").fetchone()[0]) == -2000


def test_store_url_schemes(tmp_path: Path) -> None:
    assert isinstance(open_store("", tmp_path), SQLiteStore)
    assert isinstance(open_store(f"sqlite:///{tmp_path}/x.db", tmp_path), SQLiteStore)
    with pytest.raises(StoreError, match="not implemented"):
        open_store("postgresql://localhost/x", tmp_path)
    with pytest.raises(StoreError, match="unsupported"):
        open_store("mysql://x", tmp_path)


async def test_write_after_close_is_a_store_error(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "db.sqlite")
    await s.open()
    await s.aclose()
    with pytest.raises(StoreError):
        await s.ingest(record(1), [])


async def test_prune_deletes_old_finished_messages_keeps_pending_and_reclaims_space(
    tmp_path: Path,
) -> None:
    s = SQLiteStore(tmp_path / "p.db")
    await s.open()
    old = time.time() - 100 * 86400
    big = b"X" * 20000
    for i in range(300):
        await s.ingest(record(i, received_at=old, raw=big), [NewDelivery("q", b"P")])
    pending_one, _ = await s.ingest(record(999, received_at=old), [NewDelivery("q", b"P")])
    fresh, _ = await s.ingest(record(1000), [])
    rows = await s.fetch_pending("q", 1000)
    await s.update_deliveries([DeliveryUpdate(r.id, "sent", 1) for r in rows
                               if r.message_id != pending_one])
    await s.update_deliveries([])  # a checkpointable point
    size_before = Path(s.path).stat().st_size + Path(s.path + "-wal").stat().st_size  # noqa: ASYNC240
    n = await s.prune(time.time() - 30 * 86400, batch=100)
    assert n == 300
    assert await s.get_message(pending_one) is not None
    assert await s.get_message(fresh) is not None
    await s.aclose()
    conn = sqlite3.connect(tmp_path / "p.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert (tmp_path / "p.db").stat().st_size < size_before / 2


async def test_effect_rejection_rolls_back_effects_and_deliveries_keeps_message(
    store: SQLiteStore,
) -> None:
    from engine.errors import MessageRejected

    def ok_effect(conn: sqlite3.Connection, mid: int) -> None:
        conn.execute("INSERT INTO meta(key, value) VALUES (?, 'x')", (f"eff{mid}",))

    def refusing(conn: sqlite3.Connection, mid: int) -> None:
        raise MessageRejected("study belongs to another patient", code="AE", error_code="205")

    mid, rej = await store.ingest(record(1), [NewDelivery("q", b"P")], [ok_effect])
    assert rej is None
    mid2, rej2 = await store.ingest(record(2), [NewDelivery("q", b"P")], [ok_effect, refusing])
    assert rej2 is not None and rej2.error_code == "205"
    detail = await store.get_message(mid2)
    assert detail is not None and detail.summary.status == "rejected"
    assert detail.summary.error == "study belongs to another patient"
    assert detail.deliveries == []
    keys = await store.read_tx(lambda c: [r[0] for r in c.execute("SELECT key FROM meta")])
    assert f"eff{mid}" in keys and f"eff{mid2}" not in keys


async def test_search_by_each_status_and_the_partial_index(store: SQLiteStore) -> None:
    statuses = ["processed", "rejected", "filtered", "error", "processed", "rejected"]
    for i, status in enumerate(statuses):
        await store.ingest(record(i, status=status), [])
    for status in ("processed", "rejected", "filtered", "error"):
        found = await store.search_messages(MessageFilter(status=status))
        want = [f"C{i}" for i, s in reversed(list(enumerate(statuses))) if s == status]
        assert [r.control_id for r in found] == want
    names = await store.read_tx(lambda c: {r[0] for r in c.execute(
        "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='messages'")})
    assert "messages_unprocessed" in names
    plan = await store.read_tx(lambda c: c.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM messages m WHERE m.status = ?"
        " AND m.status != 'processed' ORDER BY m.id DESC LIMIT 5", ("rejected",)).fetchall())
    assert "messages_unprocessed" in str(plan)


async def test_indexes_of_earlier_versions_are_dropped_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    s = SQLiteStore(path)
    await s.open()
    await s.aclose()
    conn = sqlite3.connect(path)  # as a database of an earlier version had them
    conn.executescript(
        "CREATE INDEX messages_type ON messages (message_type, received_at);"
        "CREATE INDEX messages_status ON messages (status, received_at);"
        "CREATE INDEX messages_control ON messages (control_id);")
    conn.close()
    s = SQLiteStore(path)
    await s.open()
    await s.aclose()
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert not {"messages_type", "messages_status", "messages_control",
                "messages_received"} & names  # (receive times: received_index)
    assert "messages_unprocessed" in names


@pytest.mark.parametrize("max_vars", [None, 6 + 8 * 3])  # 3 rows per INSERT: chunks
async def test_one_batch_of_mixed_messages_stores_each_row_under_its_id(
    store: SQLiteStore, max_vars: int | None
) -> None:
    if max_vars is not None:
        store._max_vars = max_vars
    kinds: list[dict[str, Any]] = [
        dict(), dict(ack_code="CA"), dict(channel="ehr"),
        dict(status="rejected", error="bad", ack_code="AR"), dict(warnings=["w1"]),
        dict(revision="r2"),
    ]
    records = [record(i, **kinds[i % len(kinds)]) for i in range(40)]
    for i, rec in enumerate(records):
        rec.peer = f"10.0.0.{i}:1"
    batches = store.batches
    ids = await asyncio.gather(*(store.ingest_nowait(rec, []) for rec in records))
    assert store.batches - batches <= 2  # one loop pass: one writer batch (or inline + 1)
    for rec, (mid, rejection) in zip(records, ids, strict=True):
        assert rejection is None
        detail = await store.get_message(mid)
        assert detail is not None
        sm = detail.summary
        assert (sm.control_id, sm.channel, sm.status, sm.ack_code, sm.error) == (
            rec.control_id, rec.channel, rec.status, rec.ack_code, rec.error)
        assert (detail.peer, detail.revision, detail.warnings, detail.raw) == (
            rec.peer, rec.revision, rec.warnings, rec.raw)
    assert len({mid for mid, _ in ids}) == 40


async def _control_rows(store: SQLiteStore) -> list[tuple[str, int]]:
    return await store.read_tx(lambda c: c.execute(
        "SELECT control_id, message_id FROM control_index ORDER BY message_id").fetchall())


async def test_search_by_control_id_before_and_after_the_writer_indexes_it(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = await store.ingest(record(1, control_id="DUP"), [])
    assert [r.id for r in await store.search_messages(MessageFilter(control_id="DUP"))] \
        == [first]  # found above the mark, before the writer indexed it
    monkeypatch.setattr("engine.store.sqlite._INDEX_EVERY_S", 0.0)
    store._next_index = 0.0
    second, _ = await store.ingest(record(2, control_id="DUP"), [])
    await store.ingest(record(3, control_id="OTHER"), [])  # (the writer indexes after it)
    await store.write_tx(lambda c: None)  # the writer has done the batch and the index
    assert (("DUP", first) in await _control_rows(store)
            and ("DUP", second) in await _control_rows(store))
    found = await store.search_messages(MessageFilter(control_id="DUP"))
    assert [r.id for r in found] == [second, first]  # each once, newest first
    assert [r.control_id for r in await store.search_messages(
        MessageFilter(control_id="OTHER"))] == ["OTHER"]


async def test_control_index_follows_prune_and_reused_ids(store: SQLiteStore) -> None:
    old = time.time() - 3600
    for i in range(3):
        await store.ingest(record(i, received_at=old, control_id=f"OLD{i}"), [])
    await store.update_indexes()
    assert len(await _control_rows(store)) == 3
    assert await store.prune(time.time() - 60) == 3  # every message, the newest too
    assert await _control_rows(store) == []  # the trigger removed their entries
    mid, _ = await store.ingest(record(9, control_id="NEW"), [])
    assert mid <= 3  # max(id) + 1 of an empty table: an id at or below the old mark
    assert [r.id for r in await store.search_messages(MessageFilter(control_id="NEW"))] \
        == [mid]  # still found: prune lowered the mark
    await store.update_indexes()
    assert await _control_rows(store) == [("NEW", mid)]


async def test_a_database_without_the_control_index_is_indexed_in_chunks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    s = SQLiteStore(path)
    await s.open()
    for i in range(7):
        await s.ingest(record(i), [])
    await s.aclose()
    conn = sqlite3.connect(path, isolation_level=None)  # as an earlier version left it

    def forget() -> None:
        conn.execute("DELETE FROM control_index")
        conn.execute("DELETE FROM received_index")
        conn.execute("DELETE FROM meta WHERE key LIKE '%_indexed_upto'")

    forget()
    more = [index_messages(conn, limit=3) for _ in range(3)]
    assert more == [True, True, False]
    assert conn.execute("SELECT count(*) FROM control_index").fetchone()[0] == 7
    assert conn.execute("SELECT count(*) FROM received_index").fetchone()[0] == 7
    forget()
    conn.close()
    s = SQLiteStore(path)
    await s.open()  # the writer indexes the backlog by itself
    try:
        assert [r.control_id for r in await s.search_messages(
            MessageFilter(control_id="C3"))] == ["C3"]  # found above the mark meanwhile
        assert len(await s.search_messages(MessageFilter(since=0.0))) == 7
        for _ in range(500):  # bounded: up to 5 s on a busy machine
            if len(await _control_rows(s)) == 7 and len(await _received_rows(s)) == 7:
                break
            await asyncio.sleep(0.01)
        assert len(await _control_rows(s)) == 7
        assert len(await _received_rows(s)) == 7
    finally:
        await s.aclose()


async def _received_rows(store: SQLiteStore) -> list[tuple[float, int]]:
    return await store.read_tx(lambda c: c.execute(
        "SELECT received_at, message_id FROM received_index ORDER BY message_id").fetchall())


async def test_search_by_receive_time_below_and_above_the_index_mark(
    store: SQLiteStore,
) -> None:
    t0 = 1_700_000_000.0
    ids = [(await store.ingest(record(i, received_at=t0 + i), []))[0] for i in range(4)]
    await store.update_indexes()
    assert [mid for _, mid in await _received_rows(store)] == ids
    ids += [(await store.ingest(record(i, received_at=t0 + i), []))[0] for i in (4, 5)]
    # ... 4 and 5 are above the mark, not yet in the index

    async def found(since: float | None, until: float | None) -> list[int]:
        return [r.id for r in await store.search_messages(
            MessageFilter(since=since, until=until))]

    assert await found(t0 + 1, t0 + 5) == ids[4:0:-1]  # newest first, until excluded
    assert await found(t0 + 3, None) == ids[:2:-1]
    assert await found(None, t0 + 2) == ids[1::-1]
    assert await found(t0 + 10, None) == []
    assert await found(t0 + 3, None) == await found(t0 + 3, t0 + 99)
    plan = await store.read_tx(lambda c: c.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM messages m WHERE "
        + received_where(t0, None)[0], received_where(t0, None)[1]).fetchall())
    assert "received_index" in str(plan)  # a range search of the index, not a scan
    assert "SCAN received_index" not in str(plan)


async def test_received_index_follows_prune(store: SQLiteStore) -> None:
    old = time.time() - 3600
    keep = [(await store.ingest(record(i), []))[0] for i in range(2)]
    await store.ingest(record(7, received_at=old), [])  # an old one among new ones
    await store.update_indexes()
    await store.ingest(record(8, received_at=old), [])  # above the mark
    assert await store.prune(time.time() - 60) == 2  # both: indexed and above the mark
    assert sorted(mid for _, mid in await _received_rows(store)) == keep
    assert [r.id for r in await store.search_messages(MessageFilter(since=0.0))] \
        == keep[::-1]
    sql, params = prune_batch_sql(time.time(), 10)
    plan = str(await store.read_tx(
        lambda c: c.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()))
    # read in receive-time order and stopped at the batch size, not collected in full
    assert "SEARCH received_index" in plan and "LIST SUBQUERY" not in plan


async def test_a_control_id_search_without_the_index_mark_reads_every_message(
    store: SQLiteStore,
) -> None:
    for i in range(3):
        await store.ingest(record(i), [])

    def forget(conn: sqlite3.Connection) -> None:  # as a database of an earlier version
        conn.execute("DELETE FROM control_index")
        conn.execute("DELETE FROM meta WHERE key = 'control_indexed_upto'")

    await store.write_tx(forget)
    found = await store.search_messages(MessageFilter(control_id="C1"))
    assert [r.control_id for r in found] == ["C1"]
