"""Merged-patient residue: merge maps (resolution, the store loader) and the pass using them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import yaml

from engine.store import reconcile as store
from engine.store import worklist
from engine.store.reconcile_merges import load_merges
from transforms.reconcile import load_rules, parse_rules, reconcile
from transforms.reconcile.core import resolve_merges
from transforms.worklist import apply_patient

RULES_PATH = Path(__file__).resolve().parents[3] / "mappings" / "reconcile.yml"
RULES = load_rules(RULES_PATH)


def mwl_item(pid: str) -> dict[str, Any]:
    return {"PatientName": "Test^Pat", "PatientID": pid, "IssuerOfPatientID": "HOSPA",
            "PatientBirthDate": "19800214", "PatientSex": "F", "AccessionNumber": "A1",
            "StudyInstanceUID": "2.25.1", "ScheduledProcedureStepSequence": [{
                "Modality": "CT", "ScheduledProcedureStepID": "S1",
                "ScheduledProcedureStepStartDate": "20261120"}]}


def pacs_study(pid: str, **over: Any) -> dict[str, Any]:
    return {"StudyInstanceUID": "2.25.1", "AccessionNumber": "A1", "PatientID": pid,
            "IssuerOfPatientID": "HOSPA", "PatientName": "TEST^PAT",
            "PatientBirthDate": "19800214", "PatientSex": "F", "StudyDate": "20261120",
            "ModalitiesInStudy": ["CT"], "NumberOfStudyRelatedInstances": "2"} | over


def merge(conn: sqlite3.Connection, old: str, new: str, issuer: str = "HOSPA") -> None:
    conn.execute("INSERT OR REPLACE INTO merged_patients (patient_id, issuer, new_patient_id,"
                 " new_issuer, merged_at) VALUES (?, ?, ?, ?, 0)", (old, issuer, new, issuer))


def test_resolution_normalises_ids_and_follows_chains() -> None:
    assert resolve_merges({"0a1": "b2", "B2": "00c3"}, RULES) == {"A1": "C3", "B2": "C3"}


def test_a_merge_cycle_has_no_survivor() -> None:
    assert resolve_merges({"A": "B", "B": "A", "C": "A"}, RULES) == {}


def test_a_self_merge_and_empty_ids_are_ignored() -> None:
    assert resolve_merges({"A": "a", "": "B", "C": ""}, RULES) == {}


def test_loader_returns_old_to_surviving_id(conn: sqlite3.Connection) -> None:
    merge(conn, "TMP1", "P1")
    merge(conn, "TMP2", "P2")
    assert load_merges(conn) == {"TMP1": "P1", "TMP2": "P2"}


def test_loader_leaves_out_an_id_merged_into_two_patients(conn: sqlite3.Connection) -> None:
    merge(conn, "TMP1", "P1", issuer="HOSPA")
    merge(conn, "TMP1", "P9", issuer="HOSPB")
    merge(conn, "TMP3", "P3", issuer="HOSPA")
    merge(conn, "TMP3", "P3", issuer="HOSPB")
    assert load_merges(conn) == {"TMP3": "P3"}


def test_study_under_the_old_id_after_an_a40_is_merged_residue(conn: sqlite3.Connection
                                                                ) -> None:
    worklist.upsert_step(conn, mwl_item("TMP1"))
    apply_patient(conn, {"PatientID": "P1", "IssuerOfPatientID": "HOSPA",
                         "_merge": {"PatientID": "TMP1", "IssuerOfPatientID": "HOSPA"}}, 1)
    store.replace_studies(conn, [pacs_study("TMP1")], "PACS", 1.0)
    orders, studies = store.load_orders(conn), store.load_studies(conn)
    assert orders[0]["attributes"]["PatientID"] == "P1"  # the A40 moved the order
    without = reconcile(orders, studies, RULES)
    found = reconcile(orders, studies, RULES, merged=load_merges(conn))
    assert [m.type for m in without] == ["patient_id_mismatch"]
    assert [(m.type, m.severity) for m in found] == [("merged_patient_residue", "medium")]
    assert found[0].details["side"] == "study"
    assert "TMP1" not in found[0].explanation and "P1" not in found[0].explanation
    assert (found[0].order_value, found[0].study_value) == ("P1", "TMP1")


def test_order_still_under_the_old_id_is_residue_on_the_order_side() -> None:
    found = reconcile([{"attributes": mwl_item("TMP1")}], [pacs_study("P1")], RULES,
                      merged={"TMP1": "P1"})
    assert [(m.type, m.details["side"]) for m in found] == [("merged_patient_residue", "order")]


def test_residue_key_is_stable_across_passes() -> None:
    args = ([{"attributes": mwl_item("P1")}], [pacs_study("TMP1")], RULES)
    first = reconcile(*args, merged={"TMP1": "P1"})
    again = reconcile(*args, merged={"TMP1": "P1"})
    assert [m.key for m in first] == [m.key for m in again] == [
        "merged_patient_residue|2.25.1|2.25.1/S1"]


def test_disabled_residue_reports_the_id_difference_as_before() -> None:
    doc = yaml.safe_load(RULES_PATH.read_text())
    doc["types"]["merged_patient_residue"]["enabled"] = False
    found = reconcile([{"attributes": mwl_item("P1")}], [pacs_study("TMP1")],
                      parse_rules(doc), merged={"TMP1": "P1"})
    assert [m.type for m in found] == ["patient_id_mismatch"]
