"""A fast C-FIND SCP path: handlers yield pre-encoded identifiers, sent without pydicom.

pynetdicom's C-FIND service encodes each Pending response twice through pydicom (the
identifier, then the command set — again for its group length): about 1.3 ms per match on
the reference machine, so a 170-step worklist took over 200 ms. Here a :data:`FindHandler`
yields :class:`FindResponse` objects whose identifier is already encoded (see
:mod:`engine.dicom.encode`); :func:`serve_find` builds the fixed C-FIND-RSP command set
itself and hands the P-DATA fragments to the association's DUL, exactly as pynetdicom's
``DIMSEServiceProvider.send_msg`` does, so the state machine and the socket are untouched.

Between responses it honours C-CANCEL (answering 0xFE00), stops when the peer releases or
aborts, and turns a handler exception into a failure status (0xC001), never a success. The
DUL's send queue is bounded (:data:`SEND_QUEUE_LIMIT`): the responder waits for the socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any, cast

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode
from pynetdicom.pdu_primitives import P_DATA

from engine.dicom.bridge import UNABLE_TO_PROCESS
from engine.dicom.encode import encode_elements
from engine.logging import get_logger

if TYPE_CHECKING:
    from pynetdicom.association import Association
    from pynetdicom.dimse_primitives import C_FIND
    from pynetdicom.presentation import PresentationContext

log = get_logger("radbridge.dicom")

PENDING = frozenset({0xFF00, 0xFF01})
SUCCESS, CANCEL = 0x0000, 0xFE00
IDENTIFIER_MISMATCH = 0xA900
"""Failure: Identifier does not match SOP Class (also: cannot be decoded)."""
OUT_OF_RESOURCES = 0xA700
SEND_QUEUE_LIMIT = 32
"""P-DATA primitives queued for the DUL before the responder waits (so a C-CANCEL is acted
on within a few responses, and memory stays bounded on a broad query)."""
_C_FIND_RSP = 0x8020
_NO_DATASET, _DATASET = 0x0101, 0x0001


@dataclass(frozen=True, slots=True)
class FindRequest:
    """One C-FIND request as a handler sees it."""

    identifier: bytes
    """The identifier as received (decode with :meth:`dataset` or a lean decoder)."""
    message_id: int
    sop_class_uid: str
    implicit_vr: bool
    """Encode response identifiers as Implicit (True) or Explicit VR Little Endian."""
    calling_ae: str
    called_ae: str
    peer: str
    cancelled: Callable[[], bool]
    """True once the peer has sent C-CANCEL for this request (checked once, then consumed)."""

    def dataset(self) -> Dataset:
        """The identifier decoded by pydicom (raises on malformed data)."""
        return decode(BytesIO(self.identifier), self.implicit_vr, True, False)


@dataclass(frozen=True, slots=True)
class FindResponse:
    status: int
    identifier: bytes | None = None
    """Pending responses only: the encoded identifier."""
    error_comment: str = ""


FindHandler = Callable[[FindRequest], Iterator[FindResponse]]


def command_set(sop_class_uid: str, message_id: int, status: int, *, has_dataset: bool,
                error_comment: str = "") -> bytes:
    """The encoded C-FIND-RSP command set (always Implicit VR Little Endian)."""
    elements: list[tuple[int, str, object]] = [
        (0x00000002, "UI", sop_class_uid),
        (0x00000100, "US", _C_FIND_RSP),
        (0x00000120, "US", message_id),
        (0x00000800, "US", _DATASET if has_dataset else _NO_DATASET),
        (0x00000900, "US", status),
    ]
    if error_comment:
        elements.append((0x00000902, "LO", error_comment[:64]))
    body = encode_elements(elements)
    return encode_elements([(0x00000000, "UL", len(body))]) + body


def _fragments(data: bytes, max_pdu: int) -> Iterator[bytes]:
    if max_pdu == 0 or len(data) <= max_pdu - 6:
        yield data
        return
    size = max_pdu - 6
    for offset in range(0, len(data), size):
        yield data[offset:offset + size]


def p_data(context_id: int, command: bytes, dataset: bytes | None, max_pdu: int
           ) -> Iterator[P_DATA]:
    """P-DATA primitives of one message.

    When the whole message fits the peer's maximum PDU, command and data set travel as two
    PDVs of one P-DATA-TF PDU (PS3.8 9.3.5 allows several PDVs per PDU; one send instead of
    two). Otherwise it is fragmented as pynetdicom's ``encode_msg`` does."""
    size = len(command) + 6 + (len(dataset) + 6 if dataset is not None else 0)
    if max_pdu == 0 or size <= max_pdu:
        primitive = P_DATA()
        primitive.presentation_data_value_list.append((context_id, b"\x03" + command))
        if dataset is not None:
            primitive.presentation_data_value_list.append((context_id, b"\x02" + dataset))
        yield primitive
        return
    for body, last, more in ((command, b"\x03", b"\x01"), (dataset, b"\x02", b"\x00")):
        if body is None:
            continue
        parts = list(_fragments(body, max_pdu))
        for i, part in enumerate(parts):
            primitive = P_DATA()
            header = last if i == len(parts) - 1 else more
            primitive.presentation_data_value_list.append((context_id, header + part))
            yield primitive


class _Responder:
    def __init__(self, assoc: Association, req: C_FIND, context_id: int) -> None:
        self.assoc = assoc
        self.context_id = context_id
        self.uid = str(req.AffectedSOPClassUID)
        self.message_id = cast(int, req.MessageID)
        self._commands: dict[tuple[int, bool, str], bytes] = {}

    def send(self, status: int, identifier: bytes | None = None, comment: str = "") -> None:
        key = (status, identifier is not None, comment)
        command = self._commands.get(key)
        if command is None:  # every Pending response of a query has the same command set
            command = self._commands[key] = command_set(
                self.uid, self.message_id, status, has_dataset=key[1], error_comment=comment)
        max_pdu = self.assoc.dimse.maximum_pdu_size
        for primitive in p_data(self.context_id, command, identifier, max_pdu):
            self.assoc.dul.send_pdu(primitive)
        queue = self.assoc.dul.to_provider_queue
        while queue.qsize() > SEND_QUEUE_LIMIT and not self.gone():
            time.sleep(0.0002)  # back-pressure: the DUL thread sends at the socket's pace

    def cancelled(self) -> bool:
        return self.assoc.dimse.cancel_req.pop(self.message_id, None) is not None

    def gone(self) -> bool:
        acse = self.assoc.acse
        return (not self.assoc.is_established or acse.is_aborted()
                or acse.is_release_requested())


def _request(assoc: Association, req: C_FIND, context: PresentationContext,
             responder: _Responder) -> FindRequest | None:
    syntax = context.transfer_syntax[0]
    if not syntax.is_little_endian or syntax.is_deflated:
        responder.send(UNABLE_TO_PROCESS, comment="transfer syntax not supported by this SCP")
        return None
    remote: Any = assoc.requestor
    address = remote.address_info
    return FindRequest(
        identifier=cast(BytesIO, req.Identifier).getvalue(), message_id=responder.message_id,
        sop_class_uid=responder.uid,
        implicit_vr=syntax.is_implicit_VR, calling_ae=str(remote.ae_title).strip(),
        called_ae=str(assoc.acceptor.ae_title).strip(),
        peer=f"{address.address}:{address.port}", cancelled=responder.cancelled,
    )


def serve_find(assoc: Association, req: C_FIND, context: PresentationContext,
               handler: FindHandler) -> None:
    """Answer one C-FIND request on ``assoc`` with what ``handler`` yields."""
    responder = _Responder(assoc, req, cast(int, context.context_id))
    request = _request(assoc, req, context, responder)
    if request is None:
        return
    responses = handler(request)
    try:
        for rsp in responses:
            if responder.gone():
                return
            if responder.cancelled():
                responder.send(CANCEL)
                return
            if rsp.status not in PENDING:
                responder.send(rsp.status, comment=rsp.error_comment)
                return
            responder.send(rsp.status, rsp.identifier)
        if responder.gone():
            return
        responder.send(CANCEL if responder.cancelled() else SUCCESS)
    except Exception as exc:
        log.error("find_handler_failed", error=type(exc).__name__, peer=request.peer)
        if not responder.gone():
            responder.send(UNABLE_TO_PROCESS, comment="internal error")
    finally:
        close = getattr(responses, "close", None)
        if close is not None:
            close()
