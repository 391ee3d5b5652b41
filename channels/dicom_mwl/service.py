"""The Modality Worklist C-FIND service: query → store (on the engine loop) → one response per step.

Runs in the association's thread. The identifier is parsed into an :class:`MWLQuery` and
:class:`ReturnKeys`; the store is read on the engine loop through the
:class:`~engine.dicom.bridge.LoopBridge` (the reader thread does the SQL); each matching step
is encoded and sent as a Pending response. Failures are answered, never turned into an empty
success:

======================================  ==========================================
query value that cannot be interpreted  0xA900 Identifier does not match SOP Class
more matches than ``max_responses``     0xA700 Refused: out of resources
store timeout / store or loop failure   0xC001 Unable to process
C-CANCEL from the modality              0xFE00 Cancel
======================================  ==========================================

One summary log line per query (no PHI: counts, status, duration, the calling AE in ``peer``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from channels.dicom_mwl.config import MWLSCPConfig
from channels.dicom_mwl.identifier import from_bytes
from channels.dicom_mwl.keys import MWLQueryError
from channels.dicom_mwl.matching import MWLQuery
from channels.dicom_mwl.response import ReturnKeys, encode_response
from engine.dicom.bridge import UNABLE_TO_PROCESS, BridgeError, BridgeTimeout, LoopBridge
from engine.dicom.find import (
    CANCEL,
    IDENTIFIER_MISMATCH,
    OUT_OF_RESOURCES,
    FindHandler,
    FindRequest,
    FindResponse,
)
from engine.dicom.service import Context, EventHandler
from engine.errors import StoreError
from engine.logging import get_logger
from engine.store import worklist

log = get_logger("radbridge.dicom_mwl")
MWL_FIND = "1.2.840.10008.5.1.4.31"
"""Modality Worklist Information Model - FIND."""
PENDING = 0xFF00


class ModalityWorklistService:
    """Answers MWL C-FIND from the worklist table of ``store``."""

    def __init__(self, channel: str, config: MWLSCPConfig, store: Any, bridge: LoopBridge,
                 metrics: Any = None) -> None:
        self.channel = channel
        self.config = config
        self.store = store
        self.bridge = bridge
        self.metrics = metrics
        self.hidden = frozenset(config.hidden_statuses)

    def contexts(self) -> Sequence[Context]:
        return [(MWL_FIND, [ImplicitVRLittleEndian, ExplicitVRLittleEndian])]

    def event_handlers(self) -> Sequence[EventHandler]:
        return []

    def find_handlers(self) -> Mapping[str, FindHandler]:
        return {MWL_FIND: self.find}

    def _query(self, request: FindRequest) -> tuple[MWLQuery, ReturnKeys]:
        elements = from_bytes(request.identifier, implicit=request.implicit_vr)
        coerce = request.calling_ae if self.config.station_coercion else None
        query = MWLQuery.from_elements(elements, calling_ae=coerce, hidden_statuses=self.hidden)
        return query, ReturnKeys.from_elements(elements)

    def _lookup(self, query: MWLQuery) -> list[dict[str, Any]]:
        limit = self.config.max_responses + 1
        return self.bridge.run(
            self.store.read_tx(lambda conn: worklist.find(conn, query, limit=limit))
        )

    def find(self, request: FindRequest) -> Iterator[FindResponse]:
        started = time.perf_counter()
        status, sent = PENDING, 0
        try:
            try:
                query, keys = self._query(request)
            except MWLQueryError as exc:
                status = IDENTIFIER_MISMATCH
                yield FindResponse(status, error_comment=str(exc))
                return
            except Exception:
                status = IDENTIFIER_MISMATCH
                yield FindResponse(status, error_comment="identifier cannot be interpreted")
                return
            if request.cancelled():
                status = CANCEL
                yield FindResponse(status)
                return
            try:
                items = self._lookup(query)
            except BridgeTimeout:
                status = UNABLE_TO_PROCESS
                yield FindResponse(status, error_comment="worklist query timed out")
                return
            except (BridgeError, StoreError):
                status = UNABLE_TO_PROCESS
                yield FindResponse(status, error_comment="worklist unavailable")
                return
            if len(items) > self.config.max_responses:
                status = OUT_OF_RESOURCES
                yield FindResponse(status, error_comment=(
                    f"more than {self.config.max_responses} matches; narrow the query"))
                return
            for item in items:
                yield FindResponse(PENDING, encode_response(item, keys,
                                                            implicit=request.implicit_vr))
                sent += 1
            status = 0x0000
        finally:
            self._summary(request, status, sent, started)

    def _summary(self, request: FindRequest, status: int, sent: int, started: float) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        code = f"0x{status:04X}"
        if status == PENDING:  # the generator was closed early (release, abort, cancel)
            code = "closed"
        log.info("worklist_queried", channel=self.channel, count=sent, status=code,
                 duration_ms=duration_ms, peer=f"{request.calling_ae}@{request.peer}")
