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
