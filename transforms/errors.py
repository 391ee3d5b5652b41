"""Exceptions of the transform language, and the two signals a running mapping raises.

::

    RadBridgeError (engine.errors)
    └── TransformError             anything wrong with a mapping, found while loading it
        ├── MappingError           an invalid mapping file; lists every ConfigProblem
        │                          (also a ConfigError, so ``radbridge validate`` prints it)
        └── ExpressionError        a condition that does not parse; carries the position

    StepSignal                     internal control flow of ``Mapping.run`` (never escapes)
    ├── Rejected                   the message is refused (answered AE) with a reason
    └── Filtered                   the message is dropped on purpose, with a reason

Running a mapping never raises for bad input data: ``Mapping.run`` turns the signals
(and any unexpected failure of a step) into a ``MappingResult``.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.config.problems import ConfigError, ConfigProblem
from engine.errors import RadBridgeError

__all__ = [
    "ExpressionError",
    "Filtered",
    "MappingError",
    "Rejected",
    "StepSignal",
    "TransformError",
]


class TransformError(RadBridgeError):
    """Base of the errors raised while loading a mapping."""


class MappingError(ConfigError, TransformError):
    """A mapping file is invalid; ``problems`` holds every problem, file:line:col first."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        super().__init__(problems)


class ExpressionError(TransformError):
    """A condition or source expression does not parse; ``position`` is 0-based in ``text``."""

    def __init__(self, message: str, position: int, text: str = "") -> None:
        super().__init__(f"{message} (at column {position + 1})")
        self.message = message
        self.position = position
        self.text = text


class StepSignal(Exception):
    """Stops a running mapping; carries the recorded reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Rejected(StepSignal):
    """Refuse the message: answered AE with ``reason``, HL7 table 0357 ``error_code``
    and an ERR-2 style ``location`` such as ``OBR^1^18``."""

    def __init__(self, reason: str, error_code: str = "207", location: str = "") -> None:
        super().__init__(reason)
        self.error_code = error_code
        self.location = location


class Filtered(StepSignal):
    """Drop the message on purpose (accepted, not delivered) with ``reason``."""
