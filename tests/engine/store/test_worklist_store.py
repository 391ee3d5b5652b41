"""The worklist table: one row per scheduled procedure step, derived columns, indexed queries."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from channels.dicom_mwl.matching import MWLQuery
from engine.store import worklist
from engine.store.worklist import WorklistItemError


def item(i: int = 1, **top: Any) -> dict[str, Any]:
    sps = {
        "Modality": "CT", "ScheduledStationAETitle": "CT1",
        "ScheduledProcedureStepStartDate": "20261122", "ScheduledProcedureStepStartTime": "0830",
        "ScheduledProcedureStepID": f"S{i}", "ScheduledPerformingPhysicianName": "Tëch^Tom",
    }
    sps.update(top.pop("sps", {}))
    base: dict[str, Any] = {
        "SpecificCharacterSet": "ISO_IR 192", "PatientName": "Müller^Anna", "PatientID": f"P{i}",
        "IssuerOfPatientID": "HOSP", "PatientBirthDate": "19800214", "PatientSex": "F",
        "AccessionNumber": f"A{i}", "RequestedProcedureID": f"RP{i}",
        "StudyInstanceUID": f"2.25.{i}", "ScheduledProcedureStepSequence": [sps],
    }
    base.update(top)
    return base


def row(conn: sqlite3.Connection, sps_id: str = "S1") -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM worklist WHERE sps_id = ?", (sps_id,))
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def test_upsert_derives_every_indexed_column_from_the_item(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, item(1), message_id=42, now=1000.0)
    r = row(conn)
    assert (r["study_instance_uid"], r["sps_id"], r["patient_id"]) == ("2.25.1", "S1", "P1")
    assert r["patient_name_norm"] == "MULLER^ANNA"
    assert r["performing_physician_norm"] == "TECH^TOM"
    assert (r["sps_start_date"], r["sps_start_time"]) == ("20261122", "083000.000000")
    assert r["sps_start"] == "20261122083000.000000"
    assert (r["sps_status"], r["specific_character_set"], r["message_id"]) == (
        "SCHEDULED", "ISO_IR 192", 42)
    assert (r["created_at"], r["updated_at"]) == (1000.0, 1000.0)


def test_absent_sps_status_is_stored_and_returned_as_scheduled(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, item(1))
    stored = worklist.get_step(conn, "2.25.1", "S1")
    assert stored is not None
    assert stored["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepStatus"] == (
        "SCHEDULED")


def test_same_study_and_step_id_replaces_the_row_and_keeps_created_at(
    conn: sqlite3.Connection,
) -> None:
    first = worklist.upsert_step(conn, item(1), now=1.0)
    again = worklist.upsert_step(conn, item(1, PatientName="DOE^JANE"), now=2.0)
    assert first == again
    assert worklist.count(conn) == 1
    r = row(conn)
    assert (r["patient_name"], r["created_at"], r["updated_at"]) == ("DOE^JANE", 1.0, 2.0)


def test_steps_of_one_study_are_separate_rows(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, item(1))
    second = item(1, sps={"ScheduledProcedureStepID": "S2",
                          "ScheduledProcedureStepStartTime": "0700"})
    worklist.upsert_step(conn, second)
    steps = worklist.steps_for_study(conn, "2.25.1")
    assert [s["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepID"] for s in steps] == [
        "S2", "S1"]


def test_multi_valued_station_ae_titles_each_get_a_side_row(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, item(1, sps={"ScheduledStationAETitle": ["AB45", "DD56", "AB45"]}))
    titles = conn.execute("SELECT ae_title FROM worklist_station ORDER BY ae_title").fetchall()
    assert titles == [("AB45",), ("DD56",)]
    worklist.upsert_step(conn, item(1, sps={"ScheduledStationAETitle": "XR1"}))
    assert conn.execute("SELECT ae_title FROM worklist_station").fetchall() == [("XR1",)]


def test_delete_step_removes_the_row_and_its_station_rows(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, item(1))
    assert worklist.delete_step(conn, "2.25.1", "S1") is True
    assert worklist.delete_step(conn, "2.25.1", "S1") is False
    assert worklist.count(conn) == 0
    assert conn.execute("SELECT count(*) FROM worklist_station").fetchone()[0] == 0


def test_set_status_updates_column_and_stored_item(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, item(1))
    assert worklist.set_status(conn, "2.25.1", "S1", "completed") is True
    assert row(conn)["sps_status"] == "COMPLETED"
    stored = worklist.get_step(conn, "2.25.1", "S1")
    assert stored is not None
    assert stored["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepStatus"] == (
        "COMPLETED")
    assert worklist.set_status(conn, "2.25.9", "S1", "COMPLETED") is False


def test_set_status_refuses_an_unknown_status(conn: sqlite3.Connection) -> None:
    worklist.upsert_step(conn, item(1))
    with pytest.raises(WorklistItemError, match="unknown SPS status"):
        worklist.set_status(conn, "2.25.1", "S1", "DONE")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"StudyInstanceUID": ""}, "missing StudyInstanceUID"),
        ({"sps": {"ScheduledProcedureStepID": ""}}, "missing ScheduledProcedureStepID"),
        ({"ScheduledProcedureStepSequence": []}, "exactly one item"),
        ({"PatientNmae": "X"}, "unknown DICOM keyword"),
        ({"sps": {"Modalty": "CT"}}, r"ScheduledProcedureStepSequence\[0\]\.Modalty"),
    ],
)
def test_item_that_cannot_be_a_step_is_refused_with_the_reason(
    conn: sqlite3.Connection, bad: dict[str, Any], reason: str
) -> None:
    with pytest.raises(WorklistItemError, match=reason):
        worklist.upsert_step(conn, item(1, **bad))
    assert worklist.count(conn) == 0


def test_find_returns_stored_items_in_start_order_up_to_limit(conn: sqlite3.Connection) -> None:
    for i, hhmm in ((1, "1000"), (2, "0800"), (3, "0900")):
        worklist.upsert_step(conn, item(i, sps={"ScheduledProcedureStepStartTime": hhmm}))
    query = MWLQuery.from_values({"Modality": "CT"})
    found = worklist.find(conn, query)
    assert [f["AccessionNumber"] for f in found] == ["A2", "A3", "A1"]
    assert found[0]["PatientName"] == "Müller^Anna"
    assert [f["AccessionNumber"] for f in worklist.find(conn, query, limit=2)] == ["A2", "A3"]
    assert worklist.count(conn, query) == 3


def test_python_only_keys_are_applied_after_sql_with_limit(conn: sqlite3.Connection) -> None:
    for i in range(1, 6):
        worklist.upsert_step(conn, item(i, AdmissionID="ADM1" if i % 2 else "ADM2"))
    query = MWLQuery.from_values({"AdmissionID": "ADM1"})
    assert query.needs_python
    assert [f["AccessionNumber"] for f in worklist.find(conn, query, limit=2)] == ["A1", "A3"]
    assert worklist.count(conn, query) == 3


def _plan(conn: sqlite3.Connection, query: MWLQuery) -> str:
    where, params = query.where()
    sql = f"SELECT w.attributes FROM worklist w WHERE {where} ORDER BY w.sps_start, w.id"
    rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", tuple(params)).fetchall()
    return "\n".join(r[-1] for r in rows)


def _spread(i: int) -> dict[str, Any]:
    """Step i of a realistic spread: 20 stations, 30 days, 8 hours a day."""
    return item(i, sps={
        "ScheduledStationAETitle": f"ST{i % 20:02d}",
        "ScheduledProcedureStepStartDate": f"202611{1 + i // 20 % 30:02d}",
        "ScheduledProcedureStepStartTime": f"{8 + i % 8:02d}00",
    })


@pytest.mark.parametrize("analyzed", [False, True], ids=["no-stats", "analyzed"])
@pytest.mark.parametrize(
    ("values", "index"),
    [
        ({"AccessionNumber": "A1"}, "USING INDEX worklist_accession"),
        ({"PatientID": "P1"}, "USING INDEX worklist_patient"),
        ({"StudyInstanceUID": "2.25.1\\2.25.2"}, "USING INDEX sqlite_autoindex_worklist_1"),
        ({"ScheduledStationAETitle": "ST01", "ScheduledProcedureStepStartDate": "20261122"},
         "SEARCH s USING PRIMARY KEY (ae_title=? AND sps_start>? AND sps_start<?)"),
        ({"Modality": "CT", "ScheduledProcedureStepStartDate": "20261120-20261124"},
         "USING INDEX worklist_modality"),
        ({"ScheduledProcedureStepStartDate": "20261122",
          "ScheduledProcedureStepStartTime": "0800-1200"}, "USING INDEX worklist_start"),
        ({"PatientName": "MULLER*"}, "USING INDEX worklist_name"),
    ],
)
def test_common_queries_use_an_index_not_a_table_scan(
    conn: sqlite3.Connection, values: dict[str, str], index: str, analyzed: bool
) -> None:
    for i in range(1, 2400):
        worklist.upsert_step(conn, _spread(i))
    if analyzed:
        conn.execute("ANALYZE")
    plan = _plan(conn, MWLQuery.from_values(values))
    assert index in plan
    assert not any(line.startswith("SCAN") for line in plan.splitlines()), plan
