"""A/B of two engine source trees on MLLP ingest (not a test): CPU µs per message.

Run: ``.venv/bin/python benchmarks/mllp_ab.py --a /tmp/tree-a [--b .] [--k 1,4,16]``

On a shared machine absolute msg/s drift from minute to minute; a change is judged by
running the two trees back to back, interleaved (A, B, A, B, ...), each engine (log level
``info``, no destination, SQLite ``synchronous=FULL``) on the server CPU and the load on the
client CPU exactly as ``mllp_bench.py`` does. Reported per tree and K: median msg/s and
median server CPU µs per message (server CPU time in the window / ACKs in the window).
``--a`` is typically a ``git worktree add /tmp/tree-a HEAD`` of the commit before a
change. ``--profile FILE`` records tree B with py-spy during one extra run (needs py-spy).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from bench_common import log, pin, wait_quiet
from mllp_bench import ROOT, EngineProcess
from mllp_load import control_id, load_run


def _us_per_msg(server_cpu_pct: float, rate: float) -> float:
    return server_cpu_pct * 1e4 / rate if rate else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A/B two engine trees on MLLP ingest")
    ap.add_argument("--a", type=Path, required=True, help="tree A (e.g. a git worktree)")
    ap.add_argument("--b", type=Path, default=ROOT, help="tree B (default: this repository)")
    ap.add_argument("--k", default="16", help="connection counts (16)")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--quiet-wait", type=float, default=10.0)
    ap.add_argument("--profile", metavar="FILE", help="py-spy record tree B (K = last)")
    args = ap.parse_args(argv)
    pin(args.client_cpu)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="mllp-ab-", dir="/tmp"))
    runner = __import__("asyncio").Runner(loop_factory=uvloop.new_event_loop)
    run_no = 0
    table: list[str] = []
    try:
        for k in [int(x) for x in args.k.split(",") if x]:
            engines = {}
            for name, root in (("A", args.a), ("B", args.b)):
                d = tmp / f"{name}-k{k}"
                d.mkdir()
                engines[name] = EngineProcess(d, args.log_level, args.server_cpu, "FULL",
                                              root=root.resolve()).start()
            res: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
            try:
                for r in range(args.runs):
                    for name in (("A", "B") if r % 2 == 0 else ("B", "A")):
                        if args.quiet_wait > 0:
                            wait_quiet(15.0, args.quiet_wait)
                        run_no += 1
                        eng = engines[name]
                        out, _ = runner.run(load_run(eng.port, k, run_no, args.warmup,
                                                     args.seconds, server_pid=eng.pid()))
                        rows = eng.rows(control_id(run_no, 0, 0)[:4])
                        us = _us_per_msg(out.server_cpu, out.rate)
                        res[name].append((out.rate, us))
                        log(f"{name} K={k} run {r + 1}: {out.rate:,.0f} msg/s, "
                            f"{us:.1f} µs/msg, CPU {out.server_cpu:.0f}%, p99 "
                            f"{out.p99_us:,.0f} µs, errors {out.errors}, rows {rows}/"
                            f"{out.acked}")
                if args.profile and k == int(args.k.split(",")[-1]):
                    eng = engines["B"]
                    run_no += 1
                    spy = subprocess.Popen(
                        [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                         "record", "--pid", str(eng.pid()), "--rate", "250", "--threads",
                         "--gil", "--format", "raw", "--output", args.profile,
                         "--duration", str(int(args.seconds + args.warmup + 1)),
                         "--nonblocking"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(0.5)
                    out, _ = runner.run(load_run(eng.port, k, run_no, args.warmup,
                                                 args.seconds, server_pid=eng.pid()))
                    spy.wait(timeout=60)
                    log(f"profiled B K={k}: {out.rate:,.0f} msg/s under the profiler "
                        f"-> {args.profile}")
            finally:
                for eng in engines.values():
                    eng.stop()
            for name in ("A", "B"):
                rates = [x for x, _ in res[name]]
                uss = [y for _, y in res[name]]
                table.append(f"| {name} | {k} | {statistics.median(rates):,.0f} "
                             f"({min(rates):,.0f}-{max(rates):,.0f}) | "
                             f"{statistics.median(uss):.1f} ({min(uss):.1f}-{max(uss):.1f}) |")
    finally:
        runner.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nA = {args.a}, B = {args.b}, log {args.log_level}, {args.runs} runs x "
          f"({args.warmup:g} s + {args.seconds:g} s) interleaved\n")
    print("| tree | K | msg/s median (min-max) | server CPU µs/msg median (min-max) |")
    print("|---|---:|---:|---:|")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
