"""Order and patient lifecycle on the worklist (IHE SWF RAD-4/RAD-13, RAD-1/RAD-12).

These functions run inside the ingest transaction (``store.write_tx`` / an ingest effect),
so a message and its effect on the worklist commit together. They raise
``MessageRejected`` for what must be answered AE instead of silently re-parenting data.

* NW: creates the steps (an already known Study Instance UID is an update, with a warning).
* XO: replaces the step set of that study: steps absent from the new message are removed.
* CA / DC / SC / XO+CM: the mapping has already turned ORC-1 + ORC-5 into each step's SPS
  Status (``mappings/tables/order_status_to_sps_status.csv``); the steps are updated.
* An update for a known Study Instance UID under a different patient is rejected (205).
* A08 and friends: the demographics the worklist returns change from the next query on.
* A40: every step of the merged patient moves to the surviving one; the merged ID is
  recorded, and later orders that use it follow ``merged_patient`` (default reject, 204).

When engine events are on (:mod:`engine.events`), each applied order emits
``order_received`` and one ``worklist_entry_created`` / ``_changed`` / ``_cancelled`` per
step, in the same transaction (no PHI beyond what ``events.phi_fields`` allows).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from engine import events
from engine.errors import MessageRejected
from engine.store import worklist as wl
from engine.store import worklist_links as links
from transforms.dicom_records import split_sequence

PATIENT_KEYS = ("PatientName", "PatientBirthDate", "PatientSex", "PatientID",
                "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence")


def apply_order(
    conn: sqlite3.Connection, record: Mapping[str, Any], message_id: int, *,
    merged_patient: str = "reject",
) -> list[str]:
    """Apply one order record (the order → worklist mapping output); return warnings."""
    order = record.get("_order") or {}
    control = str(order.get("control", "NW"))
    study_uid = str(record.get("StudyInstanceUID", ""))
    pid, issuer = str(record.get("PatientID", "")), str(record.get("IssuerOfPatientID", ""))
    warnings: list[str] = []
    survivor = links.merged_into(conn, pid, issuer)
    if survivor is not None:
        if merged_patient == "reject":
            raise MessageRejected(
                "the order's patient ID was merged into another patient (ADT^A40); "
                "resend with the surviving ID", code="AE", error_code="204",
                location="PID^1^3")
        record = {**record, "PatientID": survivor}
        pid = survivor
        warnings.append("patient ID was merged: order moved to the surviving patient")
    known = links.study_patient(conn, study_uid)
    if known is not None and known != (pid, issuer):
        raise MessageRejected(
            "Study Instance UID is already scheduled for a different patient; "
            "update refused (no silent re-parenting)", code="AE", error_code="205",
            location="PID^1^3")
    if known is not None and control == "NW":
        warnings.append("new order for a Study Instance UID already on the worklist: updated")
    items = split_sequence(dict(record))
    emit = events.enabled()
    before = links.study_step_ids(conn, study_uid) if emit else set()
    removed: list[dict[str, Any]] = []
    if control == "XO":
        keep = {str(wl.step_of(i).get("ScheduledProcedureStepID", "")) for i in items}
        for old in wl.steps_for_study(conn, study_uid):
            sps_id = str(wl.step_of(old).get("ScheduledProcedureStepID", ""))
            if sps_id not in keep:
                wl.delete_step(conn, study_uid, sps_id)
                removed.append(old)
                warnings.append("replaced order: a step absent from the new message was removed")
    for item in items:
        wl.upsert_step(conn, item, message_id=message_id)
        _link(conn, item, message_id)
    if emit:
        _order_events(conn, message_id, control, record, items, before,
                                      removed)
    return warnings


def _link(conn: sqlite3.Connection, item: Mapping[str, Any], message_id: int) -> None:
    links.link_message(conn, str(item.get("StudyInstanceUID", "")),
                       str(wl.step_of(item).get("ScheduledProcedureStepID", "")), message_id)


def apply_patient(
    conn: sqlite3.Connection, record: Mapping[str, Any], message_id: int, *,
    unknown_patient: str = "ignore",
) -> list[str]:
    """Apply a patient update (A08…) or merge (A40) record; return warnings.

    ``record`` holds the PID demographics as DICOM keywords and, for a merge,
    ``_merge: {PatientID, IssuerOfPatientID}`` of the merged (old) patient."""
    pid, issuer = str(record.get("PatientID", "")), str(record.get("IssuerOfPatientID", ""))
    merge = record.get("_merge") or {}
    source = (str(merge.get("PatientID", "")), str(merge.get("IssuerOfPatientID", issuer))) \
        if merge else (pid, issuer)
    rows = links.patient_steps(conn, *source)
    if merge:
        links.record_merge(conn, source, (pid, issuer), message_id)
    if not rows:
        if unknown_patient == "reject" and not merge:
            raise MessageRejected("patient update for a patient with no worklist entry",
                                  code="AE", error_code="204", location="PID^1^3")
        return ["no worklist entry for this patient: nothing to update"]
    updates = {k: record[k] for k in PATIENT_KEYS if k in record and record[k] not in ("", None)}
    changed: list[dict[str, Any]] = []
    for study_uid, sps_id in rows:
        item = wl.get_step(conn, study_uid, sps_id)
        if item is None:
            continue
        item.update(updates)
        wl.upsert_step(conn, item, message_id=message_id)
        _link(conn, item, message_id)
        changed.append(item)
    if changed and events.enabled():
        _changed_events(conn, message_id, changed)
    return []


# -- engine events (only when events are on) -------------------------------------------------
_GONE = frozenset({"CANCELED", "DISCONTINUED"})


def _step_event(kind: type[events.WorklistEvent], channel: str, message_id: int,
                item: Mapping[str, Any]) -> events.Event:
    step = wl.step_of(item)
    aets = wl.station_aets(step)
    return kind(
        channel=channel, message_id=message_id,
        accession_number=str(item.get("AccessionNumber", "") or ""),
        study_instance_uid=str(item.get("StudyInstanceUID", "") or ""),
        sps_id=str(step.get("ScheduledProcedureStepID", "") or ""),
        patient_id=str(item.get("PatientID", "") or "") or None,
        issuer_of_patient_id=str(item.get("IssuerOfPatientID", "") or "") or None,
        sps_status=str(step.get("ScheduledProcedureStepStatus", "") or "SCHEDULED"),
        modality=str(step.get("Modality", "") or ""),
        scheduled_station_aet=aets[0] if aets else "",
    )


def _order_events(conn: sqlite3.Connection, message_id: int, control: str,
                  record: Mapping[str, Any], items: list[dict[str, Any]], before: set[str],
                  removed: list[dict[str, Any]]) -> None:
    channel, message_type = links.message_origin(conn, message_id)
    events.emit(conn, events.OrderReceived(
        channel=channel, message_id=message_id, message_type=message_type,
        order_control=control, steps=len(items),
        accession_number=str(record.get("AccessionNumber", "") or ""),
        study_instance_uid=str(record.get("StudyInstanceUID", "") or ""),
        patient_id=str(record.get("PatientID", "") or "") or None,
        issuer_of_patient_id=str(record.get("IssuerOfPatientID", "") or "") or None))
    for item in items:
        step = wl.step_of(item)
        status = str(step.get("ScheduledProcedureStepStatus", "") or "").upper()
        kind: type[events.WorklistEvent] = events.WorklistEntryChanged
        if status in _GONE:
            kind = events.WorklistEntryCancelled
        elif str(step.get("ScheduledProcedureStepID", "")) not in before:
            kind = events.WorklistEntryCreated
        events.emit(conn, _step_event(kind, channel, message_id, item))
    for item in removed:
        events.emit(conn, _step_event(events.WorklistEntryCancelled, channel, message_id, item))


def _changed_events(conn: sqlite3.Connection, message_id: int,
                    items: list[dict[str, Any]]) -> None:
    channel, _ = links.message_origin(conn, message_id)
    for item in items:
        events.emit(conn, _step_event(events.WorklistEntryChanged, channel, message_id, item))
