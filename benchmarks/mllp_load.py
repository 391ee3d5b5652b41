"""The load generator of mllp_bench.py: the benchmark message, and K connections each
sending a frame and waiting for its ACK (closed loop or paced)."""

from __future__ import annotations

import asyncio
import math
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_common import (
    FS_CR,
    VT,
    machine_busy_seconds,
    percentile,
    proc_cpu_seconds,
    self_cpu_seconds,
)

# --------------------------------------------------------------------------- the message
# The same synthetic ORM^O01 v2.5 as parse_bench.py (MSH, PID with repetitions, PV1, ORC,
# OBR with escapes, NTE, ZDS); MSH-10 is replaced by a unique control id per message.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse_bench import SEGMENTS as _PARSE_SEGMENTS

SEGMENTS = [seg.replace("MSG00001", "{CID}") for seg in _PARSE_SEGMENTS]
_TEMPLATE = ("\r".join(SEGMENTS) + "\r").encode("ascii")
_PREFIX, _SUFFIX = _TEMPLATE.split(b"{CID}")
CID_LEN = 16  # R<run:3>C<conn:2>N<seq:7>; the run key is the first 4 characters


def control_id(run: int, conn: int, seq: int) -> str:
    return f"R{run:03d}C{conn:02d}N{seq:07d}"


def make_frame(cid: bytes) -> bytes:
    return VT + _PREFIX + cid + _SUFFIX + FS_CR


MESSAGE_BYTES = len(_PREFIX) + CID_LEN + len(_SUFFIX)


# --------------------------------------------------------------------------- load generator
@dataclass
class RunStats:
    t_start: float
    t_end: float
    latencies: list[float] = field(default_factory=list)  # ACKs completed in the window
    sent: int = 0
    acked: int = 0  # every AA ACK, warm-up and drain included
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    skipped_slots: int = 0
    last_ack: float = 0.0
    acked_ids: list[bytes] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text)


class _Client(asyncio.Protocol):
    """One connection: send one frame, wait for its ACK, check it, then the next."""

    def __init__(self, st: RunStats, run: int, idx: int, interval: float | None,
                 phase: float) -> None:
        self.st = st
        self.run = run
        self.idx = idx
        self.seq = 0
        self.cid = b""
        self.t_send = 0.0
        self.buf = bytearray()
        self.transport: Any = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.interval = interval  # None: closed loop; else paced
        self.slot = phase
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.st.error(f"conn {self.idx}: connection lost ({exc})")
            self.done.set_result(None)

    def start(self) -> None:
        if self.interval is None:
            self.send()
        else:
            self._schedule(time.monotonic())

    def send(self) -> None:
        self.seq += 1
        self.cid = control_id(self.run, self.idx, self.seq).encode()
        self.st.sent += 1
        self.t_send = time.monotonic()
        self.transport.write(make_frame(self.cid))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        end = buf.find(FS_CR)
        if end < 0:
            return
        now = time.monotonic()
        start = buf.find(VT)
        ack = bytes(buf[start + 1:end])
        del buf[:end + 2]
        st = self.st
        i = ack.find(b"MSA|")
        msa = ack[i:].split(b"\r", 1)[0].split(b"|") if i >= 0 else []
        if len(msa) > 2 and msa[1] == b"AA" and msa[2] == self.cid:
            st.acked += 1
            st.acked_ids.append(self.cid)
            st.last_ack = now
            if st.t_start <= now < st.t_end:
                st.latencies.append(now - self.t_send)
        else:
            st.error(f"conn {self.idx}: unexpected ACK for {self.cid!r}: {ack[-120:]!r}")
        if now >= st.t_end:
            if not self.done.done():
                self.done.set_result(None)
            return
        if self.interval is None:
            self.send()
        else:
            self._schedule(now)

    def _schedule(self, now: float) -> None:
        """Paced: next slot on the fixed schedule; slots already past are skipped."""
        assert self.interval is not None
        if self.seq:
            self.slot += self.interval
        if self.slot < now - 0.0005:
            missed = math.ceil((now - self.slot) / self.interval)
            self.slot += missed * self.interval
            self.st.skipped_slots += missed
        if self.slot >= self.st.t_end:
            if not self.done.done():
                self.done.set_result(None)
            return
        self.loop.call_later(max(0.0, self.slot - now), self.send)


@dataclass
class RunResult:
    rate: float
    p50_us: float
    p99_us: float
    max_us: float
    errors: int
    sent: int
    acked: int
    rows: int | None = None
    rows_ok: bool = True
    server_cpu: float = float("nan")
    client_cpu: float = float("nan")
    sink_cpu: float = float("nan")
    other_cpu: float = float("nan")  # busy CPU time of everything else on the machine
    delivered_rate: float | None = None
    lag_ms: float | None = None
    missing: int | None = None
    skipped_slots: int = 0
    error_samples: list[str] = field(default_factory=list)


async def load_run(port: int, conns: int, run: int, warmup: float, seconds: float, *,
                   rate: float | None = None, server_pid: int | None = None,
                   sink_pid: int | None = None) -> tuple[RunResult, RunStats]:
    """One run: connect, warm up, measure, let every in-flight message finish, close."""
    loop = asyncio.get_running_loop()
    t0 = time.monotonic() + 0.05
    st = RunStats(t_start=t0 + warmup, t_end=t0 + warmup + seconds)
    interval = conns / rate if rate else None
    clients: list[_Client] = []
    for i in range(conns):
        phase = t0 + (i * interval / conns if interval else 0.0)
        _, proto = await loop.create_connection(
            lambda i=i, phase=phase: _Client(st, run, i, interval, phase),  # type: ignore[misc]
            "127.0.0.1", port)
        clients.append(proto)
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    for c in clients:
        c.start()
    cpu: dict[str, float] = {}

    def snap(tag: str) -> None:
        cpu[f"machine_{tag}"] = machine_busy_seconds()
        cpu[f"client_{tag}"] = self_cpu_seconds()
        cpu[f"time_{tag}"] = time.monotonic()
        if server_pid:
            cpu[f"server_{tag}"] = proc_cpu_seconds(server_pid)
        if sink_pid:
            cpu[f"sink_{tag}"] = proc_cpu_seconds(sink_pid)

    loop.call_later(max(0.0, st.t_start - time.monotonic()), snap, "a")
    loop.call_later(max(0.0, st.t_end - time.monotonic()), snap, "b")
    pending = [c.done for c in clients]
    await asyncio.wait(pending, timeout=warmup + seconds + 30)
    for c in clients:
        if not c.done.done():
            st.error(f"conn {c.idx}: no ACK for {c.cid!r} 30 s after the window")
        c.transport.close()
    await asyncio.sleep(0.05)
    lat = sorted(st.latencies)
    wall = cpu.get("time_b", st.t_end) - cpu.get("time_a", st.t_start)

    def share(name: str) -> float:
        if f"{name}_a" in cpu and f"{name}_b" in cpu and wall > 0:
            return 100.0 * (cpu[f"{name}_b"] - cpu[f"{name}_a"]) / wall
        return float("nan")

    res = RunResult(
        rate=len(lat) / seconds,
        p50_us=percentile(lat, 50) * 1e6, p99_us=percentile(lat, 99) * 1e6,
        max_us=(lat[-1] * 1e6 if lat else float("nan")),
        errors=st.errors, sent=st.sent, acked=st.acked,
        server_cpu=share("server"), client_cpu=share("client"), sink_cpu=share("sink"),
        other_cpu=share("machine") - share("server") - share("client")
        - (share("sink") if sink_pid else 0.0),
        skipped_slots=st.skipped_slots, error_samples=st.error_samples,
    )
    return res, st


