"""What a DICOM SCP hosts: services, each contributing presentation contexts and handlers.

One AE (one port, one AE title) serves several DICOM services: Verification, the Modality
Worklist, later MPPS. Each is a :class:`DICOMService`: the abstract syntaxes it accepts
(with their transfer syntaxes), pynetdicom event handlers (``EVT_C_ECHO``, ``EVT_N_CREATE``…)
and, for C-FIND, fast handlers keyed by SOP Class UID (:mod:`engine.dicom.find`). A service
is built by a :data:`ServiceFactory` when the SCP starts, from a :class:`ServiceContext`
holding what it may need: the loop bridge, the store, the channel's dispatch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pynetdicom import evt

from engine.channel import Dispatch
from engine.dicom.bridge import LoopBridge
from engine.dicom.find import FindHandler

VERIFICATION = "1.2.840.10008.1.1"
Context = tuple[str, Sequence[str] | None]
"""(abstract syntax UID, transfer syntax UIDs); None: pynetdicom's defaults."""
EventHandler = tuple[evt.EventType, Callable[..., Any]]


class DICOMService(Protocol):
    def contexts(self) -> Sequence[Context]: ...

    def event_handlers(self) -> Sequence[EventHandler]: ...

    def find_handlers(self) -> Mapping[str, FindHandler]: ...


@dataclass(frozen=True, slots=True)
class ServiceContext:
    channel: str
    bridge: LoopBridge
    store: Any
    dispatch: Dispatch | None = None
    metrics: Any = None


ServiceFactory = Callable[[ServiceContext], DICOMService]


def _echo(_event: evt.Event) -> int:
    return 0x0000


class EchoService:
    """Verification (C-ECHO): answers Success."""

    def contexts(self) -> Sequence[Context]:
        return [(VERIFICATION, None)]

    def event_handlers(self) -> Sequence[EventHandler]:
        return [(evt.EVT_C_ECHO, _echo)]

    def find_handlers(self) -> Mapping[str, FindHandler]:
        return {}
