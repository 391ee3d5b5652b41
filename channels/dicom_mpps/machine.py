"""The MPPS state machine (PS3.4 Annex F), sans-I/O: decisions on records, no store, no socket.

A record is an MPPS dataset as DICOM keyword → value (sequences as lists of records).

=============================================================  ======================
N-CREATE for an instance that exists                           0x0111 duplicate
N-CREATE without a required attribute / with it empty          0x0120 / 0x0121
N-CREATE whose status is not IN PROGRESS                       0x0106 invalid value
N-SET for an unknown instance                                  0x0112 no such instance
N-SET of an instance that is COMPLETED or DISCONTINUED         0x0110 (Error ID 0xA710)
N-SET to a status other than IN PROGRESS/COMPLETED/DISCONT.    0x0106 invalid value
=============================================================  ======================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IN_PROGRESS, COMPLETED, DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"
STATUSES = (IN_PROGRESS, COMPLETED, DISCONTINUED)
FINAL = frozenset({COMPLETED, DISCONTINUED})
SPS_STATUS = {IN_PROGRESS: "STARTED", COMPLETED: "COMPLETED", DISCONTINUED: "DISCONTINUED"}
"""MPPS status → the worklist step's SPS Status (as dcm4chee maps it)."""
STATUS_KEY = "PerformedProcedureStepStatus"
STEPS_KEY = "ScheduledStepAttributesSequence"
REASON_KEY = "PerformedProcedureStepDiscontinuationReasonCodeSequence"

SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_INSTANCE = 0x0111
NO_SUCH_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
MAY_NO_LONGER_BE_UPDATED = 0xA710
"""Error ID sent with 0x0110 for an N-SET after the final state (as dcm4chee)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A failure status to answer, with a short comment (no PHI) and an optional Error ID."""

    status: int
    comment: str
    error_id: int | None = None


@dataclass(slots=True)
class Change:
    """An accepted operation: the instance's status before and after, and its record."""

    operation: str  # N-CREATE | N-SET
    uid: str
    before: str  # '' for N-CREATE
    after: str
    record: dict[str, Any]  # the instance after the change (create merged with every set)
    changes: dict[str, Any] = field(default_factory=dict)  # what this operation carried

    @property
    def status_changed(self) -> bool:
        return self.before != self.after

    @property
    def sps_status(self) -> str:
        return SPS_STATUS[self.after]


def _empty(value: Any) -> bool:
    return value is None or value in ("", [])


def create(uid: str, existing: str | None, record: Mapping[str, Any],
           required: Sequence[str]) -> Change | Refusal:
    """Decide an N-CREATE; ``existing`` is the stored status of ``uid`` (None: new)."""
    if existing is not None:
        return Refusal(DUPLICATE_INSTANCE, "MPPS instance already exists")
    missing = [k for k in required if k not in record]
    if missing:
        return Refusal(MISSING_ATTRIBUTE, f"missing {', '.join(missing)}"[:64])
    empty = [k for k in required if _empty(record.get(k))]
    if empty:
        return Refusal(MISSING_ATTRIBUTE_VALUE, f"empty {', '.join(empty)}"[:64])
    status = str(record.get(STATUS_KEY, "")).strip().upper()
    if status != IN_PROGRESS:
        return Refusal(INVALID_ATTRIBUTE_VALUE, "N-CREATE status must be IN PROGRESS")
    merged = {**record, STATUS_KEY: status}
    return Change("N-CREATE", uid, "", status, merged, dict(record))


def update(uid: str, existing: tuple[str, Mapping[str, Any]] | None,
           modifications: Mapping[str, Any]) -> Change | Refusal:
    """Decide an N-SET; ``existing`` is (stored status, stored record) or None."""
    if existing is None:
        return Refusal(NO_SUCH_INSTANCE, "no such MPPS instance")
    before, stored = existing
    if before in FINAL:
        return Refusal(PROCESSING_FAILURE,
                       "Performed Procedure Step Object may no longer be updated",
                       MAY_NO_LONGER_BE_UPDATED)
    after = before
    if STATUS_KEY in modifications:
        after = str(modifications.get(STATUS_KEY) or "").strip().upper()
        if after not in STATUSES:
            return Refusal(INVALID_ATTRIBUTE_VALUE, "invalid Performed Procedure Step Status")
    merged = {**stored, **modifications, STATUS_KEY: after}
    return Change("N-SET", uid, before, after, merged, dict(modifications))


def scheduled_steps(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The items of the Scheduled Step Attributes Sequence (records), in order."""
    items = record.get(STEPS_KEY)
    if not isinstance(items, list):
        return []
    return [dict(i) for i in items if isinstance(i, Mapping)]


def discontinuation_reason(record: Mapping[str, Any]) -> dict[str, str]:
    """The first item of the Discontinuation Reason Code Sequence (CID 9300), or {}."""
    items = record.get(REASON_KEY)
    if not isinstance(items, list) or not items or not isinstance(items[0], Mapping):
        return {}
    first = items[0]
    return {k: str(first.get(k, "")) for k in ("CodeValue", "CodingSchemeDesignator",
                                                "CodeMeaning")}
