"""Delivery workers: one per destination, draining its durable queue in order.

The queue *is* the ``deliveries`` table. A worker reads pending rows oldest first, sends
each through its destination, and records the outcome. Ordering is by key: with
``ordering: destination`` every row has the same key (strict FIFO, a retrying head blocks
the rest); with ``ordering: key`` a retrying row blocks only later rows with the same key
(e.g. the same patient); with ``none`` nothing blocks. Outcomes are written without
waiting for their commit, so sends and commits overlap (the outcomes that queue up while
one commit is in flight go in the next one, in a single write); rows whose outcome is not
yet committed are kept out of the next read. The reader hands the due rows to a lane,
which sends them one after the other; with ``connections: N`` (key or no ordering) there
are N lanes, each with its own destination object and connection, a key always in the
same one, and they run independently: a lane waiting on a slow peer or a timeout does
not hold back the others, which the reader keeps supplying. A row to be retried takes
the later rows of its key out of its lane until it is due. ``send_interval_s`` paces all
the lanes together.
After a restart the same read resumes whatever was pending: nothing ACKed is lost, a row
sent but not yet marked may be sent again (at-least-once).
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
import zlib
from collections.abc import Sequence
from typing import Any

from engine import events
from engine.channel import Destination
from engine.config.models import RetryConfig
from engine.errors import PermanentDelivery, RetryableDelivery, StoreError
from engine.logging import get_logger
from engine.metrics import Metrics
from engine.store.base import DeliveryUpdate, PendingDelivery, Store

log = get_logger("radbridge.delivery")

_PAGE = 256
_IDLE_POLL_S = 5.0
_MAX_UNCOMMITTED = 1024
_LOW = _PAGE // 4  # a lane with fewer rows to send asks the reader for more
_MAX_PAGES = 8  # pages one read looks through when the oldest rows all have to wait


def backoff_delay(attempts: int, policy: RetryConfig, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempts + 1`` (attempts ≥ 1 already made)."""
    base = min(policy.max_delay_s, policy.initial_delay_s * policy.multiplier ** (attempts - 1))
    if policy.jitter:
        r = rng or random
        base *= 1 + policy.jitter * (2 * r.random() - 1)
    return float(min(base, policy.max_delay_s))


class DeliveryWorker:
    """Owns one destination's queue."""

    def __init__(
        self,
        queue_name: str,
        destination: Destination,
        store: Store,
        metrics: Metrics,
        *,
        retry: RetryConfig,
        ordering: str,
        send_interval_s: float = 0.0,
        more_connections: Sequence[Destination] = (),
    ) -> None:
        self.queue_name = queue_name
        self.destination = destination
        # One destination object per connection (``connections:``); a key always maps to
        # the same one, so its messages stay in order.
        self._lanes = [destination, *more_connections]
        self.store = store
        self.metrics = metrics
        self.retry = retry
        self.ordering = ordering
        self._wake = asyncio.Event()
        self._uncommitted: set[int] = set()
        self._commit_tasks: set[asyncio.Task[None]] = set()
        self._outbox: list[DeliveryUpdate] = []  # outcomes not yet handed to the store
        self._flusher: asyncio.Task[None] | None = None
        self._room = asyncio.Semaphore(_MAX_UNCOMMITTED)
        self.send_interval_s = send_interval_s
        self._pace = asyncio.Lock()
        self._last_send = -send_interval_s  # loop time of the last send's start (pacing)
        self._queued: set[int] = set()  # ids handed to a lane and not yet decided
        self._held: dict[str, float] = {}  # key -> when its retrying row is due
        self._lane_of: list[_Lane] = []
        # Rows up to this id were read and left waiting (a retry, a full lane); a plain
        # notify reads only above it. Anything that may let them go sets _rescan.
        self._seen = 0
        self._rescan = True
        self._waiting: set[str] = set()
        self._due = float("inf")  # when the earliest of those rows is due for its retry

    def notify(self) -> None:
        """New pending rows were committed."""
        self._wake.set()

    async def run(self) -> None:
        """The reader: hands the due rows to the connections' lanes and reads again when
        new rows are committed, a lane runs dry or a held-back key is due."""
        lanes = [_Lane(self, dest) for dest in self._lanes]
        self._lane_of = lanes
        tasks = [asyncio.create_task(lane.run()) for lane in lanes]
        try:
            while True:
                self._wake.clear()
                for task in tasks:  # a lane cannot fail (see _Lane.run), but never hide it
                    if task.done():
                        task.result()
                wait_s = await self._feed()
                if wait_s is None:
                    continue  # a full page was handed out: read on at once
                try:
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
                except TimeoutError:
                    self._rescan = True  # a retry is due (or the idle poll)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._commit_tasks:
                await asyncio.gather(*self._commit_tasks, return_exceptions=True)
            for dest in self._lanes:
                await dest.aclose()

    async def _feed(self) -> float | None:
        """Read the pending rows not in a lane yet and hand each due one to the lane of its
        key. Returns None when a full page was handed out, else seconds until a look is
        worth it (a lane running low or new rows wake the reader sooner). While every
        lane has plenty to send, new rows wait for the next read (a read per commit of
        the listener would cost more than the sends)."""
        lanes = self._lane_of
        if all(len(lane.rows) >= _LOW for lane in lanes):
            return _IDLE_POLL_S  # the first lane to run low wakes the reader
        now = time.time()
        held = self._held
        for key in [k for k, until in held.items() if until <= now]:
            del held[key]
            self._rescan = True
        if self._due <= now:  # a row that waited for its retry time is due
            self._rescan = True
        next_due = min([now + _IDLE_POLL_S, *held.values()])
        rescan = self._rescan
        if not rescan:
            next_due = min(next_due, self._due)
        # Keys whose rows wait (for a retry, or a full lane); a read above the rows seen
        # keeps the keys that waited then, so that no later row of theirs overtakes.
        blocked = set(held) if rescan else set(held) | self._waiting
        n = len(lanes)
        handed = 0
        exclude = frozenset(self._uncommitted | self._queued)
        after = 0 if rescan else self._seen
        self._rescan = False
        self._waiting = blocked
        for _page in range(_MAX_PAGES):
            try:
                rows = await self.store.fetch_pending(self.queue_name, _PAGE, exclude, after)
            except StoreError as exc:
                log.error("queue_read_failed", destination=self.queue_name, error=str(exc))
                return 1.0
            now = time.time()
            if held:  # a lane may have held a key back while the read ran
                blocked.update(held)
                next_due = min(next_due, *held.values())
            for row in rows:
                key = self._key(row)
                if key in blocked:
                    continue
                if row.next_attempt > now:  # waiting for its retry: later rows of its key wait
                    blocked.add(key)
                    next_due = min(next_due, row.next_attempt)
                    continue
                lane = lanes[zlib.crc32(key.encode()) % n] if n > 1 else lanes[0]
                if len(lane.rows) >= _PAGE:  # plenty there: its later rows wait for a read
                    blocked.add(key)
                    continue
                self._queued.add(row.id)
                lane.rows.append(row)
                lane.wake.set()
                handed += 1
            if rows:
                self._seen = rows[-1].id
            if len(rows) < _PAGE:
                break  # read to the end
            if handed:
                self._due = next_due
                return None  # a full page: read on at once (the lanes are being supplied)
            # A full page and nothing handed out: the oldest rows all wait (a retry, or a
            # connection with plenty to send). Look further for the other connections.
            after = rows[-1].id
        self._due = next_due
        return max(0.0, next_due - time.time())

    def _hold(self, key: str, until: float, lane: _Lane) -> None:
        """A row of ``key`` is to be retried at ``until``: take the key's later rows out
        of ``lane`` (read again, in order, once it is due) and hand none out meanwhile."""
        self._held[key] = until
        if self.ordering == "destination":
            dropped = list(lane.rows)
            lane.rows.clear()
        else:
            dropped = [r for r in lane.rows if self._key(r) == key]
            if dropped:
                kept = [r for r in lane.rows if self._key(r) != key]
                lane.rows.clear()
                lane.rows.extend(kept)
        for row in dropped:
            self._queued.discard(row.id)
        self._rescan = True
        self._wake.set()  # the reader sets its timer for the retry

    def _key(self, row: PendingDelivery) -> str:
        if self.ordering == "destination":
            return ""
        if self.ordering == "none":
            return str(row.id)
        return row.order_key

    async def _retry_or_dead(self, row: PendingDelivery, attempts: int, reason: str, *,
                             scheduled_log: bool) -> bool:
        """A failed send: dead after ``max_attempts`` (True), else recorded for a retry
        after the backoff and ``row`` updated to match (False). ``scheduled_log``: count
        the retry and log ``delivery_retry_scheduled`` (a crash was logged already)."""
        if attempts >= self.retry.max_attempts:
            await self._record(row, "dead", attempts, reason)
            return True
        delay = backoff_delay(attempts, self.retry)
        if scheduled_log:
            self.metrics.retried.labels(self.queue_name).inc()
            log.warning(
                "delivery_retry_scheduled", destination=self.queue_name, delivery_id=row.id,
                message_id=row.message_id, attempts=attempts, reason=reason,
                next_attempt_s=round(delay, 3),
            )
        retry_at = time.time() + delay
        await self._record(row, "pending", attempts, reason, next_attempt=retry_at)
        row.attempts = attempts
        row.next_attempt = retry_at
        return False

    async def _attempt(self, row: PendingDelivery, dest: Destination) -> bool:
        """One send; True when the row leaves the queue (sent or dead)."""
        attempts = row.attempts + 1
        if self.send_interval_s:  # the connections take turns, each after the last real start
            async with self._pace:
                loop = asyncio.get_running_loop()
                wait = self._last_send + self.send_interval_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last_send = loop.time()
        try:
            response = await dest.send(row.payload)
        except RetryableDelivery as exc:
            return await self._retry_or_dead(row, attempts, exc.reason, scheduled_log=True)
        except PermanentDelivery as exc:
            await self._record(row, "dead", attempts, exc.reason)
            return True
        except Exception as exc:  # a destination bug must not kill the queue
            log.exception("delivery_crashed", destination=self.queue_name, delivery_id=row.id)
            return await self._retry_or_dead(row, attempts, f"{type(exc).__name__}: {exc}",
                                             scheduled_log=False)
        await self._record(row, "sent", attempts, "", response=response)
        self.metrics.sent.labels(self.queue_name).inc()
        return True

    async def _record(
        self, row: PendingDelivery, status: Any, attempts: int, error: str, *,
        next_attempt: float = 0.0, response: str = "",
    ) -> None:
        if status == "dead":
            self.metrics.dead.labels(self.queue_name).inc()
            log.error(
                "delivery_dead_lettered", destination=self.queue_name, delivery_id=row.id,
                message_id=row.message_id, attempts=attempts, reason=error,
            )
            ev = events.dead_lettered(self.queue_name, row.id, row.message_id, attempts, error)
            if ev is not None and events.enabled():
                try:
                    await self.store.write_tx(lambda c: events.emit(c, ev))
                except Exception as exc:  # an event must never stop the queue
                    log.error("event_emit_failed", destination=self.queue_name, error=str(exc))
        update = DeliveryUpdate(row.id, status, attempts, next_attempt, error, response)
        if status == "pending":
            # A retry must be committed before the row is read again (it keeps its place).
            await self.store.update_deliveries([update])
            return
        await self._room.acquire()
        self._uncommitted.add(row.id)
        self._outbox.append(update)
        if self._flusher is None:
            task = self._flusher = asyncio.create_task(self._commit())
            self._commit_tasks.add(task)
            task.add_done_callback(self._commit_tasks.discard)

    async def _commit(self) -> None:
        """Commit the queued outcomes, all that queued up meanwhile in one write."""
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    await self.store.update_deliveries(batch)
                except StoreError as exc:
                    for update in batch:
                        log.error("delivery_update_failed", delivery_id=update.id,
                                  error=str(exc))
                    self._rescan = True  # still pending: read them again
                    self._wake.set()
                finally:
                    for update in batch:
                        self._uncommitted.discard(update.id)
                        self._room.release()
        finally:
            self._flusher = None


class _Lane:
    """One connection's share of a destination's queue: the rows of its keys, in the
    order read, sent one after the other; it runs on while the other lanes wait on
    their peers."""

    __slots__ = ("dest", "rows", "wake", "worker")

    def __init__(self, worker: DeliveryWorker, dest: Destination) -> None:
        self.worker = worker
        self.dest = dest
        self.rows: collections.deque[PendingDelivery] = collections.deque()
        self.wake = asyncio.Event()

    async def run(self) -> None:
        w = self.worker
        rows = self.rows
        while True:
            if not rows:
                self.wake.clear()
                w._rescan = True  # room again for keys that waited for a full lane
                w._wake.set()  # dry: the reader may have more
                await self.wake.wait()
                continue
            row = rows.popleft()
            if len(rows) == _LOW - 1:
                w._rescan = True
                w._wake.set()  # running low: read more while this one is sent
            try:
                left = await w._attempt(row, self.dest)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the store failing to record a retry: the row
                # stays pending and is held back like a retry, so the lane goes on
                log.error("delivery_lane_failed", destination=w.queue_name,
                          delivery_id=row.id, error=repr(exc))
                left = False
            w._queued.discard(row.id)
            if not left:  # (not before its retry time, nor at once if that was not set)
                w._hold(w._key(row), max(row.next_attempt,
                                        time.time() + w.retry.initial_delay_s), self)
