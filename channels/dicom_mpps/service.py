"""The MPPS service: N-CREATE / N-SET of the Modality Performed Procedure Step SOP Class.

Runs in the association's thread. The attribute list becomes a record, the operation is
applied on the engine loop in one store transaction (:func:`workflow.apply`, through the
:class:`~engine.dicom.bridge.LoopBridge` and ``store.write_tx``), and only then is Success
answered. The delivery workers of the HL7 status routes and of the events queue are woken
after the commit. A store or loop failure, or no answer within ``timeout_s``, is answered
0x0110 (processing failure) — never a success the engine cannot vouch for. An N-CREATE
without Affected SOP Instance UID gets one (returned in the response, PS3.7 10.1.5.1.4).

One summary log line per operation, without PHI (no names, IDs or UIDs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_CREATE, N_SET

from channels.dicom_mpps import machine
from channels.dicom_mpps.config import MPPSConfig
from channels.dicom_mpps.workflow import Operation, Outcome, StatusRoute, apply
from engine.dicom.bridge import BridgeError, LoopBridge
from engine.dicom.find import FindHandler
from engine.dicom.service import Context, EventHandler
from engine.errors import StoreError
from engine.logging import get_logger
from transforms.dicom_records import record_from_dataset

log = get_logger("radbridge.dicom_mpps")
MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"
"""Modality Performed Procedure Step SOP Class."""
ATTRIBUTE_LIST_ERROR = 0x0107
Reply = tuple[int | Dataset, Dataset | None]


def _status(code: int, comment: str = "", error_id: int | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    if error_id is not None:
        ds.ErrorID = error_id
    return ds


class MPPSService:
    """Answers MPPS N-CREATE / N-SET, storing every instance and change in ``store``."""

    def __init__(self, channel: str, config: MPPSConfig, store: Any, bridge: LoopBridge,
                 routes: Callable[[], Sequence[StatusRoute]] = tuple, metrics: Any = None
                 ) -> None:
        self.channel = channel
        self.config = config
        self.store = store
        self.bridge = bridge
        self.routes = routes
        self.metrics = metrics

    def contexts(self) -> Sequence[Context]:
        return [(MPPS_SOP_CLASS, [ImplicitVRLittleEndian, ExplicitVRLittleEndian])]

    def event_handlers(self) -> Sequence[EventHandler]:
        return [(evt.EVT_N_CREATE, self.on_create), (evt.EVT_N_SET, self.on_set)]

    def find_handlers(self) -> Mapping[str, FindHandler]:
        return {}

    # -- handlers (association thread) ---------------------------------------------------
    def on_create(self, event: evt.Event) -> Reply:
        req = cast(N_CREATE, event.request)
        uid = str(req.AffectedSOPInstanceUID or "")
        assigned = not uid
        if assigned:
            uid = str(generate_uid())
        try:
            record = record_from_dataset(event.attribute_list)
        except Exception:
            return self._answer(event, "N-CREATE", Outcome(ATTRIBUTE_LIST_ERROR,
                                                           "attribute list cannot be decoded"))
        outcome = self._run(event, Operation("N-CREATE", uid, record))
        reply = self._answer(event, "N-CREATE", outcome)
        if outcome.status == machine.SUCCESS and assigned:
            ds = Dataset()
            ds.AffectedSOPInstanceUID = uid  # moved into the N-CREATE-RSP by pynetdicom
            return reply[0], ds
        return reply

    def on_set(self, event: evt.Event) -> Reply:
        uid = str(cast(N_SET, event.request).RequestedSOPInstanceUID or "")
        try:
            record = record_from_dataset(event.modification_list)
        except Exception:
            return self._answer(event, "N-SET", Outcome(ATTRIBUTE_LIST_ERROR,
                                                        "modification list cannot be decoded"))
        return self._answer(event, "N-SET", self._run(event, Operation("N-SET", uid, record)))

    # -- the work (engine loop, writer thread) ------------------------------------------
    def _run(self, event: evt.Event, op: Operation) -> Outcome:
        requestor = event.assoc.requestor
        op.calling_aet = str(requestor.ae_title).strip()
        op.peer = f"{op.calling_aet}@{requestor.address}"
        event_started = time.perf_counter()
        try:
            outcome = self.bridge.run(self._apply(op), timeout=self.config.timeout_s)
        except (BridgeError, StoreError) as exc:
            log.error("mpps_failed", channel=self.channel, message_type=op.operation,
                      error=type(exc).__name__, peer=op.peer)
            outcome = Outcome(machine.PROCESSING_FAILURE, "MPPS could not be stored")
        outcome_ms = round((time.perf_counter() - event_started) * 1000, 2)
        warnings = ["unscheduled"] if outcome.unscheduled and outcome.message_id else []
        log.info("mpps_received", channel=self.channel, message_type=op.operation,
                 code=f"0x{outcome.status:04X}", status=outcome.mpps_status,
                 message_id=outcome.message_id, count=outcome.deliveries, warnings=warnings,
                 peer=op.peer, duration_ms=outcome_ms)
        return outcome

    async def _apply(self, op: Operation) -> Outcome:
        routes = list(self.routes())
        outcome: Outcome = await self.store.write_tx(
            lambda conn: apply(conn, self.channel, op, self.config, routes))
        for wake in outcome.notify:  # after the commit: the rows are there to read
            wake()
        return outcome

    def _answer(self, event: evt.Event, operation: str, outcome: Outcome) -> Reply:
        if outcome.status == machine.SUCCESS:
            return machine.SUCCESS, Dataset()
        return _status(outcome.status, outcome.comment, outcome.error_id), None
