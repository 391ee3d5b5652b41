"""Events are queued in the transaction of what happened: MPPS → procedure_*, orders →
order_received and worklist_entry_*; payloads hold no PHI by default."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.uid import generate_uid

from engine import events
from tests.channels.dicom_mpps.conftest import (
    ROOT,
    final_dataset,
    load,
    mpps_dataset,
    running_scp,
    scu,
    wl_item,
)
from tests.integration.conftest import sample
from transforms import load_mapping
from transforms.worklist import apply_order


@pytest.fixture(autouse=True)
def events_on() -> Iterator[list[int]]:
    woken: list[int] = []
    events.configure(events.DEFAULT_QUEUE, notify=lambda: woken.append(1))
    try:
        yield woken
    finally:
        events.configure(None)


async def queued(store: Any) -> list[dict[str, Any]]:
    rows = await store.read_tx(lambda c: c.execute(
        "SELECT payload FROM deliveries WHERE destination = ? ORDER BY id",
        (events.DEFAULT_QUEUE,)).fetchall())
    return [json.loads(r[0]) for r in rows]


async def test_mpps_emits_procedure_started_and_completed_without_phi(
    store: Any, events_on: list[int],
) -> None:
    await load(store, wl_item())
    uid = generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        await c.create(mpps_dataset(), uid)
        await c.set(final_dataset(), uid)
    docs = await queued(store)
    assert [d["event"] for d in docs] == ["procedure_started", "procedure_completed"]
    done = docs[1]
    assert done["channel"] == "modalities" and done["accession_number"] == "ACC0001"
    assert done["sps_status"] == "COMPLETED" and done["mpps_sop_instance_uid"] == str(uid)
    assert done["unscheduled"] is False and isinstance(done["message_id"], int)
    text = json.dumps(docs)
    assert "PAT10001" not in text and "TESTPATIENT" not in text
    assert len(events_on) == 2  # woken after each commit


async def test_discontinued_event_carries_the_reason_code(store: Any) -> None:
    uid = generate_uid()
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        await c.create(mpps_dataset(accession="NOPE"), uid)
        await c.set(final_dataset("DISCONTINUED", reason="110514"), uid)
    stopped = (await queued(store))[-1]
    assert stopped["event"] == "procedure_discontinued"
    assert (stopped["reason_code"], stopped["reason_scheme"]) == ("110514", "DCM")
    assert stopped["unscheduled"] is True and stopped["sps_status"] == ""


async def test_patient_id_is_published_only_when_allowed(store: Any) -> None:
    events.configure(events.DEFAULT_QUEUE, phi_fields=["patient_id"])
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        await c.create(mpps_dataset(), generate_uid())
    assert (await queued(store))[0]["patient_id"] == "PAT10001"


async def test_refused_mpps_emits_nothing(store: Any) -> None:
    async with running_scp(store) as scp, scu(scp.bound_port or 0) as c:
        await c.create(mpps_dataset("COMPLETED"), generate_uid())
    assert await queued(store) == []


async def test_order_emits_order_received_and_entry_created_in_its_transaction(
    store: Any,
) -> None:
    mapping = load_mapping(ROOT / "mappings" / "order_to_worklist.yaml")
    record = mapping.run(sample("orm_o01_nw_v231.hl7")).record

    def ingest(conn: Any) -> None:
        cur = conn.execute(
            "INSERT INTO messages (received_at, channel, message_type, status, size, raw)"
            " VALUES (?, 'ris', 'ORM^O01', 'processed', 1, x'00')", (time.time(),))
        apply_order(conn, record, cur.lastrowid)

    await store.write_tx(ingest)
    await store.write_tx(ingest)  # the same order again: an update
    docs = await queued(store)
    kinds = [d["event"] for d in docs]
    assert kinds[0] == "order_received" and kinds[1] == "worklist_entry_created"
    assert "worklist_entry_changed" in kinds[kinds.index("order_received", 1):]
    assert docs[0]["channel"] == "ris" and docs[0]["order_control"] == "NW"
    assert docs[1]["accession_number"] == "ACC0001" and docs[1]["sps_status"] == "SCHEDULED"
    assert "TESTPATIENT" not in json.dumps(docs)
