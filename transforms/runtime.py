"""The state of one mapping run (``Run``) and the value rules every step shares.

A compiled step is a plain closure ``step(run) -> None``; everything it reads or writes
lives on ``Run``: the parsed HL7 message and the segments visible in the current scope
(the whole message, or one ORC group inside ``foreach``), the input record, the output
(a nested dict or an ``HL7Message``), ``let`` variables, routes and warnings.

Values are text (``str``), lists (multi-valued DICOM attributes, ``split``), dicts
(record subtrees) or, inside conditions, numbers and booleans.  "Empty" means ``None``,
``""``, ``[]`` or ``{}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.hl7 import Delimiters, HL7Message, Segment

__all__ = ["Op", "Reader", "Run", "StepFn", "is_empty", "text_of", "truthy"]


class Run:
    """Mutable state of one ``Mapping.run`` call (one message)."""

    __slots__ = (
        "chars",
        "delimiters",
        "fields",
        "item",
        "iteration",
        "mapping",
        "msg",
        "out",
        "record",
        "routes",
        "scope",
        "target",
        "top",
        "vars",
        "warnings",
    )

    def __init__(self, mapping: str) -> None:
        self.mapping = mapping
        self.msg: HL7Message | None = None
        self.delimiters: Delimiters | None = None
        #: (repetition, component, subcomponent, escape, delimiters) of the input message
        self.chars: tuple[str, str, str, str, Delimiters] = ("~", "^", "&", "\\", Delimiters())
        #: segments visible by name: the whole message, or a group's own segments first
        self.scope: dict[str, list[Segment]] = {}
        #: the field lists of the segments in ``scope`` (split once per run, read often)
        self.fields: dict[str, list[list[str]]] = {}
        #: the message-level (scope, fields), which ``foreach`` groups are cut from
        self.top: tuple[dict[str, list[Segment]], dict[str, list[list[str]]]] = ({}, {})
        self.record: dict[str, Any] | None = None
        #: the current item of ``foreach: {items: ...}`` over a record input
        self.item: Any = None
        #: the output root: a dict (record output) or an ``HL7Message`` (hl7 output)
        self.out: Any = None
        #: where relative record targets are written (the root, or the current foreach item)
        self.target: dict[str, Any] = {}
        #: 1-based number of the current ``foreach`` iteration (``[#]`` in HL7 targets)
        self.iteration = 0
        self.vars: dict[str, Any] = {}
        self.routes: list[str] | None = None
        self.warnings: list[str] = []


#: reads a value in the current run
Reader = Callable[[Run], Any]
#: one compiled step
StepFn = Callable[[Run], None]
#: one compiled op: value in, value out (the run gives access to warnings and misses)
Op = Callable[[Any, Run], Any]


def is_empty(value: Any) -> bool:
    """True for ``None``, ``""``, ``[]`` and ``{}`` (``0`` and ``False`` are values)."""
    if value is None or value == "":
        return True
    return isinstance(value, list | dict | tuple) and not value


def truthy(value: Any) -> bool:
    """Condition truth: booleans as they are, numbers non-zero, everything else non-empty."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return not is_empty(value)


def text_of(value: Any) -> str:
    """A value as text: ``None`` → ``""``, lists → their first item, numbers → ``str``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return text_of(value[0]) if value else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
