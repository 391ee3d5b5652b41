"""MLLP listener: an asyncio Protocol per connection feeding the sans-I/O decoder.

Frames of one connection are handled strictly in order (ACKs go back in order). A frame
is first offered to the channel's fast lane (``submit``: a plain message is queued for the
commit right from ``data_received`` and its ACK written by the store's batch completion,
no task step per message); anything the fast lane declines, and every frame behind it,
goes to the connection's worker task, which awaits ``dispatch``. Either way the ACK is
written only after the durable commit, and a worker's ACK waits for the fast-lane ACKs
before it. Reading pauses when a connection has queued more frames than it is
processing (back-pressure reaches the socket). Bad input never kills
the listener: junk is skipped and counted, an oversized frame is answered AR and the
connection closed, a peer that stalls mid-frame is cut off after ``frame_timeout_s``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from channels.mllp.config import MLLPListenerConfig
from channels.mllp.framing import Frame as MLLPFrame
from channels.mllp.framing import (
    FrameAbandoned,
    FrameTooLarge,
    FramingConfig,
    JunkSkipped,
    MLLPDecoder,
    TruncatedFrame,
    encode_frame,
)
from channels.mllp.tls import server_context
from engine.channel import Dispatch, Source
from engine.errors import BindError
from engine.hl7 import build_ack
from engine.logging import get_logger
from engine.registry import register_source

log = get_logger("radbridge.mllp")

_HIGH_WATER = 32  # frames queued per connection before reading pauses
_LOW_WATER = 8


class _Connection(asyncio.Protocol):
    def __init__(self, server: MLLPListener, dispatch: Dispatch) -> None:
        self.server = server
        self.dispatch = dispatch
        cfg = server.config
        self.decoder = MLLPDecoder(
            FramingConfig(max_frame_bytes=cfg.max_frame_bytes, require_end_cr=cfg.require_end_cr)
        )
        self.frames: deque[tuple[bytes, float]] = deque()
        self.waiter: asyncio.Future[None] | None = None  # _serve waits on it when idle
        self.watchdog: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.peer_host = ""
        self.closed = False
        self.busy = False
        self.paused = False
        self.fatal: bytes | None = None  # AR to send before closing
        self.last_rx = time.monotonic()
        self.frame_started = 0.0
        self.task: asyncio.Task[None] | None = None
        # Fast lane: the frames submitted and not yet answered (their arrival times, in
        # order), and what the worker waits on to write an ACK behind them.
        self.submit = server.submit
        self.fast: deque[float] = deque()
        self.drained: asyncio.Future[None] | None = None
        self.reply = self._fast_ack  # bound once: passed with every submit
        latency = server._ack_latency
        self.observe: Callable[[float], None] = latency.observe if latency is not None \
            else server.observe_ack

    # -- protocol callbacks ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        addr = self.transport.get_extra_info("peername") or ("?", 0)
        self.peer_host = str(addr[0])
        self.peer = f"{addr[0]}:{addr[1]}"
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.server.config.tcp_keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if not self.server.admit(self):
            self.transport.abort()
            self.closed = True
            return
        loop = asyncio.get_running_loop()
        self.task = loop.create_task(self._serve())
        self._arm(loop)

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        payload = self.decoder.feed_whole(data)
        if payload is not None:  # the usual read: one whole frame
            t_end = time.perf_counter()
            if self._offer(payload, t_end):
                if len(self.fast) >= _HIGH_WATER:
                    self.transport_pause()
                return
            self.frames.append((payload, t_end))
            if len(self.frames) >= _HIGH_WATER:
                self.transport_pause()
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        was_in_frame = self.decoder.in_frame
        try:
            events = self.decoder.feed(data)
        except Exception:  # decoder already failed: ignore the rest
            return
        now = time.perf_counter()
        for ev in events:
            if isinstance(ev, MLLPFrame):
                if not self._offer(ev.payload, now):
                    self.frames.append((ev.payload, now))
            elif isinstance(ev, JunkSkipped | FrameAbandoned):
                self.server.on_junk(self, ev)
            elif isinstance(ev, FrameTooLarge):
                self.server.on_too_large(self, ev)
                self.fatal = build_ack(
                    None, "AR",
                    text=f"frame exceeds the maximum of {ev.limit} bytes",
                    error_code="207",
                ).encode("ascii", errors="replace")
                self.transport_pause()
                break
        if self.decoder.in_frame and (not was_in_frame or events):
            self.frame_started = time.monotonic()
        if len(self.frames) >= _HIGH_WATER or len(self.fast) >= _HIGH_WATER:
            self.transport_pause()
        if events:
            self.wake()

    def _offer(self, payload: bytes, t_end: float) -> bool:
        """Offer a frame to the fast lane; True when the channel took it (its ACK comes
        through ``_fast_ack``). Only while no frame waits for the worker task, so that
        the frames of a connection are answered in order."""
        submit = self.submit
        if submit is None or self.frames or self.busy:
            return False
        fast = self.fast
        fast.append(t_end)
        if submit(payload, self.peer, self.reply):
            return True
        fast.pop()
        return False

    def _fast_ack(self, ack: bytes) -> None:
        """The fast lane's answer for the oldest submitted frame (after its commit)."""
        fast = self.fast
        t_end = fast.popleft()
        transport = self.transport
        if ack and transport is not None and not transport.is_closing():
            transport.write(encode_frame(ack))
            self.observe(time.perf_counter() - t_end)
        if self.paused and len(fast) <= _LOW_WATER:
            self._resume()
        if not fast:
            drained = self.drained
            if drained is not None and not drained.done():
                drained.set_result(None)

    async def _drain_fast(self) -> None:
        """Wait until every fast-lane frame of this connection has been answered."""
        loop = asyncio.get_running_loop()
        while self.fast:
            drained = self.drained = loop.create_future()
            try:
                await drained
            finally:
                self.drained = None

    def _resume(self) -> None:
        if (self.paused and self.fatal is None and len(self.frames) <= _LOW_WATER
                and len(self.fast) <= _LOW_WATER and self.transport is not None):
            self.paused = False
            self.transport.resume_reading()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool | None:
        for ev in self.decoder.eof():
            if isinstance(ev, JunkSkipped):
                self.server.on_junk(self, ev)
            elif isinstance(ev, TruncatedFrame):
                log.warning(
                    "frame_truncated", channel=self.server.name, peer=self.peer,
                    bytes=ev.partial_bytes,
                )
        self.closed = True
        self.wake()
        return True  # keep the write side open: queued frames still get their ACKs

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.wake()
        self._disarm()
        self.server.release(self)

    def transport_pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    # -- the per-connection worker ---------------------------------------------------
    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        observe = self.observe
        dispatch = self.dispatch
        try:
            while True:
                while self.frames:
                    payload, t_end = self.frames.popleft()
                    if self.paused:
                        self._resume()
                    self.busy = True
                    try:
                        ack = (await dispatch(payload, self.peer)).ack
                    except Exception:
                        ack = self._internal_error()
                    finally:
                        self.busy = False
                    if self.fast:  # fast-lane frames before this one answer first
                        await self._drain_fast()
                    if ack and self.transport is not None and not self.transport.is_closing():
                        self.transport.write(encode_frame(ack))
                        observe(time.perf_counter() - t_end)
                if self.fatal is not None or self.closed:
                    if self.fast:
                        await self._drain_fast()
                    if self.fatal is not None:
                        self._close_with(self.fatal)
                    return
                # Idle: wait for the next frame. Timeouts (mid-frame, idle) are enforced
                # by the connection's watchdog timer, not by a timeout per wait.
                waiter = self.waiter = loop.create_future()
                try:
                    await waiter
                finally:
                    self.waiter = None
        finally:
            self._disarm()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()

    # -- the watchdog: one timer per connection, re-armed only when it fires --------------
    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self.watchdog = loop.call_at(loop.time() + self._next_check(), self._check)

    def _disarm(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None

    def _next_check(self) -> float:
        """Seconds until a timeout could expire, from the current state (a frame that
        starts now expires at the earliest ``frame_timeout_s`` from now)."""
        cfg = self.server.config
        now = time.monotonic()
        if self.decoder.in_frame:
            return max(0.01, self.frame_started + cfg.frame_timeout_s - now)
        if cfg.idle_timeout_s and not self.busy and not self.frames and not self.fast:
            return max(0.01, min(cfg.frame_timeout_s,
                                 self.last_rx + cfg.idle_timeout_s - now))
        return max(0.01, cfg.frame_timeout_s)

    def _check(self) -> None:
        self.watchdog = None
        if self.closed:
            return
        if self.busy or self.frames or self.fast or not self._expired(self.server.config):
            self._arm(asyncio.get_running_loop())
            return
        self.closed = True
        self.wake()

    def _expired(self, cfg: MLLPListenerConfig) -> bool:
        now = time.monotonic()
        if self.decoder.in_frame and now - self.frame_started >= cfg.frame_timeout_s:
            log.warning(
                "frame_timed_out", channel=self.server.name, peer=self.peer,
                bytes=self.decoder.buffered, timeout_s=cfg.frame_timeout_s,
            )
            assert self.transport is not None
            self.transport.abort()
            return True
        idle = now - self.last_rx
        if not self.decoder.in_frame and cfg.idle_timeout_s and idle >= cfg.idle_timeout_s:
            log.info("connection_idle_closed", channel=self.server.name, peer=self.peer)
            return True
        return False

    def _internal_error(self) -> bytes:
        log.exception("dispatch_failed", channel=self.server.name, peer=self.peer)
        return build_ack(None, "AE", text="internal error; message not accepted",
                         error_code="207").encode("ascii")

    def _close_with(self, ack: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(ack))
            self.transport.close()


@register_source
class MLLPListener(Source):
    type_name = "mllp_listener"
    config_model = MLLPListenerConfig
    config: MLLPListenerConfig

    def __init__(self, name: str, config: MLLPListenerConfig, metrics: Any = None) -> None:
        super().__init__(name, config, metrics)
        self.connections: set[_Connection] = set()
        self._ack_latency = metrics.ack_latency.labels(name) if metrics is not None else None
        self._networks = [ipaddress.ip_network(p, strict=False) for p in config.allowed_peers]

    def admit(self, conn: _Connection) -> bool:
        if self._networks:
            try:
                addr = ipaddress.ip_address(conn.peer_host)
            except ValueError:
                addr = None
            if addr is None or not any(addr in net for net in self._networks):
                log.warning("connection_refused", channel=self.name, peer=conn.peer,
                            reason="peer not in allowed_peers")
                return False
        if len(self.connections) >= self.config.max_connections:
            stale = [c for c in self.connections if c.peer_host == conn.peer_host and not c.busy
                     and not c.frames and not c.fast and not c.decoder.in_frame]
            if not stale:
                log.warning("connection_refused", channel=self.name, peer=conn.peer,
                            reason="max_connections reached", limit=self.config.max_connections)
                return False
            oldest = min(stale, key=lambda c: c.last_rx)
            log.info("connection_replaced", channel=self.name, peer=oldest.peer)
            self.release(oldest)
            if oldest.transport is not None:
                oldest.transport.abort()
        self.connections.add(conn)
        self._gauge()
        log.info("connection_opened", channel=self.name, peer=conn.peer,
                 connections=len(self.connections))
        return True

    def release(self, conn: _Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._gauge()
            log.info("connection_closed", channel=self.name, peer=conn.peer,
                     connections=len(self.connections))

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.connections.labels(self.name).set(len(self.connections))

    def on_junk(self, conn: _Connection, ev: JunkSkipped | FrameAbandoned) -> None:
        count = ev.bytes_count if isinstance(ev, JunkSkipped) else ev.partial_bytes
        if self.metrics is not None:
            self.metrics.junk.labels(self.name).inc(count)
        log.warning("mllp_junk_skipped", channel=self.name, peer=conn.peer, junk_bytes=count,
                    reason="bytes outside a frame" if isinstance(ev, JunkSkipped)
                    else "new frame started before the previous one ended")

    def on_too_large(self, conn: _Connection, ev: FrameTooLarge) -> None:
        log.warning("frame_too_large", channel=self.name, peer=conn.peer, limit=ev.limit)
        if self.metrics is not None:
            self.metrics.nacked.labels(self.name, "AR").inc()

    def observe_ack(self, seconds: float) -> None:
        if self._ack_latency is not None:
            self._ack_latency.observe(seconds)

    async def run(self, dispatch: Dispatch, ready: Callable[[], None]) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        ssl_ctx = server_context(cfg.tls) if cfg.tls else None
        try:
            server = await loop.create_server(
                lambda: _Connection(self, dispatch), cfg.host, cfg.port,
                ssl=ssl_ctx, reuse_address=True, backlog=128,
            )
        except OSError as exc:
            raise BindError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}") from exc
        try:  # from here on the port is ours: whatever fails, the finally releases it
            self.bound_port = server.sockets[0].getsockname()[1]
            log.info("listener_started", channel=self.name, host=cfg.host,
                     port=self.bound_port, tls=ssl_ctx is not None)
            ready()
            await asyncio.Future()  # serve until cancelled
        finally:
            server.close()
            # Let messages being processed finish and get their ACK before closing.
            deadline = time.monotonic() + 5.0
            while (any(c.busy or c.fast for c in self.connections)  # noqa: ASYNC110
                   and time.monotonic() < deadline):
                await asyncio.sleep(0.01)
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()
                if conn.task is not None:
                    conn.task.cancel()
            await server.wait_closed()
