"""MLLP ingest benchmark: ingest → durable commit → ACK, and listener → sink (not a test).

Run: ``.venv/bin/python benchmarks/mllp_bench.py [--runs 3] [--seconds 4] [--quick] [--json]``

In one invocation, on 127.0.0.1 only, it measures side by side:

* **bare**: ``benchmarks/bare_mllp_server.py``, a minimal uvloop MLLP server that only
  commits the raw bytes to SQLite (WAL, ``synchronous=FULL``) and ACKs, in two designs:
  ``group`` (writer thread, one executemany + COMMIT per batch, ACKs after the commit) and
  ``inline`` (one autocommit per message on the loop).  "bare" at each K is the better one.
* **engine ingest**: ``python -m engine run`` with one ``mllp_listener`` channel and no
  destination; log level ``info`` (the default, JSON lines to a file) and one extra row at
  ``warning`` to show what the per-message log line costs.
* **engine end-to-end**: the same channel with one ``mllp_sender`` destination to a fast
  sink (a uvloop MLLP server in its own process that ACKs AA at once): ingest rate, the
  rate delivered at the sink during the measured window, and the final lag (last ACK seen
  by the load generator → sink has every ACKed control id).
* **offered load**: 1,000 msg/s paced over 4 connections (250 msg/s each on a fixed
  schedule; a late ACK skips the missed slots instead of bursting), ACK p50/p99/max,
  against the engine and both bare designs.

Closed-loop configurations use K = 1, 4, 16 connections, each sending one 1.3 KB ORM^O01
v2.5 and waiting for its ACK before the next (never pipelined); every ACK must be
``MSA|AA|<MSH-10>``.  Each run: 1 s warm-up, then ``--seconds`` measured; ``--runs`` runs
per configuration on one fresh server (fresh data directory) per configuration and K.
Reported: median msg/s (min-max over runs), and ACK latency p50/p99 pooled over the
measured window of a run, median over runs.  Server on CPU 0, load generator and sink on
CPU 1 (``--server-cpu``/``--client-cpu``).  Every process started is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
BARE = Path(__file__).resolve().parent / "bare_mllp_server.py"
VT, FS_CR = b"\x0b", b"\x1c\r"

# --------------------------------------------------------------------------- the message
# The same synthetic ORM^O01 v2.5 as parse_bench.py (MSH, PID with repetitions, PV1, ORC,
# OBR with escapes, NTE, ZDS); MSH-10 is replaced by a unique control id per message.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse_bench import SEGMENTS as _PARSE_SEGMENTS  # noqa: E402 - one fixture for both benches

SEGMENTS = [seg.replace("MSG00001", "{CID}") for seg in _PARSE_SEGMENTS]
_TEMPLATE = ("\r".join(SEGMENTS) + "\r").encode("ascii")
_PREFIX, _SUFFIX = _TEMPLATE.split(b"{CID}")
CID_LEN = 16  # R<run:3>C<conn:2>N<seq:7>; the run key is the first 4 characters


def control_id(run: int, conn: int, seq: int) -> str:
    return f"R{run:03d}C{conn:02d}N{seq:07d}"


def make_frame(cid: bytes) -> bytes:
    return VT + _PREFIX + cid + _SUFFIX + FS_CR


MESSAGE_BYTES = len(_PREFIX) + CID_LEN + len(_SUFFIX)


# --------------------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def thread_affinity(pid: int) -> str:
    """The CPUs every thread of ``pid`` may run on, e.g. ``"0"`` (or ``"0 | 0-1"``)."""
    lists = set()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for ln in (task / "status").read_text().splitlines():
                if ln.startswith("Cpus_allowed_list:"):
                    lists.add(ln.split(":", 1)[1].strip())
    return " | ".join(sorted(lists)) or "?"


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle (from /proc/stat), to see foreign load."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(threshold: float, max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until the machine's busy CPU over 0.5 s is below
    ``threshold`` percent of one CPU (other jobs share this machine); return the last reading."""
    deadline = time.monotonic() + max_wait
    warned = False
    while True:
        a, t = machine_busy_seconds(), time.monotonic()
        time.sleep(0.5)
        busy = 100.0 * (machine_busy_seconds() - a) / (time.monotonic() - t)
        if busy < threshold or time.monotonic() >= deadline:
            if warned:
                log(f"  machine busy {busy:.0f}% of one CPU; going on")
            return busy
        if not warned:
            log(f"  machine busy {busy:.0f}% of one CPU before the run; waiting (at most "
                f"{max_wait:g} s) for it to fall below {threshold:g}%")
            warned = True


def fsync_probe(directory: Path, n: int = 200) -> tuple[float, float]:
    """p50/p99 µs of write(4 KiB) + fsync in ``directory``: the disk's state right now."""
    path = directory / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = b"x" * 4096
        for i in range(n):
            t = time.perf_counter()
            os.pwrite(fd, block, (i % 16) * 4096)
            os.fsync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return percentile(times, 50) * 1e6, percentile(times, 99) * 1e6


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return sorted_values[lo]
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def count_rows(db: Path, sql: str, run_key: str) -> int:
    """Rows whose control id starts with ``run_key`` (a read-only connection, WAL-safe)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(sql, (run_key, run_key + "~")).fetchone()[0])
    finally:
        conn.close()


# --------------------------------------------------------------------------- servers
class Server:
    name = "server"
    proc: subprocess.Popen[Any] | None = None
    port = 0

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rows(self, run_key: str) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        stop_process(self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class BareProcess(Server):
    SQL = "SELECT count(*) FROM inbound WHERE control_id >= ? AND control_id < ?"

    def __init__(self, workdir: Path, mode: str, cpu: int | None, synchronous: str) -> None:
        self.name = f"bare-{mode}"
        self.db = workdir / "bare.db"
        self.log_path = workdir / "bare.log"
        self.mode = mode
        self.cpu = cpu
        self.synchronous = synchronous
        self.stats: dict[str, Any] = {}

    def start(self) -> BareProcess:
        cmd = [sys.executable, str(BARE), "--db", str(self.db), "--mode", self.mode,
               "--synchronous", self.synchronous]
        if self.cpu is not None:
            cmd += ["--cpu", str(self.cpu)]
        self._err = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._err,
                                     stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()  # READY <port>
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"bare server did not start: {line!r} {self.log_path.read_text()}")
        self.port = int(line.split()[1])
        return self

    def rows(self, run_key: str) -> int:
        return count_rows(self.db, self.SQL, run_key)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                out, _ = self.proc.communicate(timeout=20)
                lines = out.decode().strip().splitlines()
                if lines:
                    self.stats = json.loads(lines[-1])
            except (subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait(timeout=5)
        with contextlib.suppress(Exception):
            self._err.close()


ENGINE_CONFIG = """\
engine:
  data_dir: {data_dir}
  sqlite_synchronous: {synchronous}
  http: {{host: 127.0.0.1, port: {http_port}}}
  log: {{level: {log_level}, format: json}}
channels:
  bench:
    source:
      type: mllp_listener
      host: 127.0.0.1
      port: {mllp_port}
      max_connections: 64
    accept_message_types: [ORM^O01, OMI^O23, ADT^*, ORU^R01]
    destinations:{destinations}
"""
SINK_DESTINATION = """
      - name: sink
        type: mllp_sender
        host: 127.0.0.1
        port: {sink_port}
        message_types: [ORU^R01, ORM^O01, OMI^O23]
"""


class EngineProcess(Server):
    SQL = "SELECT count(*) FROM messages WHERE control_id >= ? AND control_id < ?"

    def __init__(self, workdir: Path, log_level: str, cpu: int | None, synchronous: str,
                 sink_port: int | None = None) -> None:
        self.name = f"engine-{log_level}" + ("-e2e" if sink_port else "")
        self.workdir = workdir
        self.cpu = cpu
        self.http_port = free_port()
        self.port = free_port()
        self.config = workdir / "channels.yaml"
        self.log_path = workdir / "engine.log"
        self.db = workdir / "data" / "radbridge.db"
        dests = SINK_DESTINATION.format(sink_port=sink_port) if sink_port else " []"
        self.config.write_text(ENGINE_CONFIG.format(
            data_dir=workdir / "data", synchronous=synchronous, http_port=self.http_port,
            log_level=log_level, mllp_port=self.port, destinations=dests,
        ))

    def start(self, timeout: float = 30.0) -> EngineProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RADBRIDGE_")}
        env["PYTHONPATH"] = str(ROOT)
        cmd = [sys.executable, "-m", "engine", "-c", str(self.config), "run"]
        taskset = shutil.which("taskset")
        if self.cpu is not None and taskset:
            cmd = [taskset, "-c", str(self.cpu), *cmd]
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=str(self.workdir), env=env, stdout=out,
                                     stderr=out, stdin=subprocess.DEVNULL)
        if self.cpu is not None and not taskset:  # before the engine starts its threads
            os.sched_setaffinity(self.proc.pid, {self.cpu})
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited {self.proc.returncode}:\n"
                                   f"{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.http_port}/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"engine not ready in {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def rows(self, run_key: str) -> int:
        return count_rows(self.db, self.SQL, run_key)

    def log_lines(self) -> int:
        with self.log_path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


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


# --------------------------------------------------------------------------- orchestration
@dataclass
class Row:
    section: str
    config: str
    k: int
    runs: list[RunResult]
    note: str = ""

    def med(self, attr: str) -> float:
        vals = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        vals = [v for v in vals if not (isinstance(v, float) and math.isnan(v))]
        return statistics.median(vals) if vals else float("nan")

    @property
    def rate(self) -> float:
        return self.med("rate")

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs) + sum(0 if r.rows_ok else 1 for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "section": self.section, "config": self.config, "k": self.k, "note": self.note,
            "rate_median": self.rate,
            "rate_min": min(r.rate for r in self.runs), "rate_max": max(r.rate for r in self.runs),
            "p50_us": self.med("p50_us"), "p99_us": self.med("p99_us"),
            "max_us": self.med("max_us"), "errors": self.errors,
            "runs": [r.__dict__ for r in self.runs],
        }


@dataclass
class Config:
    """One server configuration measured in an interleaved group."""

    section: str  # bare | ingest | e2e | paced
    label: str
    make: Callable[[Path], Server]
    e2e: bool = False


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.run_no = 0
        self.dirs = 0
        self.rows: list[Row] = []
        self.sink: Sink | None = None
        self.fsync: dict[str, tuple[float, float]] = {}
        self.runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)

    def workdir(self, name: str) -> Path:
        self.dirs += 1
        d = self.tmp / f"{self.dirs:02d}-{name.replace(' ', '_').replace('→', 'to')}"
        d.mkdir()
        return d

    def group(self, k: int, configs: list[Config], *, paced: bool = False) -> list[Row]:
        """Start every configuration's server (fresh data directory each), then do the runs
        round-robin (run 1 of each, run 2 of each, ...) so that all configurations see the
        same machine conditions (the disk's fsync latency drifts over minutes)."""
        a = self.args
        servers: list[Server] = []
        results: list[list[RunResult]] = [[] for _ in configs]
        p50, p99 = fsync_probe(self.tmp)
        self.fsync[f"{'paced' if paced else 'K'}={k}"] = (p50, p99)
        log(f"fsync probe (4 KiB write + fsync in {self.tmp}): p50 {p50:,.0f} µs, "
            f"p99 {p99:,.0f} µs")
        try:
            for cfg in configs:
                srv = cfg.make(self.workdir(f"{cfg.label}-k{k}"))
                servers.append(srv)
                srv.start()  # type: ignore[attr-defined]
                log(f"started {cfg.label} (K={k}) pid {srv.pid()} port {srv.port}, "
                    f"threads on CPU {thread_affinity(srv.pid())}")
            for r in range(a.runs):
                for cfg, srv, out in zip(configs, servers, results, strict=True):
                    if not srv.alive():
                        raise RuntimeError(f"{cfg.label} exited")
                    out.append(self._one(cfg, srv, k, paced=paced))
                    self._log(cfg, k, r, out[-1], paced)
        finally:
            for srv in servers:
                srv.stop()
        rows = [Row("paced" if paced else cfg.section, cfg.label, k, res)
                for cfg, res in zip(configs, results, strict=True)]
        self.rows.extend(rows)
        return rows

    def _one(self, cfg: Config, server: Server, k: int, *, paced: bool) -> RunResult:
        a = self.args
        if a.quiet_wait > 0:
            wait_quiet(a.quiet_threshold, a.quiet_wait)
        self.run_no += 1
        run = self.run_no
        sink_pid = self.sink.proc.pid if (cfg.e2e and self.sink) else None
        res, st = self.runner.run(load_run(
            server.port, k, run, a.warmup, a.paced_seconds if paced else a.seconds,
            rate=a.paced_rate if paced else None, server_pid=server.pid(), sink_pid=sink_pid))
        key = control_id(run, 0, 0)[:4]
        res.rows = server.rows(key)
        # No errors: every frame sent got its AA, so exactly one stored row per message.
        res.rows_ok = (res.rows == res.acked == res.sent if res.errors == 0
                       else res.rows >= res.acked)
        if cfg.e2e:
            self._verify_sink(res, st, key)
        return res

    def _log(self, cfg: Config, k: int, r: int, res: RunResult, paced: bool) -> None:
        extra = ""
        if cfg.e2e and res.delivered_rate is not None:
            extra = (f", delivered {res.delivered_rate:,.0f}/s, lag {fmt(res.lag_ms)} ms, "
                     f"missing {res.missing}, sink CPU {res.sink_cpu:.0f}%")
        if paced:
            extra += f", max {res.max_us:,.0f} µs, skipped slots {res.skipped_slots}"
        log(f"{'paced ' if paced else ''}{cfg.label} K={k} run {r + 1}/{self.args.runs}: "
            f"{res.rate:,.0f} msg/s, p50 {res.p50_us:,.0f} µs, p99 {res.p99_us:,.0f} µs, "
            f"errors {res.errors}, rows {res.rows}/{res.acked} acked, server CPU "
            f"{res.server_cpu:.0f}%, loadgen CPU {res.client_cpu:.0f}%, other CPU "
            f"{res.other_cpu:.0f}%{extra}")
        for sample in res.error_samples:
            log(f"  error: {sample}")
        if not res.rows_ok:
            log(f"  ROW COUNT MISMATCH: {res.rows} rows for {res.acked} ACKs ({res.sent} sent)")

    def _verify_sink(self, res: RunResult, st: RunStats, key: str) -> None:
        assert self.sink is not None
        want = st.acked
        deadline = time.monotonic() + self.args.drain_timeout
        while time.monotonic() < deadline and self.sink.ask("count", key) < want:
            time.sleep(0.02)
        got = self.sink.ask("dump", key)
        missing = [c for c in st.acked_ids if c.decode() not in got]
        res.missing = len(missing)
        times = [got[c.decode()] for c in st.acked_ids if c.decode() in got]
        res.delivered_rate = sum(1 for t in got.values()
                                 if st.t_start <= t < st.t_end) / self.args.seconds
        res.lag_ms = (max(times) - st.last_ack) * 1000 if times and not missing else None
        if missing:
            res.rows_ok = False
            res.error_samples.append(f"sink is missing {len(missing)} ACKed control ids "
                                     f"after {self.args.drain_timeout}s, e.g. {missing[:3]}")


# --------------------------------------------------------------------------- report
def fmt_rate(row: Row) -> str:
    rates = [r.rate for r in row.runs]
    if len(rates) == 1:
        return f"{rates[0]:,.0f}"
    return f"{row.rate:,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"


def fmt(v: float | None, spec: str = ",.0f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def render(meta: dict[str, Any], rows: list[Row], ks: Sequence[int],
           args: argparse.Namespace) -> tuple[str, list[tuple[str, bool, str]]]:
    out: list[str] = []
    bare_by_k: dict[int, Row] = {}
    for k in ks:
        cands = [r for r in rows if r.section == "bare" and r.k == k and r.errors == 0]
        if cands:
            bare_by_k[k] = max(cands, key=lambda r: r.rate)

    def ratio(row: Row) -> str:
        b = bare_by_k.get(row.k)
        return f"{row.rate / b.rate:.2f}x" if b and b.rate else "-"

    sync = meta["synchronous"]
    head = ("| config | K | msg/s median (min-max) | p50 µs | p99 µs | errors | "
            "engine/bare | server CPU % | loadgen CPU % | other CPU % | sync |")
    sep = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"

    def line(row: Row, is_bare: bool = False) -> str:
        name = row.config + (" ← bare" if is_bare else "")
        return (f"| {name} | {row.k} | {fmt_rate(row)} | {fmt(row.med('p50_us'))} | "
                f"{fmt(row.med('p99_us'))} | {row.errors} | "
                f"{'1.00x' if is_bare else ratio(row) if row.section != 'bare' else '-'} | "
                f"{fmt(row.med('server_cpu'))} | {fmt(row.med('client_cpu'))} | "
                f"{fmt(row.med('other_cpu'))} | {sync} |")

    out.append("### Ingest → durable commit → ACK (closed loop, K connections)\n")
    out.append(head)
    out.append(sep)
    for k in ks:
        for row in rows:
            if row.k != k or row.section not in ("bare", "ingest"):
                continue
            out.append(line(row, is_bare=(bare_by_k.get(k) is row)))
    out.append("")
    e2e = [r for r in rows if r.section == "e2e"]
    if e2e:
        out.append("### End to end: listener → commit → ACK, and delivery to a sink\n")
        out.append("| config | K | ingest msg/s median (min-max) | p50 µs | p99 µs | errors | "
                   "engine/bare | delivered msg/s (window) | final lag ms | missing at sink | "
                   "server CPU % | loadgen CPU % | sink CPU % | other CPU % | sync |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for row in e2e:
            out.append(
                f"| {row.config} | {row.k} | {fmt_rate(row)} | {fmt(row.med('p50_us'))} | "
                f"{fmt(row.med('p99_us'))} | {row.errors} | {ratio(row)} | "
                f"{fmt(row.med('delivered_rate'))} | {fmt(row.med('lag_ms'))} | "
                f"{sum(r.missing or 0 for r in row.runs)} | {fmt(row.med('server_cpu'))} | "
                f"{fmt(row.med('client_cpu'))} | {fmt(row.med('sink_cpu'))} | "
                f"{fmt(row.med('other_cpu'))} | {sync} |")
        out.append("")
    paced = [r for r in rows if r.section == "paced"]
    if paced:
        out.append(f"### Offered load: {args.paced_rate:,.0f} msg/s paced over "
                   f"{args.paced_conns} connections, {args.paced_seconds:g} s\n")
        out.append("| config | K | achieved msg/s median (min-max) | p50 µs | p99 µs | max µs | "
                   "errors | skipped slots | server CPU % | other CPU % | sync |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for row in paced:
            out.append(
                f"| {row.config} | {row.k} | {fmt_rate(row)} | {fmt(row.med('p50_us'))} | "
                f"{fmt(row.med('p99_us'))} | {fmt(row.med('max_us'))} | {row.errors} | "
                f"{sum(r.skipped_slots for r in row.runs)} | {fmt(row.med('server_cpu'))} | "
                f"{fmt(row.med('other_cpu'))} | {sync} |")
        out.append("")

    verdicts: list[tuple[str, bool, str]] = []
    ingest = {r.k: r for r in rows if r.section == "ingest" and r.config == "engine (info)"}
    for k in ks:
        row, b = ingest.get(k), bare_by_k.get(k)
        if row is None or b is None:
            continue
        rat = row.rate / b.rate if b.rate else 0.0
        ok = rat >= 0.7 and row.errors == 0
        verdicts.append((f"engine ingest ≥ 0.7x bare at K={k}", ok,
                         f"{rat:.2f}x ({row.rate:,.0f} vs {b.config} {b.rate:,.0f} msg/s)"
                         + (f", {row.errors} errors" if row.errors else "")))
    if 16 in ingest:
        row = ingest[16]
        verdicts.append(("engine ingest ≥ 10,000 msg/s over 16 connections",
                         row.rate >= 10_000 and row.errors == 0, f"{row.rate:,.0f} msg/s"))
    pe = [r for r in paced if r.config == "engine (info)"]
    if pe:
        p99 = pe[0].med("p99_us")
        verdicts.append((f"engine ACK p99 < 10 ms at {args.paced_rate:,.0f} msg/s offered",
                         p99 < 10_000 and pe[0].errors == 0,
                         f"p99 {p99 / 1000:.2f} ms (p50 {pe[0].med('p50_us') / 1000:.2f} ms, "
                         f"max {pe[0].med('max_us') / 1000:.2f} ms)"))
    e2e_info = {r.k: r for r in e2e}
    for k in ks:
        row, b = e2e_info.get(k), bare_by_k.get(k)
        if row is None or b is None:
            continue
        rat = row.rate / b.rate if b.rate else 0.0
        verdicts.append((f"(informational) end-to-end ingest ≥ 0.7x bare at K={k}",
                         rat >= 0.7 and row.errors == 0,
                         f"{rat:.2f}x ({row.rate:,.0f} msg/s, delivered "
                         f"{fmt(row.med('delivered_rate'))} msg/s, lag "
                         f"{fmt(row.med('lag_ms'))} ms)"))
    out.append("### Targets\n")
    for name, ok, detail in verdicts:
        out.append(f"- **{'PASS' if ok else 'FAIL'}** {name}: {detail}")
    return "\n".join(out), verdicts


def git_revision() -> str:
    """HEAD of the checkout, and whether engine/ or channels/ differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "engine", "channels")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in engine/ or channels/' if dirty else ''}"


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                model = ln.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
        "uvloop": uvloop.__version__, "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(), "git": git_revision(),
    }


# --------------------------------------------------------------------------- main
SECTIONS = ("bare", "ingest", "warning", "e2e", "paced")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="MLLP ingest benchmark (see module docstring)")
    ap.add_argument("--runs", type=int, default=3, help="runs per configuration (3)")
    ap.add_argument("--seconds", type=float, default=4.0, help="measured seconds per run (4)")
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run (1)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 run of 1 s per config")
    ap.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    ap.add_argument("--json-out", metavar="FILE", help="also write the JSON to FILE")
    ap.add_argument("--k", default="1,4,16", help="connection counts (1,4,16)")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--paced-rate", type=float, default=1000.0)
    ap.add_argument("--paced-conns", type=int, default=4)
    ap.add_argument("--paced-seconds", type=float, default=5.0)
    ap.add_argument("--drain-timeout", type=float, default=180.0,
                    help="e2e: seconds to wait for the sink to receive every ACKed id")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1, help="load generator and sink")
    ap.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL", "EXTRA"))
    ap.add_argument("--quiet-threshold", type=float, default=15.0,
                    help="before each run, wait until the machine is below this busy %% of one "
                         "CPU (15)")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="longest wait for a quiet machine before each run, s (60; 0: never)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.paced_seconds = 1, 1.0, 1.0
    ks = [int(x) for x in args.k.split(",") if x]
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections: {sorted(unknown)}")
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if ncpu < 2:
        args.server_cpu = args.client_cpu = None
    pin(args.client_cpu)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop children
    tmp = Path(tempfile.mkdtemp(prefix="mllp-bench-", dir="/tmp"))
    meta = machine() | {
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
        "synchronous": args.synchronous, "runs": args.runs, "seconds": args.seconds,
        "warmup": args.warmup, "message_bytes": MESSAGE_BYTES, "k": ks,
        "server_cpu": args.server_cpu, "client_cpu": args.client_cpu, "tmp": str(tmp),
    }
    log(f"message {MESSAGE_BYTES} bytes; server CPU {args.server_cpu}, load generator and "
        f"sink CPU {args.client_cpu}; temp dir {tmp}")
    bench = Bench(args, tmp)
    sv, cpu = args.synchronous, args.server_cpu
    try:
        if "e2e" in sections:
            bench.sink = Sink(args.client_cpu)
        sink_port = bench.sink.port if bench.sink else 0
        for k in ks:
            configs: list[Config] = []
            if "bare" in sections:
                configs += [Config("bare", f"bare {m}",
                                   lambda d, m=m: BareProcess(d, m, cpu, sv))  # type: ignore[misc]
                            for m in ("group", "inline")]
            if "ingest" in sections:
                configs.append(Config("ingest", "engine (info)",
                                      lambda d: EngineProcess(d, "info", cpu, sv)))
            if "warning" in sections and k == max(ks):
                configs.append(Config("ingest", "engine (warning)",
                                      lambda d: EngineProcess(d, "warning", cpu, sv)))
            if "e2e" in sections:
                configs.append(Config(
                    "e2e", "engine (info) + mllp_sender → sink",
                    lambda d: EngineProcess(d, "info", cpu, sv, sink_port=sink_port), e2e=True))
            if configs:
                bench.group(k, configs)
        if "paced" in sections:
            configs = [Config("paced", "engine (info)",
                              lambda d: EngineProcess(d, "info", cpu, sv))]
            configs += [Config("paced", f"bare {m}",
                               lambda d, m=m: BareProcess(d, m, cpu, sv))  # type: ignore[misc]
                        for m in ("group", "inline")]
            bench.group(args.paced_conns, configs, paced=True)
    finally:
        if bench.sink is not None:
            bench.sink.stop()
        bench.runner.close()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    meta["fsync_probe_us"] = {g: {"p50": round(a), "p99": round(b)}
                              for g, (a, b) in bench.fsync.items()}
    text, verdicts = render(meta, bench.rows, ks, args)
    doc = json.dumps({"meta": meta, "rows": [r.as_dict() for r in bench.rows],
                      "targets": [{"target": n, "pass": ok, "detail": d}
                                  for n, ok, d in verdicts]}, indent=2, default=str)
    if args.json_out:
        Path(args.json_out).write_text(doc + "\n")
    if args.json:
        print(doc)
        return 0
    print(f"## MLLP benchmark — {meta['date']}\n")
    print(f"{meta['nproc']} CPUs ({meta['cpu']}), Python {meta['python']}, uvloop "
          f"{meta['uvloop']}, SQLite {meta['sqlite']}; message {MESSAGE_BYTES} bytes "
          f"ORM^O01 v2.5; server on CPU {args.server_cpu}, load generator and sink on CPU "
          f"{args.client_cpu}; {args.runs} run(s) x ({args.warmup:g} s warm-up + "
          f"{args.seconds:g} s); SQLite WAL synchronous={args.synchronous}; engine at "
          f"{meta['git']}.\n")
    probes = ", ".join(f"{g} {v['p50']:,}/{v['p99']:,}" for g, v in meta["fsync_probe_us"].items())
    print(f"fsync probe before each group (4 KiB write + fsync, p50/p99 µs): {probes}.\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
