"""Parse-speed benchmark for the HL7 v2 core (not a test).

Run: ``.venv/bin/python benchmarks/parse_bench.py [--json] [--quick]``

Measures messages/second for *parse only* and *parse + 6 field reads* (MSH-9,
MSH-10, PID-3.1, PID-5.1, OBR-4.2, OBR-18) of a synthetic ~1.3 KB ORM^O01, side by
side with a naive eager full-tree parser (below), python-hl7 and hl7apy.  Each
figure is the median of several runs of ~0.4 s, pinned to one CPU when possible.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

sys.path.insert(0, str(FsPath(__file__).resolve().parent.parent))

from bench_common import pin_one_core

from engine.hl7 import HL7Message

try:
    import hl7
except ImportError:  # optional comparison
    hl7 = None
try:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message
except ImportError:  # optional comparison
    parse_message = None

SEGMENTS = [
    "MSH|^~\\&|RIS|GENHOSP|RADBRIDGE|GENHOSP|20261122083000||ORM^O01^ORM_O01|MSG00001|P|2.5"
    "||||||UNICODE UTF-8",
    "PID|1||PAT10001^^^GENHOSP^MR~9990001234^^^NHS^NH~X77^^^OLDRIS^PI||TESTPATIENT^ALICE^M^^^^L"
    "~TESTPATIENT^ALI^^^^^A||19800214|F|||12 EXAMPLE ST^^SPRINGFIELD^^12345^GBR^H"
    "~PO BOX 1^^SPRINGFIELD^^12399^GBR^M||555-0100^PRN^PH~555-0199^ORN^CP~^NET^Internet"
    "^alice@example.invalid|||||ACCT0001",
    "PV1|1|O|RAD^^^GENHOSP||||1234^REFERRER^ROBERT^^^DR|1234^REFERRER^ROBERT^^^DR|||||||||"
    "|VIS0001|||||||||||||||||||||||||20261122080000",
    "ORC|NW|PLC0001|FIL0001||SC||^^^20261122090000^^R||20261122083000|||1234^REFERRER^ROBERT^^^DR"
    "|||||GENHOSP^General Hospital",
    "OBR|1|PLC0001|FIL0001|CTHEAD^CT HEAD \\T\\ NECK\\X0D\\WITHOUT CONTRAST^L|||20261122083000"
    "||||||Query stroke; onset 07:30|||1234^REFERRER^ROBERT^^^DR||ACC0001|RP0001|SPS0001||||CT"
    "|||^^^20261122090000^^R|||||5678&READER&RACHEL&&&DR&&&GENHOSP^20261122090000"
    "|||||||||||CTHEAD^CT HEAD WITHOUT CONTRAST^L",
    "NTE|1|L|Patient reports pain \\F\\ swelling \\S\\ redness; images in C:\\E\\scans\\E\\ct;"
    " allergy to iodinated contrast documented 2019, premedicate per protocol.",
    "NTE|2|L|Transport by wheelchair; interpreter required (Portuguese). Contact ward 3 on 555-0142"
    " before sending for patient.",
    "ZDS|1.2.826.0.1.3680043.10.1001.1^100^Application^DICOM",
]
MESSAGE = "\r".join(SEGMENTS) + "\r"
READS = ("MSH-9", "MSH-10", "PID-3.1", "PID-5.1", "OBR-4.2", "OBR-18")


# --------------------------------------------------------------------------- naive tree
_HEX = re.compile(r"\\X([0-9A-Fa-f]+)\\")


def naive_unescape(v: str) -> str:
    if "\\" not in v:
        return v
    v = _HEX.sub(lambda m: bytes.fromhex(m[1]).decode("latin-1"), v)
    for seq, ch in (("\\F\\", "|"), ("\\S\\", "^"), ("\\T\\", "&"), ("\\R\\", "~")):
        v = v.replace(seq, ch)
    return v.replace("\\E\\", "\\")


def naive_parse(text: str) -> dict[str, list[list[list[list[list[str]]]]]]:
    """Eager full tree: segment → field → repetition → component → subcomponent."""
    tree: dict[str, list[list[list[list[list[str]]]]]] = {}
    for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r"):
        if not line:
            continue
        fields = line.split("|")
        name = fields[0]
        if name == "MSH":
            fields = ["MSH", "|", *fields[1:]]
        seg: list[list[list[list[str]]]] = []
        for i, f in enumerate(fields):
            if (name == "MSH" and i <= 2) or not f:
                seg.append([[[f]]])
            elif "^" not in f and "~" not in f and "&" not in f:
                seg.append([[[naive_unescape(f)]]])
            else:
                seg.append(
                    [
                        [[naive_unescape(s) for s in c.split("&")] for c in r.split("^")]
                        for r in f.split("~")
                    ]
                )
        tree.setdefault(name, []).append(seg)
    return tree


def naive_get(tree: dict[str, Any], seg: str, field: int, comp: int = 1) -> str:
    try:
        return str(tree[seg][0][field][0][comp - 1][0])
    except (KeyError, IndexError):
        return ""


def naive_get6(text: str) -> tuple[str, ...]:
    t = naive_parse(text)
    msh9 = t["MSH"][0][9][0]
    return (
        "^".join(c[0] for c in msh9),
        naive_get(t, "MSH", 10),
        naive_get(t, "PID", 3, 1),
        naive_get(t, "PID", 5, 1),
        naive_get(t, "OBR", 4, 2),
        naive_get(t, "OBR", 18),
    )


# --------------------------------------------------------------------------- candidates
def radbridge_get6(text: str) -> tuple[str, ...]:
    m = HL7Message.parse(text)
    g = m.get
    return (g("MSH-9"), g("MSH-10"), g("PID-3.1"), g("PID-5.1"), g("OBR-4.2"), g("OBR-18"))


def python_hl7_funcs() -> tuple[Callable[[str], object], Callable[[str], tuple[str, ...]]] | None:
    if hl7 is None:
        return None

    def get6(text: str) -> tuple[str, ...]:
        m = hl7.parse(text)
        u = m.unescape
        return (
            str(m.segment("MSH")(9)),
            u(str(m["MSH.F10"])),
            u(str(m["PID.F3.R1.C1"])),
            u(str(m["PID.F5.R1.C1"])),
            u(str(m["OBR.F4.R1.C2"])),
            u(str(m["OBR.F18"])),
        )

    return hl7.parse, get6


def hl7apy_funcs() -> tuple[Callable[[str], object], Callable[[str], tuple[str, ...]]] | None:
    if parse_message is None:
        return None

    def parse(text: str) -> object:
        return parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)

    def get6(text: str) -> tuple[str, ...]:
        m: Any = parse(text)
        msh, pid, obr = m.msh, m.pid, m.obr
        return (
            msh.msh_9.to_er7(),
            msh.msh_10.to_er7(),
            pid.pid_3[0].pid_3_1.to_er7(),
            pid.pid_5[0].pid_5_1.to_er7(),
            obr.obr_4.obr_4_2.value,
            obr.obr_18.to_er7(),
        )

    return parse, get6


# --------------------------------------------------------------------------- timing
def measure(fn: Callable[[str], object], runs: int, target: float) -> float:
    """Median messages/second over ``runs`` runs of about ``target`` seconds."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(MESSAGE)
        dt = time.perf_counter() - t0
        if dt >= target / 4 or n >= 1 << 24:
            break
        n *= 2
    n = max(1, int(n * target / max(dt, 1e-9)))
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(MESSAGE)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    ap.add_argument("--quick", action="store_true", help="3 runs of 0.1 s (smoke test)")
    args = ap.parse_args()
    runs, target = (3, 0.1) if args.quick else (7, 0.4)
    pinned = pin_one_core(min)

    candidates: list[tuple[str, Callable[[str], object], Callable[[str], tuple[str, ...]], int]]
    candidates = [
        ("radbridge HL7Message (lazy)", HL7Message.parse, radbridge_get6, runs),
        ("naive eager full tree", naive_parse, naive_get6, runs),
    ]
    ph = python_hl7_funcs()
    if ph:
        candidates.append(("python-hl7 0.4.5 hl7.parse + unescape", ph[0], ph[1], runs))
    ha = hl7apy_funcs()
    if ha:
        candidates.append(("hl7apy parse_message (TOLERANT)", ha[0], ha[1], 3))

    expected = radbridge_get6(MESSAGE)
    rows: list[dict[str, Any]] = []
    for name, parse, get6, n_runs in candidates:
        got = get6(MESSAGE)
        rows.append(
            {
                "implementation": name,
                "parse_msg_per_s": measure(parse, n_runs, target),
                "parse_get6_msg_per_s": measure(get6, n_runs, target),
                "values_match": got == expected,
                "values": list(got),
            }
        )
    base = rows[1]
    for r in rows:
        r["parse_ratio_vs_naive"] = r["parse_msg_per_s"] / base["parse_msg_per_s"]
        r["get6_ratio_vs_naive"] = r["parse_get6_msg_per_s"] / base["parse_get6_msg_per_s"]

    meta = {
        "message_bytes": len(MESSAGE.encode()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": pinned,
        "runs": runs,
        "seconds_per_run": target,
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": rows}, indent=2))
        return 0
    print(
        f"ORM^O01 {meta['message_bytes']} bytes, Python {meta['python']} {meta['machine']}, "
        f"{pinned}, median of {runs} x {target} s (hl7apy: 3 runs)\n"
    )
    print("| implementation | parse msg/s | parse µs/msg | parse+get6 msg/s | parse+get6 µs/msg "
          "| ratio vs naive (parse / parse+get6) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        p, g = r["parse_msg_per_s"], r["parse_get6_msg_per_s"]
        print(
            f"| {r['implementation']} | {p:,.0f} | {1e6 / p:,.1f} | {g:,.0f} | {1e6 / g:,.1f} "
            f"| {r['parse_ratio_vs_naive']:.3g}x / {r['get6_ratio_vs_naive']:.3g}x |"
        )
    mismatched = [r["implementation"] for r in rows if not r["values_match"]]
    print(f"\nradbridge values: {list(expected)!r}")
    for r in rows:
        if not r["values_match"]:
            print(f"note: {r['implementation']} returned {r['values']!r}")
    if not mismatched:
        print("all implementations returned the same 6 values")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
