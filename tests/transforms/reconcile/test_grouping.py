"""Split and grouped studies: deterministic, stable keys, independent of input order."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.reconcile import load_rules, reconcile

RULES = load_rules(Path(__file__).resolve().parents[3] / "mappings" / "reconcile.yml")


def order(i: int, *, acc: str | None = None, uid: str | None = None) -> dict[str, Any]:
    return {"sps_status": "SCHEDULED", "attributes": {
        "PatientID": "P1", "PatientName": "PAT^ONE", "PatientBirthDate": "19800101",
        "PatientSex": "F", "AccessionNumber": acc or f"A{i}", "StudyInstanceUID": uid or f"1.2.{i}",
        "ScheduledProcedureStepSequence": [{"ScheduledProcedureStepID": f"S{i}", "Modality": "CT",
                                            "ScheduledProcedureStepStartDate": "20240110"}]}}


def study(uid: str, acc: str, **over: Any) -> dict[str, Any]:
    return {"StudyInstanceUID": uid, "AccessionNumber": acc, "PatientID": "P1",
            "PatientName": "PAT^ONE", "PatientBirthDate": "19800101", "PatientSex": "F",
            "StudyDate": "20240110", "ModalitiesInStudy": ["CT"]} | over


def types(found: list[Any]) -> list[str]:
    return sorted(m.type for m in found)


def test_one_split_flag_per_accession_keyed_on_its_first_part() -> None:
    parts = [study("1.2.1.6", "A1"), study("1.2.1", "A1"), study("1.2.1.5", "A1")]
    found = [m for m in reconcile([order(1)], parts, RULES) if m.type == "study_split"]
    assert [m.key for m in found] == ["study_split|1.2.1|1.2.1/S1"]
    assert found[0].details["study_uids"] == ["1.2.1", "1.2.1.5", "1.2.1.6"]
    fewer = [m for m in reconcile([order(1)], parts[:2], RULES) if m.type == "study_split"]
    assert [m.key for m in fewer] == [found[0].key]  # a part gone: same flag, updated


def test_split_of_an_unordered_accession_is_still_a_split() -> None:
    found = reconcile([], [study("9.1", "X1"), study("9.2", "X1")], RULES)
    assert types(found) == ["orphan_study", "orphan_study", "study_split"]
    split = next(m for m in found if m.type == "study_split")
    assert split.order_ref is None and split.study_value == "9.1\\9.2"


def test_accessions_under_different_issuers_are_not_a_split() -> None:
    parts = [study("1.2.1", "A1", IssuerOfAccessionNumber="RIS1"),
             study("1.2.1.5", "A1", IssuerOfAccessionNumber="RIS2")]
    assert "study_split" not in types(reconcile([order(1)], parts, RULES))


def test_the_same_study_from_two_sources_is_not_a_split() -> None:
    assert reconcile([order(1)], [study("1.2.1", "A1"), study("1.2.1", "A1")], RULES) == []


def test_grouped_study_without_its_accession_among_the_orders_keeps_the_mismatches() -> None:
    orders = [order(1, uid="1.2.9"), order(2, uid="1.2.9")]
    found = reconcile(orders, [study("1.2.9", "OTHER")], RULES)
    assert types(found) == ["accession_mismatch", "accession_mismatch", "grouped_study"]


def test_order_listed_by_a_study_is_not_an_order_without_study() -> None:
    listed = study("1.2.1", "A1", RequestAttributesSequence=[
        {"AccessionNumber": "A1"}, {"AccessionNumber": "a2"}])
    found = reconcile([order(1), order(2)], [listed], RULES, today="20240201")
    assert types(found) == ["grouped_study"]
    unlisted = reconcile([order(1), order(2)], [study("1.2.1", "A1")], RULES,
                         today="20240201")
    assert types(unlisted) == ["order_without_study"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=12), min_size=2, max_size=12),
       st.randoms(use_true_random=False))
def test_split_and_grouped_results_do_not_depend_on_input_order(accs: list[int], rnd: Any
                                                                 ) -> None:
    orders = [order(i, acc=f"A{a}", uid=f"1.2.{a % 4}") for i, a in enumerate(accs)]
    studies = [study(f"1.2.{a % 4}.{i % 3}", f"A{a}",
                     RequestAttributesSequence=[{"AccessionNumber": f"A{(a + 1) % 13}"}])
               for i, a in enumerate(accs)]
    before = reconcile(orders, studies, RULES, today="20240201")
    o2, s2 = copy.deepcopy(orders), copy.deepcopy(studies)
    rnd.shuffle(o2)
    rnd.shuffle(s2)
    after = reconcile(o2, s2, RULES, today="20240201")
    assert {m.key: m.as_dict() for m in before} == {m.key: m.as_dict() for m in after}
