"""The engine at run time: one root TaskGroup owning the store, queues, sources and HTTP.

Start-up: open the store, apply the configuration (one delivery worker per destination,
resuming whatever was pending before a restart; then the sources), and report ready on
``/health`` once every source has bound. A source that fails after start-up is restarted
with capped backoff; one that cannot bind at start-up stops the engine with the reason.

Reload (SIGHUP, ``POST /reload``, or the file watcher): the new file is validated first
and, if anything is wrong, the running configuration stays and the problems are logged.
Otherwise only what changed is swapped: a channel whose source is unchanged keeps its
listener and connections and gets its new pipeline atomically (messages in flight finish
on the old one, so none is lost or ACKed twice); a changed source is drained and
restarted; a changed destination gets a new worker on the same durable queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import events, registry
from engine.channel import DispatchResult, InternalDestination, Reply, Source
from engine.delivery import DeliveryWorker
from engine.errors import BindError, ChannelError
from engine.http import AdminServer, json_response
from engine.logging import get_logger
from engine.lookups import persist_misses_forever
from engine.metrics import Metrics
from engine.router import ChannelPipeline, PipelineSettings, Route
from engine.store import Store, open_store

log = get_logger("radbridge.runtime")

_RESTART_MAX_S = 60.0
ConfigLoader = Callable[[], Awaitable[tuple[Any, list[Any], str]]]


def _noop() -> None:
    return None


def _attach_routes(source: Source, routes: list[Route]) -> None:
    """Sources that produce deliveries themselves (the MPPS service, the reconciler) get the
    channel's routes."""
    attach = getattr(source, "attach_routes", None)
    if attach is not None:
        attach(routes)


def _source_status(source: Source) -> dict[str, Any]:
    """Extra ``/health`` details a source offers (e.g. the reconciler's PACS reachability)."""
    status = getattr(source, "status", None)
    return dict(status()) if callable(status) else {}


def queue_name(channel: str, destination: str) -> str:
    return f"{channel}/{destination}"


@dataclass
class _Channel:
    name: str
    config: Any
    pipeline: ChannelPipeline
    source: Source
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0
    task: asyncio.Task[None] | None = None

    def dispatch(self, raw: bytes, peer: str) -> Coroutine[Any, Any, DispatchResult]:
        """The current pipeline's dispatch (swapped on reload): its coroutine is returned,
        not wrapped in another one (one coroutine layer less per message)."""
        return self.pipeline.dispatch(raw, peer)

    def submit(self, raw: bytes, peer: str, reply: Reply) -> bool:
        """The current pipeline's fast lane (see ``engine.channel.Submit``)."""
        return self.pipeline.submit(raw, peer, reply)


@dataclass
class _Worker:
    worker: DeliveryWorker
    config_dump: dict[str, Any]
    task: asyncio.Task[None] | None = None


class Engine:
    """A configured engine; ``await engine.run()`` serves until ``stop()`` or a signal."""

    def __init__(
        self, config: Any, *, revision: str = "", base_dir: Path | None = None,
        reloader: ConfigLoader | None = None, watch_paths: list[Path] | None = None,
    ) -> None:
        self.config = config
        self.revision = revision
        self.base_dir = base_dir or Path.cwd()
        self.reloader = reloader
        self.watch_paths = watch_paths or []
        self.metrics = Metrics()
        self.store: Store | None = None
        self.channels: dict[str, _Channel] = {}
        self.workers: dict[str, _Worker] = {}
        self.http: AdminServer | None = None
        self._stop = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._fatal: list[BaseException] = []
        self._reload_lock = asyncio.Lock()
        self.started_at = time.time()
        self.reloads = 0
        self.events_worker: DeliveryWorker | None = None
        self._events_task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        self._stop.set()

    @property
    def ready(self) -> bool:
        return all(c.ready.is_set() for c in self.channels.values())

    # -- building and swapping ---------------------------------------------------------
    def _mapping(self, rel: str | None, params: dict[str, Any]) -> Any:
        if not rel:
            return None
        from transforms import load_mapping

        return load_mapping(self.base_dir / rel, params=params or None)

    def _pipeline(self, cname: str, ch: Any, routes: list[Route]) -> ChannelPipeline:
        assert self.store is not None
        settings = PipelineSettings(
            mapping=self._mapping(ch.mapping, ch.params),
            accept_message_types=ch.accept_message_types,
            charset_fallback=ch.charset_fallback,
            validation=ch.validation,
            filtered_ack=ch.filtered_ack,
            revision=self.revision,
        )
        return ChannelPipeline(cname, settings, routes, self.store, self.metrics)

    def _apply(self, config: Any) -> None:
        """Make the running channels and workers match ``config`` (start-up and reload)."""
        assert self.store is not None and self._tg is not None
        srcs, dsts = registry.sources(), registry.destinations()
        wanted = {n: ch for n, ch in config.channels.items() if ch.enabled}
        for name in [n for n in self.channels if n not in wanted]:
            self._stop_channel(name)
        wanted_queues: set[str] = set()
        for cname, ch in wanted.items():
            routes: list[Route] = []
            for dcfg in ch.destinations:
                qname = queue_name(cname, dcfg.name)
                mapping = self._mapping(dcfg.mapping, dcfg.params)
                dest = dsts[dcfg.type](qname, dcfg)
                if isinstance(dest, InternalDestination):
                    dest.bind(self.base_dir)
                    routes.append(Route(qname, dcfg.message_types, "none", "", _noop,
                                        name=dcfg.name, mapping=mapping, charset=dcfg.charset,
                                        effect=dest))
                    continue
                wanted_queues.add(qname)
                dump = dcfg.model_dump()
                current = self.workers.get(qname)
                if current is None or current.config_dump != dump:
                    if current is not None and current.task is not None:
                        current.task.cancel()
                    worker = DeliveryWorker(
                        qname, dest, self.store, self.metrics,
                        retry=dcfg.retry, ordering=dcfg.ordering,
                        send_interval_s=dcfg.send_interval_s,
                        more_connections=[dsts[dcfg.type](qname, dcfg)
                                          for _ in range(dcfg.connections - 1)],
                    )
                    entry = _Worker(worker, dump)
                    entry.task = self._tg.create_task(worker.run(), name=f"worker:{qname}")
                    self.workers[qname] = entry
                    worker.notify()
                w = self.workers[qname].worker
                routes.append(Route(qname, dcfg.message_types, dcfg.ordering, dcfg.order_key,
                                    w.notify, name=dcfg.name, mapping=mapping,
                                    charset=dcfg.charset))
            pipeline = self._pipeline(cname, ch, routes)
            running = self.channels.get(cname)
            if running is not None and running.config.source == ch.source:
                running.pipeline = pipeline  # atomic swap: the listener keeps its connections
                running.config = ch
                _attach_routes(running.source, routes)
                continue
            if running is not None:
                self._stop_channel(cname)
            source = srcs[ch.source.type](cname, ch.source, self.metrics)
            source.store = self.store
            bind = getattr(source, "bind", None)
            if callable(bind):
                bind(self.base_dir)  # sources that read files (rules) relative to channels.yaml
            _attach_routes(source, routes)
            chan = _Channel(cname, ch, pipeline, source)
            chan.task = self._tg.create_task(self._supervise(chan), name=f"source:{cname}")
            self.channels[cname] = chan
        for qname in [q for q in self.workers if q not in wanted_queues]:
            entry = self.workers.pop(qname)
            if entry.task is not None:
                entry.task.cancel()
        self.config = config

    def _stop_channel(self, name: str) -> None:
        chan = self.channels.pop(name)
        if chan.task is not None:
            chan.task.cancel()  # the listener drains in-flight messages in its finally
        log.info("channel_stopped", channel=name)

    async def reload(self, reason: str = "request") -> tuple[bool, list[str]]:
        """Validate and apply a new configuration; keep the running one on any problem."""
        if self.reloader is None:
            return False, ["reload is not available (no configuration file)"]
        async with self._reload_lock:
            config, problems, revision = await self.reloader()
            texts = [str(p) for p in problems]
            if config is None:
                log.error("config_reload_rejected", reason=reason, errors=len(texts),
                          problems=texts)
                return False, texts
            if revision == self.revision:
                log.info("config_unchanged", revision=revision)
                return True, []
            old = self.revision
            self.revision = revision
            self._apply(config)
            self.reloads += 1
            log.info("config_reloaded", reason=reason, revision=revision, since=old)
            return True, texts

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        ecfg = self.config.engine
        data_dir = (self.base_dir / ecfg.data_dir).resolve()
        store = open_store(ecfg.store, data_dir, synchronous=ecfg.sqlite_synchronous)
        await store.open()
        self.store = store
        log.info("engine_starting", data_dir=str(data_dir), revision=self.revision,
                 pid=os.getpid())
        try:
            if ecfg.http.enabled:
                self.http = AdminServer(ecfg.http.host, ecfg.http.port, self._routes(),
                                        post_routes={"/reload": self._post_reload})
                await self.http.start()
            await self._serve()
        finally:
            if self.http is not None:
                await self.http.aclose()
            await store.aclose()
            log.info("engine_stopped")

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        signals = {signal.SIGTERM: self._on_signal, signal.SIGINT: self._on_signal,
                   signal.SIGHUP: self._on_sighup}
        for sig, handler in signals.items():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, handler, sig)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._start_events(tg)
                self._apply(self.config)
                helpers = [tg.create_task(self._announce_ready()),
                           tg.create_task(self._prune_forever()),
                           tg.create_task(persist_misses_forever(self.store))]
                if self.watch_paths and self.reloader is not None:
                    helpers.append(tg.create_task(self._watch()))
                await self._stop.wait()
                for t in helpers:
                    t.cancel()
                tasks = [c.task for c in self.channels.values() if c.task is not None]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for w in self.workers.values():
                    if w.task is not None:
                        w.task.cancel()
                if self._events_task is not None:
                    self._events_task.cancel()
        finally:
            self._tg = None
            events.configure(None)
            for sig in signals:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        if self._fatal:
            raise self._fatal[0]

    def _start_events(self, tg: asyncio.TaskGroup) -> None:
        """When an MQTT URL is configured, drain the events queue into an mqtt_publisher."""
        ecfg = self.config.engine.events
        url = ecfg.mqtt_url or os.environ.get("RADBRIDGE_MQTT_URL", "")
        if not url:
            events.configure(None)
            return
        assert self.store is not None
        publisher_type = registry.destinations()["mqtt_publisher"]
        dcfg = publisher_type.config_model.model_validate({
            "name": "mqtt", "type": "mqtt_publisher", "url": url,
            "username": ecfg.username, "password": ecfg.password, "ca_file": ecfg.ca_file,
            "cert_file": ecfg.cert_file, "key_file": ecfg.key_file,
            "topic_prefix": ecfg.topic_prefix, "client_id": ecfg.client_id,
        })
        worker = DeliveryWorker(events.DEFAULT_QUEUE, publisher_type(events.DEFAULT_QUEUE, dcfg),
                                self.store, self.metrics, retry=ecfg.retry,
                                ordering="destination")
        events.configure(events.DEFAULT_QUEUE, phi_fields=ecfg.phi_fields,
                         notify=worker.notify, loop=asyncio.get_running_loop())
        self.events_worker = worker
        self._events_task = tg.create_task(worker.run(), name="worker:_events/mqtt")
        worker.notify()
        log.info("events_enabled", destination=events.DEFAULT_QUEUE, url=url)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("signal_received", signal=sig.name)
        self.stop()

    def _on_sighup(self, sig: signal.Signals) -> None:
        log.info("signal_received", signal=sig.name)
        if self._tg is not None:
            self._tg.create_task(self.reload("SIGHUP"))

    async def _watch(self) -> None:
        """Poll the configuration and mapping files; reload when any of them changes."""

        def snapshot() -> dict[str, float]:
            out: dict[str, float] = {}
            for p in self.watch_paths:
                files = [p] if p.is_file() else (sorted(p.rglob("*")) if p.is_dir() else [])
                for f in files:
                    with contextlib.suppress(OSError):
                        out[str(f)] = f.stat().st_mtime_ns
            return out

        seen = await asyncio.to_thread(snapshot)
        while True:
            await asyncio.sleep(1.0)
            now = await asyncio.to_thread(snapshot)
            if now != seen:
                seen = now
                await asyncio.sleep(0.2)  # let an editor finish writing
                await self.reload("file changed")

    async def _announce_ready(self) -> None:
        await asyncio.gather(*(c.ready.wait() for c in self.channels.values()))
        log.info("engine_ready", count=len(self.channels),
                 listener=[f"{c.name}:{c.source.bound_port}" for c in self.channels.values()])

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

    async def _supervise(self, chan: _Channel) -> None:
        delay = 1.0
        while True:
            try:
                chan.source.submit = chan.submit
                await chan.source.run(chan.dispatch, chan.ready.set)
                raise ChannelError("source returned")
            except asyncio.CancelledError:
                raise
            except BindError as exc:
                if not chan.ready.is_set() and chan.restarts == 0 and self.reloads == 0:
                    log.error("channel_start_failed", channel=chan.name, error=str(exc))
                    self._fatal.append(exc)
                    self.stop()
                    return
                log.error("channel_failed", channel=chan.name, error=str(exc))
            except Exception as exc:
                log.exception("channel_failed", channel=chan.name, error=str(exc))
            chan.restarts += 1
            chan.ready.clear()
            log.info("channel_restarting", channel=chan.name, delay_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_MAX_S)

    # -- admin HTTP --------------------------------------------------------------------
    async def _post_reload(self) -> tuple[int, str, bytes]:
        ok, problems = await self.reload("admin request")
        return json_response(200 if ok else 422, {"reloaded": ok, "revision": self.revision,
                                                 "problems": problems})

    def _routes(self) -> dict[str, Any]:
        async def health() -> tuple[int, str, bytes]:
            body = {
                "status": "ready" if self.ready else "starting",
                "revision": self.revision,
                "uptime_s": round(time.time() - self.started_at, 1),
                "listeners": {
                    c.name: {"ready": c.ready.is_set(), "port": c.source.bound_port,
                             "restarts": c.restarts, **_source_status(c.source)}
                    for c in self.channels.values()
                },
                "store": self.store.status() if self.store is not None else {},
            }
            return json_response(200 if self.ready else 503, body)

        async def metrics() -> tuple[int, str, bytes]:
            if self.store is not None:
                depths = await self.store.queue_depths()
                for qname in self.workers:
                    self.metrics.queue_depth.labels(qname).set(depths.get((qname, "pending"), 0))
            return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.render()

        routes = {"/health": health, "/ready": health, "/metrics": metrics}
        if self.config.engine.http.console:
            routes["/mismatches"] = self._mismatches_page
        return routes

    async def _mismatches_page(self) -> tuple[int, str, bytes]:
        """The console's mismatch page: the open and acknowledged mismatches, most severe
        first, rendered like ``radbridge mismatches export --format html``."""
        from engine.reconcile_report import export_row, to_html
        from engine.store import reconcile as rstore

        assert self.store is not None
        rows = await self.store.read_tx(lambda c: [
            *rstore.list_mismatches(c, status="open", limit=5000),
            *rstore.list_mismatches(c, status="acknowledged", limit=5000)])
        page = to_html([export_row(r) for r in rows], generated_at=time.time(),
                       filters="status=open or acknowledged (at most 5,000 each)")
        return 200, "text/html; charset=utf-8", page.encode()
