"""Reconciliation through the engine's own pass code: full pass vs one day's incremental pass.

Not a test. Synthetic data only. The same generator as ``reconcile_bench.py`` (N orders over
28 days, N study answers with typos, other UIDs, demographic differences, orphans) is
written to a real ``SQLiteStore`` (WAL, writer thread), and the PACS answers are served
from that recorded set instead of a live C-FIND. Timed, through
``channels.reconciler.passes.apply_window`` exactly as the ``pacs_reconciler`` channel runs
after its C-FIND returns:

* ``full``  — replace the snapshot, compare every order with every study, record;
* ``day``   — one day's answers (``days: 0``): replace that day, load the day's orders and
  studies through the indexes (plus one hop of UID/accession references and every open
  mismatch), compare, record with scoped auto-resolution;
* ``day again`` — the same day once more (everything re-detected, nothing new).

    .venv/bin/python benchmarks/reconcile_incremental_bench.py --n 10000 --n 100000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reconcile_bench import RULES, _order, _study

from channels.pacs.find import PACSFindConfig
from channels.reconciler.passes import PassContext, apply_window
from engine.store import worklist
from engine.store.sqlite import SQLiteStore
from transforms.reconcile import load_rules

FIRST, LAST = dt.date(2024, 1, 1), dt.date(2024, 1, 28)
DAY = LAST  # the incremental pass reads the newest day, as the schedule does


async def run(n: int) -> dict[str, Any]:
    rules = load_rules(RULES)
    studies = [s for s in (_study(i) for i in range(n)) if s is not None]
    day_answers = [s for s in studies if s["StudyDate"] == DAY.strftime("%Y%m%d")]
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.sqlite", synchronous="FULL")
        await store.open()
        try:
            def seed(conn: Any) -> None:
                for i in range(n):
                    worklist.upsert_step(conn, _order(i), now=0.0)

            await store.write_tx(seed)
            pacs = PACSFindConfig(host="127.0.0.1", port=4242, called_ae="RECORDED")
            ctx = PassContext(store, rules, pacs, "bench")
            out: dict[str, Any] = {"n": n, "day_studies": len(day_answers)}
            for label, answers, start, full in (
                    ("full", studies, FIRST, True),
                    ("day", day_answers, DAY, False),
                    ("day again", day_answers, DAY, False)):
                t0 = time.perf_counter()
                result = await apply_window(ctx, answers, start, LAST if full else DAY,
                                            full=full)
                took = time.perf_counter() - t0
                s = result.summary
                out[label] = took
                print(f"n={n:>7} {label:9}: {took:6.2f}s  orders {result.orders:>7}  "
                      f"studies {result.studies:>7}  new {s.new:>6}  again {s.seen_again:>6}"
                      f"  resolved {s.resolved}", flush=True)
            return out
        finally:
            await store.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, action="append", help="orders = studies (repeatable)")
    results = [asyncio.run(run(n)) for n in ap.parse_args().n or [10_000]]
    print("\n| orders x studies | studies that day | full pass | one-day pass | same day again |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['n']:,} | {r['day_studies']:,} | {r['full']:.2f} s | {r['day']:.2f} s |"
              f" {r['day again']:.2f} s |")


if __name__ == "__main__":
    main()
