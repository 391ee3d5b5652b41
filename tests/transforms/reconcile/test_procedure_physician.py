"""Procedure code and physician checks: knobs, per-field keys, no PHI in explanations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from transforms.reconcile import ReconcileRules, load_rules, parse_rules, reconcile

RULES_PATH = Path(__file__).resolve().parents[3] / "mappings" / "reconcile.yml"
RULES = load_rules(RULES_PATH)


def rules_with(**changes: Any) -> ReconcileRules:
    doc = yaml.safe_load(RULES_PATH.read_text())
    for path, value in changes.items():
        node = doc
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return parse_rules(doc)


def order(**attrs: Any) -> dict[str, Any]:
    return {"sps_status": "SCHEDULED", "attributes": {
        "PatientID": "P1", "PatientName": "SECRET^NAME", "PatientBirthDate": "19800214",
        "PatientSex": "F", "AccessionNumber": "A1", "StudyInstanceUID": "1.2.1",
        "ScheduledProcedureStepSequence": [{"ScheduledProcedureStepID": "S1", "Modality": "CT",
                                            "ScheduledProcedureStepStartDate": "20240110"}],
        **attrs}}


def study(**attrs: Any) -> dict[str, Any]:
    return {"StudyInstanceUID": "1.2.1", "AccessionNumber": "A1", "PatientID": "P1",
            "PatientName": "SECRET^NAME", "PatientBirthDate": "19800214", "PatientSex": "F",
            "StudyDate": "20240110", "ModalitiesInStudy": ["CT"], **attrs}


def code(value: str, scheme: str = "") -> list[dict[str, str]]:
    return [{"CodeValue": value, "CodingSchemeDesignator": scheme}]


def test_procedure_codes_are_not_compared_when_the_type_is_off() -> None:
    pair = ([order(RequestedProcedureCodeSequence=code("CT1"))],
            [study(ProcedureCodeSequence=code("CT2"))])
    assert [m.type for m in reconcile(*pair, RULES)] == ["procedure_code_mismatch"]
    off = rules_with(types__procedure_code_mismatch__enabled=False)
    assert reconcile(*pair, off) == []


def test_scheme_aliases_and_the_scheme_knob() -> None:
    pair = ([order(RequestedProcedureCodeSequence=code("CT1", "99local"))],
            [study(ProcedureCodeSequence=code("CT1", "LOCAL"))])
    assert [m.type for m in reconcile(*pair, RULES)] == ["procedure_code_mismatch"]
    assert reconcile(*pair, rules_with(procedure_code__scheme_aliases={"99LOCAL": "local"})) == []
    assert reconcile(*pair, rules_with(procedure_code__compare_scheme=False)) == []


def test_physicians_are_not_compared_when_the_type_is_off() -> None:
    pair = ([order(ReferringPhysicianName="WELBY^MARCUS")],
            [study(ReferringPhysicianName="KILDARE^JAMES")])
    assert [m.type for m in reconcile(*pair, RULES)] == ["physician_mismatch"]
    assert reconcile(*pair, rules_with(types__physician_mismatch__enabled=False)) == []


def test_physician_field_pairs_come_from_the_rules() -> None:
    pair = ([order(RequestingPhysician="HOUSE^GREGORY")],
            [study(ReferringPhysicianName="CUDDY^LISA")])
    assert reconcile(*pair, RULES) == []
    cross = rules_with(physician__fields={"RequestingPhysician": "ReferringPhysicianName"})
    assert [m.type for m in reconcile(*pair, cross)] == ["physician_mismatch"]


def test_each_differing_physician_field_has_its_own_stable_key() -> None:
    pair = ([order(ReferringPhysicianName="WELBY^MARCUS", RequestingPhysician="HOUSE^GREG")],
            [study(ReferringPhysicianName="KILDARE^JAMES", RequestingPhysician="CUDDY^LISA")])
    keys = [m.key for m in reconcile(*pair, RULES)]
    assert keys == [m.key for m in reconcile(*pair, RULES)]
    assert keys == ["physician_mismatch|1.2.1|1.2.1/S1|ReferringPhysicianName",
                    "physician_mismatch|1.2.1|1.2.1/S1|RequestingPhysician"]


def test_new_types_keep_names_ids_and_birth_dates_out_of_explanations() -> None:
    orders = [order(ReferringPhysicianName="WELBY^MARCUS", PatientID="SURVIVORPID",
                    PatientName="MÜLLERSECRET^ANNA",
                    RequestedProcedureCodeSequence=code("CT1")),
              order(AccessionNumber="A2", StudyInstanceUID="1.2.1",
                    ScheduledProcedureStepSequence=[{"ScheduledProcedureStepID": "S2"}])]
    studies = [study(ReferringPhysicianName="KILDARE^JAMES", PatientID="MERGEDPID",
                     PatientName="M?LLERSECRET^ANNA", ProcedureCodeSequence=code("CT2")),
               study(StudyInstanceUID="1.2.1.9")]
    found = reconcile(orders, studies, RULES, merged={"MERGEDPID": "SURVIVORPID"})
    assert {"physician_mismatch", "procedure_code_mismatch", "merged_patient_residue",
            "encoding_defect", "grouped_study", "study_split"} <= {m.type for m in found}
    for m in found:
        for phi in ("WELBY", "KILDARE", "MARCUS", "SECRET", "ANNA", "SURVIVORPID", "MERGEDPID",
                    "19800214"):
            assert phi not in m.explanation, (m.type, m.explanation)
