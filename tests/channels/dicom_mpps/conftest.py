"""Fixtures for the MPPS tests: a store with a worklist, the DICOM SCP serving MPPS on a free
loopback port, and a pynetdicom SCU (a real association, run in a worker thread)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt

from channels.dicom_mpps.service import MPPS_SOP_CLASS
from channels.dicom_mwl.scp import MWLSCP
from engine.store import worklist
from engine.store.sqlite import SQLiteStore
from tests.support.sources import running
from transforms import load_mapping

ROOT = Path(__file__).resolve().parents[3]
STUDY = "1.2.826.0.1.3680043.10.1001.1"


def wl_item(accession: str = "ACC0001", sps_id: str = "SPS0001", study: str = STUDY,
            patient: str = "PAT10001") -> dict[str, Any]:
    return {"PatientName": "TESTPATIENT^ALICE", "PatientID": patient,
            "AccessionNumber": accession, "StudyInstanceUID": study,
            "RequestedProcedureID": "RP0001",
            "ScheduledProcedureStepSequence": [{
                "Modality": "CT", "ScheduledStationAETitle": "CT1",
                "ScheduledProcedureStepStartDate": "20261122",
                "ScheduledProcedureStepID": sps_id}]}


def mpps_dataset(status: str = "IN PROGRESS", *, accession: str = "ACC0001",
                 sps_id: str = "SPS0001", study: str = STUDY, drop: tuple[str, ...] = ()
                 ) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "TESTPATIENT^ALICE"
    ds.PatientID = "PAT10001"
    ds.Modality = "CT"
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedProcedureStepID = "PPS0001"
    ds.PerformedProcedureStepStartDate = "20261122"
    ds.PerformedProcedureStepStartTime = "090512"
    ds.PerformedProcedureStepStatus = status
    item = Dataset()
    item.StudyInstanceUID = study
    item.AccessionNumber = accession
    item.ScheduledProcedureStepID = sps_id
    item.RequestedProcedureID = "RP0001"
    ds.ScheduledStepAttributesSequence = [item]
    for key in drop:
        delattr(ds, key)
    return ds


def final_dataset(status: str = "COMPLETED", reason: str = "") -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261122"
    ds.PerformedProcedureStepEndTime = "091500"
    if reason:
        code = Dataset()
        code.CodeValue = reason
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = "Incorrect worklist entry selected"
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [code]
    return ds


@dataclass
class FakeRoute:
    """An ``engine.router.Route`` as the runtime would attach it (queue, mapping, notify)."""

    queue_name: str
    name: str
    mapping: Any
    charset: str | None = None
    effect: Any = None
    woken: list[int] = field(default_factory=list)

    def notify(self) -> None:
        self.woken.append(1)


def status_route(name: str = "ris", mapping: str = "mpps_to_order_status.yaml") -> FakeRoute:
    return FakeRoute(f"modalities/{name}", name, load_mapping(ROOT / "mappings" / mapping))


async def load(store: SQLiteStore, *items: dict[str, Any]) -> None:
    def op(conn: Any) -> None:
        for item in items:
            worklist.upsert_step(conn, item)

    await store.write_tx(op)


@asynccontextmanager
async def running_scp(store: Any, routes: list[Any] | None = None, **overrides: Any
                      ) -> AsyncIterator[MWLSCP]:
    cfg = MWLSCP.config_model.model_validate(
        {"type": "dicom_mwl_scp", "host": "127.0.0.1", "port": 0, **overrides})
    scp = MWLSCP("modalities", cfg, store=store)
    scp.attach_routes(routes or [])
    async with running(scp):
        yield scp


class SCU:
    """One MPPS association to ``port``; every call runs in a worker thread."""

    def __init__(self, port: int) -> None:
        ae = AE(ae_title="CT1")
        ae.add_requested_context(MPPS_SOP_CLASS)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
        self.responses: list[Any] = []  # the DIMSE responses (command sets) received
        self.assoc = ae.associate("127.0.0.1", port, ae_title="RADBRIDGE",
                                  evt_handlers=[(evt.EVT_DIMSE_RECV, self._received)])
        assert self.assoc.is_established

    def _received(self, event: evt.Event) -> None:
        self.responses.append(event.message.command_set)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def create(self, ds: Dataset, uid: str | None) -> tuple[Dataset, Dataset | None]:
        status, attrs = await self.call(self.assoc.send_n_create, ds, MPPS_SOP_CLASS, uid)
        return status, attrs

    async def set(self, ds: Dataset, uid: str) -> tuple[Dataset, Dataset | None]:
        status, attrs = await self.call(self.assoc.send_n_set, ds, MPPS_SOP_CLASS, uid)
        return status, attrs

    async def release(self) -> None:
        await self.call(self.assoc.release)


@asynccontextmanager
async def scu(port: int) -> AsyncIterator[SCU]:
    client = await asyncio.to_thread(SCU, port)
    try:
        yield client
    finally:
        await client.release()
