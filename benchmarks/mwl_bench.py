"""MWL C-FIND benchmark: RadBridge's worklist SCP vs DCMTK wlmscpfs vs Orthanc's worklist plugin.

Not a test. Each server serves the same synthetic scheduled procedure steps (30 days, 20
stations, one step per item, no real patient data): RadBridge from its SQLite worklist table,
wlmscpfs and Orthanc 1.10 (sample ``libModalityWorklists.so``) from ``.wl`` files. Servers
run pinned to CPU 0 (``taskset -c 0``), the client to CPU 1. The client is a lean raw-socket
SCU (TCP_NODELAY, like a modality's C stack) so that the numbers are the servers', not a
Python SCU's decoding cost. Queries, each with the return keys a modality asks for:

* ``accession`` — exact Accession Number (1 match);
* ``station+today`` — Scheduled Station AE Title + SPS Start Date today (~N/600 matches).

Modes: ``assoc`` = associate + C-FIND + release per query (what modalities do); ``kept`` =
repeated C-FIND on one open association. Latency is per query as the client sees it.

    .venv/bin/python benchmarks/mwl_bench.py --quick          # 1,000 and 10,000 steps
    .venv/bin/python benchmarks/mwl_bench.py                  # + 100,000 steps
    .venv/bin/python benchmarks/mwl_bench.py --sizes 100000 --peers radbridge,wlmscpfs

Generated data is cached under ``--workdir`` (default /tmp/radbridge-mwl-bench).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_common import free_port  # noqa: E402

from engine.dicom.encode import Element, encode_elements, keyword_tag  # noqa: E402

MWL_UID = "1.2.840.10008.5.1.4.31"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
STATIONS = 20
DAYS = 30
CALLING = "BENCHSCU"
PLUGIN = Path("/usr/share/orthanc/plugins/libModalityWorklists.so")
FAMILY = ["TEST", "MÜLLER", "DUPONT", "GARCÍA", "SMITH", "NOVAK", "ROSSI", "JANSEN"]


# -- data ---------------------------------------------------------------------------------
def make_item(i: int, today: dt.date) -> dict[str, Any]:
    day = today + dt.timedelta(days=(i % DAYS) - DAYS // 2)
    station = (i // DAYS) % STATIONS
    return {
        "SpecificCharacterSet": "ISO_IR 192",
        "AccessionNumber": f"A{i:09d}",
        "ReferringPhysicianName": "REFERRER^ROSA",
        "PatientName": f"{FAMILY[i % len(FAMILY)]}^PATIENT{i:06d}",
        "PatientID": f"P{i:07d}",
        "PatientBirthDate": f"{1940 + i % 60}0{1 + i % 9}1{i % 10}",
        "PatientSex": "FM"[i % 2],
        "StudyInstanceUID": f"2.25.{10**30 + i}",
        "RequestedProcedureDescription": "CT HEAD WITHOUT CONTRAST",
        "RequestedProcedureID": f"RP{i:09d}",
        "RequestedProcedurePriority": "ROUTINE",
        "ScheduledProcedureStepSequence": [{
            "Modality": "CT",
            "ScheduledStationAETitle": f"ST{station:02d}",
            "ScheduledProcedureStepStartDate": day.strftime("%Y%m%d"),
            "ScheduledProcedureStepStartTime": f"{7 + i % 12:02d}{i % 60:02d}00",
            "ScheduledPerformingPhysicianName": "TECH^TOM",
            "ScheduledProcedureStepDescription": "CT HEAD",
            "ScheduledStationName": f"STATION{station:02d}",
            "ScheduledProcedureStepLocation": "ROOM 1",
            "ScheduledProcedureStepID": f"S{i:09d}",
            "ScheduledProcedureStepStatus": "SCHEDULED",
        }],
    }


def elements(item: dict[str, Any]) -> list[Element]:
    out: list[Element] = []
    for keyword, value in item.items():
        tag, vr = keyword_tag(keyword) or (0, "")
        out.append((tag, vr, [elements(s) for s in value] if vr == "SQ" else value))
    return sorted(out, key=lambda e: e[0])


def wl_file(item: dict[str, Any], i: int) -> bytes:
    meta = encode_elements([
        (0x00020001, "OB", b"\x00\x01"), (0x00020002, "UI", "1.2.276.0.7230010.3.1.0.1"),
        (0x00020003, "UI", f"2.25.{i + 1}"), (0x00020010, "UI", EXPLICIT_LE),
        (0x00020012, "UI", "2.25.987654321"), (0x00020013, "SH", "RADBRIDGE_BENCH"),
    ], implicit=False)
    head = encode_elements([(0x00020000, "UL", len(meta))], implicit=False)
    body = encode_elements(elements(item), implicit=False, codec="utf_8")
    return b"\x00" * 128 + b"DICM" + head + meta + body


def prepare(workdir: Path, n: int) -> tuple[Path, Path, dt.date]:
    """The SQLite store and the .wl folder for n steps (cached)."""
    base = workdir / f"n{n}"
    marker = base / "ready.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        return base / "store.sqlite", base / "wl", dt.date.fromisoformat(info["today"])
    shutil.rmtree(base, ignore_errors=True)
    (base / "wl" / "WLAE").mkdir(parents=True)
    (base / "wl" / "WLAE" / "lockfile").touch()
    today = dt.date.today()
    items = [make_item(i, today) for i in range(n)]
    for i, item in enumerate(items):
        (base / "wl" / "WLAE" / f"item{i:07d}.wl").write_bytes(wl_file(item, i))
    asyncio.run(_load_store(base / "store.sqlite", items))
    marker.write_text(json.dumps({"n": n, "today": today.isoformat()}))
    return base / "store.sqlite", base / "wl", today


async def _load_store(path: Path, items: list[dict[str, Any]]) -> None:
    from engine.store import worklist
    from engine.store.sqlite import SQLiteStore

    store = SQLiteStore(path, synchronous="NORMAL")
    await store.open()

    def load(conn: Any) -> None:
        for item in items:
            worklist.upsert_step(conn, item)

    await store.write_tx(load)
    await store.aclose()


# -- servers ------------------------------------------------------------------------------
def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} not listening after {timeout} s")


class Server:
    def __init__(self, name: str, aet: str, argv: list[str], port: int) -> None:
        self.name, self.aet, self.port = name, aet, port
        env = {**os.environ, "TCP_NODELAY": "1"}  # DCMTK (and Orthanc's DCMTK) honour it
        self.proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True, env=env)
        wait_port(port, self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_server(name: str, store: Path, wl: Path, tmp: Path) -> Server:
    port = free_port()
    if name == "radbridge":
        argv = [sys.executable, __file__, "--serve", str(store), str(port)]
        return Server(name, "RADBRIDGE", argv, port)
    if name == "wlmscpfs":
        return Server(name, "WLAE", ["wlmscpfs", "-dfp", str(wl), str(port)], port)
    cfg = tmp / "orthanc.json"
    cfg.write_text(json.dumps({
        "Name": "BENCH", "StorageDirectory": str(tmp / "orthanc-db"),
        "IndexDirectory": str(tmp / "orthanc-db"), "HttpPort": free_port(),
        "RemoteAccessAllowed": False, "DicomAet": "ORTHANC", "DicomPort": port,
        "DicomCheckCalledAet": False, "DicomModalities": {"bench": [CALLING, "127.0.0.1", 1]},
        "Plugins": [str(PLUGIN)],
        "Worklists": {"Enable": True, "Database": str(wl / "WLAE"), "FilterIssuerAet": False},
    }))
    return Server(name, "ORTHANC", ["Orthanc", str(cfg)], port)


def serve_radbridge(store_path: str, port: int) -> None:
    """Server mode (subprocess): the RadBridge SCP on the engine's loop, until SIGTERM."""
    from channels.dicom_mwl.config import MWLSCPConfig
    from channels.dicom_mwl.scp import MWLSCP
    from engine.logging import configure_logging
    from engine.store.sqlite import SQLiteStore

    configure_logging("info", "json")

    async def main() -> None:
        store = SQLiteStore(store_path)
        await store.open()
        scp = MWLSCP("mwl", MWLSCPConfig(type="dicom_mwl_scp", host="127.0.0.1", port=port,
                                         max_responses=5000), store=store)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        task = asyncio.create_task(scp.run(lambda *a: None, lambda: None))  # type: ignore
        await stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.aclose()

    import uvloop

    uvloop.run(main())


# -- a lean SCU ---------------------------------------------------------------------------
def _item(kind: int, data: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(data)) + data


class SCU:
    """Just enough DICOM upper layer for C-FIND: associate, find, release."""

    def __init__(self, port: int, called: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.msg_id = 0
        pc = _item(0x20, b"\x01\x00\x00\x00" + _item(0x30, MWL_UID.encode())
                   + _item(0x40, IMPLICIT_LE.encode()))
        user = _item(0x50, _item(0x51, struct.pack(">I", 65536))
                     + _item(0x52, b"2.25.987654321"))
        body = (struct.pack(">HH", 1, 0) + called.encode().ljust(16) + CALLING.encode().ljust(16)
                + bytes(32) + _item(0x10, b"1.2.840.10008.3.1.1.1") + pc + user)
        self.sock.sendall(struct.pack(">BBI", 1, 0, len(body)) + body)
        kind, data = self._pdu()
        if kind != 2 or not _context_accepted(data):
            raise RuntimeError(f"association not accepted (PDU type {kind})")

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionError("closed by peer")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _pdu(self) -> tuple[int, bytes]:
        kind, _, length = struct.unpack(">BBI", self._read(6))
        return kind, self._read(length)

    def find(self, identifier: bytes) -> tuple[int, int, bytes]:
        """(pending responses, final status, last identifier)."""
        self.msg_id += 1
        cmd = encode_elements([(0x00000002, "UI", MWL_UID), (0x00000100, "US", 0x0020),
                               (0x00000110, "US", self.msg_id), (0x00000700, "US", 0),
                               (0x00000800, "US", 0x0000)])
        cmd = encode_elements([(0x00000000, "UL", len(cmd))]) + cmd
        pdus = b"".join(struct.pack(">BBI", 4, 0, len(p) + 4) + struct.pack(">I", len(p)) + p
                        for p in (b"\x01\x03" + cmd, b"\x01\x02" + identifier))
        self.sock.sendall(pdus)
        pending, command, dataset, last = 0, b"", b"", b""
        while True:
            kind, data = self._pdu()
            if kind != 4:
                raise RuntimeError(f"unexpected PDU type {kind}")
            pos = 0
            while pos < len(data):
                (length,) = struct.unpack_from(">I", data, pos)
                header, value = data[pos + 5], data[pos + 6:pos + 4 + length]
                pos += 4 + length
                if header & 1:
                    command += value
                    if header & 2:
                        status, has_data = _command_status(command)
                        if not has_data:
                            if status not in (0xFF00, 0xFF01):
                                return pending, status, last
                            command = b""
                else:
                    dataset += value
                    if header & 2:
                        pending, last, command, dataset = pending + 1, dataset, b"", b""

    def release(self) -> None:
        self.sock.sendall(struct.pack(">BBI", 5, 0, 4) + bytes(4))
        self._pdu()
        self.sock.close()


def _context_accepted(body: bytes) -> bool:
    pos = 68
    while pos + 4 <= len(body):
        kind, _, length = struct.unpack_from(">BBH", body, pos)
        if kind == 0x21:
            return body[pos + 6] == 0
        pos += 4 + length
    return False


def _command_status(command: bytes) -> tuple[int, bool]:
    pos, status, has_data = 0, -1, False
    while pos < len(command):
        group, elem, length = struct.unpack_from("<HHI", command, pos)
        value = command[pos + 8:pos + 8 + length]
        if (group, elem) == (0, 0x0900):
            status = struct.unpack("<H", value)[0]
        elif (group, elem) == (0, 0x0800):
            has_data = struct.unpack("<H", value)[0] != 0x0101
        pos += 8 + length
    return status, has_data


# -- queries and measurement -----------------------------------------------------------------
RETURN_TOP = ["AccessionNumber", "ReferringPhysicianName", "PatientName", "PatientID",
              "PatientBirthDate", "PatientSex", "StudyInstanceUID",
              "RequestedProcedureDescription", "RequestedProcedureID"]
RETURN_SPS = ["Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
              "ScheduledProcedureStepStartTime", "ScheduledPerformingPhysicianName",
              "ScheduledProcedureStepDescription", "ScheduledStationName",
              "ScheduledProcedureStepID"]


def identifier(top: dict[str, str], sps: dict[str, str]) -> bytes:
    item: dict[str, Any] = {k: top.get(k, "") for k in RETURN_TOP}
    item["ScheduledProcedureStepSequence"] = [{k: sps.get(k, "") for k in RETURN_SPS}]
    return encode_elements(elements(item))


def queries(n: int, today: dt.date) -> dict[str, Callable[[random.Random], tuple[bytes, bytes]]]:
    def accession(rng: random.Random) -> tuple[bytes, bytes]:
        acc = f"A{rng.randrange(n):09d}"
        return identifier({"AccessionNumber": acc}, {}), acc.encode()

    def station_today(rng: random.Random) -> tuple[bytes, bytes]:
        sps = {"ScheduledStationAETitle": f"ST{rng.randrange(STATIONS):02d}",
               "ScheduledProcedureStepStartDate": today.strftime("%Y%m%d")}
        return identifier({}, sps), sps["ScheduledStationAETitle"].encode()

    return {"accession": accession, "station+today": station_today}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(server: Server, query: Callable[[random.Random], tuple[bytes, bytes]], mode: str,
            duration: float, min_n: int, max_n: int) -> dict[str, Any]:
    rng = random.Random(7)
    kept = SCU(server.port, server.aet) if mode == "kept" else None
    latencies: list[float] = []
    matches: list[int] = []
    warm, warm_until = 2, time.perf_counter() + 0.5  # at least 2 queries and 0.5 s
    start = time.perf_counter()
    while True:
        ident, expect = query(rng)
        t0 = time.perf_counter()
        scu = kept or SCU(server.port, server.aet)
        pending, status, last = scu.find(ident)
        if kept is None:
            scu.release()
        elapsed = time.perf_counter() - t0
        if status != 0 or (pending and expect not in last):
            raise RuntimeError(f"{server.name}: status 0x{status:04X}, {pending} matches")
        if warm or time.perf_counter() < warm_until:
            warm = max(0, warm - 1)
            start = time.perf_counter()
            continue
        latencies.append(elapsed)
        matches.append(pending)
        spent = time.perf_counter() - start
        if len(latencies) >= max_n or (spent >= duration and len(latencies) >= min_n):
            break
    if kept is not None:
        kept.release()
    total = sum(latencies)
    return {"n": len(latencies), "matches": round(sum(matches) / len(matches), 1),
            "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "qps": len(latencies) / total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", nargs=2, metavar=("STORE", "PORT"), help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="1,000 and 10,000 steps only")
    ap.add_argument("--sizes", default="", help="comma-separated step counts")
    ap.add_argument("--peers", default="radbridge,wlmscpfs,orthanc")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("--workdir", default="/tmp/radbridge-mwl-bench")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    if args.serve:
        serve_radbridge(args.serve[0], int(args.serve[1]))
        return
    os.sched_setaffinity(0, {1})
    sizes = [int(s) for s in args.sizes.split(",") if s] or (
        [1000, 10000] if args.quick else [1000, 10000, 100000])
    peers = [p for p in args.peers.split(",") if p]
    if "orthanc" in peers and not PLUGIN.exists():
        print(f"Orthanc worklist plugin not found at {PLUGIN}: skipping Orthanc")
        peers.remove("orthanc")
    workdir = Path(args.workdir)
    results: list[dict[str, Any]] = []
    for n in sizes:
        store, wl, today = prepare(workdir, n)
        for name in peers:
            tmp = workdir / f"run-{name}-{n}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            server = start_server(name, store, wl, tmp)
            try:
                for qname, query in queries(n, today).items():
                    for mode in ("assoc", "kept"):
                        slow = name != "radbridge" and n >= 100000
                        row = measure(server, query, mode, args.duration,
                                      3 if slow else 20, 20 if slow else 5000)
                        row.update(steps=n, server=name, query=qname, mode=mode)
                        results.append(row)
                        print(json.dumps(row), flush=True)
            finally:
                server.stop()
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def report(results: list[dict[str, Any]]) -> None:
    print("\n| steps | query | mode | server | matches | p50 ms | p99 ms | queries/s | n |")
    print("|---:|---|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['steps']:,} | {r['query']} | {r['mode']} | {r['server']} | {r['matches']:g}"
              f" | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['qps']:.1f} | {r['n']} |")
    ours = {(r["steps"], r["query"], r["mode"]): r for r in results if r["server"] == "radbridge"}
    others = [r for r in results if r["server"] != "radbridge"]
    if ours and others:
        print("\n| steps | query | mode | peer | peer p50 ms | RadBridge p50 ms | speed-up |")
        print("|---:|---|---|---|---:|---:|---:|")
        for r in others:
            mine = ours.get((r["steps"], r["query"], r["mode"]))
            if mine:
                print(f"| {r['steps']:,} | {r['query']} | {r['mode']} | {r['server']} |"
                      f" {r['p50_ms']:.2f} | {mine['p50_ms']:.2f} |"
                      f" {r['p50_ms'] / mine['p50_ms']:.1f}x |")


if __name__ == "__main__":
    main()
