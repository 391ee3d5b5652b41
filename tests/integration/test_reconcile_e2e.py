"""Reconciliation end to end: orders and patient updates over MLLP into the worklist, studies
in a real Orthanc (sent with DCMTK storescu), `radbridge reconcile` queries Orthanc over
DICOM and flags exactly the expected mismatches; once the data is corrected (in the PACS
through Orthanc's REST API, in the RIS with corrective HL7), every flag resolves."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.channels.pacs.conftest import SCU_AE, Orthanc, orthanc  # noqa: F401 - a fixture
from tests.support.peers import ROOT, EngineProcess, engine_env, free_port
from tests.support.reconcile_e2e import (
    ALICE,
    BOB,
    CANCELLED_CA,
    CANCELLED_NW,
    CORRECT_NW,
    JORG,
    NEMO,
    ORPHAN_NW,
    RENAME_A08,
    RENAMED_NW,
    TYPO_NW,
    UID,
    delete_study,
    flag_pairs,
    mismatches,
    reconcile,
    send_all,
    store_study,
    worklist_item,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CONFIG = """
engine:
  data_dir: ${{RADBRIDGE_DATA}}
  http: {{host: 127.0.0.1, port: {http}}}
channels:
  ris:
    source: {{type: mllp_listener, host: 127.0.0.1, port: {mllp}}}
    destinations:
      - {{name: worklist, type: worklist, message_types: [ORM^O01, OMI^O23, ADT^A08]}}
"""
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


EXPECTED = {
    ("accession_mismatch", "ACC0002X"),
    ("name_mismatch", "ACC0003"),
    ("orphan_study", "ACC9999"),
    ("cancelled_order_images", "ACC0004"),
}


def test_reconcile_flags_exactly_the_five_study_scenario_then_resolves_when_corrected(
    engine: EngineProcess, orthanc: Orthanc, tmp_path: Path  # noqa: F811
) -> None:
    """Five studies in the PACS, one of each kind:

    * ACC0001: correct (the order's UID, accession and demographics): no flag.
    * ACC0002X: the accession typed by hand at the modality (no worklist, so the modality
      made its own Study Instance UID): paired with order ACC0002 as the same patient's
      only candidate that day -> ``accession_mismatch``.
    * ACC0003: the patient was renamed after the exam. This is the real-world order of
      events: the modality took the name from the worklist when it acquired the study,
      then registration corrected the patient's family name (ADT^A08 over MLLP), so the
      worklist has the new name and the PACS the old one -> ``name_mismatch``. (The
      reverse, a PACS newer than the worklist, needs an ADT feed to the PACS that the
      engine does not get.)
    * ACC9999: no order at all (an emergency exam) -> ``orphan_study``.
    * ACC0004: a duplicate order cancelled (NW then CA over MLLP) after the modality had
      fetched its worklist; the images still arrived -> ``cancelled_order_images``.

    Corrections: the PACS administrator replaces the typo'd study with a copy carrying
    the order's accession and Study Instance UID (keeping the modality's UID would rightly
    leave a ``study_uid_mismatch``), applies the new name to the renamed patient's study
    and removes the cancelled order's images;
    the RIS enters the missing order for the emergency exam (ORM NW over MLLP). The next
    pass resolves every flag (by the reconciler) and finds nothing new.
    """
    dcm = tmp_path / "dcm"
    dcm.mkdir()
    send_all(engine, CORRECT_NW, TYPO_NW, RENAMED_NW, CANCELLED_NW, CANCELLED_CA)
    cancelled = worklist_item(engine, "ACC0004")["ScheduledProcedureStepSequence"][0]
    assert cancelled["ScheduledProcedureStepStatus"] == "CANCELED"
    assert worklist_item(engine, "ACC0003")["PatientName"] == "MÜLLER^JÖRG"

    store_study(orthanc, dcm, study_uid=f"{UID}1", accession="ACC0001", modality="CT",
                **ALICE)
    store_study(orthanc, dcm, study_uid=f"{UID}92", accession="ACC0002X", modality="MR",
                **BOB)
    store_study(orthanc, dcm, study_uid=f"{UID}3", accession="ACC0003", modality="CR",
                name="MÜLLER^JÖRG", **JORG)
    store_study(orthanc, dcm, study_uid=f"{UID}9999", accession="ACC9999", modality="CT",
                **NEMO)
    store_study(orthanc, dcm, study_uid=f"{UID}4", accession="ACC0004", modality="CT",
                **ALICE)
    send_all(engine, RENAME_A08)  # after the exam
    assert worklist_item(engine, "ACC0003")["PatientName"] == "SCHMIDT^JÖRG"

    reconcile(engine, orthanc, SCU_AE)
    first = mismatches(engine)
    assert flag_pairs(first) == EXPECTED, [(m["type"], m["explanation"]) for m in first]
    assert len(first) == len(EXPECTED), first  # one flag each, no duplicates
    assert not [m for m in first if "ACC0001" in (m["details"].get("order_accession"),
                                                  m["details"].get("study_accession"))]
    name = next(m for m in first if m["type"] == "name_mismatch")
    assert name["details"]["fields"] == "family", name

    delete_study(orthanc, "ACC0002X")
    store_study(orthanc, dcm, study_uid=f"{UID}2", accession="ACC0002", modality="MR",
                **BOB)
    delete_study(orthanc, "ACC0003")
    store_study(orthanc, dcm, study_uid=f"{UID}3", accession="ACC0003", modality="CR",
                name="SCHMIDT^JÖRG", **JORG)
    delete_study(orthanc, "ACC0004")
    send_all(engine, ORPHAN_NW)

    reconcile(engine, orthanc, SCU_AE)
    assert mismatches(engine) == []
    after = mismatches(engine, "all")
    assert {m["key"] for m in after} == {m["key"] for m in first}  # nothing new
    assert {(m["status"], m["who"]) for m in after} == {("resolved", "reconciler")}, after
