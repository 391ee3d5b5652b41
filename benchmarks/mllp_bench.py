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
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop
from bench_common import (
    count_rows,
    free_port,
    fsync_probe,
    log,
    pin,
    stop_process,
    thread_affinity,
    wait_quiet,
)
from mllp_load import MESSAGE_BYTES, RunResult, RunStats, control_id, load_run
from mllp_report import fmt, machine, render
from mllp_sink import Sink

ROOT = Path(__file__).resolve().parent.parent
BARE = Path(__file__).resolve().parent / "bare_mllp_server.py"
VT, FS_CR = b"\x0b", b"\x1c\r"

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
{more}"""
SINK_CONNECTIONS = """        connections: {n}
        ordering: none
"""


class EngineProcess(Server):
    SQL = "SELECT count(*) FROM messages WHERE control_id >= ? AND control_id < ?"

    def __init__(self, workdir: Path, log_level: str, cpu: int | None, synchronous: str,
                 sink_port: int | None = None, root: Path = ROOT,
                 sink_connections: int = 1) -> None:
        self.name = f"engine-{log_level}" + ("-e2e" if sink_port else "")
        self.workdir = workdir
        self.root = root  # the source tree run (mllp_ab.py compares two)
        self.cpu = cpu
        self.http_port = free_port()
        self.port = free_port()
        self.config = workdir / "channels.yaml"
        self.log_path = workdir / "engine.log"
        self.db = workdir / "data" / "radbridge.db"
        more = SINK_CONNECTIONS.format(n=sink_connections) if sink_connections > 1 else ""
        dests = SINK_DESTINATION.format(sink_port=sink_port, more=more) if sink_port else " []"
        self.config.write_text(ENGINE_CONFIG.format(
            data_dir=workdir / "data", synchronous=synchronous, http_port=self.http_port,
            log_level=log_level, mllp_port=self.port, destinations=dests,
        ))

    def start(self, timeout: float = 30.0) -> EngineProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RADBRIDGE_")}
        env["PYTHONPATH"] = str(self.root)
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
    ap.add_argument("--sink-connections", type=int, default=1,
                    help="e2e: connections of the engine's sender to the sink (>1: with "
                         "ordering: none)")
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
                nconn = args.sink_connections
                label = f" ({nconn} connections)" if nconn > 1 else ""
                configs.append(Config(
                    "e2e", f"engine (info) + mllp_sender{label} → sink",
                    lambda d: EngineProcess(d, "info", cpu, sv, sink_port=sink_port,
                                            sink_connections=args.sink_connections),
                    e2e=True))
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
