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
    delete_study,
    derive,
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
UID = "1.2.826.0.1.3680043.10.1001."   # the samples' Study Instance UID root


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


def order_ids(n: str, control_ids: dict[str, str]) -> dict[str, str]:
    """Replacements that turn sample order 0001 (orm_o01_*_v231) into order ``n``."""
    ids = {f"{p}0001": f"{p}{n}" for p in ("PLC", "FIL", "ACC", "RP", "SPS")}
    return {**control_ids, **ids, f"{UID}1^": f"{UID}{int(n)}^"}


# Correct: the CT head order of sample orm_o01_nw_v231, patient PAT10001.
CORRECT_NW = derive("orm_o01_nw_v231.hl7")
# Typo: the MR knee order of sample omi_o23_nw_v251 (ACC0002, PAT10002).
TYPO_NW = derive("omi_o23_nw_v251.hl7", encoding="utf-8")
# Renamed: the chest order of sample orm_o01_nw_latin1 (ACC0003, PAT10003, MÜLLER^JÖRG),
# then an ADT^A08 (sample adt_a08_v231 moved to that patient, same birth date and sex)
# giving the family name SCHMIDT. After the normalisation of mappings/reconcile.yml (3
# components, accents and case folded) MULLER^JORG vs SCHMIDT^JORG still differ: family.
RENAMED_NW = derive("orm_o01_nw_latin1.hl7")
RENAME_A08 = derive("adt_a08_v231.hl7", {
    "MSG00005": "MSG00053", "|P|2.3.1\r": "|P|2.3.1||||||8859/1\r",
    "PAT10001": "PAT10003", "TESTPATIENT^ALICIA^M": "SCHMIDT^JÖRG", "19800214|F": "19620730|M",
})
# Cancelled: a second CT head order for PAT10001 (ACC0004), NW then CA (sample
# orm_o01_ca_v231: ORC-1 CA, ORC-5 CA -> SPS status CANCELED).
CANCELLED_NW = derive("orm_o01_nw_v231.hl7", order_ids("0004", {"MSG00001": "MSG00041"}))
CANCELLED_CA = derive("orm_o01_ca_v231.hl7", order_ids("0004", {"MSG00003": "MSG00043"}))
# The orphan's order, entered in the RIS after the (emergency) exam: the correction.
ORPHAN_NW = derive("orm_o01_nw_v231.hl7", order_ids("9999", {
    "MSG00001": "MSG00099", "PAT10001": "PAT77777", "TESTPATIENT^ALICE^M": "NOBODY^NEMO",
    "19800214|F": "19600101|M",
}))

ALICE = {"patient_id": "PAT10001", "name": "TESTPATIENT^ALICE^M", "birth": "19800214",
         "sex": "F"}
BOB = {"patient_id": "PAT10002", "name": "EXAMPLE^BOB^J", "birth": "19751103", "sex": "M"}
JORG = {"patient_id": "PAT10003", "birth": "19620730", "sex": "M"}
NEMO = {"patient_id": "PAT77777", "name": "NOBODY^NEMO", "birth": "19600101", "sex": "M"}

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
