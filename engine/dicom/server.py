"""A pynetdicom association server for the engine: TCP_NODELAY, fast C-FIND, clean stop.

pynetdicom 3.0.4 never sets TCP_NODELAY, so each small PDU waits for the peer's delayed ACK
(~40 ms on Linux; performance-baselines §4). Rather than patching pynetdicom globally, this
module uses its extension points, scoped to the servers it builds:

- :class:`_Server` (a ``ThreadedAssociationServer``, passed to ``AE.make_server`` as
  ``server_class``) sets TCP_NODELAY on every accepted socket in ``get_request``;
- its request handler makes each acceptor an :class:`_Association`, which sends C-FIND
  requests for SOP classes with a fast handler to :func:`engine.dicom.find.serve_find`
  and everything else to pynetdicom's own service classes;
- the DUL reactor (one polling thread per association) polls every 0.1 ms while the
  association is busy and every 1 ms (pynetdicom's fixed interval) once it has been idle for
  0.5 s: halving query latency without raising idle CPU (:class:`_DUL`);
- the DUL reads a waiting incoming PDU before sending more, so C-CANCEL and A-ABORT are
  seen while responses are still queued;
- the server skips pynetdicom's forced ``gc.collect()`` every 60 accept-loop turns, which
  stalled every association in the process (p99 27 → 10 ms); Python's own collector still
  reclaims the association objects.

:class:`DICOMServer` is what ``AE.start_server(..., block=False)`` does, with these classes:
:meth:`DICOMServer.start` binds and serves in a thread; :meth:`DICOMServer.stop` stops
accepting, aborts open associations and waits for their threads. Both block: call them with
``asyncio.to_thread``.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from engine.dicom.find import FindHandler, serve_find
from engine.dicom.phi import silence_identifier_logging
from engine.dicom.service import DICOMService


class _Association(Association):
    """An acceptor that answers C-FIND for the SOP classes in ``_find_handlers`` itself."""

    _find_handlers: Mapping[str, FindHandler]

    def _serve_request(self, msg: Any, context_id: int) -> None:
        handler = None
        if isinstance(msg, C_FIND) and not self._sent_release and msg.is_valid_request:
            handler = self._find_handlers.get(str(msg.AffectedSOPClassUID))
        if handler is None:
            super()._serve_request(msg, context_id)
            return
        context = self._accepted_cx.get(context_id)
        if context is None:
            self.abort()
            return
        self.dimse.cancel_req = {}
        self._is_paused = True
        try:
            serve_find(self, msg, context, handler)
        finally:
            self._is_paused = False
            self.dimse.cancel_req = {}


class _DUL(DULServiceProvider):
    """pynetdicom's DUL reactor with an adaptive poll interval and a fairer loop.

    pynetdicom's loop reads from the socket only when it has nothing to send, so a peer's
    C-CANCEL or A-ABORT waits behind every queued response. Here a waiting incoming PDU is
    read first, and P-DATA that can no longer be sent (the association is gone) is dropped
    instead of raising ``InvalidEventError`` in the DUL thread.
    """

    busy_poll_s = 0.0001
    idle_poll_s = 0.001
    busy_window_s = 0.5
    _last_activity = 0.0

    @property
    def _run_loop_delay(self) -> float:
        busy = time.monotonic() - self._last_activity < self.busy_window_s
        return self.busy_poll_s if busy else self.idle_poll_s

    @_run_loop_delay.setter
    def _run_loop_delay(self, value: float) -> None:
        pass  # the base class sets its fixed 1 ms here

    def _incoming_waiting(self) -> bool:
        sock = getattr(self.socket, "socket", None)
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False  # the normal path reports the closed connection
        return bool(readable)

    def _is_transport_event(self) -> bool:
        if super()._is_transport_event():
            self._last_activity = time.monotonic()
            return True
        return False

    def _process_recv_primitive(self) -> bool:
        pending = self.to_provider_queue.queue
        if pending:
            state = self.state_machine.current_state
            if isinstance(pending[0], P_DATA) and state not in ("Sta6", "Sta8"):
                self.to_provider_queue.get_nowait()
                return True
            if state == "Sta6" and self._incoming_waiting():
                return False
        if super()._process_recv_primitive():
            self._last_activity = time.monotonic()
            return True
        return False


class _RequestHandler(RequestHandler):
    server: _Server

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        # pynetdicom builds the acceptor itself (a local import in the base method); only
        # the request routing above differs, so the instance is re-classed in place.
        assoc.__class__ = _Association
        cast(_Association, assoc)._find_handlers = self.server.find_handlers
        assoc.dul.__class__ = _DUL
        cast(_DUL, assoc.dul)._last_activity = time.monotonic()
        return assoc


class _Server(ThreadedAssociationServer):
    daemon_threads = True

    def __init__(self, ae: AE, address: tuple[str, int], ae_title: str, contexts: Any,
                 ssl_context: Any = None, evt_handlers: Any = None, *,
                 find_handlers: Mapping[str, FindHandler]) -> None:
        self.find_handlers = find_handlers
        super().__init__(ae, address, ae_title, contexts, ssl_context,
                         evt_handlers=evt_handlers, request_handler=_RequestHandler)

    def service_actions(self) -> None:
        """No forced gc.collect() (see the module docstring)."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client, address = super().get_request()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, address


@dataclass
class ServerSettings:
    ae_title: str = "RADBRIDGE"
    host: str = "0.0.0.0"
    port: int = 11112
    max_associations: int = 50
    require_called_ae: bool = False
    allowed_calling_aes: Sequence[str] = ()
    acse_timeout_s: float = 30.0
    dimse_timeout_s: float = 30.0
    network_timeout_s: float = 60.0
    maximum_pdu_size: int = 16382
    """Largest PDU we accept (pynetdicom's default; 0: unlimited)."""


def build_ae(settings: ServerSettings, services: Sequence[DICOMService]) -> AE:
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.max_associations
    ae.require_called_aet = settings.require_called_ae
    ae.require_calling_aet = list(settings.allowed_calling_aes)
    ae.acse_timeout = settings.acse_timeout_s
    ae.dimse_timeout = settings.dimse_timeout_s
    ae.network_timeout = settings.network_timeout_s
    ae.maximum_pdu_size = settings.maximum_pdu_size
    for service in services:
        for abstract, syntaxes in service.contexts():
            if syntaxes is None:
                ae.add_supported_context(abstract)
            else:
                ae.add_supported_context(abstract, list(syntaxes))
    return ae


class DICOMServer:
    """One AE serving ``services`` on (host, port) until :meth:`stop`."""

    def __init__(self, settings: ServerSettings, services: Sequence[DICOMService]) -> None:
        self.settings = settings
        self.services = list(services)
        self.ae: AE | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> int:
        """Bind and serve in a background thread; return the bound port. Raises OSError."""
        silence_identifier_logging()
        ae = build_ae(self.settings, self.services)
        handlers: list[Any] = [h for s in self.services for h in s.event_handlers()]
        find_handlers = {uid: h for s in self.services for uid, h in s.find_handlers().items()}
        server = ae.make_server(
            (self.settings.host, self.settings.port), evt_handlers=handlers,
            server_class=_Server, find_handlers=find_handlers,
        )
        ae._servers.append(server)  # as AE.start_server does; server.shutdown() removes it
        self.ae, self._server = ae, cast(_Server, server)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"dicom-server:{self.port}", daemon=True,
        )
        self._thread.start()
        return self.port

    @property
    def active_associations(self) -> list[Association]:
        return [] if self._server is None else self._server.active_associations

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, abort open associations, wait (bounded) for their threads."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        for assoc in server.active_associations:
            assoc.abort()
        for assoc in server.active_associations:
            assoc.join(max(0.0, deadline - time.monotonic()))
