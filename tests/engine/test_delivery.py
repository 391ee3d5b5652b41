"""Delivery workers: ordering per destination and per key, retry with backoff, dead letters."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from engine.channel import Destination
from engine.config.models import RetryConfig
from engine.delivery import DeliveryWorker, backoff_delay
from engine.errors import PermanentDelivery, RetryableDelivery
from engine.metrics import Metrics
from engine.store.base import DeliveryUpdate, InboundRecord, NewDelivery, PendingDelivery
from engine.store.sqlite import SQLiteStore


class ScriptedDestination(Destination):
    """An in-process destination whose answer per payload is scripted by the test."""

    type_name = "scripted"
    config_model = RetryConfig  # unused

    def __init__(self, fail_first: dict[bytes, int] | None = None,
                 reject: set[bytes] | None = None) -> None:
        super().__init__("scripted", None)
        self.fail_first = dict(fail_first or {})
        self.reject = reject or set()
        self.sent: list[bytes] = []
        self.attempts: list[bytes] = []
        self.times: list[float] = []  # monotonic time of each attempt

    async def send(self, payload: bytes) -> str:
        self.attempts.append(payload)
        self.times.append(time.monotonic())
        if payload in self.reject:
            raise PermanentDelivery("rejected")
        if self.fail_first.get(payload, 0) > 0:
            self.fail_first[payload] -= 1
            raise RetryableDelivery("peer down")
        self.sent.append(payload)
        return "AA"


RETRY = RetryConfig(max_attempts=3, initial_delay_s=0.05, max_delay_s=0.2, jitter=0)


async def _run(tmp_path: Path, dest: ScriptedDestination, items: list[tuple[bytes, str]],
               ordering: str, until: int, retry: RetryConfig = RETRY,
               send_interval_s: float = 0.0) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "q.db")
    await store.open()
    for payload, key in items:
        await store.ingest(InboundRecord(channel="c", raw=payload, received_at=time.time()),
                           [NewDelivery("q", payload, key)])
    worker = DeliveryWorker("q", dest, store, Metrics(), retry=retry, ordering=ordering,
                            send_interval_s=send_interval_s)
    task = asyncio.create_task(worker.run())
    worker.notify()
    deadline = time.monotonic() + 10
    while len(dest.sent) + len(dest.reject & set(dest.attempts)) < until:
        assert time.monotonic() < deadline, f"stuck: sent={dest.sent}"
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return store


async def test_fifo_destination_blocks_behind_a_retrying_head(tmp_path: Path) -> None:
    dest = ScriptedDestination(fail_first={b"A": 2})
    store = await _run(tmp_path, dest, [(b"A", ""), (b"B", ""), (b"C", "")], "destination", 3)
    assert dest.sent == [b"A", b"B", b"C"]
    assert dest.attempts[:3] == [b"A", b"A", b"A"]
    await store.aclose()


async def test_send_interval_paces_a_backlog_retries_included(tmp_path: Path) -> None:
    dest = ScriptedDestination(fail_first={b"B": 1})
    quick_retry = RetryConfig(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.01, jitter=0)
    items = [(b"A", ""), (b"B", ""), (b"C", ""), (b"D", "")]
    store = await _run(tmp_path, dest, items, "destination", 4, retry=quick_retry,
                       send_interval_s=0.15)
    assert dest.sent == [b"A", b"B", b"C", b"D"]
    assert dest.attempts == [b"A", b"B", b"B", b"C", b"D"]
    gaps = [b - a for a, b in itertools.pairwise(dest.times)]
    assert min(gaps) >= 0.149  # the retry of B too, though its backoff is 0.01 s
    await store.aclose()


async def test_key_ordering_lets_other_keys_pass_a_retrying_key(tmp_path: Path) -> None:
    dest = ScriptedDestination(fail_first={b"A1": 2})
    items = [(b"A1", "A"), (b"B1", "B"), (b"A2", "A"), (b"B2", "B")]
    store = await _run(tmp_path, dest, items, "key", 4)
    assert dest.sent.index(b"B1") < dest.sent.index(b"A1")
    assert dest.sent.index(b"A1") < dest.sent.index(b"A2")  # A stays in order
    assert dest.sent.index(b"B1") < dest.sent.index(b"B2")
    await store.aclose()


async def test_permanent_failure_dead_letters_and_queue_moves_on(tmp_path: Path) -> None:
    dest = ScriptedDestination(reject={b"A"})
    store = await _run(tmp_path, dest, [(b"A", ""), (b"B", "")], "destination", 2)
    assert dest.sent == [b"B"]
    await asyncio.sleep(0.1)  # let the outcome commit
    depths = await store.queue_depths()
    assert depths.get(("q", "dead")) == 1
    await store.aclose()


async def test_retry_exhaustion_dead_letters_after_max_attempts(tmp_path: Path) -> None:
    dest = ScriptedDestination(fail_first={b"A": 99})
    store = SQLiteStore(tmp_path / "q.db")
    await store.open()
    await store.ingest(InboundRecord(channel="c", raw=b"A", received_at=time.time()),
                       [NewDelivery("q", b"A")])
    worker = DeliveryWorker("q", dest, store, Metrics(), retry=RETRY, ordering="destination")
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 10
    while (await store.queue_depths()).get(("q", "dead")) != 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert dest.attempts == [b"A"] * 3
    await store.aclose()


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryConfig(initial_delay_s=1, max_delay_s=30, multiplier=2, jitter=0)
    assert [backoff_delay(n, policy) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_backoff_jitter_stays_within_bounds() -> None:
    policy = RetryConfig(initial_delay_s=10, max_delay_s=100, multiplier=2, jitter=0.1)
    rng = random.Random(1)
    for _ in range(200):
        assert 9.0 <= backoff_delay(1, policy, rng) <= 11.0


@pytest.mark.parametrize("attempts", [1, 50, 500])
def test_backoff_never_exceeds_max(attempts: int) -> None:
    policy = RetryConfig(initial_delay_s=1, max_delay_s=300, multiplier=3, jitter=0.5)
    assert backoff_delay(attempts, policy) <= 300


async def test_dead_letter_emits_a_durable_event_when_events_are_on(tmp_path: Path) -> None:
    import json

    from engine import events

    events.configure(events.DEFAULT_QUEUE)
    try:
        dest = ScriptedDestination(reject={b"A"})
        store = await _run(tmp_path, dest, [(b"A", ""), (b"B", "")], "destination", 2)
        deadline = time.monotonic() + 5
        while not (rows := await store.fetch_pending(events.DEFAULT_QUEUE, 10)):
            assert time.monotonic() < deadline, "no event queued"
            await asyncio.sleep(0.02)
        body = json.loads(rows[0].payload)
        assert body["event"] == "delivery_dead_lettered"
        assert body["destination"] == "q" and body["reason"] == "rejected"
        await store.aclose()
    finally:
        events.configure(None)


class SlowShared:
    """What the connections of one destination share in the test: the sends in flight, the
    payloads that fail once, what was sent."""

    def __init__(self, fail_once: set[bytes]) -> None:
        self.in_flight = 0
        self.most = 0
        self.fail_once = set(fail_once)
        self.sent: list[bytes] = []


class SlowDestination(ScriptedDestination):
    """One connection: each send takes 20 ms."""

    def __init__(self, shared: SlowShared) -> None:
        super().__init__()
        self.shared = shared

    async def send(self, payload: bytes) -> str:
        sh = self.shared
        sh.in_flight += 1
        sh.most = max(sh.most, sh.in_flight)
        try:
            self.attempts.append(payload)
            self.times.append(time.monotonic())
            await asyncio.sleep(0.02)
            if payload in sh.fail_once:
                sh.fail_once.discard(payload)
                raise RetryableDelivery("peer busy")
            sh.sent.append(payload)
            return "AA"
        finally:
            sh.in_flight -= 1


async def test_connections_send_side_by_side_each_key_in_order(tmp_path: Path) -> None:
    keys = [f"K{k}" for k in range(8)]
    shared = SlowShared({f"{key}-0".encode() for key in keys[:3]})  # three heads retried
    first, *more = [SlowDestination(shared) for _ in range(4)]
    store = SQLiteStore(tmp_path / "q.db")
    await store.open()
    for i in range(5):
        for key in keys:
            payload = f"{key}-{i}".encode()
            await store.ingest(InboundRecord(channel="c", raw=payload, received_at=time.time()),
                               [NewDelivery("q", payload, key)])
    worker = DeliveryWorker("q", first, store, Metrics(), retry=RETRY, ordering="key",
                            more_connections=more)
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 20
    while len(shared.sent) < 40:
        assert time.monotonic() < deadline, f"stuck: {len(shared.sent)} sent"
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.aclose()
    assert shared.most > 1  # several connections had a message in flight at once
    assert sum(1 for d in (first, *more) if d.attempts) > 1
    for key in keys:  # each key on one connection, in order, a retried head first
        assert [p for p in shared.sent if p.startswith(f"{key}-".encode())] == [
            f"{key}-{i}".encode() for i in range(5)]
        assert sum(any(p.startswith(f"{key}-".encode()) for p in d.attempts)
                   for d in (first, *more)) == 1
    assert sum(p == b"K0-0" for d in (first, *more) for p in d.attempts) == 2


async def test_send_interval_paces_the_connections_together(tmp_path: Path) -> None:
    shared = SlowShared(set())
    first, second = SlowDestination(shared), SlowDestination(shared)
    store = await _run_with(tmp_path, first, [second], 6, send_interval_s=0.1)
    starts = sorted(first.times + second.times)
    assert len(starts) == 6 and first.times and second.times  # both connections sent
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.099
    await store.aclose()


async def _run_with(tmp_path: Path, first: SlowDestination, more: list[SlowDestination],
                    count: int, send_interval_s: float) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "q.db")
    await store.open()
    for i in range(count):
        payload = f"M{i}".encode()
        await store.ingest(InboundRecord(channel="c", raw=payload, received_at=time.time()),
                           [NewDelivery("q", payload)])
    worker = DeliveryWorker("q", first, store, Metrics(), retry=RETRY, ordering="none",
                            send_interval_s=send_interval_s, more_connections=more)
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 10
    while len(first.shared.sent) < count:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return store


class GatedDestination(ScriptedDestination):
    """One connection: a send of a payload in ``gates`` waits until its event is set."""

    def __init__(self, gates: dict[bytes, asyncio.Event], sent: list[bytes]) -> None:
        super().__init__()
        self.gates = gates
        self.shared_sent = sent

    async def send(self, payload: bytes) -> str:
        self.attempts.append(payload)
        gate = self.gates.get(payload)
        if gate is not None:
            await gate.wait()
        self.shared_sent.append(payload)
        return "AA"


def _key_in_lane(lane: int, lanes: int, prefix: str) -> str:
    return next(k for k in (f"{prefix}{i}" for i in range(100))
                if zlib.crc32(k.encode()) % lanes == lane)


async def _add(store: SQLiteStore, payload: str, key: str) -> None:
    await store.ingest(InboundRecord(channel="c", raw=payload.encode(), received_at=time.time()),
                       [NewDelivery("q", payload.encode(), key)])


class HungPair:
    """Two connections: key A on the first, whose send of A-0 hangs until ``release``
    is set; key B on the second."""

    def __init__(self, tmp_path: Path) -> None:
        self.a_key, self.b_key = _key_in_lane(0, 2, "A"), _key_in_lane(1, 2, "B")
        self.release = asyncio.Event()
        self.sent: list[bytes] = []
        gates = {f"{self.a_key}-0".encode(): self.release}
        self.first = GatedDestination(gates, self.sent)
        self.second = GatedDestination(gates, self.sent)
        self.store = SQLiteStore(tmp_path / "q.db")

    def worker(self) -> DeliveryWorker:
        return DeliveryWorker("q", self.first, self.store, Metrics(), retry=RETRY,
                              ordering="key", more_connections=[self.second])


async def test_a_connection_waiting_on_its_peer_does_not_hold_back_the_others(
        tmp_path: Path) -> None:
    # Key A's first message hangs on its connection (a peer that does not answer); key B
    # is on the other connection. B's messages committed during the hang go out at once,
    # and A's second message waits behind its first.
    h = HungPair(tmp_path)
    a, b, sent = h.a_key, h.b_key, h.sent
    await h.store.open()
    await _add(h.store, f"{a}-0", a)
    await _add(h.store, f"{b}-0", b)
    worker = h.worker()
    task = asyncio.create_task(worker.run())
    try:
        async def until(cond: Any, what: str) -> None:
            deadline = time.monotonic() + 5
            while not cond():
                assert time.monotonic() < deadline, f"timed out waiting for {what}: {sent}"
                await asyncio.sleep(0.01)

        await until(lambda: f"{b}-0".encode() in sent
                    and f"{a}-0".encode() in h.first.attempts, "B-0 sent, A-0 in flight")
        for i in range(1, 4):  # committed while A-0 hangs
            await _add(h.store, f"{b}-{i}", b)
            worker.notify()
        await _add(h.store, f"{a}-1", a)
        worker.notify()
        await until(lambda: f"{b}-3".encode() in sent, "B-1..B-3 during the hang")
        assert not h.release.is_set()
        assert f"{a}-1".encode() not in sent + h.first.attempts  # behind its first
        h.release.set()
        await until(lambda: f"{a}-1".encode() in sent, "A-1 after A-0")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await h.store.aclose()
    assert [p for p in sent if p.startswith(a.encode())] == [f"{a}-0".encode(), f"{a}-1".encode()]
    assert [p for p in sent if p.startswith(b.encode())] == [f"{b}-{i}".encode() for i in range(4)]
    assert all(p.startswith(a.encode()) for p in h.first.attempts)  # one lane per key
    assert all(p.startswith(b.encode()) for p in h.second.attempts)


class FlakyDestination(ScriptedDestination):
    """One connection of a flaky peer: each send takes 0-3 ms and fails (to be retried)
    with the given probability; what went through is appended to the shared list."""

    def __init__(self, rng: random.Random, p_fail: float, sent: list[bytes]) -> None:
        super().__init__()
        self.rng = rng
        self.p_fail = p_fail
        self.shared_sent = sent

    async def send(self, payload: bytes) -> str:
        self.attempts.append(payload)
        await asyncio.sleep(self.rng.random() * 0.003)
        if self.rng.random() < self.p_fail:
            raise RetryableDelivery("flaky")
        self.shared_sent.append(payload)
        return "AA"


@pytest.mark.parametrize(("connections", "seed"), [(1, 1), (3, 2), (4, 3)])
async def test_messages_committed_while_a_key_waits_for_its_retry_stay_behind_it(
        tmp_path: Path, connections: int, seed: int) -> None:
    # Messages of 6 keys arrive while the worker runs; a fifth of the sends fail and are
    # retried 20-40 ms later. Whatever the interleaving, each key's messages go through
    # once each, in the order they were committed.
    rng = random.Random(seed)
    sent: list[bytes] = []
    first, *more = [FlakyDestination(rng, 0.2, sent) for _ in range(connections)]
    retry = RetryConfig(max_attempts=50, initial_delay_s=0.02, max_delay_s=0.04, jitter=0)
    store = SQLiteStore(tmp_path / "q.db")
    await store.open()
    worker = DeliveryWorker("q", first, store, Metrics(), retry=retry, ordering="key",
                            more_connections=more)
    task = asyncio.create_task(worker.run())
    keys = [f"P{k}" for k in range(6)]
    counts = dict.fromkeys(keys, 0)
    try:
        for _ in range(30):  # 30 commits of 1-5 messages, 0-10 ms apart
            for _ in range(rng.randint(1, 5)):
                key = rng.choice(keys)
                payload = f"{key}-{counts[key]}".encode()
                counts[key] += 1
                await store.ingest(InboundRecord(channel="c", raw=payload,
                                                 received_at=time.time()),
                                   [NewDelivery("q", payload, key)])
            worker.notify()
            await asyncio.sleep(rng.random() * 0.01)
        total = sum(counts.values())
        deadline = time.monotonic() + 15
        while len(sent) < total:
            assert time.monotonic() < deadline, f"stuck: {len(sent)} of {total} sent"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # nothing more may come
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.aclose()
    assert len(sent) == total
    for key in keys:
        assert [p for p in sent if p.split(b"-")[0] == key.encode()] == [
            f"{key}-{i}".encode() for i in range(counts[key])]
    failures = sum(len(d.attempts) for d in (first, *more)) - total
    assert failures > 0  # the retries happened


async def test_a_retry_scheduled_before_a_restart_keeps_later_messages_of_its_key_behind(
        tmp_path: Path) -> None:
    # P1-0 failed before the restart and is due again in 0.3 s. P1-1 and P1-2, committed
    # after the worker started, wait behind it; P2-0 goes out at once; P1-0 goes out
    # when due, not at the next idle poll (P1-2's commit read nothing it could send).
    sent: list[bytes] = []
    dest = GatedDestination({}, sent)
    store = SQLiteStore(tmp_path / "q.db")
    await store.open()

    async def add(payload: str, key: str) -> None:
        await _add(store, payload, key)
        worker.notify()

    await _add(store, "P1-0", "P1")
    (row,) = await store.fetch_pending("q", 10)
    due = time.time() + 0.3
    await store.update_deliveries([DeliveryUpdate(row.id, "pending", 1, due, "peer down")])
    worker = DeliveryWorker("q", dest, store, Metrics(), retry=RETRY, ordering="key")
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.05)  # the worker has read P1-0 (not due yet)
        await add("P1-1", "P1")
        await add("P2-0", "P2")
        deadline = time.monotonic() + 5
        while b"P2-0" not in sent:
            assert time.monotonic() < deadline, f"stuck: {sent}"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await add("P1-2", "P1")
        while len(sent) < 2:
            assert time.monotonic() < deadline, f"stuck: {sent}"
            await asyncio.sleep(0.01)
        p1_sent_at = time.time()
        while len(sent) < 4:
            assert time.monotonic() < deadline, f"stuck: {sent}"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.aclose()
    assert sent == [b"P2-0", b"P1-0", b"P1-1", b"P1-2"]
    assert due <= p1_sent_at < due + 1.0


async def test_a_backlog_behind_a_hung_connection_does_not_starve_the_others(
        tmp_path: Path) -> None:
    # 600 messages of key A queue behind A-0, which hangs; B's messages come after all
    # of them in the queue and still go out meanwhile.
    h = HungPair(tmp_path)
    a, b, sent = h.a_key, h.b_key, h.sent
    await h.store.open()
    items = [(f"{a}-{i}", a) for i in range(600)] + [(f"{b}-{i}", b) for i in range(5)]
    await asyncio.gather(*(_add(h.store, p, k) for p, k in items))
    task = asyncio.create_task(h.worker().run())
    try:
        deadline = time.monotonic() + 5
        while len(sent) < 5:
            assert time.monotonic() < deadline, f"stuck: {sent}"
            await asyncio.sleep(0.01)
        assert sent == [f"{b}-{i}".encode() for i in range(5)]
        h.release.set()
        while len(sent) < 605:
            assert time.monotonic() < deadline + 10, f"stuck: {len(sent)} sent"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await h.store.aclose()
    assert [p for p in sent if p.startswith(a.encode())] == [
        f"{a}-{i}".encode() for i in range(600)]


async def test_one_read_looks_past_pages_of_rows_that_all_wait(tmp_path: Path) -> None:
    # The connection of key A already has a full share to send; the oldest 600 pending
    # rows are all A's, B's two come after them. One read hands B's to the other lane.
    from engine.delivery import _Lane

    h = HungPair(tmp_path)
    a, b = h.a_key, h.b_key
    await h.store.open()
    items = [(f"{a}-{i}", a) for i in range(600)] + [(f"{b}-{i}", b) for i in range(2)]
    await asyncio.gather(*(_add(h.store, p, k) for p, k in items))
    worker = h.worker()
    lane_a, lane_b = _Lane(worker, h.first), _Lane(worker, h.second)
    worker._lane_of = [lane_a, lane_b]
    lane_a.rows.extend(PendingDelivery(-i, 0, "q", 0, 0.0, a, b"") for i in range(1, 257))
    try:
        await worker._feed()
    finally:
        await h.store.aclose()
    assert [r.payload for r in lane_b.rows] == [f"{b}-{i}".encode() for i in range(2)]
    assert len(lane_a.rows) == 256  # nothing more for the full lane


async def test_a_key_held_back_while_a_read_runs_gets_nothing_from_that_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A-0 fails (its key is held back for the retry) while the reader's query runs; the
    # rows that query returns for key A must wait, or A-1 would overtake A-0.
    from engine.delivery import _Lane

    h = HungPair(tmp_path)
    a, b = h.a_key, h.b_key
    await h.store.open()
    await _add(h.store, f"{a}-1", a)
    await _add(h.store, f"{b}-0", b)
    worker = h.worker()
    lane_a, lane_b = _Lane(worker, h.first), _Lane(worker, h.second)
    worker._lane_of = [lane_a, lane_b]
    real = h.store.fetch_pending

    async def fetch(*args: Any) -> list[PendingDelivery]:
        rows = await real(*args)
        worker._hold(a, time.time() + 60, lane_a)  # A-0's send failed meanwhile
        return rows

    monkeypatch.setattr(h.store, "fetch_pending", fetch)
    try:
        await worker._feed()
    finally:
        await h.store.aclose()
    assert not lane_a.rows
    assert [r.payload for r in lane_b.rows] == [f"{b}-0".encode()]
