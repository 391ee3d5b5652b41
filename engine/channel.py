"""The channel contract: what a source and a destination promise the engine.

A *source* runs until cancelled. It binds, then calls ``ready()`` once (tests bind port 0
and read ``bound_port``), and for every inbound message awaits ``dispatch(raw, peer)``,
whose :class:`DispatchResult` says what to answer on the wire. The engine answers success
only after the message is durably stored. A source on a hot path may first offer the
message to ``submit`` (the fast lane, see :data:`Submit`), which answers through a callback
instead of an awaited result.

A *destination* sends one message and says what happened by returning normally (sent),
raising :class:`~engine.errors.RetryableDelivery` (try later) or
:class:`~engine.errors.PermanentDelivery` (dead-letter). The engine owns queueing, retry
with backoff, ordering and dead-lettering; a destination never loops on its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel


@dataclass(slots=True)
class DispatchResult:
    """What a source answers for one inbound message."""

    accepted: bool
    ack: bytes  # the encoded reply to send (may be empty when the sender asked for none)
    message_id: int | None = None
    code: str = ""
    reason: str = ""


Dispatch = Callable[[bytes, str], Awaitable[DispatchResult]]
# The fast lane (optional): ``submit(raw, peer, reply)`` returns False when the message
# must go through ``dispatch``; True when the pipeline took it, in which case it calls
# ``reply(ack)`` exactly once, on the event loop, after the commit (``ack`` may be
# ``b""``: the sender asked for no ACK). Replies of one source come in submit order.
Reply = Callable[[bytes], None]
Submit = Callable[[bytes, str, Reply], bool]


class Source(ABC):
    """An inbound channel endpoint (MLLP listener, DICOM SCP, file reader…)."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]

    def __init__(self, name: str, config: Any, metrics: Any = None) -> None:
        self.name = name
        self.config = config
        self.metrics = metrics
        self.store: Any = None  # set by the runtime before run(): sources that answer from it
        self.bound_port: int | None = None
        # Set by the runtime before run() (see ``Submit``); a source may ignore it.
        self.submit: Submit | None = None

    @abstractmethod
    async def run(self, dispatch: Dispatch, ready: Callable[[], None]) -> None:
        """Serve until cancelled; call ``ready()`` once bound."""


class Destination(ABC):
    """An outbound endpoint (MLLP sender, MQTT publisher, file writer…)."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    async def send(self, payload: bytes) -> str:
        """Deliver one payload; return a short response summary (e.g. the ACK code).

        Raise RetryableDelivery or PermanentDelivery on failure."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections; the default has none."""


@dataclass(slots=True)
class Prepared:
    """What an internal destination will do: ``effect(conn, message_id)`` (None: nothing),
    the output to show in a what-if report, and warnings to store with the message."""

    effect: Callable[[Any, int], None] | None
    output: Any = None
    warnings: list[str] = field(default_factory=list)


class InternalDestination(Destination):
    """A destination applied inside the ingest transaction (e.g. the worklist).

    ``prepare`` runs on the event loop before the commit (it may raise
    ``MessageRejected``) and returns the effect the store runs in the same transaction as
    the message. An effect may also raise ``MessageRejected``: the message is then kept as
    rejected and answered AE with the reason. Nothing is queued, so ``send`` is unused.
    ``bind`` gives it the folder of channels.yaml to resolve its files.
    """

    base_dir: Path = Path()

    def bind(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    @abstractmethod
    def prepare(self, msg: Any, payload: Any) -> Prepared: ...

    async def send(self, payload: bytes) -> str:  # pragma: no cover - never queued
        raise NotImplementedError("internal destinations are applied at ingest")
