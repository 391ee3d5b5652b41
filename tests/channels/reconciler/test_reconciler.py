"""The pacs_reconciler channel against a real Orthanc (C-FIND over loopback): windowed
passes, scoped resolution, the MPPS trigger, events and HL7 notifications queued, and a
PACS that is down reported without stopping anything."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from channels.pacs.find import PACSFindConfig
from channels.reconciler.config import ReconcilerConfig
from channels.reconciler.passes import PassContext, mpps_pass, window_pass
from channels.reconciler.source import MPPS_MARK, PACSReconciler
from engine import events
from engine.store import mpps as mpps_store
from engine.store import reconcile as rstore
from engine.store import worklist
from engine.store.sqlite import SQLiteStore
from tests.channels.pacs.conftest import (  # noqa: F401 - orthanc is a fixture
    Orthanc,
    make_instance,
    orthanc,
    storescu,
)
from tests.support.peers import free_port
from transforms import load_mapping
from transforms.reconcile.rules import load_rules

ROOT = Path(__file__).resolve().parents[3]
RULES = load_rules(ROOT / "mappings" / "reconcile.yml")
TODAY = dt.date.today()
DAY = TODAY.strftime("%Y%m%d")
OLD = (TODAY - dt.timedelta(days=20)).strftime("%Y%m%d")

pytestmark = pytest.mark.timeout(90)


def order(n: int, *, day: str = DAY, status: str = "SCHEDULED", modality: str = "CT"
          ) -> dict[str, Any]:
    return {
        "PatientName": f"TESTPATIENT^P{n}", "PatientID": f"PAT{n:05d}",
        "IssuerOfPatientID": "HOSPA", "PatientBirthDate": "19800101", "PatientSex": "F",
        "AccessionNumber": f"ACC{n:05d}", "StudyInstanceUID": f"1.2.826.0.1.3680043.10.77.{n}",
        "ScheduledProcedureStepSequence": [{
            "ScheduledProcedureStepID": f"SPS{n}", "Modality": modality,
            "ScheduledProcedureStepStartDate": day, "ScheduledProcedureStepStartTime": "100000",
            "ScheduledProcedureStepStatus": status}],
    }


def study_file(tmp: Path, n: int, *, accession: str | None = None, uid: str | None = None,
               day: str = DAY) -> Path:
    o = order(n)
    return make_instance(
        tmp / f"s{n}-{accession or ''}-{day}.dcm", study_uid=uid or o["StudyInstanceUID"],
        accession=o["AccessionNumber"] if accession is None else accession,
        patient_id=o["PatientID"], name=o["PatientName"], birth="19800101", sex="F",
        study_date=day, modality="CT")


def pacs_cfg(peer: Orthanc) -> PACSFindConfig:
    return PACSFindConfig(host=peer.host, port=peer.port, called_ae=peer.ae,
                          calling_ae="RBRECON", timeout=10)


async def add_orders(store: SQLiteStore, *orders: dict[str, Any]) -> None:
    def write(conn: Any) -> None:
        for o in orders:
            worklist.upsert_step(conn, o, now=1.0)

    await store.write_tx(write)


async def mismatches(store: SQLiteStore, status: str | None = None) -> list[dict[str, Any]]:
    """Every mismatch (``status``: only those)."""
    return await store.read_tx(lambda c: rstore.list_mismatches(c, status=status))


def kinds(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r["type"], r["status"]) for r in rows}


def oru_route(queue: str = "pacs_check/ris") -> Any:
    mapping = load_mapping(ROOT / "mappings" / "mismatch_to_oru.yaml")
    return SimpleNamespace(queue_name=queue, name="ris", mapping=mapping, charset=None,
                           effect=None, notify=lambda: None)


@pytest.fixture
def events_on() -> Any:
    events.configure(events.DEFAULT_QUEUE)
    yield
    events.configure(None)


async def test_window_pass_flags_notifies_and_resolves_in_scope_only(
    store: SQLiteStore, orthanc: Orthanc, tmp_path: Path, events_on: None  # noqa: F811
) -> None:
    # 1: correct; 2: typo'd accession at the modality; 3: no study; 4 (20 days ago):
    # an old order without study, outside a 3-day window.
    await add_orders(store, order(1), order(2), order(3), order(4, day=OLD))
    storescu(orthanc, [study_file(tmp_path, 1), study_file(tmp_path, 2, accession="ACC00002X",
                                                            uid="1.2.826.0.1.3680043.10.77.902")])
    route = oru_route()
    ctx = PassContext(store, RULES, pacs_cfg(orthanc), "pacs_check", lambda: [route])
    result = await window_pass(ctx, days=3)
    assert result.studies_read >= 2
    found = await mismatches(store)
    assert {(r["type"], r["status"]) for r in found} == {("accession_mismatch", "open")}
    assert "ACC00002X" in found[0]["explanation"]
    assert result.notifications == 1
    # the ORU is queued on the channel's destination, the event on the events queue
    rows = await store.read_tx(lambda c: c.execute(
        "SELECT destination, payload FROM deliveries ORDER BY id").fetchall())
    dests = [r[0] for r in rows]
    assert dests.count("pacs_check/ris") == 1 and dests.count(events.DEFAULT_QUEUE) == 1
    oru = next(bytes(r[1]) for r in rows if r[0] == "pacs_check/ris").decode()
    assert "ORU^R01" in oru and "|accession_mismatch|" in oru and "PAT00002" in oru
    event = json.loads(next(bytes(r[1]) for r in rows if r[0] == events.DEFAULT_QUEUE))
    assert event["event"] == "mismatch_flagged" and event["change"] == "new"
    assert event["kind"] == "accession_mismatch" and event["accession_number"] == "ACC00002"
    assert "patient_id" not in event  # PHI off by default
    # a full pass also sees the 20-day-old order without a study
    full = await window_pass(ctx, days=3, full=True)
    assert full.summary.new == 1
    assert ("order_without_study", "open") in kinds(await mismatches(store))
    # a window pass does not resolve what it did not look at (the old order)
    again = await window_pass(ctx, days=3)
    assert again.summary.resolved == 0 and again.summary.new == 0
    assert again.notifications == 0  # nothing new: nothing re-sent
    assert ("order_without_study", "open") in kinds(await mismatches(store))


async def test_window_pass_resolves_when_pacs_is_corrected(
    store: SQLiteStore, orthanc: Orthanc, tmp_path: Path  # noqa: F811
) -> None:
    await add_orders(store, order(11))
    storescu(orthanc, [study_file(tmp_path, 11, accession="ACC00011X",
                                  uid="1.2.826.0.1.3680043.10.77.911")])
    ctx = PassContext(store, RULES, pacs_cfg(orthanc), "pacs_check")
    await window_pass(ctx, days=1)
    assert ("accession_mismatch", "open") in kinds(await mismatches(store))
    # the PACS administrator links the study to its order (the order's accession and UID)
    orthanc_delete(orthanc, "1.2.826.0.1.3680043.10.77.911")
    storescu(orthanc, [study_file(tmp_path, 11)])
    second = await window_pass(ctx, days=1)
    assert second.summary.resolved >= 1
    rows = [r for r in await mismatches(store, None) if "ACC00011" in r["explanation"]]
    assert rows and all(r["status"] == "resolved" and r["who"] == "reconciler" for r in rows)


def orthanc_delete(peer: Orthanc, study_uid: str) -> None:
    import urllib.request

    base = f"http://127.0.0.1:{peer.http_port}"
    body = json.dumps({"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}).encode()
    with urllib.request.urlopen(urllib.request.Request(
            f"{base}/tools/find", data=body, method="POST"), timeout=10) as r:
        ids = json.loads(r.read())
    for sid in ids:
        urllib.request.urlopen(urllib.request.Request(
            f"{base}/studies/{sid}", method="DELETE"), timeout=10).close()


def mpps_record(n: int, *, instances: int, status: str = "COMPLETED") -> dict[str, Any]:
    o = order(n)
    return {
        "PatientID": o["PatientID"], "PatientName": o["PatientName"],
        "PerformedProcedureStepStatus": status, "Modality": "CT",
        "ScheduledStepAttributesSequence": [{
            "StudyInstanceUID": o["StudyInstanceUID"], "AccessionNumber": o["AccessionNumber"],
            "ScheduledProcedureStepID": f"SPS{n}"}],
        "PerformedSeriesSequence": [{"ReferencedImageSequence": [
            {"ReferencedSOPInstanceUID": f"1.2.3.{n}.{i}"} for i in range(instances)]}],
    }


async def add_mpps(store: SQLiteStore, n: int, *, instances: int, now: float) -> str:
    uid = f"1.2.826.0.1.3680043.10.88.{n}"
    o = order(n)

    def write(conn: Any) -> None:
        mpps_store.insert(conn, uid, "modalities", "COMPLETED",
                          mpps_record(n, instances=instances),
                          steps=[(o["StudyInstanceUID"], f"SPS{n}", "study_sps")], now=now)

    await store.write_tx(write)
    return uid


async def test_mpps_pass_checks_completeness_against_the_pacs(
    store: SQLiteStore, orthanc: Orthanc, tmp_path: Path  # noqa: F811
) -> None:
    await add_orders(store, order(21, status="COMPLETED"), order(22, status="COMPLETED"))
    storescu(orthanc, [study_file(tmp_path, 21)])  # 1 instance in PACS, the MPPS says 3
    await add_mpps(store, 21, instances=3, now=10.0)
    await add_mpps(store, 22, instances=2, now=11.0)  # nothing in PACS at all
    ctx = PassContext(store, RULES, pacs_cfg(orthanc), "pacs_check")
    due = await store.read_tx(lambda c: rstore.due_mpps(c, 0.0, 100.0))
    assert [d["accession_number"] for d in due] == ["ACC00021", "ACC00022"]
    for row in due:
        await mpps_pass(ctx, row)
    found = await mismatches(store)
    got = {(r["type"], r["study_ref"], r["details"]["order_value"], r["details"]["study_value"])
           for r in found}
    assert got == {
        ("completeness_mismatch", order(21)["StudyInstanceUID"], "3", "1"),
        ("completeness_mismatch", order(22)["StudyInstanceUID"], "2", "0"),
    }


async def test_source_triggers_after_mpps_and_reports_an_unreachable_pacs(
    store: SQLiteStore, orthanc: Orthanc, tmp_path: Path  # noqa: F811
) -> None:
    await add_orders(store, order(31, status="COMPLETED"))
    dead_port = free_port()  # nothing listens here
    cfg = ReconcilerConfig.model_validate({
        "type": "pacs_reconciler",
        "pacs": {"host": "127.0.0.1", "port": dead_port, "called_ae": "ORTHANC",
                 "timeout": 2},
        "schedule": {"every_s": 0}, "on_mpps": {"delay_s": 0.2, "poll_s": 0.1},
        "retry_s": 0.2})
    src = PACSReconciler("pacs_check", cfg)
    src.store = store
    src.bind(ROOT)
    ready = asyncio.Event()
    # first start: the mark is set, only MPPS ending from now on are checked
    task = asyncio.create_task(src.run(lambda raw, peer: None, ready.set))  # type: ignore[arg-type,return-value]
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await asyncio.sleep(0.2)
        await add_mpps(store, 31, instances=2, now=__import__("time").time())
        for _ in range(100):
            if src.status()["failures"]:
                break
            await asyncio.sleep(0.1)
        status = src.status()
        assert status["failures"] >= 1 and status["pacs"].startswith("unreachable")
        assert await mismatches(store) == []
        assert not task.done()  # still running, will retry
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    key = MPPS_MARK.format(channel="pacs_check")
    mark = float(await store.read_tx(lambda c: rstore.get_state(c, key)))
    # the PACS comes back (a new source, the same store): the MPPS is checked, once
    cfg2 = cfg.model_copy(update={"pacs": pacs_cfg(orthanc)})
    src2 = PACSReconciler("pacs_check", cfg2)
    src2.store = store
    src2.bind(ROOT)
    task = asyncio.create_task(src2.run(lambda raw, peer: None, lambda: None))  # type: ignore[arg-type,return-value]
    try:
        for _ in range(100):
            if src2.status()["passes"]:
                break
            await asyncio.sleep(0.1)
        assert src2.status()["pacs"] == "reachable"
        found = await mismatches(store)
        assert [(r["type"], r["details"]["study_value"]) for r in found] == [
            ("completeness_mismatch", "0")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert float(await store.read_tx(lambda c: rstore.get_state(c, key))) > mark


def test_validate_reports_a_missing_rules_file(tmp_path: Path) -> None:
    cfg = ReconcilerConfig.model_validate({
        "type": "pacs_reconciler", "rules": "mappings/nope.yml",
        "pacs": {"host": "127.0.0.1", "port": 4242, "called_ae": "ORTHANC"}})
    assert cfg.check_files(tmp_path) == [
        ("rules", "rules file 'mappings/nope.yml' does not exist")]
    (tmp_path / "bad.yml").write_text("version: 1\npairing: [nonsense]\n")
    bad = cfg.model_copy(update={"rules": "bad.yml"})
    [(field, problem)] = bad.check_files(tmp_path)
    assert field == "rules" and "bad.yml" in problem


async def test_study_gone_from_pacs_resolves_its_flag_even_for_an_undated_order(
    store: SQLiteStore, orthanc: Orthanc, tmp_path: Path  # noqa: F811
) -> None:
    # a cancel without a start time leaves the step undated: no window reaches the order
    cancelled = order(41, status="CANCELED")
    del cancelled["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepStartDate"]
    await add_orders(store, cancelled)
    storescu(orthanc, [study_file(tmp_path, 41)])
    ctx = PassContext(store, RULES, pacs_cfg(orthanc), "pacs_check")
    await window_pass(ctx, days=1)
    assert ("cancelled_order_images", "open") in kinds(await mismatches(store))
    orthanc_delete(orthanc, order(41)["StudyInstanceUID"])  # images removed from the PACS
    second = await window_pass(ctx, days=1)
    assert second.summary.resolved == 1
    [row] = [r for r in await mismatches(store) if r["type"] == "cancelled_order_images"]
    assert (row["status"], row["who"], row["why"]) == ("resolved", "reconciler", "no longer found")
