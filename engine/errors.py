"""The one exception hierarchy of RadBridge.

::

    RadBridgeError
    ├── ConfigError            (engine.config.problems) invalid channels.yaml / mappings
    ├── StoreError             the store failed (disk full, database gone)
    ├── ChannelError           a channel could not start or failed while running
    │   └── BindError          a listener could not bind its port
    ├── MessageRejected        an inbound message is refused with a reason (becomes AE/AR)
    │   └── HL7ParseError      (engine.hl7.errors) not a parseable HL7 v2 message
    └── DeliveryError          a destination could not deliver
        ├── RetryableDelivery  try again later (peer down, AE/CE, ACK timeout)
        └── PermanentDelivery  never retry (AR/CR, message the peer can never take)

Library exceptions (sqlite3, OSError, pydantic) are translated at the boundary with
``raise ... from exc`` so callers only ever catch these.
"""

from __future__ import annotations


class RadBridgeError(Exception):
    """Base of every error the engine raises on purpose."""


class StoreError(RadBridgeError):
    """The store could not read or write."""


class ChannelError(RadBridgeError):
    """A channel failed to start or while running."""


class BindError(ChannelError):
    """A listener could not bind its address."""


class MessageRejected(RadBridgeError):
    """An inbound message is refused; ``code`` is the HL7 ACK code to answer.

    ``error_code`` is an HL7 table 0357 code; ``location`` an ERR-2 style location
    such as ``OBR^1^18``.
    """

    def __init__(
        self, reason: str, *, code: str = "AE", error_code: str = "207", location: str = ""
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.error_code = error_code
        self.location = location


class DeliveryError(RadBridgeError):
    """A destination could not deliver a message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableDelivery(DeliveryError):
    """Delivery failed for now; the engine retries with backoff."""


class PermanentDelivery(DeliveryError):
    """Delivery failed for good; the engine dead-letters the message."""
