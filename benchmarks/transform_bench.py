"""Transform benchmark: ``mappings/order_to_worklist.yaml`` runs per second (not a test).

Run: ``.venv/bin/python benchmarks/transform_bench.py [--json] [--quick]``

Each figure is the median of 5 runs of ~0.5 s (3 x 0.1 s with ``--quick``), pinned to one
CPU when the OS allows.  Inputs are 500 distinct synthetic orders per flavour (IDs, names,
dates, times, procedures and modalities vary, so per-op caches see realistic traffic):

* ORM^O01 v2.3.1 + ZDS, one ORC/OBR group;
* OMI^O23 v2.5.1 + TQ1/IPC, one group;
* ORM^O01 v2.3.1 with three ORC/OBR groups (three scheduled procedure steps).

A run is the whole job of a channel's transform: HL7 text in (parse included), worklist
record out.  The target is 5,000 ORM → worklist mappings per second on one core.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_common beside this file
from bench_common import pin_one_core  # noqa: E402

from engine.hl7 import HL7Message  # noqa: E402
from transforms import load_mapping  # noqa: E402

TARGET = 5000
PROCEDURES = [("CTHEAD", "CT HEAD WITHOUT CONTRAST", "CT"), ("MRKNEE", "MR KNEE LEFT", "NMR"),
              ("CRCHEST", "CHEST PA \\T\\ LATERAL", "RX"), ("USABD", "US ABDOMEN", "RUS"),
              ("MGSCREEN", "SCREENING MAMMOGRAPHY", "MG"), ("CTABD", "CT ABDOMEN", "CT")]
NAMES = ["TESTPATIENT^ALICE^M", "EXAMPLE^BOB^J", "M\\XC39C\\LLER^J\\XC396\\RG", "O'TEST^ANN"]


def _stamp(rng: random.Random) -> str:
    return (f"2026{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            f"{rng.randint(7, 19):02d}{rng.choice(['00', '15', '30', '45'])}00")


def orm(rng: random.Random, n: int, groups: int = 1) -> str:
    segs = [f"MSH|^~\\&|RIS|GENHOSP|RADBRIDGE|GENHOSP|{_stamp(rng)}||ORM^O01|MSG{n:06d}|P|2.3.1"
            "||||||8859/1",
            f"PID|1||PAT{n:06d}^^^GENHOSP^MR||{rng.choice(NAMES)}||19{rng.randint(30, 99)}"
            f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}|{rng.choice('FMOU')}",
            "PV1|1|O|RAD^^^GENHOSP|||||1234^REFERRER^ROBERT^^^DR"]
    for g in range(groups):
        code, text, section = rng.choice(PROCEDURES)
        when = _stamp(rng)
        segs += [f"ORC|NW|PLC{n:06d}{g}|FIL{n:06d}{g}||SC||^^^{when}^^R||{when}|||"
                 "1234^REFERRER^ROBERT^^^DR",
                 f"OBR|{g + 1}|PLC{n:06d}{g}|FIL{n:06d}{g}|{code}^{text}^L|||{when}|||||||||"
                 f"1234^REFERRER^ROBERT^^^DR||ACC{n:06d}{g}|RP{n:06d}{g}|SPS{n:06d}{g}||||"
                 f"{section}|||^^^{when}^^R|||||||||||||||||{code}^{text}^L",
                 f"ZDS|1.2.826.0.1.3680043.10.1001.{n}.{g}^100^Application^DICOM"]
    return "\r".join(segs) + "\r"


def omi(rng: random.Random, n: int) -> str:
    code, text, _ = rng.choice(PROCEDURES)
    when = _stamp(rng)
    return "\r".join([
        f"MSH|^~\\&|RIS|GENHOSP|RADBRIDGE|GENHOSP|{when}+0100||OMI^O23^OMI_O23|MSG{n:06d}|P|"
        "2.5.1||||||UNICODE UTF-8",
        f"PID|1||PAT{n:06d}^^^GENHOSP&1.2.3.4.5&ISO^MR||{rng.choice(NAMES)}||19751103|M",
        "PV1|1|I|WARD3^301^1^GENHOSP|||||5678^ORDERING^OLIVIA^^^DR",
        f"ORC|NW|PLC{n:06d}|FIL{n:06d}||SC|||||||5678^ORDERING^OLIVIA^^^DR",
        f"TQ1|1||||||{when}|{when}|R",
        f"OBR|1|PLC{n:06d}|FIL{n:06d}|{code}^{text}^L||||||||||||5678^ORDERING^OLIVIA^^^DR"
        f"||||||||||||||||||||||||||||{code}^{text}^L",
        f"IPC|ACC{n:06d}^GENHOSP|RP{n:06d}|1.2.826.0.1.3680043.10.1001.{n}|SPS{n:06d}|MR^^DCM|"
        "KNEE_PROTOCOL^Knee routine^LOCAL|MR1|MR ROOM 1|MR1AE",
    ]) + "\r"


def measure(fn: Callable[[str], Any], inputs: list[str], runs: int, target: float
            ) -> tuple[float, list[float]]:
    """Median messages/second over ``runs`` runs of about ``target`` seconds each."""
    n = len(inputs)
    t0 = time.perf_counter()
    for text in inputs:
        fn(text)
    per = (time.perf_counter() - t0) / n
    count = max(n, int(target / max(per, 1e-9)))
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for i in range(count):
            fn(inputs[i % n])
        rates.append(count / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    ap.add_argument("--quick", action="store_true", help="3 runs of 0.1 s (smoke test)")
    args = ap.parse_args()
    runs, seconds = (3, 0.1) if args.quick else (5, 0.5)
    pinned = pin_one_core(max)
    mapping = load_mapping(ROOT / "mappings" / "order_to_worklist.yaml")
    rng = random.Random(20261122)
    cases = [
        ("ORM^O01 v2.3.1 → worklist", [orm(rng, i) for i in range(500)]),
        ("OMI^O23 v2.5.1 → worklist", [omi(rng, i) for i in range(500)]),
        ("ORM^O01 v2.3.1, 3 groups → worklist", [orm(rng, i, 3) for i in range(500)]),
    ]
    for _, inputs in cases:  # every input maps cleanly, or the figures mean nothing
        bad = [r for r in map(mapping.run, inputs[:50]) if not r.ok]
        if bad:
            print(f"benchmark input rejected: {bad[0].reason}", file=sys.stderr)
            return 1
    rows: list[dict[str, Any]] = []
    parse_rate, _ = measure(HL7Message.parse, cases[0][1], runs, seconds)
    for name, inputs in cases:
        rate, all_rates = measure(mapping.run, inputs, runs, seconds)
        rows.append({"case": name, "msg_per_s": rate, "us_per_msg": 1e6 / rate,
                     "runs": all_rates, "meets_target": rate >= TARGET})
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpu": pinned,
            "runs": runs, "seconds_per_run": seconds, "steps": len(mapping.steps),
            "parse_only_msg_per_s": parse_rate, "target_msg_per_s": TARGET}
    if args.json:
        print(json.dumps({"meta": meta, "results": rows}, indent=2))
        return 0
    print(f"order_to_worklist.yaml ({meta['steps']} top-level steps), Python {meta['python']} "
          f"{meta['machine']}, {pinned}, median of {runs} x {seconds} s, 500 distinct inputs "
          "per row\n")
    print("| input | msg/s | µs/msg | ≥ 5,000/s |")
    print("|---|---:|---:|:---:|")
    for r in rows:
        print(f"| {r['case']} | {r['msg_per_s']:,.0f} | {r['us_per_msg']:,.1f} | "
              f"{'yes' if r['meets_target'] else 'NO'} |")
    print(f"\nfor scale: HL7Message.parse alone on the same ORMs: {parse_rate:,.0f} msg/s")
    return 0 if all(r["meets_target"] for r in rows[:2]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
