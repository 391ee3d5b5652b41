"""The ``pacs_reconciler`` source: runs reconciliation passes inside the engine.

Triggers:

* on a schedule: a windowed pass (the studies of the last ``schedule.days`` days) every
  ``schedule.every_s`` seconds, the first ``schedule.at_start_s`` after start-up;
* after MPPS: every MPPS instance that reached COMPLETED or DISCONTINUED is checked
  ``on_mpps.delay_s`` after it did (time for the images to arrive). Ended instances are read
  from the store (``mpps.updated_at``) behind a high-water mark kept in the store, so each
  is checked once, also across restarts, whichever channel received it;
* on demand: ``radbridge reconcile`` (the CLI runs the same passes).

Passes never overlap. A PACS that cannot be reached is reported (log ``reconcile_failed``
with the peer and the reason, at once and then every 15 minutes while it stays down;
``/health`` under the channel) and tried again after ``retry_s``; it never stops the
engine. ``dispatch`` is not used: the reconciler produces its notifications itself
(:mod:`channels.reconciler.passes`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from channels.pacs.find import PACSQueryError
from channels.reconciler.config import ReconcilerConfig
from channels.reconciler.passes import PassContext, PassResult, mpps_pass, window_pass
from engine.channel import Dispatch, Source
from engine.errors import ChannelError
from engine.logging import get_logger
from engine.registry import register_source
from engine.store import reconcile as rstore
from transforms.reconcile.rules import ReconcileRulesError, load_rules

log = get_logger("radbridge.reconciler")

MPPS_MARK = "mpps_after:{channel}"
"""Key of the MPPS high-water mark in ``reconcile_state`` (one per reconciler channel, so two
channels reading two PACS each check every ended MPPS)."""
WARN_EVERY_S = 900.0
"""While the PACS stays down with the same reason, ``reconcile_failed`` is logged this often."""


@register_source
class PACSReconciler(Source):
    type_name = "pacs_reconciler"
    config_model = ReconcilerConfig
    config: ReconcilerConfig

    def __init__(self, name: str, config: ReconcilerConfig, metrics: Any = None) -> None:
        super().__init__(name, config, metrics)
        self.base_dir = Path()
        self.routes: list[Any] = []
        self._lock = asyncio.Lock()
        self._warned = 0.0
        self.state: dict[str, Any] = {"pacs": "not queried yet", "last_pass": None,
                                      "last_error": None, "passes": 0, "failures": 0}

    def bind(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    def attach_routes(self, routes: Sequence[Any]) -> None:
        self.routes = list(routes)

    def status(self) -> dict[str, Any]:
        """For ``/health``: PACS reachability and the last pass."""
        return dict(self.state)

    def context(self) -> PassContext:
        try:
            rules = load_rules(self.base_dir / self.config.rules)
        except ReconcileRulesError as exc:
            raise ChannelError(f"reconciliation rules: {exc}") from exc
        return PassContext(self.store, rules, self.config.pacs, self.name,
                           lambda: self.routes, frozenset(self.config.notify))

    async def run(self, dispatch: Dispatch, ready: Any) -> None:
        ctx = self.context()
        ready()
        async with asyncio.TaskGroup() as tg:
            if self.config.schedule.every_s > 0:
                tg.create_task(self._scheduled(ctx))
            if self.config.on_mpps.enabled:
                tg.create_task(self._after_mpps(ctx))
            await asyncio.Event().wait()  # until cancelled

    # -- passes ----------------------------------------------------------------------------
    async def _guarded(self, what: str, coro: Any) -> PassResult | None:
        peer = f"{self.config.pacs.called_ae}@{self.config.pacs.host}:{self.config.pacs.port}"
        async with self._lock:
            started = time.perf_counter()
            try:
                result: PassResult = await coro
            except (PACSQueryError, TimeoutError, OSError) as exc:
                reason = str(exc) or type(exc).__name__
                repeat = self.state["last_error"] == reason
                self.state.update(pacs=f"unreachable: {reason}", last_error=reason,
                                  failures=self.state["failures"] + 1)
                now = time.monotonic()
                if not repeat or now - self._warned >= WARN_EVERY_S:  # no log flood
                    self._warned = now
                    log.warning("reconcile_failed", channel=self.name, trigger=what,
                                peer=peer, reason=reason, count=self.state["failures"])
                return None
        self.state.update(pacs="reachable", last_error=None, passes=self.state["passes"] + 1,
                          last_pass={**result.log_fields(), "trigger": what,
                                     "at": dt.datetime.now(dt.UTC).isoformat(
                                         timespec="seconds")})
        log.info("reconcile_pass", channel=self.name, trigger=what, peer=peer,
                 duration_ms=round((time.perf_counter() - started) * 1000, 1),
                 **result.log_fields())
        for warning in result.warnings:
            log.warning("reconcile_notification_skipped", channel=self.name, reason=warning)
        return result

    async def _scheduled(self, ctx: PassContext) -> None:
        sched = self.config.schedule
        await asyncio.sleep(sched.at_start_s)
        while True:
            result = await self._guarded("schedule", window_pass(ctx, days=sched.days))
            await asyncio.sleep(sched.every_s if result is not None
                                else min(self.config.retry_s, sched.every_s))

    async def _after_mpps(self, ctx: PassContext) -> None:
        cfg = self.config.on_mpps
        key = MPPS_MARK.format(channel=self.name)
        mark = await self.store.read_tx(lambda c: rstore.get_state(c, key))
        if not mark:  # first start: only MPPS that end from now on
            after = time.time() - cfg.delay_s
            await self.store.write_tx(lambda c: rstore.set_state(c, key, repr(after)))
        else:
            after = float(mark)
        while True:
            until = time.time() - cfg.delay_s
            due = await self.store.read_tx(
                lambda c, a=after, u=until: rstore.due_mpps(c, a, u))
            for row in due:
                result = await self._guarded("mpps", mpps_pass(ctx, row))
                if result is None:
                    break  # PACS down: keep the mark, retry this one later
                after = float(row["updated_at"])
                await self.store.write_tx(
                    lambda c, a=after: rstore.set_state(c, key, repr(a)))
            else:
                await asyncio.sleep(cfg.poll_s)
                continue
            await asyncio.sleep(self.config.retry_s)
