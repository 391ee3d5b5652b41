"""Worklist matching: the rules on examples, and SQL == the Python reference on random data."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from channels.dicom_mwl.keys import MWLQueryError
from channels.dicom_mwl.matching import MWLQuery
from engine.store import worklist
from tests.support.store import memory_db


def connect() -> sqlite3.Connection:
    return memory_db(foreign_keys=False)


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    c = connect()
    yield c
    c.close()


def step(**kw: Any) -> dict[str, Any]:
    sps = {"Modality": "CT", "ScheduledStationAETitle": "CT1",
           "ScheduledProcedureStepStartDate": "20261122",
           "ScheduledProcedureStepStartTime": "083000", "ScheduledProcedureStepID": "S1"}
    sps.update(kw.pop("sps", {}))
    item: dict[str, Any] = {"PatientName": "MÜLLER^ANNA", "PatientID": "P1",
                            "AccessionNumber": "A1", "StudyInstanceUID": "1.2.3",
                            "ScheduledProcedureStepSequence": [sps]}
    item.update(kw)
    return item


def matches(values: dict[str, str], item: dict[str, Any], **kw: Any) -> bool:
    return MWLQuery.from_values(values, **kw).matches(item)


@pytest.mark.parametrize(
    ("query", "stored", "expected"),
    [
        ("müller^anna", "MULLER^ANNA", True),
        ("MULLER*", "Müller^Anna", True),
        ("muller", "Müller^Anna", False),  # single value matching is on the whole name
        ("*ANNA", "García^Anna^^", True),  # trailing empty components are insignificant
        ("GARCIA^JOSE", "García^José", True),
        ("M?LLER^ANNA", "Müller^Anna", True),
        ("VIVALDI*", "", False),
        ("*", "", True),  # '*' alone is universal matching
    ],
)
def test_person_names_match_ignoring_case_and_accents(query: str, stored: str,
                                                      expected: bool) -> None:
    assert matches({"PatientName": query}, step(PatientName=stored)) is expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [("A1", True), ("a1", False), ("A?", True), ("A*", True), ("?1", True), ("A10", False),
     ("A2\\A1", True), ("A2\\A3", False), ("A[1]", False)],
)
def test_other_strings_match_exactly_with_wildcards_and_lists(query: str, expected: bool) -> None:
    assert matches({"AccessionNumber": query}, step()) is expected


def test_stored_multi_valued_station_ae_titles_match_as_a_set() -> None:
    item = step(sps={"ScheduledStationAETitle": ["AB45", "DD56"]})
    assert matches({"ScheduledStationAETitle": "AB45"}, item)
    assert matches({"ScheduledStationAETitle": "DD56"}, item)
    assert matches({"ScheduledStationAETitle": "XX\\DD56"}, item)
    assert matches({"ScheduledStationAETitle": "AB*"}, item)
    assert matches({"ScheduledStationAETitle": "AB45\\DD56"}, item)  # a list: either
    assert not matches({"ScheduledStationAETitle": "XX\\YY"}, item)
    assert not matches({"ScheduledStationAETitle": "AB4"}, item)


@pytest.mark.parametrize(
    ("date", "time", "expected"),
    [
        ("20261122", "", True),
        ("20261121-20261122", "", True),
        ("-20261121", "", False),
        ("20261123-", "", False),
        ("20261122", "0800-0900", True),
        ("20261122", "08", True),  # a partial time covers its precision: 08:00:00 to 08:59:59
        ("20261122", "0831-", False),
        ("20261121-20261122", "1200-0900", True),  # combined: 21st 12:00 to 22nd 09:00
        ("20261120-20261121", "0000-2359", False),
        ("", "0830", True),  # time alone: time of day
        ("", "0900-", False),
    ],
)
def test_sps_start_date_and_time_match_as_one_combined_range(date: str, time: str,
                                                             expected: bool) -> None:
    values = {k: v for k, v in (("ScheduledProcedureStepStartDate", date),
                                ("ScheduledProcedureStepStartTime", time)) if v}
    assert matches(values, step()) is expected


def test_untimed_step_matches_its_day_but_not_a_time_range() -> None:
    item = step(sps={"ScheduledProcedureStepStartTime": ""})
    assert matches({"ScheduledProcedureStepStartDate": "20261122"}, item)
    assert not matches({"ScheduledProcedureStepStartDate": "20261122",
                        "ScheduledProcedureStepStartTime": "0000-1200"}, item)


@pytest.mark.parametrize("status", ["STARTED", "DEPARTED", "CANCELED", "DISCONTINUED",
                                    "COMPLETED"])
def test_terminal_statuses_are_hidden_unless_the_query_matches_on_status(status: str) -> None:
    item = step(sps={"ScheduledProcedureStepStatus": status})
    assert not matches({}, item)
    assert not matches({"Modality": "CT"}, item)
    assert matches({"ScheduledProcedureStepStatus": status}, item)
    assert matches({"Modality": "CT"}, item, hidden_statuses=frozenset())


def test_step_without_status_counts_as_scheduled() -> None:
    assert matches({"ScheduledProcedureStepStatus": "SCHEDULED"}, step())
    assert matches({"ScheduledProcedureStepStatus": "SCHEDULED\\ARRIVED"}, step())


def test_study_uid_list_and_step_id_are_matching_keys() -> None:
    assert matches({"StudyInstanceUID": "1.2.4\\1.2.3"}, step())
    assert not matches({"StudyInstanceUID": "1.2.*"}, step())  # no wildcards on UI
    assert matches({"ScheduledProcedureStepID": "S1"}, step())
    assert not matches({"ScheduledProcedureStepID": "S2"}, step())


def test_calling_ae_is_the_station_when_coercion_is_on_and_the_query_has_none() -> None:
    ds = Dataset()
    ds.PatientName = ""
    sps = Dataset()
    sps.ScheduledStationAETitle = ""
    ds.ScheduledProcedureStepSequence = [sps]
    assert not MWLQuery.from_identifier(ds, calling_ae="MR1").matches(step())
    assert MWLQuery.from_identifier(ds, calling_ae="CT1").matches(step())
    sps.ScheduledStationAETitle = "CT1"
    assert MWLQuery.from_identifier(ds, calling_ae="MR1").matches(step())


def test_sps_keys_are_read_from_the_sequence_item_and_top_level_ones_elsewhere_ignored() -> None:
    ds = Dataset()
    ds.Modality = "MR"  # wrong level: a return key only
    sps = Dataset()
    sps.Modality = "CT"
    ds.ScheduledProcedureStepSequence = [sps]
    query = MWLQuery.from_identifier(ds)
    assert query.matches(step())
    assert query.ignored == ("Modality",)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ScheduledProcedureStepStartDate": "2026-11-22"}, "not a date"),
        ({"ScheduledProcedureStepStartDate": "20261322"}, "not a date"),
        ({"PatientBirthDate": "1980021"}, "not a date"),
        ({"ScheduledProcedureStepStartTime": "2500"}, "not a time"),
    ],
)
def test_uninterpretable_values_raise_a_query_error(values: dict[str, str], message: str) -> None:
    with pytest.raises(MWLQueryError, match=message):
        MWLQuery.from_values(values)


# -- SQL agrees with the Python reference --------------------------------------------------
NAMES = ["Müller^Anna", "MULLER^ANNA", "müller^anna^^", "Dupont^Jean", "García^José",
         "SMITH", "smith^john", ""]
DATES = ["20261121", "20261122", "20261123", "19800214", ""]
TIMES = ["0800", "083000", "1200", "235959.5", "07", ""]
STATIONS: list[Any] = ["CT1", ["CT1", "MR1"], "MR1", "AB45", ["AB45", "DD56"], ""]
STATUSES = [None, "SCHEDULED", "ARRIVED", "STARTED", "COMPLETED", "CANCELED"]

stored_items = st.lists(
    st.fixed_dictionaries({
        "PatientName": st.sampled_from(NAMES),
        "PatientID": st.sampled_from(["P1", "P2", "AV35674", "av3", ""]),
        "IssuerOfPatientID": st.sampled_from(["HOSP", "OTHER", ""]),
        "PatientBirthDate": st.sampled_from(DATES),
        "PatientSex": st.sampled_from(["M", "F", "O", ""]),
        "AccessionNumber": st.sampled_from(["A1", "A2", "A10", ""]),
        "RequestedProcedureID": st.sampled_from(["RP1", "RP2", ""]),
        "StudyInstanceUID": st.sampled_from(["1.2.3", "1.2.4", "1.2.30"]),
        "ReferringPhysicianName": st.sampled_from(NAMES),
        "AdmissionID": st.sampled_from(["ADM1", "ADM2", ""]),
        "sps": st.fixed_dictionaries({
            "Modality": st.sampled_from(["CT", "MR", "US", ""]),
            "ScheduledStationAETitle": st.sampled_from(STATIONS),
            "ScheduledStationName": st.sampled_from(["ROOM1", "ROOM2", ""]),
            "ScheduledProcedureStepStartDate": st.sampled_from(DATES),
            "ScheduledProcedureStepStartTime": st.sampled_from(TIMES),
            "ScheduledPerformingPhysicianName": st.sampled_from(NAMES),
            "ScheduledProcedureStepStatus": st.sampled_from(STATUSES),
            "ScheduledProcedureStepLocation": st.sampled_from(["L1", "L2", ""]),
        }),
    }),
    max_size=25,
)

QUERY_VALUES: dict[str, list[str]] = {
    "PatientName": ["MULLER^ANNA", "müller*", "*JO?E", "smith", "SMITH\\DUPONT^JEAN", "*"],
    "PatientID": ["P1", "AV3*", "av3", "P?", "P1\\P2"],
    "IssuerOfPatientID": ["HOSP", "OTH*"],
    "PatientBirthDate": ["19800214", "-19900101", "20261121-", "19800101-20261122"],
    "PatientSex": ["M", "F\\O"],
    "AccessionNumber": ["A1", "A1*", "A?", "A2\\A10"],
    "RequestedProcedureID": ["RP1", "RP*"],
    "StudyInstanceUID": ["1.2.3", "1.2.3\\1.2.30"],
    "Modality": ["CT", "CT\\MR", "M?", "*"],
    "ScheduledStationAETitle": ["CT1", "AB45", "MR1\\DD56", "AB*", "*1"],
    "ScheduledStationName": ["ROOM1", "ROOM*"],
    "ScheduledProcedureStepStartDate": ["20261122", "20261121-20261122", "-20261122",
                                        "20261123-", "20261121\\20261123"],
    "ScheduledProcedureStepStartTime": ["0800-1200", "08", "1200-", "-083000", "0830"],
    "ScheduledPerformingPhysicianName": ["GARCIA^JOSE", "*ANNA"],
    "ScheduledProcedureStepID": ["S1", "S1\\S3", "S*"],
    "ScheduledProcedureStepStatus": ["SCHEDULED", "COMPLETED\\STARTED", "*"],
    "ReferringPhysicianName": ["MULLER^ANNA", "D*"],
    "AdmissionID": ["ADM1"],
    "ScheduledProcedureStepLocation": ["L1", "L*"],
}
queries = st.dictionaries(
    st.sampled_from(sorted(QUERY_VALUES)), st.just(""), max_size=4
).flatmap(lambda keys: st.fixed_dictionaries(
    {k: st.sampled_from(QUERY_VALUES[k]) for k in keys}))


def to_item(i: int, raw: dict[str, Any]) -> dict[str, Any]:
    sps = {k: v for k, v in raw["sps"].items() if v is not None}
    sps["ScheduledProcedureStepID"] = f"S{i}"
    top = {k: v for k, v in raw.items() if k != "sps"}
    return {**top, "ScheduledProcedureStepSequence": [sps]}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_items=stored_items, values=queries, coerce=st.sampled_from([None, "CT1", "MR1"]))
def test_sql_finds_exactly_what_the_reference_predicate_accepts(
    raw_items: list[dict[str, Any]], values: dict[str, str], coerce: str | None
) -> None:
    conn = connect()
    try:
        items = [to_item(i, raw) for i, raw in enumerate(raw_items)]
        for item in items:
            worklist.upsert_step(conn, item)
        if coerce and not values.get("ScheduledStationAETitle"):
            values = {**values, "ScheduledStationAETitle": coerce}
        query = MWLQuery.from_values(values)
        stored = [worklist.get_step(conn, it["StudyInstanceUID"],
                                    it["ScheduledProcedureStepSequence"][0][
                                        "ScheduledProcedureStepID"]) for it in items]
        expected = sorted(s["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepID"]
                          for s in stored if s is not None and query.matches(s))
        found = sorted(f["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepID"]
                       for f in worklist.find(conn, query))
        assert found == expected
        assert worklist.count(conn, query) == len(expected)
    finally:
        conn.close()
