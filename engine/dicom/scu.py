"""TCP_NODELAY for pynetdicom SCUs (the PACS reconciler's C-FIND, MPPS tests), scoped per call.

pynetdicom 3.0.4 does not set TCP_NODELAY on the sockets it connects either (about 40 ms per
exchange lost to Nagle and delayed ACKs; performance-baselines §4). Instead of patching
``AssociationSocket._create_socket`` for the whole process, pass these handlers to the one
association that wants it: ``ae.associate(host, port, evt_handlers=tcp_nodelay_handlers())``.
``EVT_CONN_OPEN`` fires right after ``connect()``, before the A-ASSOCIATE-RQ is sent.
"""

from __future__ import annotations

import socket
from typing import Any

from pynetdicom import evt


def _set_nodelay(event: evt.Event) -> None:
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def tcp_nodelay_handlers() -> list[Any]:
    """Event handlers for ``AE.associate(..., evt_handlers=...)``."""
    return [(evt.EVT_CONN_OPEN, _set_nodelay)]
