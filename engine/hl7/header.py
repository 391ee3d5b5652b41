"""MSH header accessors (message type, control id, version, ACK modes ...) as a mixin.

Every property reads the cached MSH field list, so values set with
``HL7Message.set`` are reflected immediately.
"""

from __future__ import annotations

from engine.hl7._access import narrow
from engine.hl7.delimiters import Delimiters

__all__ = ["HeaderMixin"]


class HeaderMixin:
    """MSH properties for ``HL7Message`` (needs its ``_d`` and ``_fields`` slots)."""

    __slots__ = ()

    _d: Delimiters
    _fields: list[list[str] | None]

    def _msh(self, n: int, comp: int | None = 1) -> str:
        f = self._fields[0]
        assert f is not None
        if n >= len(f):
            return ""
        v = f[n]
        i = v.find(self._d.repetition)
        return narrow(v[:i] if i >= 0 else v, comp, None, self._d, True)

    def key_fields(self) -> tuple[str, str, str, str, str]:
        """``(message_type, control_id, version, accept_ack_type, app_ack_type)`` read in
        one pass: the same values as the properties of those names (the hot path reads
        all five for every inbound message)."""
        f = self._fields[0]
        assert f is not None
        d = self._d
        head = f[9:17] if len(f) > 16 else [*f[9:], *([""] * (17 - max(len(f), 9)))]
        plain = "".join(head)
        if d.repetition in plain or d.escape in plain:  # rare: the general accessors
            return (self.message_type, self.control_id, self.version,
                    self.accept_ack_type, self.app_ack_type)
        comp = d.component
        mtype = head[0]
        if comp in mtype:
            parts = mtype.split(comp, 2)
            mtype = f"{parts[0]}^{parts[1]}" if parts[1] else parts[0]
        version = head[3]
        if comp in version:
            version = version.split(comp, 1)[0]
        return mtype, head[1], version, head[6], head[7]

    @property
    def delimiters(self) -> Delimiters:
        return self._d

    @property
    def message_type(self) -> str:
        """``"ORM^O01"`` (MSH-9.1 ``^`` MSH-9.2, always joined with ``^``)."""
        code, trigger = self._msh(9, 1), self._msh(9, 2)
        return f"{code}^{trigger}" if trigger else code

    @property
    def message_code(self) -> str:
        return self._msh(9, 1)

    @property
    def trigger_event(self) -> str:
        return self._msh(9, 2)

    @property
    def structure(self) -> str:
        return self._msh(9, 3)

    @property
    def control_id(self) -> str:
        return self._msh(10, None)

    @property
    def processing_id(self) -> str:
        return self._msh(11)

    @property
    def version(self) -> str:
        return self._msh(12)

    @property
    def accept_ack_type(self) -> str:
        return self._msh(15, None)

    @property
    def app_ack_type(self) -> str:
        return self._msh(16, None)

    @property
    def charset(self) -> str:
        return self._msh(18, None)

    @property
    def sending_application(self) -> str:
        return self._msh(3)

    @property
    def sending_facility(self) -> str:
        return self._msh(4)

    @property
    def receiving_application(self) -> str:
        return self._msh(5)

    @property
    def receiving_facility(self) -> str:
        return self._msh(6)
