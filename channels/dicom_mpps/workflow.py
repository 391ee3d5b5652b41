"""One MPPS N-CREATE / N-SET applied in one store transaction.

:func:`apply` runs in the store's writer thread (``store.write_tx``) and either refuses the
operation (nothing written) or, atomically:

1. records the operation as a ``messages`` row (channel, ``N-CREATE``/``N-SET``, the attribute
   list as JSON), the anchor of its deliveries and events;
2. stores the instance (``mpps``) and appends the operation to ``mpps_events``;
3. on N-CREATE, links the instance to the worklist steps its Scheduled Step Attributes
   Sequence references (none: ``unscheduled``, kept for the reconciler);
4. when the status changed, moves those steps to STARTED / COMPLETED / DISCONTINUED,
   queues one HL7 status message per status route (each destination's own mapping, e.g.
   ORM^O01 ORC-1 SC for v2.3.1 or OMI^O23 for v2.5.1 receivers) and emits a
   ``procedure_*`` event.

The caller wakes the delivery workers after the commit (:attr:`Outcome.notify`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.dicom_mpps import machine
from channels.dicom_mpps.config import MPPSConfig
from channels.dicom_mpps.machine import Change, Refusal
from engine import events
from engine.store import mpps, outbox
from engine.store import worklist as wl


class StatusRoute(Protocol):
    """What the MPPS service needs of a channel destination (``engine.router.Route``)."""

    queue_name: str
    name: str
    mapping: Any
    charset: str | None
    effect: Any
    notify: Callable[[], None]


@dataclass(slots=True)
class Operation:
    operation: str  # N-CREATE | N-SET
    uid: str
    record: dict[str, Any]
    calling_aet: str = ""
    peer: str = ""


@dataclass(slots=True)
class Outcome:
    status: int = machine.SUCCESS
    comment: str = ""
    error_id: int | None = None
    message_id: int | None = None
    mpps_status: str = ""
    unscheduled: bool = False
    steps: int = 0
    deliveries: int = 0
    warnings: list[str] = field(default_factory=list)
    notify: list[Callable[[], None]] = field(default_factory=list)


def apply(conn: sqlite3.Connection, channel: str, op: Operation, config: MPPSConfig,
          routes: Sequence[StatusRoute] = (), *, now: float | None = None) -> Outcome:
    """Decide and apply one operation inside the caller's transaction."""
    stamp = time.time() if now is None else now
    existing = mpps.get(conn, op.uid)
    decision: Change | Refusal
    if op.operation == "N-CREATE":
        decision = machine.create(op.uid, None if existing is None else existing[0],
                                  op.record, config.required_attributes)
    else:
        decision = machine.update(op.uid, existing, op.record)
    if isinstance(decision, Refusal):
        return Outcome(decision.status, decision.comment, decision.error_id)
    change = decision
    mid = _message(conn, channel, op, stamp)
    out = Outcome(message_id=mid, mpps_status=change.after)
    if change.operation == "N-CREATE":
        steps = mpps.find_steps(conn, machine.scheduled_steps(change.record),
                                by_accession=config.link_by_accession)
        mpps.insert(conn, op.uid, channel, change.after, change.record,
                    calling_aet=op.calling_aet, steps=steps, now=stamp)
        linked = [(s, p) for s, p, _ in steps]
    else:
        mpps.update(conn, op.uid, change.after, change.record, now=stamp)
        linked = mpps.linked_steps(conn, op.uid)
    mpps.add_event(conn, op.uid, change.operation, change.before, change.after, change.changes,
                   message_id=mid, calling_aet=op.calling_aet, now=stamp)
    out.unscheduled, out.steps = not linked, len(linked)
    if change.status_changed:
        for study, sps in linked:
            wl.set_status(conn, study, sps, change.sps_status, now=stamp)
        if change.after in machine.FINAL or config.send_in_progress:
            _queue_status(conn, mid, change, routes, out, stamp)
        if events.emit(conn, _event(channel, mid, change, linked), wake=False) is not None:
            out.notify.append(events.notify)
    if out.warnings:
        conn.execute("UPDATE messages SET warnings = ? WHERE id = ?",
                     (json.dumps(out.warnings), mid))
    return out


def _message(conn: sqlite3.Connection, channel: str, op: Operation, now: float) -> int:
    raw = json.dumps(op.record, ensure_ascii=False, separators=(",", ":"),
                     default=str).encode()
    charset = op.record.get("SpecificCharacterSet", "")
    return outbox.record(
        conn, channel=channel, message_type=op.operation, raw=raw, received_at=now,
        control_id=op.uid, peer=op.peer, ack_code="0000",
        charset="\\".join(charset) if isinstance(charset, list) else str(charset))


def _queue_status(conn: sqlite3.Connection, mid: int, change: Change,
                  routes: Sequence[StatusRoute], out: Outcome, now: float) -> None:
    rows: list[tuple[int, str, str, bytes]] = []
    key = str(change.record.get("PatientID", "") or "")
    for route in routes:
        if route.effect is not None or route.mapping is None:
            continue
        result = route.mapping.run(change.record)
        if result.status == "filtered":
            continue
        if result.status != "ok":
            out.warnings.append(f"{route.name}: no status message: {result.reason}")
            continue
        rows.append((mid, route.queue_name, key, result.encode(route.charset)))
        if route.notify not in out.notify:
            out.notify.append(route.notify)
    out.deliveries = outbox.queue(conn, rows, now)


def _event(channel: str, mid: int, change: Change, linked: list[tuple[str, str]]
           ) -> events.Event:
    record = change.record
    items = machine.scheduled_steps(record)
    first = items[0] if items else {}
    common: dict[str, Any] = {
        "channel": channel, "message_id": mid,
        "accession_number": str(first.get("AccessionNumber", "") or ""),
        "study_instance_uid": linked[0][0] if linked else str(first.get("StudyInstanceUID", "")),
        "sps_id": linked[0][1] if linked else str(first.get("ScheduledProcedureStepID", "")),
        "patient_id": str(record.get("PatientID", "") or "") or None,
        "issuer_of_patient_id": str(record.get("IssuerOfPatientID", "") or "") or None,
        "mpps_sop_instance_uid": change.uid, "mpps_status": change.after,
        "sps_status": change.sps_status if linked else "", "unscheduled": not linked,
        "modality": str(record.get("Modality", "") or ""),
        "performed_station_aet": str(record.get("PerformedStationAETitle", "") or ""),
    }
    if change.after == machine.COMPLETED:
        return events.ProcedureCompleted(**common)
    if change.after == machine.DISCONTINUED:
        reason = machine.discontinuation_reason(record)
        return events.ProcedureDiscontinued(
            **common, reason_code=reason.get("CodeValue", ""),
            reason_scheme=reason.get("CodingSchemeDesignator", ""),
            reason_meaning=reason.get("CodeMeaning", ""))
    return events.ProcedureStarted(**common)
