"""The study-level C-FIND asks for what the newer checks compare, and a real Orthanc answers.

Lives beside the reconciliation tests because it checks what ``transforms.reconcile`` reads
from ``channels.pacs.query``; the Orthanc fixture is the PACS tests' one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from channels.pacs.find import PACSFindConfig, find_studies
from channels.pacs.query import SEQUENCE_KEYS, study_identifier, study_record
from tests.channels.pacs import conftest as pacs
from tests.channels.pacs.conftest import SCU_AE, Orthanc, make_instance, storescu
from transforms.reconcile import load_rules, reconcile

RULES = load_rules(Path(__file__).resolve().parents[3] / "mappings" / "reconcile.yml")
UID = "1.2.826.0.1.3680043.10.999.7101"
orthanc = pacs.orthanc  # the PACS tests' fixture: a real Orthanc on free ports


def _code(value: str, scheme: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, "x"
    return item


def _request(accession: str) -> Dataset:
    item = Dataset()
    item.AccessionNumber, item.RequestedProcedureID = accession, f"RP{accession}"
    return item


def test_identifier_asks_for_physicians_and_sequences_as_empty_sequences() -> None:
    ds = study_identifier(dt.date(2024, 1, 1), dt.date(2024, 1, 1))
    assert ds.ReferringPhysicianName == "" and ds.RequestingPhysician == ""
    assert all(key in ds and len(ds[key].value) == 0 for key in SEQUENCE_KEYS)
    bare = study_identifier(dt.date(2024, 1, 1), dt.date(2024, 1, 1), sequences=False)
    assert not any(key in bare for key in SEQUENCE_KEYS)


def test_answer_sequences_become_lists_of_plain_dicts() -> None:
    ds = Dataset()
    ds.ReferringPhysicianName = "Welby^Marcus"
    ds.ProcedureCodeSequence = Sequence([_code("CTHEAD", "LOCAL")])
    ds.RequestAttributesSequence = Sequence([_request("A1"), _request("A2")])
    assert study_record(ds) == {
        "ReferringPhysicianName": "Welby^Marcus",
        "ProcedureCodeSequence": [{"CodeValue": "CTHEAD", "CodingSchemeDesignator": "LOCAL",
                                   "CodeMeaning": "x"}],
        "RequestAttributesSequence": [
            {"AccessionNumber": "A1", "RequestedProcedureID": "RPA1"},
            {"AccessionNumber": "A2", "RequestedProcedureID": "RPA2"}]}


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_orthanc_answers_them_at_study_level_and_reconcile_uses_them(
        orthanc: Orthanc, tmp_path: Path) -> None:
    path = make_instance(tmp_path / "a.dcm", study_uid=UID, accession="ACC7101",
                         patient_id="PAT7101", name="Doe^Jane", birth="19700101", sex="F",
                         study_date="20240110", modality="CT")
    ds = dcmread(path)
    ds.ReferringPhysicianName, ds.RequestingPhysician = "Kildare^James", "House^Greg"
    ds.ProcedureCodeSequence = Sequence([_code("CTCHEST", "LOCAL")])
    ds.RequestAttributesSequence = Sequence([_request("ACC7101"), _request("ACC7102")])
    ds.save_as(path)
    storescu(orthanc, [path])
    cfg = PACSFindConfig(host=orthanc.host, port=orthanc.port, called_ae=orthanc.ae,
                         calling_ae=SCU_AE, timeout=10)
    studies = find_studies(cfg, dt.date(2024, 1, 10), dt.date(2024, 1, 10))
    got = next(s for s in studies if s["StudyInstanceUID"] == UID)
    assert (got["ReferringPhysicianName"], got["RequestingPhysician"]) == (
        "Kildare^James", "House^Greg")
    assert got["ProcedureCodeSequence"][0]["CodeValue"] == "CTCHEST"
    assert [r["AccessionNumber"] for r in got["RequestAttributesSequence"]] == [
        "ACC7101", "ACC7102"]
    order = {"sps_status": "SCHEDULED", "attributes": {
        "PatientID": "PAT7101", "PatientName": "DOE^JANE", "PatientBirthDate": "19700101",
        "PatientSex": "F", "AccessionNumber": "ACC7101", "StudyInstanceUID": UID,
        "ReferringPhysicianName": "WELBY^MARCUS",
        "RequestedProcedureCodeSequence": [{"CodeValue": "CTHEAD",
                                            "CodingSchemeDesignator": "LOCAL"}],
        "ScheduledProcedureStepSequence": [{
            "ScheduledProcedureStepID": "S1", "Modality": "CT",
            "ScheduledProcedureStepStartDate": "20240110"}]}}
    found = reconcile([order], [got], RULES)
    assert sorted(m.type for m in found) == [
        "grouped_study", "physician_mismatch", "procedure_code_mismatch"]
