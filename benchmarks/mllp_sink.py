"""The MLLP sink of mllp_bench.py: a uvloop process that ACKs AA and records when each
control id first arrived (end-to-end runs)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import signal
import socket
import threading
import time
from typing import Any

import uvloop
from bench_common import FS_CR, VT, pin


# --------------------------------------------------------------------------- the sink
class _SinkState:
    def __init__(self) -> None:
        self.first: dict[str, dict[str, float]] = {}  # run key -> control id -> first seen
        self.frames = 0


class _SinkConn(asyncio.Protocol):
    def __init__(self, state: _SinkState) -> None:
        self.state = state
        self.buf = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        st = self.state
        while True:
            start = buf.find(VT)
            end = buf.find(FS_CR, start + 1) if start >= 0 else -1
            if start < 0 or end < 0:
                if start < 0:
                    buf.clear()
                return
            now = time.monotonic()
            msh = bytes(buf[start + 1:buf.find(b"\r", start + 1, end + 1)])
            del buf[:end + 2]
            parts = msh.split(b"|", 10)
            cid = parts[9] if len(parts) > 9 else b""
            st.frames += 1
            key = cid.decode("latin-1")
            seen = st.first.get(key[:4])
            if seen is None:
                seen = st.first[key[:4]] = {}
            if key not in seen:
                seen[key] = now
            self.transport.write(
                b"\x0bMSH|^~\\&|SINK|BENCH|RADBRIDGE|BENCH|20260101000000||ACK^O01^ACK|A"
                + cid + b"|P|2.5\rMSA|AA|" + cid + b"\r\x1c\r")


def sink_main(ctrl: Any, cpu: int | None) -> None:
    """Entry point of the sink process: serve MLLP, answer commands on ``ctrl``."""
    pin(cpu)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    uvloop.run(_sink(ctrl))


async def _sink(ctrl: Any) -> None:
    loop = asyncio.get_running_loop()
    state = _SinkState()
    server = await loop.create_server(lambda: _SinkConn(state), "127.0.0.1", 0, backlog=16)
    done = asyncio.Event()

    async def answer(cmd: str, arg: str) -> Any:  # on the loop thread: a consistent snapshot
        if cmd == "count":
            return len(state.first.get(arg, ()))
        if cmd == "dump":
            return dict(state.first.get(arg, {}))
        if cmd == "frames":
            return state.frames
        done.set()
        return "ok"

    def control() -> None:
        """Blocking reads and writes of the pipe stay off the loop (it is not non-blocking)."""
        while not done.is_set():
            try:
                cmd, arg = ctrl.recv()
            except (EOFError, OSError):  # the parent went away
                cmd, arg = "stop", ""
            result = asyncio.run_coroutine_threadsafe(answer(cmd, arg), loop).result()
            with contextlib.suppress(OSError):
                ctrl.send(result)
            if cmd == "stop":
                return

    ctrl.send(server.sockets[0].getsockname()[1])
    threading.Thread(target=control, name="sink-control", daemon=True).start()
    try:
        await done.wait()
    finally:
        server.close()


class Sink:
    def __init__(self, cpu: int | None) -> None:
        ctx = mp.get_context("spawn")
        self.ctrl, child = ctx.Pipe()
        self.proc = ctx.Process(target=sink_main, args=(child, cpu), daemon=True,
                                name="mllp-bench-sink")
        self.proc.start()
        child.close()
        if not self.ctrl.poll(20):
            self.stop()
            raise RuntimeError("sink did not start")
        self.port = int(self.ctrl.recv())

    def ask(self, cmd: str, arg: str = "") -> Any:
        self.ctrl.send((cmd, arg))
        if not self.ctrl.poll(30):
            raise RuntimeError(f"sink did not answer {cmd}")
        return self.ctrl.recv()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc.is_alive():
                self.ask("stop")
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


