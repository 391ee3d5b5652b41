"""Reconciliation end to end: orders over MLLP into the worklist, studies in a real Orthanc
(sent with DCMTK storescu), `radbridge reconcile` queries Orthanc over DICOM and flags
exactly the expected mismatches; once the PACS is corrected, the flags resolve."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import hl7.client
import pytest
from pydicom import dcmread

from tests.channels.pacs.conftest import (  # noqa: F401 - orthanc is a fixture
    SCU_AE,
    Orthanc,
    make_instance,
    orthanc,
    storescu,
)
from tests.integration.conftest import sample
from tests.support.client import msa
from tests.support.peers import ROOT, EngineProcess, engine_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CONFIG = """
engine:
  data_dir: ${{RADBRIDGE_DATA}}
  http: {{host: 127.0.0.1, port: {http}}}
channels:
  ris:
    source: {{type: mllp_listener, host: 127.0.0.1, port: {mllp}}}
    destinations:
      - {{name: worklist, type: worklist, message_types: [ORM^O01, OMI^O23]}}
"""
TODAY = dt.date.today().strftime("%Y%m%d")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    ports = {"http": free_port(), "mllp": free_port()}
    cfg = tmp_path / "channels.yaml"
    cfg.write_text(CONFIG.format(**ports))
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    eng = EngineProcess(cfg, engine_env(tmp_path), ports["http"], tmp_path / "engine.log")
    eng.ports = ports  # type: ignore[attr-defined]
    eng.start()
    yield eng
    eng.stop()


def _delete_study(peer: Orthanc, accession: str) -> None:
    base = f"http://127.0.0.1:{peer.http_port}"
    query = json.dumps({"Level": "Study", "Query": {"AccessionNumber": accession}}).encode()
    with urllib.request.urlopen(urllib.request.Request(
            f"{base}/tools/find", data=query, method="POST"), timeout=10) as r:
        ids = json.loads(r.read())
    for sid in ids:
        urllib.request.urlopen(urllib.request.Request(
            f"{base}/studies/{sid}", method="DELETE"), timeout=10).close()


def test_reconcile_flags_typo_and_orphan_then_resolves_when_corrected(
    engine: EngineProcess, orthanc: Orthanc, tmp_path: Path  # noqa: F811
) -> None:
    with hl7.client.MLLPClient("127.0.0.1", engine.ports["mllp"]) as c:  # type: ignore[attr-defined]
        for name in ("orm_o01_nw_v231.hl7", "omi_o23_nw_v251.hl7"):
            text = sample(name).replace(b"20261122", TODAY.encode())
            assert msa(c.send_message(text))[1] == "AA"
    d = tmp_path / "dcm"
    d.mkdir()
    files = [
        # correct: the CT order's study, same UID, same demographics
        make_instance(d / "ok.dcm", study_uid="1.2.826.0.1.3680043.10.1001.1",
                      accession="ACC0001", patient_id="PAT10001", name="TESTPATIENT^ALICE^M",
                      birth="19800214", sex="F", study_date=TODAY, modality="CT"),
        # typo'd accession at the modality, its own UID
        make_instance(d / "typo.dcm", study_uid="1.2.826.0.1.3680043.10.1001.92",
                      accession="ACC0002X", patient_id="PAT10002", name="EXAMPLE^BOB^J",
                      birth="19751103", sex="M", study_date=TODAY, modality="MR"),
        # no order at all
        make_instance(d / "orphan.dcm", study_uid="1.2.826.0.1.3680043.10.1001.99",
                      accession="ACC9999", patient_id="PAT77777", name="NOBODY^NEMO",
                      birth="19600101", sex="M", study_date=TODAY, modality="CT"),
    ]
    for f in files:  # the hospital's issuer, as the orders carry it
        ds = dcmread(f)
        ds.IssuerOfPatientID = "GENHOSP"
        ds.save_as(f, enforce_file_format=True)
    storescu(orthanc, files)
    args = ["reconcile", "--days", "2", "--pacs-host", "127.0.0.1",
            "--pacs-port", str(orthanc.port), "--pacs-aet", orthanc.ae]
    env_calling = {"RADBRIDGE_PACS_CALLING_AET": SCU_AE}
    engine.env.update(env_calling)
    out = engine.cli(*args)
    assert out.returncode == 0, out.stderr
    flagged = json.loads(engine.cli("mismatches", "--json").stdout)
    types = sorted((m["type"], m["explanation"]) for m in flagged)
    assert types == [
        ("accession_mismatch", "accession ACC0002X in PACS has no order; closest order ACC0002"
                               " for the same patient on the same day"),
        ("orphan_study", "study …3.10.1001.99 (accession ACC9999) in PACS has no order"),
    ], types  # and nothing for the correct study
    # the PACS administrator fixes the PACS: the flags resolve on the next pass
    _delete_study(orthanc, "ACC0002X")
    _delete_study(orthanc, "ACC9999")
    assert engine.cli(*args).returncode == 0
    still_open = json.loads(engine.cli("mismatches", "--json").stdout)
    assert not any("ACC0002X" in m["explanation"] or "ACC9999" in m["explanation"]
                   for m in still_open), still_open
    resolved = json.loads(engine.cli("mismatches", "--status", "resolved", "--json").stdout)
    assert len(resolved) >= 2
