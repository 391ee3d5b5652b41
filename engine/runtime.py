"""The engine at run time: one root TaskGroup owning the store, queues, sources and HTTP.

Start-up order: open the store, start one delivery worker per destination (they resume
whatever was pending before a restart), then the sources; ``/health`` reports ready once
every source has bound. A source that fails after start-up is restarted with capped
backoff; one that cannot bind at start-up stops the engine with the reason. SIGTERM and
SIGINT stop sources first (no new input), then workers, then the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import registry
from engine.channel import Destination, Source
from engine.delivery import DeliveryWorker
from engine.errors import BindError, ChannelError
from engine.http import AdminServer, json_response
from engine.logging import get_logger
from engine.metrics import Metrics
from engine.router import ChannelPipeline, PipelineSettings, Route
from engine.store import Store, open_store

log = get_logger("radbridge.runtime")

_RESTART_MAX_S = 60.0


def queue_name(channel: str, destination: str) -> str:
    return f"{channel}/{destination}"


@dataclass
class _SourceState:
    channel: str
    source: Source
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0


class Engine:
    """A configured engine; ``await engine.run()`` serves until ``stop()`` or a signal."""

    def __init__(self, config: Any, *, revision: str = "", base_dir: Path | None = None) -> None:
        self.config = config
        self.revision = revision
        self.base_dir = base_dir or Path.cwd()
        self.metrics = Metrics()
        self.store: Store | None = None
        self.workers: dict[str, DeliveryWorker] = {}
        self.sources: list[_SourceState] = []
        self.pipelines: dict[str, ChannelPipeline] = {}
        self.http: AdminServer | None = None
        self._stop = asyncio.Event()
        self.started_at = time.time()

    def stop(self) -> None:
        self._stop.set()

    @property
    def ready(self) -> bool:
        return all(s.ready.is_set() for s in self.sources)

    def _build(self, store: Store) -> None:
        srcs = registry.sources()
        dsts = registry.destinations()
        for cname, ch in self.config.channels.items():
            if not ch.enabled:
                log.info("channel_disabled", channel=cname)
                continue
            routes: list[Route] = []
            for dcfg in ch.destinations:
                qname = queue_name(cname, dcfg.name)
                dest: Destination = dsts[dcfg.type](qname, dcfg)
                worker = DeliveryWorker(
                    qname, dest, store, self.metrics, retry=dcfg.retry, ordering=dcfg.ordering
                )
                self.workers[qname] = worker
                routes.append(
                    Route(qname, dcfg.message_types, dcfg.ordering, dcfg.order_key, worker.notify)
                )
            settings = PipelineSettings(
                accept_message_types=ch.accept_message_types,
                charset_fallback=ch.charset_fallback,
                validation=ch.validation,
                filtered_ack=ch.filtered_ack,
                revision=self.revision,
            )
            self.pipelines[cname] = ChannelPipeline(cname, settings, routes, store, self.metrics)
            src_cls = srcs[ch.source.type]
            source = src_cls(cname, ch.source, self.metrics)
            source.store = store
            self.sources.append(_SourceState(cname, source))

    async def run(self) -> None:
        ecfg = self.config.engine
        data_dir = (self.base_dir / ecfg.data_dir).resolve()
        store = open_store(ecfg.store, data_dir, synchronous=ecfg.sqlite_synchronous)
        await store.open()
        self.store = store
        log.info("engine_starting", data_dir=str(data_dir), revision=self.revision,
                 pid=__import__("os").getpid())
        try:
            self._build(store)
            if ecfg.http.enabled:
                self.http = AdminServer(ecfg.http.host, ecfg.http.port, self._routes())
                await self.http.start()
            await self._serve()
        finally:
            if self.http is not None:
                await self.http.aclose()
            await store.aclose()
            log.info("engine_stopped")

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        fatal: list[BaseException] = []
        try:
            async with asyncio.TaskGroup() as tg:
                worker_tasks = [tg.create_task(w.run(), name=f"worker:{n}")
                                for n, w in self.workers.items()]
                source_tasks = [tg.create_task(self._supervise(s, fatal),
                                               name=f"source:{s.channel}")
                                for s in self.sources]
                ready_task = tg.create_task(self._announce_ready())
                prune_task = tg.create_task(self._prune_forever())
                stop_task = tg.create_task(self._stop.wait())
                await asyncio.wait(
                    [stop_task, *source_tasks] if source_tasks else [stop_task],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                ready_task.cancel()
                for t in source_tasks:
                    t.cancel()
                await asyncio.gather(*source_tasks, return_exceptions=True)
                for t in worker_tasks:
                    t.cancel()
                stop_task.cancel()
                prune_task.cancel()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        if fatal:
            raise fatal[0]

    async def _prune_forever(self) -> None:
        rc = self.config.engine.retention
        assert self.store is not None
        while True:
            await asyncio.sleep(rc.interval_s)
            cutoff = time.time() - rc.max_age_days * 86400
            try:
                n = await self.store.prune(cutoff, rc.batch)
            except Exception as exc:
                log.error("prune_failed", error=str(exc))
                continue
            if n:
                log.info("messages_pruned", count=n)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("signal_received", signal=sig.name)
        self.stop()

    async def _announce_ready(self) -> None:
        await asyncio.gather(*(s.ready.wait() for s in self.sources))
        log.info("engine_ready", count=len(self.sources),
                 listener=[f"{s.channel}:{s.source.bound_port}" for s in self.sources])

    async def _supervise(self, state: _SourceState, fatal: list[BaseException]) -> None:
        pipeline = self.pipelines[state.channel]
        delay = 1.0
        while True:
            try:
                await state.source.run(pipeline.dispatch, state.ready.set)
                raise ChannelError("source returned")
            except asyncio.CancelledError:
                raise
            except BindError as exc:
                if not state.ready.is_set():
                    log.error("channel_start_failed", channel=state.channel, error=str(exc))
                    fatal.append(exc)
                    self.stop()
                    return
                log.error("channel_failed", channel=state.channel, error=str(exc))
            except Exception as exc:
                log.exception("channel_failed", channel=state.channel, error=str(exc))
            state.restarts += 1
            state.ready.clear()
            log.info("channel_restarting", channel=state.channel, delay_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_MAX_S)

    def _routes(self) -> dict[str, Any]:
        async def health() -> tuple[int, str, bytes]:
            body = {
                "status": "ready" if self.ready else "starting",
                "revision": self.revision,
                "uptime_s": round(time.time() - self.started_at, 1),
                "listeners": {
                    s.channel: {"ready": s.ready.is_set(), "port": s.source.bound_port,
                                "restarts": s.restarts}
                    for s in self.sources
                },
            }
            return json_response(200 if self.ready else 503, body)

        async def metrics() -> tuple[int, str, bytes]:
            if self.store is not None:
                depths = await self.store.queue_depths()
                for qname in self.workers:
                    self.metrics.queue_depth.labels(qname).set(depths.get((qname, "pending"), 0))
            return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.render()

        return {"/health": health, "/ready": health, "/metrics": metrics}
