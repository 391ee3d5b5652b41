"""The ``pacs_reconciler`` channel inside the running engine (``radbridge run`` as a
subprocess), no CLI-triggered pass: orders over MLLP (python-hl7), studies in a real Orthanc
(DCMTK storescu, REST for corrections), MPPS from a pynetdicom modality, ORU^R01
notifications to an MLLP sink, ``mismatch_flagged`` events on a real Mosquitto.

* the schedule flags a typo'd accession (one ORU, one event), keeps seeing it without
  re-sending, and resolves it once the PACS is corrected;
* an MPPS COMPLETED that reports more images than the PACS holds is checked after
  ``on_mpps.delay_s`` with the schedule off;
* a PACS that cannot be reached is reported in ``/health`` and the log, never fatal.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.channels.dicom_mpps.conftest import final_dataset, mpps_dataset
from tests.channels.pacs.conftest import (  # noqa: F401 - orthanc is a fixture
    SC_CLASS,
    SCU_AE,
    Orthanc,
    orthanc,
)
from tests.support.modality import mpps
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.peers import ROOT, EngineProcess, MLLPSink, engine_env, free_port, wait_until
from tests.support.reconcile_e2e import (
    ALICE,
    BOB,
    CORRECT_NW,
    TYPO_NW,
    UID,
    delete_study,
    mismatches,
    send_all,
    store_study,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CHANNEL = "pacs_check"
CONFIG = """
engine:
  data_dir: ${{RADBRIDGE_DATA}}
  http: {{host: 127.0.0.1, port: {http}, console: true}}
  log: {{level: info, format: json}}
  events: {{mqtt_url: "{mqtt_url}"}}
channels:
  ris_inbound:
    source: {{type: mllp_listener, host: 127.0.0.1, port: {mllp}}}
    destinations:
      - {{name: worklist, type: worklist, message_types: [ORM^O01, OMI^O23]}}
  modalities:
    source:
      type: dicom_mwl_scp
      host: 127.0.0.1
      port: {dicom}
      ae_title: RADBRIDGE
      mpps: {{enabled: true}}
  {channel}:
    source:
      type: pacs_reconciler
      pacs: {{host: 127.0.0.1, port: {pacs}, called_ae: ORTHANC, calling_ae: {scu_ae},
             timeout: 5}}
      rules: mappings/reconcile.yml
      schedule: {{every_s: {every_s}, days: 1, at_start_s: 0.5}}
      on_mpps: {{delay_s: 1, poll_s: 0.2}}
    destinations:
      - name: ris
        type: mllp_sender
        host: 127.0.0.1
        port: {ris}
        mapping: mappings/mismatch_to_oru.yaml
        retry: {{max_attempts: 5, initial_delay_s: 0.2, max_delay_s: 1}}
"""


class World:
    """The engine with the three channels, its RIS sink and (optionally) a broker."""

    def __init__(self, tmp: Path, *, pacs_port: int, every_s: float,
                 broker: Mosquitto | None) -> None:
        self.tmp = tmp
        self.ris = MLLPSink()
        self.broker = broker
        self.ports = {"http": free_port(), "mllp": free_port(), "dicom": free_port()}
        cfg = tmp / "channels.yaml"
        cfg.write_text(CONFIG.format(
            **self.ports, channel=CHANNEL, pacs=pacs_port, scu_ae=SCU_AE, every_s=every_s,
            ris=self.ris.port, mqtt_url=broker.url if broker else ""))
        shutil.copytree(ROOT / "mappings", tmp / "mappings")
        self.engine = EngineProcess(cfg, engine_env(tmp), self.ports["http"],
                                    tmp / "engine.log")
        self.engine.ports = self.ports  # type: ignore[attr-defined] # for send_all

    def start(self) -> World:
        self.engine.start()
        return self

    def close(self) -> None:
        self.engine.stop()
        if self.broker is not None:
            self.broker.stop()
        self.ris.close()

    # -- what the test observes ------------------------------------------------------
    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.engine.http_get("/health"))
        return body

    def reconciler(self) -> dict[str, Any]:
        status: dict[str, Any] = self.health()["listeners"][CHANNEL]
        return status

    def log_events(self, name: str) -> list[dict[str, Any]]:
        """The engine's JSON log lines whose event is ``name``."""
        out = []
        for line in self.engine.logs().splitlines():
            if f'"{name}"' not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == name:
                out.append(rec)
        return out

    def orus(self) -> list[dict[str, str]]:
        """The ORU^R01 notifications the RIS received, each as {OBX-3.1: OBX-5}."""
        return [obx(m) for m in list(self.ris.received) if b"ORU^R01" in m.split(b"\r", 1)[0]]

    def diagnose(self) -> str:
        return f"health={self.health()}\nlog tail:\n{self.engine.logs()[-3000:]}"


def obx(message: bytes) -> dict[str, str]:
    facts = {}
    for seg in message.decode("utf-8", errors="replace").split("\r"):
        fields = seg.split("|")
        if fields[0] == "OBX" and len(fields) > 5:
            facts[fields[3].split("^", 1)[0]] = fields[5]
    return facts


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    made: list[World] = []

    def make(*, pacs_port: int, every_s: float = 2, broker: bool = False) -> World:
        mqtt = Mosquitto(tmp_path / "broker").start() if broker else None
        w = World(tmp_path, pacs_port=pacs_port, every_s=every_s, broker=mqtt)
        made.append(w)
        return w.start()

    yield make
    for w in made:
        w.close()


def completed_with_images(count: int) -> Dataset:
    """The N-SET COMPLETED of ``final_dataset`` reporting ``count`` images in one series."""
    ds = final_dataset()
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.SeriesDescription = "SYNTHETIC"
    series.RetrieveAETitle = "ORTHANC"
    refs = []
    for _ in range(count):
        ref = Dataset()
        ref.ReferencedSOPClassUID = SC_CLASS
        ref.ReferencedSOPInstanceUID = generate_uid()
        refs.append(ref)
    series.ReferencedImageSequence = refs
    ds.PerformedSeriesSequence = [series]
    return ds


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto not installed")
def test_schedule_flags_a_typo_once_and_resolves_it_when_the_pacs_is_corrected(
    world: Callable[..., World], orthanc: Orthanc, tmp_path: Path  # noqa: F811
) -> None:
    dcm = tmp_path / "dcm"
    dcm.mkdir()
    w = world(pacs_port=orthanc.port, every_s=2, broker=True)
    assert w.broker is not None
    sub = Subscriber(w.broker, f"radbridge/mismatch_flagged/{CHANNEL}").start()
    try:
        send_all(w.engine, TYPO_NW)  # order ACC0002 for PAT10002, ACK AA
        store_study(orthanc, dcm, study_uid=f"{UID}92", accession="ACC0002X", modality="MR",
                    **BOB)

        def flagged() -> bool:
            return any(o.get("MISMATCH_TYPE") == "accession_mismatch" for o in w.orus()) \
                and any('"change":"new"' in x.replace(" ", "") for x in sub.lines())

        assert wait_until(flagged, 20, 0.2), w.diagnose()
        [oru] = [o for o in w.orus() if o.get("MISMATCH_TYPE") == "accession_mismatch"]
        assert oru["CHANGE"] == "new" and "ACC0002X" in oru["EXPLANATION"], oru
        mid = oru["MISMATCH_ID"]
        topic, payload = next(x for x in sub.lines() if '"mismatch_flagged"' in x).split(" ", 1)
        event = json.loads(payload)
        assert topic == f"radbridge/mismatch_flagged/{CHANNEL}"
        assert (event["kind"], event["change"], str(event["mismatch_id"])) == (
            "accession_mismatch", "new", mid), event

        [row] = [m for m in mismatches(w.engine) if str(m["id"]) == mid]
        assert (row["type"], row["status"]) == ("accession_mismatch", "open")
        assert row["details"]["study_accession"] == "ACC0002X", row
        status = w.reconciler()
        assert status["pacs"] == "reachable" and status["restarts"] == 0, status
        page = w.engine.http_get("/mismatches")  # the console page (http.console: true)
        assert page.startswith("<!DOCTYPE html>") and "accession_mismatch" in page, page[:500]
        assert "ACC0002X" in page and "<script" not in page

        # seen again by two more scheduled passes: not re-sent
        passes = len(w.log_events("reconcile_pass"))
        assert wait_until(lambda: len(w.log_events("reconcile_pass")) >= passes + 2, 10, 0.2)
        assert [o["MISMATCH_ID"] for o in w.orus()].count(mid) == 1

        # the PACS administrator links the study to its order (UID and accession)
        delete_study(orthanc, "ACC0002X")
        store_study(orthanc, dcm, study_uid=f"{UID}2", accession="ACC0002", modality="MR",
                    **BOB)

        def resolved() -> dict[str, Any] | None:
            rows = [m for m in mismatches(w.engine, "all") if str(m["id"]) == mid]
            return rows[0] if rows and rows[0]["status"] == "resolved" else None

        assert wait_until(lambda: resolved() is not None, 20, 0.3), w.diagnose()
        assert (resolved() or {}).get("who") == "reconciler"
        passes = len(w.log_events("reconcile_pass"))
        assert wait_until(lambda: len(w.log_events("reconcile_pass")) >= passes + 1, 10, 0.2)
        assert [o["MISMATCH_ID"] for o in w.orus()].count(mid) == 1, w.orus()
        still_open = [m for m in mismatches(w.engine)
                      if "ACC0002" in (m["details"].get("order_accession"),
                                       m["details"].get("study_accession"))]
        assert still_open == [], still_open
        triggers = {p["trigger"] for p in w.log_events("reconcile_pass")}
        assert triggers == {"schedule"}, triggers
    finally:
        sub.stop()


def test_mpps_completed_with_more_images_than_the_pacs_holds_is_flagged_without_schedule(
    world: Callable[..., World], orthanc: Orthanc, tmp_path: Path  # noqa: F811
) -> None:
    dcm = tmp_path / "dcm"
    dcm.mkdir()
    w = world(pacs_port=orthanc.port, every_s=0)
    send_all(w.engine, CORRECT_NW)  # order ACC0001, study ...1001.1, SPS0001, PAT10001
    store_study(orthanc, dcm, study_uid=f"{UID}1", accession="ACC0001", modality="CT",
                **ALICE)  # one image
    codes = mpps(w.ports["dicom"], ("create", mpps_dataset()), ("set", completed_with_images(3)),
                 uid=generate_uid())
    assert codes == [0, 0]

    def flagged() -> list[dict[str, Any]]:
        return [m for m in mismatches(w.engine) if m["type"] == "completeness_mismatch"]

    assert wait_until(lambda: bool(flagged()), 15, 0.3), w.diagnose()
    [row] = flagged()
    assert row["study_ref"] == f"{UID}1", row
    assert (row["details"]["order_value"], row["details"]["study_value"]) == ("3", "1"), row
    passes = w.log_events("reconcile_pass")
    assert passes and {p["trigger"] for p in passes} == {"mpps"}, passes
    status = w.reconciler()
    assert status["pacs"] == "reachable" and status["last_pass"]["trigger"] == "mpps", status

    def notified() -> list[str]:
        return [o["MISMATCH_ID"] for o in w.orus()
                if o.get("MISMATCH_TYPE") == "completeness_mismatch"]

    assert wait_until(lambda: bool(notified()), 10, 0.2), w.orus()
    assert notified() == [str(row["id"])]


def test_unreachable_pacs_is_reported_and_the_engine_keeps_working(
    world: Callable[..., World],
) -> None:
    w = world(pacs_port=free_port(), every_s=2)  # nothing listens there

    # tried again after every_s (retry_s is longer), reported in /health each time; the
    # log says it once (a PACS that stays down is not logged on every retry)
    assert wait_until(lambda: w.reconciler()["failures"] >= 2, 15, 0.2), w.diagnose()
    status = w.reconciler()
    assert status["pacs"].startswith("unreachable: "), status
    assert status["failures"] >= 2 and status["passes"] == 0, status
    send_all(w.engine, CORRECT_NW)  # the MLLP listener still ACKs (AA)
    health = w.health()
    assert health["status"] == "ready", health
    assert {n: c["restarts"] for n, c in health["listeners"].items()} == {
        "ris_inbound": 0, "modalities": 0, CHANNEL: 0}, health
    assert all(c["ready"] for c in health["listeners"].values()), health
    failed = w.log_events("reconcile_failed")
    assert failed, w.diagnose()
    assert failed[0]["channel"] == CHANNEL and failed[0]["trigger"] == "schedule", failed
    assert "Connection refused" in failed[0]["reason"], failed
    logs = w.engine.logs()
    assert "Traceback" not in logs and "channel_restarting" not in logs, logs[-3000:]
