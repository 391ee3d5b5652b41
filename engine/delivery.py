"""Delivery workers: one per destination, draining its durable queue in order.

The queue *is* the ``deliveries`` table. A worker reads pending rows oldest first, sends
each through its destination, and records the outcome. Ordering is by key: with
``ordering: destination`` every row has the same key (strict FIFO, a retrying head blocks
the rest); with ``ordering: key`` a retrying row blocks only later rows with the same key
(e.g. the same patient); with ``none`` nothing blocks. Outcomes are written without
waiting for their commit, so sends and commits overlap (the outcomes that queue up while
one commit is in flight go in the next one, in a single write); rows whose outcome is not
yet committed are kept out of the next read. With ``connections: N`` (key or no ordering)
the rows of a read are shared out by key among N destination objects, each with its own
connection, which send side by side. ``send_interval_s`` paces all of them together.
After a restart the same read resumes whatever was pending: nothing ACKed is lost, a row
sent but not yet marked may be sent again (at-least-once).
"""

from __future__ import annotations

import asyncio
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

    def notify(self) -> None:
        """New pending rows were committed."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                wait_s = await self._drain_once()
                if wait_s is None:
                    continue  # made progress: read again at once
                try:
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            if self._commit_tasks:
                await asyncio.gather(*self._commit_tasks, return_exceptions=True)
            for dest in self._lanes:
                await dest.aclose()

    async def _drain_once(self) -> float | None:
        """Send what is due; return None after progress, else seconds until worth a look."""
        try:
            rows = await self.store.fetch_pending(
                self.queue_name, _PAGE, frozenset(self._uncommitted)
            )
        except StoreError as exc:
            log.error("queue_read_failed", destination=self.queue_name, error=str(exc))
            return 1.0
        if not rows:
            return _IDLE_POLL_S
        now = time.time()
        blocked: set[str] = set()
        next_due = now + _IDLE_POLL_S
        n = len(self._lanes)
        lanes: list[list[PendingDelivery]] = [[] for _ in range(n)]
        for row in rows:
            key = self._key(row)
            if key in blocked:
                continue
            if row.next_attempt > now:
                blocked.add(key)
                next_due = min(next_due, row.next_attempt)
                continue
            lanes[zlib.crc32(key.encode()) % n].append(row)
        outcomes = await asyncio.gather(*(  # the connections send their shares side by side
            self._send_lane(dest, lane, blocked)
            for dest, lane in zip(self._lanes, lanes, strict=True) if lane))
        progressed = any(p for p, _ in outcomes)
        next_due = min([next_due, *(due for _, due in outcomes)])
        if progressed and len(rows) == _PAGE:
            return None
        if progressed and not blocked:
            return None
        return max(0.0, next_due - time.time())

    async def _send_lane(self, dest: Destination, rows: list[PendingDelivery],
                         blocked: set[str]) -> tuple[bool, float]:
        """Send ``rows`` in order through ``dest``; a row that is to be retried blocks the
        later rows of its key (and, with ``ordering: destination``, the rest). Returns
        whether anything was attempted and when a blocked key is worth a look again."""
        progressed = False
        next_due = float("inf")
        for row in rows:
            key = self._key(row)
            if key in blocked:
                continue
            sent_or_dead = await self._attempt(row, dest)
            progressed = True
            if not sent_or_dead:
                blocked.add(key)
                next_due = min(next_due, time.time() + self.retry.initial_delay_s)
                if self.ordering == "destination":
                    break
        return progressed, next_due

    def _key(self, row: PendingDelivery) -> str:
        if self.ordering == "destination":
            return ""
        if self.ordering == "none":
            return str(row.id)
        return row.order_key

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
            if attempts >= self.retry.max_attempts:
                await self._record(row, "dead", attempts, exc.reason)
                return True
            delay = backoff_delay(attempts, self.retry)
            self.metrics.retried.labels(self.queue_name).inc()
            log.warning(
                "delivery_retry_scheduled", destination=self.queue_name, delivery_id=row.id,
                message_id=row.message_id, attempts=attempts, reason=exc.reason,
                next_attempt_s=round(delay, 3),
            )
            retry_at = time.time() + delay
            await self._record(row, "pending", attempts, exc.reason, next_attempt=retry_at)
            row.attempts = attempts
            row.next_attempt = time.time() + delay
            return False
        except PermanentDelivery as exc:
            await self._record(row, "dead", attempts, exc.reason)
            return True
        except Exception as exc:  # a destination bug must not kill the queue
            log.exception("delivery_crashed", destination=self.queue_name, delivery_id=row.id)
            reason = f"{type(exc).__name__}: {exc}"
            if attempts >= self.retry.max_attempts:
                await self._record(row, "dead", attempts, reason)
                return True
            delay = backoff_delay(attempts, self.retry)
            await self._record(row, "pending", attempts, reason, next_attempt=time.time() + delay)
            return False
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
                finally:
                    for update in batch:
                        self._uncommitted.discard(update.id)
                        self._room.release()
        finally:
            self._flusher = None
