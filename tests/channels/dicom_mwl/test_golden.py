"""The golden matching suite: the ten DCMTK sample worklists and the §9.1 query table.

Each row is a query, the accession numbers RadBridge answers, and what DCMTK wlmscpfs 3.6.7
and Orthanc 1.10.1 (sample plugin) answer, measured in the reference study. Where they differ
RadBridge follows dcm4chee (see channels/dicom_mwl/README.md):

======================  =======  ========  =======  ================================
query                   ours     wlmscpfs  Orthanc  why ours
======================  =======  ========  =======  ================================
Station AET = AB45      2        2         1        stored AE titles are a set
Station AET = AB*       2        0         2        AE allows wildcards (PS3.4 C.2.2.2.4)
PatientName = vivaldi*  3        0         3        PN ignores case (and accents)
PatientID = AV3*        3        0         3        LO allows wildcards
Study UID = …102        1        10        1        UID list matching key
SPS ID = SPD1342        1        10        1        SPS ID is a matching key
SPS Status = SCHEDULED  10       10        0        an absent status is SCHEDULED
Modality = CT\\MR        6        refused   6        list (multiple value) matching
======================  =======  ========  =======  ================================
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from channels.dicom_mwl.matching import MWLQuery
from engine.store import worklist
from engine.store.sqlite import SQLiteStore
from tests.channels.dicom_mwl.conftest import load, need, run_tool, running_scp
from tests.channels.dicom_mwl.test_matching import connect

SPS = "ScheduledProcedureStepSequence"
ALL = ["00000", "00001", "00002", "00003", "00004", "00005", "00006", "00007", "00008",
       "00009"]
# (name, top-level keys, SPS keys, accession numbers answered)
GOLDEN: list[tuple[str, dict[str, str], dict[str, str], list[str]]] = [
    ("all", {}, {}, ALL),
    ("modality CT", {}, {"Modality": "CT"}, ["00002", "00006", "00008", "00009"]),
    ("SPS date range 1995", {}, {"ScheduledProcedureStepStartDate": "19950101-19951231"},
     ["00000", "00005"]),
    ("station AB45", {}, {"ScheduledStationAETitle": "AB45"}, ["00002", "00005"]),
    ("station AB*", {}, {"ScheduledStationAETitle": "AB*"}, ["00002", "00005"]),
    ("patient name vivaldi*", {"PatientName": "vivaldi*"}, {}, ["00000", "00002", "00003"]),
    ("patient id AV3*", {"PatientID": "AV3*"}, {}, ["00000", "00002", "00003"]),
    ("study instance uid", {"StudyInstanceUID": "1.2.276.0.7230010.3.2.102"}, {}, ["00002"]),
    ("SPS id", {}, {"ScheduledProcedureStepID": "SPD1342"}, ["00002"]),
    ("SPS status SCHEDULED", {}, {"ScheduledProcedureStepStatus": "SCHEDULED"}, ALL),
    ("modality list CT\\MR", {}, {"Modality": "CT\\MR"},
     ["00000", "00001", "00002", "00006", "00008", "00009"]),
    ("date 19960406 with time 1600-1700", {},
     {"ScheduledProcedureStepStartDate": "19960406",
      "ScheduledProcedureStepStartTime": "1600-1700"}, ["00002"]),
    # beyond the §9.1 table: dcm4chee behaviour
    ("exact name, other case", {"PatientName": "vivaldi^antonio"}, {},
     ["00000", "00002", "00003"]),
    ("study uid list", {"StudyInstanceUID":
                        "1.2.276.0.7230010.3.2.101\\1.2.276.0.7230010.3.2.102"}, {},
     ["00000", "00002"]),
    ("performing physician", {}, {"ScheduledPerformingPhysicianName": "ross"},
     ["00002", "00006", "00008"]),
]
IDS = [g[0] for g in GOLDEN]


@pytest.fixture(scope="module")
def offis_db(offis_items: list[dict[str, Any]]) -> Iterator[sqlite3.Connection]:
    conn = connect()
    for item in offis_items:
        worklist.upsert_step(conn, item)
    yield conn
    conn.close()


def _query(top: dict[str, str], sps: dict[str, str]) -> MWLQuery:
    return MWLQuery.from_values({**top, **sps})


@pytest.mark.parametrize(("name", "top", "sps", "expected"), GOLDEN, ids=IDS)
def test_golden_query_answers_the_dcm4chee_way(
    offis_db: sqlite3.Connection, name: str, top: dict[str, str], sps: dict[str, str],
    expected: list[str],
) -> None:
    found = worklist.find(offis_db, _query(top, sps))
    assert sorted(f["AccessionNumber"] for f in found) == expected


@pytest.mark.parametrize(("name", "top", "sps", "expected"), GOLDEN, ids=IDS)
def test_golden_reference_predicate_agrees(
    offis_items: list[dict[str, Any]], name: str, top: dict[str, str], sps: dict[str, str],
    expected: list[str],
) -> None:
    query = _query(top, sps)
    assert sorted(i["AccessionNumber"] for i in offis_items if query.matches(i)) == expected


def test_completed_step_leaves_the_worklist_but_answers_a_status_query(
    offis_items: list[dict[str, Any]],
) -> None:
    conn = connect()
    for item in offis_items:
        worklist.upsert_step(conn, item)
    worklist.set_status(conn, "1.2.276.0.7230010.3.2.102", "SPD1342", "COMPLETED")
    assert worklist.count(conn, _query({}, {})) == 9
    assert worklist.count(conn, _query({}, {"Modality": "CT"})) == 3
    done = worklist.find(conn, _query({}, {"ScheduledProcedureStepStatus": "COMPLETED"}))
    assert [f["AccessionNumber"] for f in done] == ["00002"]


def _keys(top: dict[str, str], sps: dict[str, str]) -> list[str]:
    keys = {"AccessionNumber": "", "PatientName": "", **top}
    args = [f"{k}={v}" if v else k for k, v in keys.items()]
    sps = {"Modality": "", **sps}
    args += [f"{SPS}[0].{k}={v}" if v else f"{SPS}[0].{k}" for k, v in sps.items()]
    return [a for arg in args for a in ("-k", arg)]


async def _golden_over_the_wire(store: SQLiteStore, offis_items: list[dict[str, Any]],
                                tmp_path: Path, command: list[str]) -> None:
    await load(store, offis_items)
    wrong: list[str] = []
    async with running_scp(store) as scp:
        for i, (name, top, sps, expected) in enumerate(GOLDEN):
            out = tmp_path / f"q{i}"
            out.mkdir()
            argv = [*command, "127.0.0.1", str(scp.bound_port), *_keys(top, sps)]
            done = await run_tool(*argv, cwd=out)
            assert done.returncode == 0, done.stderr[-2000:]
            got = sorted(str(dcmread(f).AccessionNumber) for f in out.glob("rsp*.dcm"))
            if got != expected:
                wrong.append(f"{name}: {got} != {expected}")
    assert not wrong, "\n".join(wrong)


async def test_golden_table_over_dcmtk_findscu(
    store: SQLiteStore, offis_items: list[dict[str, Any]], tmp_path: Path
) -> None:
    findscu = need("findscu")
    command = [findscu, "-W", "-aet", "MODALITY", "-aec", "RADBRIDGE", "-X"]
    await _golden_over_the_wire(store, offis_items, tmp_path, command)


async def test_golden_table_over_pynetdicom_findscu(store: SQLiteStore,
                                                    offis_items: list[dict[str, Any]],
                                                    tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pynetdicom", "findscu", "-W", "-aet", "MODALITY", "-aec",
               "RADBRIDGE", "-w"]
    await _golden_over_the_wire(store, offis_items, tmp_path, command)
