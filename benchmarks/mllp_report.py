"""The Markdown report and machine description of mllp_bench.py."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sqlite3
import statistics
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvloop

if TYPE_CHECKING:
    from mllp_bench import Row

ROOT = Path(__file__).resolve().parent.parent

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

    def us_per_msg(row: Row) -> float:
        """Server CPU time per ACKed message in the window, median over runs."""
        vals = [r.server_cpu * 1e4 / r.rate for r in row.runs
                if r.rate and not math.isnan(r.server_cpu)]
        return statistics.median(vals) if vals else float("nan")

    def ratio(row: Row) -> str:
        b = bare_by_k.get(row.k)
        return f"{row.rate / b.rate:.2f}x" if b and b.rate else "-"

    sync = meta["synchronous"]
    head = ("| config | K | msg/s median (min-max) | p50 µs | p99 µs | errors | "
            "engine/bare | server CPU % | server CPU µs/msg | loadgen CPU % | other CPU % | "
            "sync |")
    sep = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"

    def line(row: Row, is_bare: bool = False) -> str:
        name = row.config + (" ← bare" if is_bare else "")
        return (f"| {name} | {row.k} | {fmt_rate(row)} | {fmt(row.med('p50_us'))} | "
                f"{fmt(row.med('p99_us'))} | {row.errors} | "
                f"{'1.00x' if is_bare else ratio(row) if row.section != 'bare' else '-'} | "
                f"{fmt(row.med('server_cpu'))} | {fmt(us_per_msg(row))} | "
                f"{fmt(row.med('client_cpu'))} | {fmt(row.med('other_cpu'))} | {sync} |")

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


