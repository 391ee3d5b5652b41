"""The store interface: what the engine needs from durable storage, backend-neutral.

Channels never see SQL. The SQLite backend implements this today; a PostgreSQL backend
(claiming rows with ``FOR UPDATE SKIP LOCKED``) implements the same methods later. All
timestamps are POSIX seconds (float, UTC).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from engine.errors import MessageRejected


class Completion(Protocol):
    """What ``Store.ingest_then`` completes: the part of a future it uses."""

    def done(self) -> bool: ...
    def set_result(self, value: tuple[int, MessageRejected | None]) -> None: ...
    def set_exception(self, exc: BaseException) -> None: ...

Effect = Callable[[Any, int], None]
T = TypeVar("T")

MessageStatus = Literal["processed", "filtered", "error", "rejected"]
DeliveryStatus = Literal["pending", "sent", "failed", "dead"]


@dataclass(slots=True)
class InboundRecord:
    """One inbound message as it is committed before the ACK."""

    channel: str
    raw: bytes
    received_at: float
    peer: str = ""
    control_id: str = ""
    message_type: str = ""
    version: str = ""
    charset: str = ""
    status: MessageStatus = "processed"
    ack_code: str = ""
    error: str = ""
    revision: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class NewDelivery:
    """A delivery to create in the same transaction as its message."""

    destination: str
    payload: bytes
    order_key: str = ""


@dataclass(slots=True)
class PendingDelivery:
    id: int
    message_id: int
    destination: str
    attempts: int
    next_attempt: float
    order_key: str
    payload: bytes


@dataclass(slots=True)
class DeliveryUpdate:
    id: int
    status: DeliveryStatus
    attempts: int
    next_attempt: float = 0.0
    error: str = ""
    response: str = ""


@dataclass(slots=True)
class MessageFilter:
    """Search criteria for ``radbridge messages``; every field optional."""

    channel: str | None = None
    control_id: str | None = None
    message_type: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    delivery_status: str | None = None
    destination: str | None = None
    id: int | None = None
    limit: int = 100


@dataclass(slots=True)
class MessageSummary:
    id: int
    received_at: float
    channel: str
    control_id: str
    message_type: str
    status: str
    ack_code: str
    error: str
    size: int


@dataclass(slots=True)
class DeliveryRow:
    id: int
    destination: str
    status: str
    attempts: int
    next_attempt: float
    last_error: str
    response: str
    updated_at: float


@dataclass(slots=True)
class MessageDetail:
    summary: MessageSummary
    peer: str
    version: str
    charset: str
    revision: str
    raw: bytes
    warnings: list[str]
    deliveries: list[DeliveryRow]


class Store(ABC):
    """Durable storage for messages and their deliveries."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    @abstractmethod
    async def ingest(
        self, record: InboundRecord, deliveries: Sequence[NewDelivery],
        effects: Sequence[Effect] = (),
    ) -> tuple[int, MessageRejected | None]:
        """Commit a message, its effects and its deliveries atomically.

        ``effects`` are internal destinations (the worklist) applied in the same
        transaction as ``effect(conn, message_id)``. If one raises ``MessageRejected``,
        all effects and deliveries are rolled back, the message is kept as rejected with
        the reason, and the rejection is returned. Returns only once the data is durable
        (the caller ACKs after this)."""

    def ingest_nowait(
        self, record: InboundRecord, deliveries: Sequence[NewDelivery],
    ) -> Awaitable[tuple[int, MessageRejected | None]]:
        """``ingest`` without effects, queued now; await the result (same guarantees).

        For the ingest hot path: a store may return a future it resolves after the
        commit instead of a coroutine (the default is the ``ingest`` coroutine)."""
        return self.ingest(record, deliveries)

    def status(self) -> dict[str, Any]:
        """What /health shows of the store (counters, modes); nothing by default."""
        return {}

    def ingest_then(
        self, record: InboundRecord, deliveries: Sequence[NewDelivery], done: Completion,
    ) -> None:
        """``ingest`` without effects, queued now; after the commit ``done.set_result``
        gets ``(message_id, None)`` (or ``done.set_exception`` the error), on the event
        loop, in submit order. The hot path's fast lane: no future and no task per
        message. This default runs ``ingest_nowait`` in a task (same guarantees)."""
        import asyncio

        task = asyncio.ensure_future(self.ingest_nowait(record, deliveries))

        def finished(t: asyncio.Future[tuple[int, MessageRejected | None]]) -> None:
            exc = t.exception()
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(t.result())

        task.add_done_callback(finished)

    @abstractmethod
    async def update_deliveries(self, updates: Sequence[DeliveryUpdate]) -> None:
        """Record delivery outcomes (committed durably)."""

    @abstractmethod
    async def fetch_pending(
        self, destination: str, limit: int, exclude: frozenset[int] = frozenset(),
        after: int = 0,
    ) -> list[PendingDelivery]:
        """Up to ``limit`` pending deliveries of a destination with an id above
        ``after`` and not in ``exclude``, oldest first."""

    @abstractmethod
    async def search_messages(self, flt: MessageFilter) -> list[MessageSummary]: ...

    @abstractmethod
    async def get_message(self, message_id: int) -> MessageDetail | None: ...

    @abstractmethod
    async def requeue(
        self, message_ids: Sequence[int], destination: str, payloads: Sequence[bytes] | None = None
    ) -> int:
        """Create new pending deliveries of these messages to ``destination``."""

    @abstractmethod
    async def write_tx(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(conn)`` in a committed write transaction (domain tables: worklist, MPPS,
        events). ``conn`` is the backend's DB-API connection."""

    @abstractmethod
    async def read_tx(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(conn)`` on a read connection."""

    @abstractmethod
    async def prune(self, older_than: float, batch: int = 5000) -> int:
        """Delete old messages whose deliveries are final; reclaim the space."""

    @abstractmethod
    async def queue_depths(self) -> dict[tuple[str, str], int]:
        """(destination, status) → count, for pending/dead."""
