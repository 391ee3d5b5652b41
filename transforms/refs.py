"""Compile references — the names an expression or a ``from:`` entry can read.

==========================  =====================================================
reference                   reads
==========================  =====================================================
``PID-3[2].1``, ``OBR[2]-4`` the HL7 input (group segments first inside ``foreach``)
``PV1-15[*]``                every non-empty repetition, as a list
``PatientName``, ``A[0].B``  the record input (root)
``item.X``                   the current item of ``foreach: {items: ...}`` (record input)
``out.X`` / ``out.PID-5.1``  the output written so far (record path / HL7 path)
``$name``                    a ``let`` variable or a mapping parameter (``params:``)
==========================  =====================================================

``RefScope`` is what the mapping compiler knows at that point (input and output kinds,
parameters, variables defined by earlier ``let`` steps, tables); ``RefCompiler`` is the
``Resolver`` the expression compiler calls.  Each reference is also reported through
``RefScope.note`` so lint can check HL7 paths against the HL7 version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from engine.hl7 import Path
from transforms.errors import ExpressionError
from transforms.hl7_values import hl7_all_reader, hl7_reader
from transforms.records import RecordPathError, get_in, parse_record_path
from transforms.runtime import Reader, Run
from transforms.tables import LookupTable

__all__ = ["RefCompiler", "RefScope"]


def _no_note(kind: str, text: str, pos: int) -> None:
    return None


@dataclass
class RefScope:
    """Compile-time view of a step's surroundings."""

    input: str
    output: str
    params: dict[str, Any] = field(default_factory=dict)
    variables: frozenset[str] = frozenset()
    tables: dict[str, LookupTable] = field(default_factory=dict)
    in_items: bool = False
    #: called with ("hl7" | "var" | "out" | "table", text, position) for every reference
    note: Callable[[str, str, int], None] = _no_note
    #: HL7 paths of the input seen by the last compile (for ERR locations)
    paths: list[Path] = field(default_factory=list)
    #: the input paths each ``let`` variable was read from (shared, filled by the compiler)
    var_paths: dict[str, list[Path]] = field(default_factory=dict)

    def with_variables(self, names: frozenset[str]) -> RefScope:
        return replace(self, variables=names)


class RefCompiler:
    """``transforms.expr_compile.Resolver`` for one expression."""

    def __init__(self, scope: RefScope, text: str) -> None:
        self.scope = scope
        self.text = text

    def error(self, message: str, pos: int) -> ExpressionError:
        return ExpressionError(message, pos, self.text)

    def reference(self, kind: str, text: str, pos: int) -> Reader:
        s = self.scope
        s.note(kind if kind != "name" else "name", text, pos)
        if kind == "var":
            return self.variable(text, pos)
        if kind == "hl7":
            out = text.startswith("out.")
            every = "[*]" in text
            path = self.hl7_path(text.removeprefix("out.").replace("[*]", ""), pos)
            if every and out:
                raise self.error("[*] (every repetition) reads the input only", pos)
            if out:
                if s.output != "hl7":
                    raise self.error("out.<HL7 path> needs an HL7 output; this mapping writes a "
                                     "record (use out.<Keyword>)", pos)
                return lambda run: run.out.get_path(path)
            if s.input != "hl7":
                raise self.error(f"{text} is an HL7 path but this mapping reads a record", pos)
            s.paths.append(path)
            return hl7_all_reader(path) if every else hl7_reader(path)
        return self.name(text, pos)

    def hl7_path(self, text: str, pos: int) -> Path:
        try:
            return Path.parse(text)
        except ValueError as exc:
            raise self.error(str(exc), pos) from None

    def variable(self, name: str, pos: int) -> Reader:
        s = self.scope
        if name in s.variables:
            s.paths.extend(s.var_paths.get(name, ()))
            return lambda run: run.vars.get(name, "")
        if name in s.params:
            value = s.params[name]
            return lambda run: value
        from transforms.suggest import did_you_mean

        known = sorted({*s.variables, *s.params})
        raise self.error(f"unknown variable ${name}{did_you_mean(name, known)}: define it with "
                         "an earlier 'let' step or under 'params'", pos)

    def name(self, text: str, pos: int) -> Reader:
        s = self.scope
        head, _, rest = text.partition(".")
        if head == "out" and rest:
            if s.output != "record":
                raise self.error("out.<Keyword> needs a record output; for an HL7 output write "
                                 "out.<HL7 path>, e.g. out.PID-5.1", pos)
            path = self.record_path(rest, pos)
            return lambda run: get_in(run.out, path)
        if head == "item" and rest:
            if not s.in_items:
                raise self.error("item.<Key> is only defined inside foreach: {items: ...}", pos)
            path = self.record_path(rest, pos)
            return lambda run: get_in(run.item, path)
        if s.input != "record":
            hint = ""
            if len(text) == 3 and text.isupper():
                hint = " (an HL7 path needs a field number, e.g. PID-3)"
            elif text in s.tables:
                hint = " (a table name is only valid in known(table, value))"
            raise self.error(f"unknown name {text!r}{hint}; strings need quotes", pos)
        path = self.record_path(text, pos)
        return lambda run: get_in(run.record, path)

    def record_path(self, text: str, pos: int) -> tuple[str | int, ...]:
        try:
            return parse_record_path(text)
        except RecordPathError as exc:
            raise self.error(str(exc), pos) from None

    def table_keys(self, name: str, pos: int) -> Callable[[str], bool]:
        table = self.scope.tables.get(name)
        if table is None:
            from transforms.suggest import did_you_mean

            raise self.error(f"unknown table {name!r}{did_you_mean(name, self.scope.tables)}",
                             pos)
        self.scope.note("table", name, pos)
        return table.__contains__


def constant(value: Any) -> Reader:
    """A reader of a fixed value."""
    def read(run: Run) -> Any:
        return value

    return read
