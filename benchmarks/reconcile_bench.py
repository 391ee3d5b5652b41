"""Reconciliation benchmark: a full pass over N orders x N PACS studies, store to store.

Not a test. Synthetic data only. N worklist steps are written to a SQLite store (as the
order path writes them), N study-level C-FIND answers are generated (as ``channels.pacs``
returns them: ~10% accession typos, ~5% other UIDs, ~3% demographic differences, ~2%
orphans, some orders without study) and stored with ``replace_studies``; then timed:
load orders + studies, ``reconcile``, ``upsert_mismatches`` (first pass inserts, second pass
re-detects: no duplicates, last_seen updated).

    .venv/bin/python benchmarks/reconcile_bench.py --n 10000 --n 100000
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.store import reconcile as store
from engine.store import worklist
from transforms.reconcile import load_rules, reconcile

RULES = Path(__file__).resolve().parents[1] / "mappings" / "reconcile.yml"


def _order(i: int) -> dict[str, Any]:
    day = f"202401{1 + i % 28:02d}"
    return {"PatientName": f"PATIENT^P{i % 50000}", "PatientID": f"{i % 50000:07d}",
            "IssuerOfPatientID": "HOSPA", "PatientBirthDate": "19800101", "PatientSex": "F",
            "AccessionNumber": f"ACC{i:07d}", "StudyInstanceUID": f"2.25.{i}",
            "ScheduledProcedureStepSequence": [{
                "ScheduledProcedureStepID": f"S{i}", "Modality": ("CT", "MR", "CR")[i % 3],
                "ScheduledProcedureStepStartDate": day}]}


def _study(i: int) -> dict[str, Any] | None:
    o = _order(i)
    sps = o["ScheduledProcedureStepSequence"][0]
    if i % 97 == 0:
        return None  # order without study
    s = {"StudyInstanceUID": o["StudyInstanceUID"], "AccessionNumber": o["AccessionNumber"],
         "PatientID": o["PatientID"].lstrip("0"), "IssuerOfPatientID": "HOSPA",
         "PatientName": o["PatientName"].title(), "PatientBirthDate": "19800101",
         "PatientSex": "F", "StudyDate": sps["ScheduledProcedureStepStartDate"],
         "ModalitiesInStudy": ["DX" if sps["Modality"] == "CR" else sps["Modality"], "SR"],
         "NumberOfStudyRelatedInstances": 100}
    if i % 10 == 1:
        s["AccessionNumber"] += "X"
        s["StudyInstanceUID"] += ".1"
    elif i % 20 == 2:
        s["StudyInstanceUID"] += ".2"
    elif i % 33 == 3:
        s["PatientSex"] = "M"
    elif i % 50 == 4:
        s.update(PatientID=f"X{i}", AccessionNumber=f"ORPH{i}", StudyInstanceUID=f"2.25.9.{i}")
    return s


def run(n: int) -> None:
    rules = load_rules(RULES)
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "b.sqlite", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        for schema in sorted(resources.files("engine.store").iterdir(), key=lambda p: p.name):
            if schema.name.endswith(".sql"):
                conn.executescript(schema.read_text())
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        for i in range(n):
            worklist.upsert_step(conn, _order(i), now=0.0)
        studies = [s for s in (_study(i) for i in range(n)) if s is not None]
        store.replace_studies(conn, studies, "PACS", 0.0)
        conn.execute("COMMIT")
        setup = time.perf_counter() - t0
        for label, now in (("first pass", 1.0), ("second pass", 2.0)):
            t1 = time.perf_counter()
            orders, pacs = store.load_orders(conn), store.load_studies(conn)
            t2 = time.perf_counter()
            found = reconcile(orders, pacs, rules, today="20240215")
            t3 = time.perf_counter()
            conn.execute("BEGIN")
            summary = store.upsert_mismatches(conn, found, now)
            conn.execute("COMMIT")
            t4 = time.perf_counter()
            print(f"n={n:>7} {label}: load {t2 - t1:6.2f}s  reconcile {t3 - t2:6.2f}s  "
                  f"upsert {t4 - t3:6.2f}s  total {t4 - t1:6.2f}s  mismatches {len(found)} "
                  f"(new {summary.new}, again {summary.seen_again})")
        rows = conn.execute("SELECT COUNT(*) FROM mismatches").fetchone()[0]
        kinds = Counter(m.type for m in found)
        print(f"n={n:>7} setup {setup:.1f}s; rows {rows}; {dict(sorted(kinds.items()))}")
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, action="append", help="orders = studies (repeatable)")
    for n in ap.parse_args().n or [10_000]:
        run(n)


if __name__ == "__main__":
    main()
