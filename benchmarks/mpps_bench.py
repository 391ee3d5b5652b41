"""MPPS benchmark: N-CREATE + N-SET pairs per second, and N-SET COMPLETED → HL7 status ACKed.

Not a test. In one process, as the engine runs it: the DICOM SCP (worklist + MPPS) on a
loopback port over a SQLite store (``synchronous`` FULL by default, as shipped), one
``mllp_sender`` delivery worker draining the status queue into an MLLP sink (a thread that
ACKs at once), and the MPPS service waking that worker after each commit. Synthetic worklist
steps only (no real patient data). ``--clients`` pynetdicom SCUs each run ``--pairs`` pairs
(N-CREATE IN PROGRESS, N-SET COMPLETED) on one association each, with TCP_NODELAY as a
modality's C stack sets it (``--nagle``: pynetdicom's default, ~40 ms per exchange).

Reported: pairs/s (wall time of all pairs), and for each COMPLETED the time from just before
the SCU sends the N-SET to the moment the sink sends its ACK for that ORC-5 CM message
(p50/p99/max). Two status messages per pair are delivered (IP and CM).

    .venv/bin/python benchmarks/mpps_bench.py --pairs 500
    .venv/bin/python benchmarks/mpps_bench.py --pairs 300 --clients 4 --synchronous NORMAL
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydicom.uid import generate_uid  # noqa: E402
from pynetdicom import AE  # noqa: E402

from channels.dicom_mpps.service import MPPS_SOP_CLASS  # noqa: E402
from channels.dicom_mwl.scp import MWLSCP  # noqa: E402
from channels.mllp.sender import MLLPSender  # noqa: E402
from engine.config.models import RetryConfig  # noqa: E402
from engine.delivery import DeliveryWorker  # noqa: E402
from engine.dicom.scu import tcp_nodelay_handlers  # noqa: E402
from engine.metrics import Metrics  # noqa: E402
from engine.router import Route  # noqa: E402
from engine.store import worklist  # noqa: E402
from engine.store.sqlite import SQLiteStore  # noqa: E402
from tests.channels.dicom_mpps.conftest import final_dataset, mpps_dataset, wl_item  # noqa: E402
from tests.support.peers import MLLPSink, ack_for  # noqa: E402
from transforms import load_mapping  # noqa: E402


def _accession(message: bytes) -> tuple[str, str]:
    """(ORC-5, OBR-18) of a status message."""
    segs = {s[:3]: s.split("|") for s in message.decode().split("\r") if s}
    return segs["ORC"][5], segs["OBR"][18]


def run_client(port: int, index: int, pairs: int, set_sent: dict[str, float],
               nodelay: bool) -> None:
    ae = AE(ae_title=f"CT{index}")
    ae.add_requested_context(MPPS_SOP_CLASS)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADBRIDGE",
                         evt_handlers=tcp_nodelay_handlers() if nodelay else None)
    assert assoc.is_established
    try:
        for n in range(pairs):
            acc = f"B{index:02d}{n:06d}"
            uid = generate_uid()
            status, _ = assoc.send_n_create(
                mpps_dataset(accession=acc, sps_id=acc, study=f"1.2.3.{index}.{n}"),
                MPPS_SOP_CLASS, uid)
            assert int(status.Status) == 0, hex(int(status.Status))
            set_sent[acc] = time.perf_counter()
            status, _ = assoc.send_n_set(final_dataset(), MPPS_SOP_CLASS, uid)
            assert int(status.Status) == 0, hex(int(status.Status))
    finally:
        assoc.release()


async def bench(pairs: int, clients: int, synchronous: str, nodelay: bool = True
                ) -> dict[str, Any]:
    acked: dict[str, float] = {}
    lock = threading.Lock()

    def behaviour(message: bytes) -> bytes:
        status, acc = _accession(message)
        if status == "CM":
            with lock:
                acked[acc] = time.perf_counter()
        return ack_for(message)

    sink = MLLPSink(behaviour)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db", synchronous=synchronous)
        await store.open()
        items = [wl_item(accession=f"B{c:02d}{n:06d}", sps_id=f"B{c:02d}{n:06d}",
                         study=f"1.2.3.{c}.{n}") for c in range(clients) for n in range(pairs)]
        await store.write_tx(lambda conn: [worklist.upsert_step(conn, i) for i in items])
        sender_type = MLLPSender
        dcfg = sender_type.config_model.model_validate(
            {"name": "ris", "type": "mllp_sender", "host": "127.0.0.1", "port": sink.port})
        worker = DeliveryWorker("modalities/ris", sender_type("modalities/ris", dcfg), store,
                                Metrics(), retry=RetryConfig(), ordering="destination")
        wtask = asyncio.create_task(worker.run())
        route = Route("modalities/ris", [], "destination", "", worker.notify, name="ris",
                      mapping=load_mapping(ROOT / "mappings" / "mpps_to_order_status.yaml"))
        cfg = MWLSCP.config_model.model_validate(
            {"type": "dicom_mwl_scp", "host": "127.0.0.1", "port": 0, "max_associations": 64})
        scp = MWLSCP("modalities", cfg, store=store)
        scp.attach_routes([route])
        ready = asyncio.Event()

        async def no_dispatch(raw: bytes, peer: str) -> Any:
            raise AssertionError

        stask = asyncio.create_task(scp.run(no_dispatch, ready.set))
        await ready.wait()
        set_sent: dict[str, float] = {}
        t0 = time.perf_counter()
        await asyncio.gather(*(asyncio.to_thread(run_client, scp.bound_port or 0, c, pairs,
                                                 set_sent, nodelay) for c in range(clients)))
        wall = time.perf_counter() - t0
        total = pairs * clients
        for _ in range(6000):  # at most 60 s for the last ACKs
            if len(acked) >= total:
                break
            await asyncio.sleep(0.01)
        for t in (stask, wtask):
            t.cancel()
        await asyncio.gather(stask, wtask, return_exceptions=True)
        await store.aclose()
    sink.close()
    lat = sorted((acked[a] - set_sent[a]) * 1000 for a in acked if a in set_sent)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else lat * 99
    return {"pairs": total, "clients": clients, "synchronous": synchronous, "nodelay": nodelay,
            "pairs_per_s": round(total / wall, 1), "acked": len(lat),
            "set_to_ack_ms": {"p50": round(q[49], 2), "p99": round(q[98], 2),
                              "max": round(lat[-1], 2) if lat else None}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=300, help="pairs per client")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    ap.add_argument("--nagle", action="store_true",
                    help="leave Nagle on in the SCU (pynetdicom's default; ~40 ms per exchange)")
    args = ap.parse_args()
    from engine.logging import configure_logging

    configure_logging("warning")
    print(asyncio.run(bench(args.pairs, args.clients, args.synchronous, not args.nagle)))


if __name__ == "__main__":
    main()
