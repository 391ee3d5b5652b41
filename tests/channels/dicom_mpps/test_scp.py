"""MPPS state machine over a real association: pynetdicom SCU → our SCP → SQLite store."""

from __future__ import annotations

from typing import Any

from pydicom.uid import generate_uid

from engine.store import mpps
from engine.store import worklist as wl
from tests.channels.dicom_mpps.conftest import (
    STUDY,
    final_dataset,
    load,
    mpps_dataset,
    running_scp,
    scu,
    status_route,
    wl_item,
)


def code(status: Any) -> int:
    return int(status.Status)


async def sps_status(store: Any, sps_id: str = "SPS0001") -> str:
    item = await store.read_tx(lambda c: wl.get_step(c, STUDY, sps_id))
    return str(item["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepStatus"])


async def test_create_in_progress_starts_the_step_and_completed_set_completes_it(
    store: Any,
) -> None:
    await load(store, wl_item())
    uid = generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        status, _ = await c.create(mpps_dataset(), uid)
        assert code(status) == 0x0000
        assert await sps_status(store) == "STARTED"
        status, _ = await c.set(final_dataset(), uid)
        assert code(status) == 0x0000
    assert await sps_status(store) == "COMPLETED"
    row = await store.read_tx(lambda conn: mpps.row(conn, str(uid)))
    assert row["status"] == "COMPLETED" and row["unscheduled"] == 0
    assert row["attributes"]["PerformedProcedureStepEndTime"] == "091500"
    assert row["attributes"]["PatientID"] == "PAT10001"  # merged: create + set
    history = await store.read_tx(lambda conn: mpps.history(conn, str(uid)))
    assert [(h["operation"], h["status_before"], h["status_after"]) for h in history] == [
        ("N-CREATE", "", "IN PROGRESS"), ("N-SET", "IN PROGRESS", "COMPLETED")]
    assert history[0]["calling_aet"] == "CT1"


async def test_create_with_another_status_is_refused_0106(store: Any) -> None:
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        status, _ = await c.create(mpps_dataset("COMPLETED"), generate_uid())
    assert code(status) == 0x0106
    assert await store.read_tx(lambda conn: conn.execute("SELECT count(*) FROM mpps")
                               .fetchone()[0]) == 0


async def test_missing_affected_sop_instance_uid_is_assigned_and_returned(store: Any) -> None:
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        status, _ = await c.create(mpps_dataset(), None)
        assert code(status) == 0x0000
        assigned = str(c.responses[-1].AffectedSOPInstanceUID)  # in the N-CREATE-RSP
        assert assigned.startswith("1.2.826.0.1.3680043.8.498.")  # pydicom's generate_uid
        status, _ = await c.set(final_dataset(), assigned)  # usable for the N-SET
        assert code(status) == 0x0000
    assert await store.read_tx(lambda conn: mpps.get(conn, assigned)) is not None


async def test_duplicate_create_is_refused_0111(store: Any) -> None:
    uid = generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        assert code((await c.create(mpps_dataset(), uid))[0]) == 0x0000
        assert code((await c.create(mpps_dataset(), uid))[0]) == 0x0111


async def test_set_on_an_unknown_instance_is_refused_0112(store: Any) -> None:
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        status, _ = await c.set(final_dataset(), generate_uid())
    assert code(status) == 0x0112


async def test_any_set_after_completed_or_discontinued_is_refused_0110(store: Any) -> None:
    done, stopped = generate_uid(), generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        for uid, final in ((done, "COMPLETED"), (stopped, "DISCONTINUED")):
            assert code((await c.create(mpps_dataset(), uid))[0]) == 0x0000
            assert code((await c.set(final_dataset(final), uid))[0]) == 0x0000
            for again in (final_dataset("IN PROGRESS"), final_dataset(final)):
                status, _ = await c.set(again, uid)
                assert code(status) == 0x0110
                assert int(status.ErrorID) == 0xA710
    row = await store.read_tx(lambda conn: mpps.row(conn, str(done)))
    assert row["status"] == "COMPLETED"


async def test_missing_required_attribute_is_refused_0120(store: Any) -> None:
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        for key in ("PerformedProcedureStepStatus", "ScheduledStepAttributesSequence",
                    "Modality"):
            status, _ = await c.create(mpps_dataset(drop=(key,)), generate_uid())
            assert code(status) == 0x0120, key
            assert key in str(status.ErrorComment)


async def test_in_progress_update_keeps_the_instance_open(store: Any) -> None:
    await load(store, wl_item())
    uid = generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        await c.create(mpps_dataset(), uid)
        status, _ = await c.set(final_dataset("IN PROGRESS"), uid)
        assert code(status) == 0x0000
        status, _ = await c.set(final_dataset("COMPLETED"), uid)
        assert code(status) == 0x0000
    assert await sps_status(store) == "COMPLETED"


async def test_set_to_an_unknown_status_is_refused_0106(store: Any) -> None:
    uid = generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        await c.create(mpps_dataset(), uid)
        status, _ = await c.set(final_dataset("FINISHED"), uid)
    assert code(status) == 0x0106


async def test_discontinued_keeps_the_reason_and_discontinues_the_step(store: Any) -> None:
    await load(store, wl_item())
    uid = generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        await c.create(mpps_dataset(), uid)
        status, _ = await c.set(final_dataset("DISCONTINUED", reason="110514"), uid)
        assert code(status) == 0x0000
    assert await sps_status(store) == "DISCONTINUED"
    row = await store.read_tx(lambda conn: mpps.row(conn, str(uid)))
    assert row["discontinuation_reason"][0]["CodeValue"] == "110514"
    assert row["discontinuation_reason"][0]["CodingSchemeDesignator"] == "DCM"


async def test_links_by_accession_when_study_and_sps_id_match_nothing(store: Any) -> None:
    await load(store, wl_item())
    uid = generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        ds = mpps_dataset(study="1.2.3.999", sps_id="")  # modality generated its own study
        assert code((await c.create(ds, uid))[0]) == 0x0000
    assert await sps_status(store) == "STARTED"
    links = await store.read_tx(lambda conn: conn.execute(
        "SELECT study_instance_uid, sps_id, linked_by FROM mpps_steps").fetchall())
    assert links == [(STUDY, "SPS0001", "accession")]


async def test_unscheduled_mpps_is_stored_and_flagged_never_dropped(store: Any) -> None:
    await load(store, wl_item())
    uid = generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        ds = mpps_dataset(accession="UNKNOWN1", study="1.2.3.4", sps_id="")
        assert code((await c.create(ds, uid))[0]) == 0x0000
        assert code((await c.set(final_dataset(), uid))[0]) == 0x0000
    flagged = await store.read_tx(mpps.unscheduled)
    assert [r["sop_instance_uid"] for r in flagged] == [str(uid)]
    assert flagged[0]["status"] == "COMPLETED"
    assert await sps_status(store) == "SCHEDULED"  # the scheduled step is untouched


async def test_status_messages_are_queued_in_the_same_transaction_and_workers_woken(
    store: Any,
) -> None:
    await load(store, wl_item())
    route = status_route()
    uid = generate_uid()
    async with running_scp(store, [route]) as scp, scu(scp.bound_port or 0) as c:
        await c.create(mpps_dataset(), uid)
        await c.set(final_dataset(), uid)
    rows = await store.read_tx(lambda conn: conn.execute(
        "SELECT d.destination, d.status, d.payload, m.message_type FROM deliveries d"
        " JOIN messages m ON m.id = d.message_id ORDER BY d.id").fetchall())
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("modalities/ris", "pending", "N-CREATE"), ("modalities/ris", "pending", "N-SET")]
    orc = next(s for s in rows[1][2].decode().split("\r") if s.startswith("ORC")).split("|")
    assert orc[1] == "SC" and orc[5] == "CM"
    assert "|IP|" in rows[0][2].decode()
    assert len(route.woken) == 2


async def test_store_failure_is_answered_0110_never_success(store: Any) -> None:
    uid = generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        await store.write_tx(lambda conn: conn.execute("DROP TABLE mpps_steps"))
        status, _ = await c.create(mpps_dataset(), uid)
    assert code(status) == 0x0110
    assert await store.read_tx(lambda conn: mpps.get(conn, str(uid))) is None
