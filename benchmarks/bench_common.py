"""Helpers shared by the benchmarks: pinning, CPU accounting, quiet-machine wait, fsync
probe, percentiles, process control."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The listener port picker of the tests (below the kernel's ephemeral range: a port bind(0)
# chose could be taken as the local port of an outgoing connection before the server
# binds it), re-exported for the benchmarks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.peers import free_port  # noqa: F401  (re-exported)

VT, FS_CR = b"\x0b", b"\x1c\r"

# --------------------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pin_one_core(choose: Any = min) -> str:
    """Pin this process to one CPU (``choose`` picks from the allowed set)."""
    if hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity"):
        cpu = choose(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


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


