"""C-FIND SCU (study level) against a real Orthanc fed by DCMTK storescu, then reconciled."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from channels.pacs import PACSFindConfig, PACSQueryError, afind_studies, find_studies
from tests.channels.pacs.conftest import SCU_AE, Orthanc, make_instance, storescu
from transforms.reconcile import load_rules, reconcile

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
RULES = load_rules(Path(__file__).resolve().parents[3] / "mappings" / "reconcile.yml")
UID_A = "1.2.826.0.1.3680043.10.999.7001"
UID_B = "1.2.826.0.1.3680043.10.999.7002"


@pytest.fixture(scope="module")
def fed(orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory) -> Orthanc:
    d = tmp_path_factory.mktemp("dcm")
    common = {"patient_id": "PAT001", "name": "Doe^Jane", "birth": "19700101", "sex": "F",
              "modality": "CT"}
    files = [make_instance(d / f"a{i}.dcm", study_uid=UID_A, accession="ACC0001",
                           study_date="20240110", **common) for i in range(2)]
    files.append(make_instance(d / "b.dcm", study_uid=UID_B, accession="ACC0002X",
                               study_date="20240112", **common))
    files.append(make_instance(d / "old.dcm", study_uid="1.2.826.0.1.3680043.10.999.7003",
                               accession="OLD1", study_date="20230101", **common))
    storescu(orthanc, files)
    return orthanc


def config(peer: Orthanc, **over: Any) -> PACSFindConfig:
    return PACSFindConfig(host=peer.host, port=peer.port, called_ae=peer.ae,
                          calling_ae=SCU_AE, timeout=10, **over)


def test_find_returns_the_reconciliation_keys_for_the_date_window(fed: Orthanc) -> None:
    got = {s["StudyInstanceUID"]: s for s in find_studies(
        config(fed, window_days=2), dt.date(2024, 1, 9), dt.date(2024, 1, 13))}
    assert set(got) == {UID_A, UID_B}
    a = got[UID_A]
    assert (a["AccessionNumber"], a["PatientID"], a["PatientName"]) == (
        "ACC0001", "PAT001", "Doe^Jane")
    assert (a["PatientBirthDate"], a["PatientSex"], a["StudyDate"]) == (
        "19700101", "F", "20240110")
    assert a["ModalitiesInStudy"] == ["CT"]
    assert str(a["NumberOfStudyRelatedInstances"]) == "2"


def test_reconcile_flags_the_accession_typo_found_in_orthanc(fed: Orthanc) -> None:
    studies = find_studies(config(fed), dt.date(2024, 1, 10), dt.date(2024, 1, 12))
    orders = [{"sps_status": "SCHEDULED", "attributes": {
        "PatientID": "PAT001", "IssuerOfPatientID": "HOSPA", "PatientName": "DOE^JANE",
        "PatientBirthDate": "19700101", "PatientSex": "F", "AccessionNumber": acc,
        "StudyInstanceUID": uid, "ScheduledProcedureStepSequence": [{
            "ScheduledProcedureStepID": "S1", "Modality": "CT",
            "ScheduledProcedureStepStartDate": day}]}}
        for acc, uid, day in (("ACC0001", UID_A, "20240110"),
                              ("ACC0002", "1.2.826.0.1.3680043.10.999.8002", "20240112"))]
    found = reconcile(orders, studies, RULES, today="20240113")
    assert [(m.type, m.explanation) for m in found] == [(
        "accession_mismatch", "accession ACC0002X in PACS has no order; closest order "
        "ACC0002 for the same patient on the same day")]


async def test_async_find_runs_in_a_thread(fed: Orthanc) -> None:
    got = await afind_studies(config(fed), dt.date(2023, 1, 1), dt.date(2023, 1, 1))
    assert [s["AccessionNumber"] for s in got] == ["OLD1"]


def test_unknown_calling_ae_is_refused_with_a_clear_error(fed: Orthanc) -> None:
    cfg = PACSFindConfig(host=fed.host, port=fed.port, called_ae=fed.ae,
                         calling_ae="STRANGER", timeout=5)
    with pytest.raises(PACSQueryError, match=r"ORTHANC@127\.0\.0\.1"):
        find_studies(cfg, dt.date(2024, 1, 10), dt.date(2024, 1, 10))
