"""Engine events: what happened, as small JSON documents published to MQTT.

Every hop of the workflow is an event. Each is a pydantic model with a stable schema
(``event``, ``version`` and the common fields below, then its own fields); the JSON schema
of all of them is :func:`json_schema` (``radbridge schema`` can print it). Events are
published to ``<prefix>/<event>/<channel>`` (default prefix ``radbridge``), e.g.
``radbridge/procedure_completed/modalities``.

Common fields (every event):

==========================  ===============================================================
``event``                   the event name (also the second topic level)
``version``                 schema version of that event (1); a breaking change bumps it
``time``                    ISO 8601 UTC time the engine recorded it
``channel``                 the channel it happened on (``_engine`` for engine-wide events)
``message_id``              the stored inbound message (or MPPS operation) it came from
``accession_number``        accession number, when known
``study_instance_uid``      Study Instance UID, when known
``sps_id``                  Scheduled Procedure Step ID, when known
==========================  ===============================================================

Events carry **no PHI by default**: no names, no birth dates, no patient IDs. The PHI
fields (``patient_id``, ``issuer_of_patient_id``) are filled by the code that builds the
event and stripped by :func:`emit` unless the operator allows them (``events.phi_fields``).
Accession numbers and UIDs are identifiers of the order, not of the person, and are kept.

Durability: :func:`emit` runs inside the transaction of what happened and inserts a row in
the engine's ``deliveries`` queue (queue name :data:`DEFAULT_QUEUE`, ``_events/mqtt``);
a delivery worker whose destination is an ``mqtt_publisher`` drains it. A broker that is
down only delays events (they wait in the queue, retried with backoff); it never blocks or
loses HL7 traffic. When events are not configured (:func:`configure` not called, or with
``queue=None``), :func:`emit` does nothing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from engine.store import outbox

DEFAULT_QUEUE = "_events/mqtt"
EVENTS_CHANNEL = "_events"
PHI_FIELDS = frozenset({"patient_id", "issuer_of_patient_id"})
"""Fields that identify a person; published only when allowed in ``phi_fields``."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Event(BaseModel):
    """Fields common to every event."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: ClassVar[str] = "event"

    version: int = 1
    time: str = Field(default_factory=_now)
    channel: str = ""
    message_id: int | None = None
    accession_number: str = ""
    study_instance_uid: str = ""
    sps_id: str = ""
    patient_id: str | None = None
    """PHI: published only when allowed."""
    issuer_of_patient_id: str | None = None
    """PHI: published only when allowed."""


class OrderReceived(Event):
    """An order (ORM^O01 / OMI^O23) was stored and applied to the worklist."""

    name: ClassVar[str] = "order_received"
    event: Literal["order_received"] = "order_received"
    message_type: str = ""
    order_control: str = ""
    """ORC-1 (NW, XO, CA, DC, SC…)."""
    steps: int = 0
    """Scheduled procedure steps the order carries."""


class WorklistEvent(Event):
    """Fields of the worklist_entry_* events."""

    sps_status: str = ""
    modality: str = ""
    scheduled_station_aet: str = ""


class WorklistEntryCreated(WorklistEvent):
    """A scheduled procedure step appeared on the worklist."""

    name: ClassVar[str] = "worklist_entry_created"
    event: Literal["worklist_entry_created"] = "worklist_entry_created"


class WorklistEntryChanged(WorklistEvent):
    """A scheduled procedure step changed (time, station, status, demographics)."""

    name: ClassVar[str] = "worklist_entry_changed"
    event: Literal["worklist_entry_changed"] = "worklist_entry_changed"


class WorklistEntryCancelled(WorklistEvent):
    """A scheduled procedure step was cancelled or removed by the RIS."""

    name: ClassVar[str] = "worklist_entry_cancelled"
    event: Literal["worklist_entry_cancelled"] = "worklist_entry_cancelled"


class ProcedureEvent(Event):
    """Fields of the procedure_* events (from MPPS)."""

    mpps_sop_instance_uid: str = ""
    mpps_status: str = ""
    """IN PROGRESS, COMPLETED or DISCONTINUED."""
    sps_status: str = ""
    """The worklist step's new status ('' when the MPPS matched no step)."""
    unscheduled: bool = False
    """The MPPS matched no scheduled step; flagged for reconciliation."""
    modality: str = ""
    performed_station_aet: str = ""


class ProcedureStarted(ProcedureEvent):
    """A modality reported MPPS IN PROGRESS (N-CREATE)."""

    name: ClassVar[str] = "procedure_started"
    event: Literal["procedure_started"] = "procedure_started"


class ProcedureCompleted(ProcedureEvent):
    """A modality reported MPPS COMPLETED (N-SET)."""

    name: ClassVar[str] = "procedure_completed"
    event: Literal["procedure_completed"] = "procedure_completed"


class ProcedureDiscontinued(ProcedureEvent):
    """A modality reported MPPS DISCONTINUED (N-SET), with its reason code (CID 9300)."""

    name: ClassVar[str] = "procedure_discontinued"
    event: Literal["procedure_discontinued"] = "procedure_discontinued"
    reason_code: str = ""
    reason_scheme: str = ""
    reason_meaning: str = ""


class DeliveryDeadLettered(Event):
    """A queued delivery gave up (attempts exhausted or refused for good)."""

    name: ClassVar[str] = "delivery_dead_lettered"
    event: Literal["delivery_dead_lettered"] = "delivery_dead_lettered"
    destination: str = ""
    delivery_id: int = 0
    attempts: int = 0
    reason: str = ""


class MismatchFlagged(Event):
    """The reconciler flagged a mismatch between what was ordered and what the PACS holds."""

    name: ClassVar[str] = "mismatch_flagged"
    event: Literal["mismatch_flagged"] = "mismatch_flagged"
    mismatch_id: int = 0
    kind: str = ""
    """The mismatch type (``mappings/reconcile.yml``), e.g. ``accession_mismatch``."""
    severity: str = ""
    """critical, high, medium or low."""
    change: Literal["new", "reopened", "changed"] = "new"
    """New, found again after it was resolved, or its severity or values changed."""
    explanation: str = ""
    """The human explanation (identifiers of orders and studies only, no names)."""
    order_ref: str = ""
    """The worklist step (``study_uid/sps_id``), when the mismatch has an order side."""
    study_ref: str = ""
    """The PACS study (Study Instance UID) or ``mpps:<uid>``, when it has a study side."""


EVENT_MODELS: tuple[type[Event], ...] = (
    OrderReceived, WorklistEntryCreated, WorklistEntryChanged, WorklistEntryCancelled,
    ProcedureStarted, ProcedureCompleted, ProcedureDiscontinued, DeliveryDeadLettered,
    MismatchFlagged,
)


def json_schema() -> dict[str, Any]:
    """The JSON schema of every event (a ``oneOf`` discriminated on ``event``)."""
    union: Any = Annotated[Union[EVENT_MODELS], Field(discriminator="event")]  # noqa: UP007
    schema = TypeAdapter(union).json_schema(mode="serialization")
    schema["title"] = "RadBridge event"
    return dict(schema)


# -- configuration (set once at start-up by the runtime) -----------------------------------
class _Settings:
    queue: str | None = None
    phi_fields: frozenset[str] = frozenset()
    notify: Callable[[], None] | None = None
    loop: Any = None


_settings = _Settings()
_lock = threading.Lock()


def configure(queue: str | None = DEFAULT_QUEUE, *, phi_fields: Iterable[str] = (),
              notify: Callable[[], None] | None = None, loop: Any = None) -> None:
    """Turn events on (``queue`` is the deliveries queue name) or off (``queue=None``).

    ``phi_fields``: PHI fields allowed in payloads (a subset of :data:`PHI_FIELDS`).
    ``notify``: wakes the events delivery worker; ``loop`` is the loop it lives on (needed
    to wake it from :func:`emit` in the store's writer thread)."""
    unknown = set(phi_fields) - PHI_FIELDS
    if unknown:
        raise ValueError(f"unknown PHI field(s) for events: {', '.join(sorted(unknown))}")
    with _lock:
        _settings.queue = queue
        _settings.phi_fields = frozenset(phi_fields)
        _settings.notify = notify
        _settings.loop = loop


def enabled() -> bool:
    return _settings.queue is not None


def payload(event: Event, phi_fields: Iterable[str] | None = None) -> bytes:
    """The published JSON: the event without the PHI fields that are not allowed."""
    allowed = _settings.phi_fields if phi_fields is None else frozenset(phi_fields)
    data = event.model_dump(mode="json")
    for key in PHI_FIELDS:
        if key not in allowed or data.get(key) is None:
            data.pop(key, None)
    ordered = {"event": data.pop("event"), **data}
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode()


def emit(conn: sqlite3.Connection, event: Event, *, wake: bool = True) -> int | None:
    """Queue ``event`` in the caller's transaction; return the delivery row id (None: off).

    An event without ``message_id`` is anchored to a new ``messages`` row of channel
    ``_events`` (the deliveries table needs one). ``wake``: schedule a wake-up of the events
    worker shortly after (the commit follows the effect within milliseconds; the worker's
    own 5 s poll is the fallback). Callers that notify after their commit pass False."""
    queue = _settings.queue
    if queue is None:
        return None
    body = payload(event)
    now = time.time()
    mid = event.message_id
    if mid is None:
        mid = outbox.record(conn, channel=EVENTS_CHANNEL, message_type="EVENT", raw=body,
                            received_at=now)
    delivery = outbox.queue_one(conn, mid, queue, body, now)
    if wake:
        _wake_soon()
    return delivery


def notify() -> None:
    """Wake the events worker now (call on its loop, after the commit)."""
    if _settings.notify is not None:
        _settings.notify()


def _wake_soon() -> None:
    loop, wake = _settings.loop, _settings.notify
    if loop is None or wake is None or loop.is_closed():
        return
    def schedule() -> None:
        for delay in (0.02, 0.25):
            loop.call_later(delay, wake)

    with contextlib.suppress(RuntimeError):  # loop closed: the worker's poll catches up
        loop.call_soon_threadsafe(schedule)


def dead_lettered(queue: str, delivery_id: int, message_id: int | None, attempts: int,
                  reason: str) -> DeliveryDeadLettered | None:
    """The event for a dead-lettered delivery (None for the events queue itself: no loops)."""
    if queue == _settings.queue or queue.startswith(EVENTS_CHANNEL + "/"):
        return None
    channel = queue.split("/", 1)[0]
    return DeliveryDeadLettered(channel=channel, message_id=message_id, destination=queue,
                                delivery_id=delivery_id, attempts=attempts, reason=reason)


def topic(prefix: str, event: str, channel: str) -> str:
    """``<prefix>/<event>/<channel>`` (MQTT wildcards and separators removed from names)."""
    def part(s: str) -> str:
        return "".join("_" if c in "+#/" else c for c in s) or "_"

    return f"{prefix.rstrip('/')}/{part(event)}/{part(channel)}"
