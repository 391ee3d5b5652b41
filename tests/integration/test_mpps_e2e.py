"""End to end: an order over MLLP, the modality's MPPS over DICOM, HL7 status to two MLLP
receivers (ORM^O01 v2.3.1 and OMI^O23 v2.5.1), events on a real Mosquitto broker.

The modality's view of the worklist is checked with DCMTK's findscu (a started step leaves
the worklist), and the receivers' and the broker's outages are shown to lose nothing.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hl7.client
import pytest
from pydicom.uid import generate_uid

from tests.channels.dicom_mpps.conftest import final_dataset, mpps_dataset
from tests.integration.conftest import sample
from tests.support.client import msa
from tests.support.modality import mpps
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.peers import ROOT, EngineProcess, MLLPSink, engine_env, free_port, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto not installed"),
    pytest.mark.skipif(shutil.which("findscu") is None, reason="DCMTK findscu not installed"),
]

CONFIG = """
engine:
  data_dir: ${{RADBRIDGE_DATA}}
  http: {{host: 127.0.0.1, port: {http}}}
  events: {{mqtt_url: "mqtt://127.0.0.1:{mqtt}"}}
channels:
  ris:
    source: {{type: mllp_listener, host: 127.0.0.1, port: {mllp}}}
    destinations:
      - {{name: worklist, type: worklist, message_types: [ORM^O01, OMI^O23]}}
  modalities:
    source: {{type: dicom_mwl_scp, host: 127.0.0.1, port: {dicom}, ae_title: RADBRIDGE}}
    destinations:
      - name: ris
        type: mllp_sender
        host: 127.0.0.1
        port: {ris}
        mapping: mappings/mpps_to_order_status.yaml
      - name: ehr
        type: mllp_sender
        host: 127.0.0.1
        port: {ehr}
        mapping: mappings/mpps_to_omi_status.yaml
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ris, ehr = MLLPSink(), MLLPSink()
    broker = Mosquitto(tmp_path / "broker", persistent=True)
    ports = {"http": free_port(), "mllp": free_port(), "dicom": free_port(),
             "ris": ris.port, "ehr": ehr.port, "mqtt": broker.port}
    cfg = tmp_path / "channels.yaml"
    cfg.write_text(CONFIG.format(**ports))
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    eng = EngineProcess(cfg, engine_env(tmp_path), ports["http"], tmp_path / "engine.log")
    try:
        yield {"engine": eng, "ris": ris, "ehr": ehr, "broker": broker, "ports": ports,
               "tmp": tmp_path}
    finally:
        eng.stop()
        broker.stop()
        ris.close()
        ehr.close()


def worklist_accessions(world: dict[str, Any]) -> list[str]:
    """What a modality sees: DCMTK findscu -W against the engine's worklist SCP."""
    import subprocess

    from pydicom import dcmread

    out = Path(world["tmp"]) / f"find{time.monotonic_ns()}"
    out.mkdir()
    done = subprocess.run(
        ["findscu", "-W", "-aet", "CT1", "-aec", "RADBRIDGE", "-X", "127.0.0.1",
         str(world["ports"]["dicom"]), "-k", "AccessionNumber", "-k", "PatientName",
         "-k", "ScheduledProcedureStepSequence[0].Modality"],
        cwd=out, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return [str(dcmread(f).AccessionNumber) for f in sorted(out.glob("rsp*.dcm"))]


def segment(message: bytes, name: str) -> list[str]:
    return next(s for s in message.decode().split("\r") if s.startswith(name)).split("|")


def test_order_then_mpps_gives_hl7_status_to_both_receivers_and_events(
    world: dict[str, Any],
) -> None:
    world["broker"].start()
    sub = Subscriber(world["broker"], "radbridge/#").start()
    world["engine"].start()
    with hl7.client.MLLPClient("127.0.0.1", world["ports"]["mllp"]) as c:
        assert msa(c.send_message(sample("orm_o01_nw_v231.hl7")))[1] == "AA"
    assert worklist_accessions(world) == ["ACC0001"]  # the modality sees the order
    uid = generate_uid()
    assert mpps(world["ports"]["dicom"], ("create", mpps_dataset()), uid=uid) == [0]
    assert worklist_accessions(world) == []  # IN PROGRESS: the step left the worklist
    assert wait_until(lambda: len(world["ris"].received) == 1, 15)
    assert segment(world["ris"].received[0], "ORC")[5] == "IP"
    assert mpps(world["ports"]["dicom"], ("set", final_dataset()), uid=uid) == [0]
    ris, ehr = world["ris"], world["ehr"]
    assert wait_until(lambda: len(ris.received) == 2 and len(ehr.received) == 2, 15)
    assert [segment(m, "ORC")[5] for m in ris.received] == ["IP", "CM"]
    assert segment(ris.received[1], "MSH")[8] == "ORM^O01"
    assert segment(ehr.received[1], "MSH")[8] == "OMI^O23^OMI_O23"
    assert segment(ehr.received[1], "IPC")[1] == "ACC0001"
    assert wait_until(lambda: any("procedure_completed" in x for x in sub.lines()), 15)
    sub.stop()
    topics = [x.split(" ", 1)[0] for x in sub.lines()]
    assert "radbridge/order_received/ris" in topics
    assert "radbridge/worklist_entry_created/ris" in topics
    assert "radbridge/procedure_started/modalities" in topics
    assert "radbridge/procedure_completed/modalities" in topics
    assert "TESTPATIENT" not in "\n".join(sub.lines())


def test_broker_down_never_blocks_orders_or_mpps_and_events_follow_when_it_is_back(
    world: dict[str, Any],
) -> None:
    broker = world["broker"].start()  # a durable subscriber, then the broker goes down
    sub = Subscriber(broker, "radbridge/#", durable=True).start()
    broker.stop()
    eng: EngineProcess = world["engine"].start()
    started = time.monotonic()
    with hl7.client.MLLPClient("127.0.0.1", world["ports"]["mllp"]) as c:
        assert msa(c.send_message(sample("orm_o01_nw_v231.hl7")))[1] == "AA"
    assert mpps(world["ports"]["dicom"], ("create", mpps_dataset()),
                ("set", final_dataset())) == [0, 0]
    assert time.monotonic() - started < 5
    assert wait_until(lambda: len(world["ris"].received) == 2, 15)  # HL7 unaffected
    assert sub.lines() == []
    broker.start()  # back: the queued events are published, the subscriber reconnects
    assert wait_until(lambda: any("procedure_completed" in x for x in sub.lines()), 90)
    sub.stop()
    kinds = [json.loads(x.split(" ", 1)[1])["event"] for x in sub.lines()]
    assert kinds.count("procedure_completed") == 1
    assert "order_received" in kinds
    assert eng.healthy()


def test_receiver_down_then_back_gets_every_status_in_order(world: dict[str, Any]) -> None:
    world["broker"].start()
    ris_port = world["ports"]["ris"]
    world["ris"].close()  # the RIS is down while the exams happen
    eng: EngineProcess = world["engine"].start()
    orders = [sample("orm_o01_nw_v231.hl7"), sample("omi_o23_nw_v251.hl7")]
    with hl7.client.MLLPClient("127.0.0.1", world["ports"]["mllp"]) as c:
        for order in orders:
            assert msa(c.send_message(order))[1] == "AA"
    dicom = world["ports"]["dicom"]
    first, second = generate_uid(), generate_uid()
    assert mpps(dicom, ("create", mpps_dataset()), uid=first) == [0]
    assert mpps(dicom, ("create", mpps_dataset(accession="ACC0002", sps_id="SPS0002",
                                               study="1.2.826.0.1.3680043.10.1001.2")),
                uid=second) == [0]
    assert mpps(dicom, ("set", final_dataset()), uid=first) == [0]
    assert mpps(dicom, ("set", final_dataset("DISCONTINUED", reason="110514")),
                uid=second) == [0]
    assert wait_until(lambda: len(world["ehr"].received) == 4, 15)  # the EHR was up
    assert wait_until(lambda: "delivery_retry_scheduled" in eng.logs(), 15)
    back = MLLPSink(port=ris_port)
    world["ris"] = back
    assert wait_until(lambda: len(back.received) == 4, 30)
    statuses = [(segment(m, "OBR")[18] if len(segment(m, "OBR")) > 18 else "",
                 segment(m, "ORC")[5]) for m in back.received]
    assert [s for _, s in statuses] == ["IP", "IP", "CM", "DC"], statuses
