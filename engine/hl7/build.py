"""Creating a new outbound message from scratch (``new_message``)."""

from __future__ import annotations

from datetime import datetime

from engine.hl7.delimiters import DEFAULT_DELIMITERS, Delimiters
from engine.hl7.escaping import escape
from engine.hl7.ids import new_control_id
from engine.hl7.message import HL7Message

__all__ = ["new_message"]


def new_message(
    message_type: str,
    *,
    control_id: str | None = None,
    version: str = "2.5.1",
    sending_application: str = "RADBRIDGE",
    sending_facility: str = "",
    receiving_application: str = "",
    receiving_facility: str = "",
    processing_id: str = "P",
    charset: str = "",
    timestamp: datetime | None = None,
    delimiters: Delimiters = DEFAULT_DELIMITERS,
) -> HL7Message:
    """A message holding only an MSH; add segments and fields with ``set``.

    ``message_type`` is written with ``^`` between components (``"ORM^O01"`` or
    ``"OMI^O23^OMI_O23"``) and converted to ``delimiters``; the other values are
    escaped leaves.  ``control_id`` defaults to a fresh unique id, ``timestamp``
    to now (local time, ``YYYYMMDDHHMMSS``).
    """
    d = delimiters
    ts = (timestamp or datetime.now()).strftime("%Y%m%d%H%M%S")
    fields = [
        "MSH" + d.field + d.encoding_characters,
        escape(sending_application, d),
        escape(sending_facility, d),
        escape(receiving_application, d),
        escape(receiving_facility, d),
        ts,
        "",
        d.component.join(escape(c, d) for c in message_type.split("^")),
        escape(control_id if control_id is not None else new_control_id(), d),
        escape(processing_id, d),
        escape(version, d),
    ]
    if charset:
        fields += ["", "", "", "", "", escape(charset, d)]
    return HL7Message.parse(d.field.join(fields) + "\r")
