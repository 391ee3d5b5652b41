"""engine.store.reconcile: snapshot, de-duplicated upsert, auto-resolution, status changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.store import reconcile as store
from engine.store import worklist
from engine.store.sqlite import SQLiteStore
from transforms.reconcile import load_rules, reconcile

RULES = load_rules(Path(__file__).resolve().parents[3] / "mappings" / "reconcile.yml")


def mwl_item(i: int) -> dict[str, Any]:
    return {"PatientName": "Test^Pat", "PatientID": f"P{i}", "PatientBirthDate": "19800214",
            "PatientSex": "F", "AccessionNumber": f"A{i}", "StudyInstanceUID": f"2.25.{i}",
            "ScheduledProcedureStepSequence": [{
                "Modality": "CT", "ScheduledProcedureStepID": f"S{i}",
                "ScheduledProcedureStepStartDate": "20261120"}]}


def pacs_study(i: int, **over: Any) -> dict[str, Any]:
    return {"StudyInstanceUID": f"2.25.{i}", "AccessionNumber": f"A{i}", "PatientID": f"P{i}",
            "PatientName": "TEST^PAT", "PatientBirthDate": "19800214", "PatientSex": "F",
            "StudyDate": "20261120", "ModalitiesInStudy": ["CT"],
            "NumberOfStudyRelatedInstances": "2"} | over


def run_pass(conn: sqlite3.Connection, studies: list[dict[str, Any]], now: float
             ) -> store.UpsertSummary:
    store.replace_studies(conn, studies, "PACS", now)
    found = reconcile(store.load_orders(conn), store.load_studies(conn), RULES,
                      mpps=store.load_mpps(conn), today="20261125")
    return store.upsert_mismatches(conn, found, now)


def test_redetection_updates_last_seen_without_duplicating(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, mwl_item(1))
    first = run_pass(conn, [pacs_study(1, PatientSex="M")], now=100.0)
    second = run_pass(conn, [pacs_study(1, PatientSex="M")], now=200.0)
    assert (first.new, second.new, second.seen_again) == (1, 0, 1)
    rows = store.list_mismatches(conn)
    assert len(rows) == 1
    assert (rows[0]["type"], rows[0]["first_seen"], rows[0]["last_seen"]) == (
        "sex_mismatch", 100.0, 200.0)
    assert rows[0]["details"]["study_value"] == "M"


def test_mismatch_no_longer_found_is_auto_resolved(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, mwl_item(1))
    run_pass(conn, [pacs_study(1, PatientSex="M")], now=100.0)
    summary = run_pass(conn, [pacs_study(1)], now=200.0)
    assert summary.resolved == 1
    row = store.list_mismatches(conn, status="resolved")[0]
    assert (row["who"], row["why"]) == ("reconciler", "no longer found")


def test_resolved_mismatch_found_again_reopens(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, mwl_item(1))
    run_pass(conn, [pacs_study(1, PatientSex="M")], now=100.0)
    run_pass(conn, [pacs_study(1)], now=200.0)
    assert run_pass(conn, [pacs_study(1, PatientSex="M")], now=300.0).reopened == 1
    assert len(store.list_mismatches(conn, status=None)) == 1


def test_ignored_mismatch_stays_ignored(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, mwl_item(1))
    run_pass(conn, [pacs_study(1, PatientSex="M")], now=100.0)
    mid = store.list_mismatches(conn)[0]["id"]
    assert store.set_status(conn, mid, "ignored", "qc.user", "known transgender update")
    run_pass(conn, [pacs_study(1, PatientSex="M")], now=200.0)
    run_pass(conn, [pacs_study(1)], now=300.0)
    row = store.list_mismatches(conn, status="ignored")[0]
    assert (row["who"], row["why"], row["last_seen"]) == (
        "qc.user", "known transgender update", 200.0)


def test_set_status_rejects_unknown_status_and_id(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="status must be"):
        store.set_status(conn, 1, "done", "me", "x")
    assert store.set_status(conn, 999, "acknowledged", "me", "x") is False


def test_order_without_study_and_orphan_flagged_from_the_store(conn: sqlite3.Connection
                                                               ) -> None:
    worklist.upsert_step(conn, mwl_item(1))
    run_pass(conn, [pacs_study(2, PatientID="Q2")], now=100.0)
    assert sorted(r["type"] for r in store.list_mismatches(conn)) == [
        "order_without_study", "orphan_study"]


def test_snapshot_replaces_the_previous_pass(conn: sqlite3.Connection) -> None:
    store.replace_studies(conn, [pacs_study(1), pacs_study(2)], "PACS", 1.0)
    store.replace_studies(conn, [pacs_study(3)], "PACS", 2.0)
    assert [s["StudyInstanceUID"] for s in store.load_studies(conn)] == ["2.25.3"]


async def test_pass_runs_in_the_real_store_writer(tmp_path: Path) -> None:
    db = SQLiteStore(tmp_path / "rb.sqlite")
    await db.open()
    try:
        await db.write_tx(lambda c: worklist.upsert_step(c, mwl_item(1)))
        summary = await db.write_tx(lambda c: run_pass(c, [pacs_study(1, PatientSex="M")], 1.0))
        assert summary.new_keys == ("sex_mismatch|2.25.1|2.25.1/S1",)
        rows = await db.read_tx(store.list_mismatches)
        assert [r["severity"] for r in rows] == ["low"]
    finally:
        await db.aclose()
