"""Pairing and the reconcile pass: indexes, candidates, de-duplication, order independence."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.reconcile import ReconcileRulesError, load_rules, parse_rules, reconcile
from transforms.reconcile.pairing import OrderIndex, pair
from transforms.reconcile.records import order_view, study_view

RULES_PATH = Path(__file__).resolve().parents[3] / "mappings" / "reconcile.yml"
RULES = load_rules(RULES_PATH)


def order(i: int, *, pid: str | None = None, day: str = "20240110", mod: str = "CT"
          ) -> dict[str, Any]:
    return {"sps_status": "SCHEDULED", "attributes": {
        "PatientID": pid or f"P{i}", "PatientName": f"PAT^N{i}", "PatientBirthDate": "19800101",
        "PatientSex": "F", "AccessionNumber": f"A{i}", "StudyInstanceUID": f"1.2.3.{i}",
        "ScheduledProcedureStepSequence": [{"ScheduledProcedureStepID": f"S{i}", "Modality": mod,
                                            "ScheduledProcedureStepStartDate": day}]}}


def study_of(o: dict[str, Any]) -> dict[str, Any]:
    a = o["attributes"]
    sps = a["ScheduledProcedureStepSequence"][0]
    return {k: a[k] for k in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                              "AccessionNumber", "StudyInstanceUID")} | {
        "StudyDate": sps["ScheduledProcedureStepStartDate"], "ModalitiesInStudy": [sps["Modality"]],
        "NumberOfStudyRelatedInstances": "1"}


def test_uid_pairing_wins_over_accession() -> None:
    o1, o2 = order(1), order(2)
    s = study_of(o1) | {"AccessionNumber": "A2"}
    pairs, _ = pair([study_view(s, RULES)], OrderIndex([order_view(o, RULES)
                                                        for o in (o1, o2)]), RULES)
    assert pairs[0].by == "study_instance_uid"
    assert [o.ref for o in pairs[0].orders] == ["1.2.3.1/S1"]


def test_accession_with_a_different_issuer_does_not_pair() -> None:
    o = order(1)
    o["attributes"]["IssuerOfAccessionNumberSequence"] = [{"LocalNamespaceEntityID": "RIS1"}]
    s = study_of(o) | {"StudyInstanceUID": "9.9", "IssuerOfAccessionNumber": "RIS2"}
    found = {m.type for m in reconcile([o], [s], RULES)}
    assert "study_uid_mismatch" not in found
    assert "accession_mismatch" in found  # paired by candidate search instead


def test_candidate_search_respects_the_modality() -> None:
    o = order(1, mod="MR")
    s = study_of(order(1)) | {"StudyInstanceUID": "9.9", "AccessionNumber": "X"}
    assert [m.type for m in reconcile([o], [s], RULES)] == ["orphan_study"]


def test_candidate_search_takes_the_closest_day() -> None:
    near, far = order(1, pid="P", day="20240110"), order(2, pid="P", day="20240111")
    s = study_of(near) | {"StudyInstanceUID": "9.9", "AccessionNumber": "X",
                          "StudyDate": "20240110"}
    got = [m for m in reconcile([far, near], [s], RULES) if m.type == "accession_mismatch"]
    assert got[0].order_ref == "1.2.3.1/S1"


def test_keys_are_stable_across_runs_and_unique() -> None:
    orders = [order(i) for i in range(50)]
    studies = [study_of(o) | {"PatientSex": "M"} for o in orders]
    first = reconcile(orders, studies, RULES)
    again = reconcile(orders, studies, RULES)
    assert [m.key for m in first] == [m.key for m in again]
    assert len({m.key for m in first}) == len(first) == 50


def test_explanations_carry_no_patient_name() -> None:
    o = order(1)
    s = study_of(o) | {"PatientName": "OTHER^NAME", "PatientID": "ZZ"}
    for m in reconcile([o], [s], RULES):
        assert "PAT" not in m.explanation and "OTHER" not in m.explanation


def test_disabled_type_is_not_reported() -> None:
    doc = yaml.safe_load(RULES_PATH.read_text())
    doc["types"]["sex_mismatch"]["enabled"] = False
    rules = parse_rules(doc)
    o = order(1)
    assert reconcile([o], [study_of(o) | {"PatientSex": "M"}], rules) == []


def test_rules_errors_list_every_problem() -> None:
    doc = yaml.safe_load(RULES_PATH.read_text())
    doc["types"]["bogus"] = {"severity": "low", "explain": "x"}
    doc["windows"]["study_date_days"] = -1
    with pytest.raises(ReconcileRulesError) as err:
        parse_rules(doc)
    assert "study_date_days" in str(err.value)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=30, unique=True),
       st.randoms(use_true_random=False))
def test_result_does_not_depend_on_input_order(ids: list[int], rnd: Any) -> None:
    orders = [order(i, pid=f"P{i % 5}") for i in ids]
    studies = [study_of(o) for o in orders[::2]]
    studies += [study_of(order(100 + i, pid=f"P{i % 5}")) for i in ids[::3]]
    for s in studies[::4]:
        s["PatientSex"] = "M"
    before = {m.key for m in reconcile(orders, studies, RULES, today="20240201")}
    o2, s2 = copy.deepcopy(orders), copy.deepcopy(studies)
    rnd.shuffle(o2)
    rnd.shuffle(s2)
    after = {m.key for m in reconcile(o2, s2, RULES, today="20240201")}
    assert before == after
