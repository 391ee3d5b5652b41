"""Orders over MLLP become a worklist that DCMTK findscu -W (a modality we did not write)
sees; a cancel removes the entry; an A08 changes the name returned; policies answer AE."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hl7.client
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.integration.conftest import sample
from tests.support.client import msa, segment
from tests.support.peers import ROOT, EngineProcess, engine_env, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("findscu") is None, reason="DCMTK findscu not installed"),
]

CONFIG = """
engine:
  data_dir: ${{RADBRIDGE_DATA}}
  http: {{host: 127.0.0.1, port: {http}}}
channels:
  ris:
    source: {{type: mllp_listener, host: 127.0.0.1, port: {mllp}}}
    destinations:
      - name: worklist
        type: worklist
        message_types: [ORM^O01, OMI^O23, ADT^A08, ADT^A40]
        order_params: {{length_policy: {policy}}}
  modalities:
    source: {{type: dicom_mwl_scp, host: 127.0.0.1, port: {dicom}, ae_title: RADBRIDGE}}
"""


@pytest.fixture
def engine(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EngineProcess]:
    policy = getattr(request, "param", "reject")
    ports = {"http": free_port(), "mllp": free_port(), "dicom": free_port()}
    cfg = tmp_path / "channels.yaml"
    cfg.write_text(CONFIG.format(policy=policy, **ports))
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    shutil.copytree(ROOT / "tests" / "fixtures", tmp_path / "tests" / "fixtures")
    eng = EngineProcess(cfg, engine_env(tmp_path), ports["http"], tmp_path / "engine.log")
    eng.ports = ports  # type: ignore[attr-defined]
    eng.start()
    yield eng
    eng.stop()


def send(eng: EngineProcess, *names: str) -> list[bytes]:
    acks = []
    with hl7.client.MLLPClient("127.0.0.1", eng.ports["mllp"]) as c:  # type: ignore[attr-defined]
        for name in names:
            acks.append(c.send_message(sample(name)))
    return acks


def findscu(eng: EngineProcess, tmp: Path, *keys: str, tool: str = "dcmtk") -> list[Dataset]:
    out = Path(tmp) / f"q{len(list(Path(tmp).glob('q*')))}"
    out.mkdir()
    base = ["-k", "PatientName", "-k", "PatientID", "-k", "AccessionNumber",
            "-k", "ScheduledProcedureStepSequence[0].Modality",
            "-k", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle"]
    port = str(eng.ports["dicom"])  # type: ignore[attr-defined]
    args = [a for k in keys for a in ("-k", k)]
    if tool == "dcmtk":
        cmd = ["findscu", "-W", "-aet", "MODALITY", "-aec", "RADBRIDGE", "-X",
               "127.0.0.1", port, *base, *args]
    else:
        cmd = [sys.executable, "-m", "pynetdicom", "findscu", "-W", "-aet", "MODALITY",
               "-aec", "RADBRIDGE", "-w", "127.0.0.1", port, *base, *args]
    done = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return [dcmread(f) for f in sorted(out.glob("rsp*.dcm"))]


def test_order_cancel_and_patient_update_as_seen_by_findscu(
    engine: EngineProcess, tmp_path: Path
) -> None:
    acks = send(engine, "orm_o01_nw_v231.hl7", "omi_o23_nw_v251.hl7")
    assert [msa(a)[1] for a in acks] == ["AA", "AA"]
    for tool in ("dcmtk", "pynetdicom"):
        found = findscu(engine, tmp_path, "ScheduledProcedureStepSequence[0].Modality=CT",
                        tool=tool)
        assert [str(d.AccessionNumber) for d in found] == ["ACC0001"], tool
        assert str(found[0].PatientName) == "TESTPATIENT^ALICE^M"
        step = found[0].ScheduledProcedureStepSequence[0]
        assert step.Modality == "CT" and step.ScheduledStationAETitle == "CT1AE"
    mr = findscu(engine, tmp_path, "AccessionNumber=ACC0002")
    assert [str(d.PatientID) for d in mr] == ["PAT10002"]

    # A08 renames the patient: the next query returns the new name
    assert msa(send(engine, "adt_a08_v231.hl7")[0])[1] == "AA"
    found = findscu(engine, tmp_path, "AccessionNumber=ACC0001")
    assert str(found[0].PatientName) == "TESTPATIENT^ALICIA^M"
    # case- and accent-insensitive name matching
    assert findscu(engine, tmp_path, "PatientName=testpatient*")

    # XO replaces, CA cancels: the entry leaves the worklist
    assert msa(send(engine, "orm_o01_xo_v231.hl7")[0])[1] == "AA"
    found = findscu(engine, tmp_path, "AccessionNumber=ACC0001",
                    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime")
    assert found[0].ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime \
        .startswith("1030")
    assert msa(send(engine, "orm_o01_ca_v231.hl7")[0])[1] == "AA"
    assert findscu(engine, tmp_path, "AccessionNumber=ACC0001") == []
    # ... but is still there for a query that asks for the status
    cancelled = findscu(engine, tmp_path, "AccessionNumber=ACC0001",
                        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus=CANCELED")
    assert len(cancelled) == 1

    listing = engine.cli("worklist", "--status", "CANCELED")
    assert listing.returncode == 0, listing.stderr
    assert "ACC0001" in listing.stdout
    shown = engine.cli("worklist", "show", "ACC0001").stdout
    history = shown.split("--- HL7 messages ---")[1]
    assert history.count("ORM^O01") == 3 and "ADT^A08" in history  # NW, A08, XO, CA


def test_policies_answer_ae_with_reason_and_location(engine: EngineProcess) -> None:
    missing, overlong = send(engine, "missing_accession.hl7", "overlong_accession.hl7")
    assert msa(missing)[1] == "AE" and b"accession" in missing.lower()
    assert "OBR^1^18" in segment(missing, "ERR")
    assert msa(overlong)[1] == "AE" and b"16" in overlong
    shown = engine.cli("messages", "--status", "rejected")
    assert shown.stdout.count("ORM^O01") == 2


def test_update_under_another_patient_is_refused(engine: EngineProcess) -> None:
    assert msa(send(engine, "orm_o01_nw_v231.hl7")[0])[1] == "AA"
    other = sample("orm_o01_xo_v231.hl7").replace(b"PAT10001", b"PAT55555")
    with hl7.client.MLLPClient("127.0.0.1", engine.ports["mllp"]) as c:  # type: ignore[attr-defined]
        ack = c.send_message(other)
    assert msa(ack)[1] == "AE"
    assert b"different patient" in ack and b"205" in ack


@pytest.mark.parametrize("engine", ["truncate"], indirect=True)
def test_truncate_policy_keeps_the_order_with_a_warning(engine: EngineProcess,
                                                         tmp_path: Path) -> None:
    assert msa(send(engine, "overlong_accession.hl7")[0])[1] == "AA"
    found = findscu(engine, tmp_path, "AccessionNumber=ACCESSIONNUMBERT*")
    assert [str(d.AccessionNumber) for d in found] == ["ACCESSIONNUMBERT"]
    shown = engine.cli("messages", "show", "1").stdout
    assert "warning:" in shown and "16" in shown
