"""Compile a mapping file (YAML with line marks) into step closures, collecting every problem.

Nothing stops at the first problem: each is recorded as a ``ConfigProblem`` at the
file, line and column of the offending key or value, prefixed by the step it belongs
to, e.g. ``mappings/x.yaml:14:5: step 3 (set AccessionNumber): unknown op 'uper' (did
you mean 'upper'?)``.  Nested steps are numbered ``7.2``.  Alongside the closures the
compiler records ``Facts`` (HL7 paths, targets, variables, tables, routes) that lint
checks further.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path as FsPath
from typing import Any

from engine.config.loader import LoadedYAML, YamlPath, mark_for
from engine.config.problems import ConfigProblem, Severity
from engine.hl7 import Path
from transforms.errors import ExpressionError
from transforms.expr_compile import compile_expression
from transforms.misses import LookupMissRegistry
from transforms.ops import OpContext
from transforms.records import RecordPathError, parse_record_path
from transforms.refs import RefCompiler, RefScope
from transforms.runtime import Reader, StepFn
from transforms.spec import STEP_KINDS
from transforms.suggest import did_you_mean
from transforms.tables import LookupTable

__all__ = ["Block", "Compiler", "Facts", "Position"]

Position = tuple[int, int]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class Facts:
    """What the compiler saw, for lint."""

    hl7_paths: list[tuple[str, Path, Position]] = field(default_factory=list)
    out_hl7_paths: list[tuple[str, Path, Position]] = field(default_factory=list)
    #: (label, block key, target text, conditional, position)
    targets: list[tuple[str, str, str, bool, Position]] = field(default_factory=list)
    tables: dict[str, Position] = field(default_factory=dict)
    lets: dict[str, tuple[str, Position]] = field(default_factory=dict)
    vars_used: set[str] = field(default_factory=set)
    #: ("in" | "out", label, record path, position)
    record_paths: list[tuple[str, str, tuple[str | int, ...], Position]] = field(
        default_factory=list)
    unreachable: list[tuple[str, Position]] = field(default_factory=list)
    routes: list[tuple[str, Position]] = field(default_factory=list)


@dataclass(frozen=True)
class Block:
    """Where a list of steps sits: the top level, or inside a ``foreach``."""

    key: str = "top"  # distinguishes output scopes for duplicate-target checks
    in_foreach: bool = False
    into: bool = False  # record targets are relative to a foreach item


class Compiler:
    """One compilation of one mapping file."""

    def __init__(self, loaded: LoadedYAML, base: FsPath, misses: LookupMissRegistry) -> None:
        self.loaded = loaded
        self.file = loaded.filename
        self.base = base
        self.problems: list[ConfigProblem] = list(loaded.problems)
        self.facts = Facts()
        self.ops = OpContext(mapping="", misses=misses)
        self.input = "hl7"
        self.output = "record"
        self.params: dict[str, Any] = {}
        self.length_policy = "reject"
        self.var_paths: dict[str, list[Path]] = {}

    # -- positions and problems ----------------------------------------------------------
    def pos(self, loc: YamlPath, key: bool = False) -> Position:
        return mark_for(self.loaded, loc, prefer_key=key)

    def text_pos(self, loc: YamlPath, offset: int) -> Position:
        """Position of character ``offset`` inside the scalar at ``loc`` (when knowable)."""
        line, col = self.pos(loc)
        info = self.loaded.scalars.get(loc)
        if info is not None and info.style in (None, "'", '"'):
            raw = self.loaded.text[info.start : info.end]
            if "\n" not in raw:
                col += (1 if info.style else 0) + offset
        return line, col

    def problem(self, loc: YamlPath, message: str, label: str = "", *, key: bool = False,
                at: Position | None = None, severity: Severity = "error") -> None:
        line, col = at or self.pos(loc, key)
        text = f"{label}: {message}" if label else message
        self.problems.append(ConfigProblem(self.file, line, col, text, severity))

    def unknown_keys(self, data: dict[str, Any], allowed: tuple[str, ...] | list[str],
                     loc: YamlPath, label: str = "", what: str = "key") -> None:
        for k in data:
            if k not in allowed:
                self.problem((*loc, k), f"unknown {what} {k!r}{did_you_mean(k, allowed)}",
                             label, key=True)

    # -- values ----------------------------------------------------------------------------
    def param_value(self, value: Any, loc: YamlPath, label: str) -> Any:
        """``"$name"`` → the parameter's value; anything else unchanged."""
        if isinstance(value, str):
            m = _PARAM.fullmatch(value.strip())
            if m is not None:
                name = m.group(1)
                if name not in self.params:
                    self.problem(loc, f"unknown parameter ${name}"
                                 f"{did_you_mean(name, self.params)}", label)
                    return None
                self.facts.vars_used.add(name)
                return self.params[name]
        return value

    def scalar_text(self, value: Any, loc: YamlPath, label: str) -> Any:
        """A constant as the analyst wrote it: YAML reads ``yes``/``no`` as booleans (an
        error here) and ``+0100`` or ``010`` as numbers (their written text is kept)."""
        if isinstance(value, bool):
            self.problem(loc, f"YAML reads this as {str(value).lower()}; quote it to mean the "
                         "text (e.g. \"yes\")", label)
            return None
        if isinstance(value, int | float):
            line, col = self.pos(loc)
            lines = self.loaded.text.splitlines()
            if 0 < line <= len(lines):
                written = lines[line - 1][col - 1 :]
                for stop in (" #", ",", "}", "]"):
                    written = written.split(stop)[0]
                if written.strip():
                    return written.strip()
            return str(value)
        if isinstance(value, list):
            return [self.scalar_text(v, (*loc, i), label) for i, v in enumerate(value)]
        return value

    def ref_scope(self, variables: frozenset[str], tables: dict[str, LookupTable],
                  in_items: bool = False) -> RefScope:
        return RefScope(self.input, self.output, self.params, variables, tables, in_items,
                        var_paths=self.var_paths)

    def expr(self, text: Any, loc: YamlPath, rs: RefScope, label: str
             ) -> tuple[Reader, list[Path]] | None:
        """Compile an expression at ``loc``; on error report it and return ``None``."""
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            self.problem(loc, "expected an expression (a field path, $variable or condition)",
                         label)
            return None
        source = str(text)
        facts = self.facts

        def note(kind: str, ref: str, offset: int) -> None:
            at = self.text_pos(loc, offset)
            if kind == "hl7" and not ref.startswith("out."):
                with contextlib.suppress(ValueError):
                    facts.hl7_paths.append((label, Path.parse(ref.replace("[*]", "")), at))
            elif kind == "var":
                facts.vars_used.add(ref)
            elif kind == "table":
                self.ops.tables_used.add(ref)
            elif kind == "name":
                side = "out" if ref.startswith("out.") else "in"
                try:
                    path = parse_record_path(ref.removeprefix("out.").removeprefix("item."))
                except RecordPathError:
                    return
                facts.record_paths.append((side, label, path, at))

        scope = replace(rs, note=note, paths=[])
        try:
            fn = compile_expression(source, RefCompiler(scope, source))
        except ExpressionError as exc:
            self.problem(loc, f"{exc.message} in {source!r}", label,
                         at=self.text_pos(loc, exc.position))
            return None
        return fn, scope.paths

    # -- steps -----------------------------------------------------------------------------
    def steps(self, items: Any, loc: YamlPath, rs: RefScope, prefix: str, block: Block
              ) -> list[tuple[str, StepFn]]:
        from transforms.steps import COMPILERS

        if not isinstance(items, list) or not items:
            self.problem(loc, "'steps' must be a non-empty list of steps")
            return []
        out: list[tuple[str, StepFn]] = []
        stopped = False
        for i, raw in enumerate(items):
            step_loc = (*loc, i)
            number = f"{prefix}{i + 1}"
            if not isinstance(raw, dict) or not raw:
                self.problem(step_loc, f"step {number}: a step is a mapping such as "
                             "{set: AccessionNumber, from: OBR-18}")
                continue
            kinds = [k for k in raw if k in STEP_KINDS]
            if len(kinds) != 1:
                if kinds:
                    self.problem(step_loc, f"step {number}: one step kind per step, found "
                                 f"{' and '.join(kinds)}", key=True)
                else:
                    first = next(iter(raw))
                    self.problem((*step_loc, first), f"step {number}: unknown step kind "
                                 f"{first!r}{did_you_mean(first, STEP_KINDS)}; known: "
                                 f"{', '.join(STEP_KINDS)}", key=True)
                continue
            kind = kinds[0]
            label = f"step {number} ({kind}{_summary(raw[kind])})"
            if stopped:
                self.facts.unreachable.append((label, self.pos(step_loc)))
            self.unknown_keys(raw, (kind, *STEP_KINDS[kind]), step_loc, label)
            fn = COMPILERS[kind](self, raw, step_loc, rs, label, block)
            if kind == "let" and isinstance(raw["let"], str) and _NAME.fullmatch(raw["let"]):
                rs = rs.with_variables(rs.variables | {raw["let"]})
            if kind in ("filter", "reject") and "when" not in raw:
                stopped = True
            if fn is None:
                continue
            if "when" in raw:
                compiled = self.expr(raw["when"], (*step_loc, "when"), rs, label)
                if compiled is not None:
                    fn = _when(compiled[0], fn)
            out.append((label, fn))
        return out


def _summary(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f" {text}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " " + ", ".join(value)[:40]
    if isinstance(value, dict):
        for key in ("group", "segment", "items"):
            if isinstance(value.get(key), str):
                return f" {key} {value[key]}"
    return ""


def _when(cond: Reader, fn: StepFn) -> StepFn:
    from transforms.runtime import truthy

    def guarded(run: Any) -> None:
        v = cond(run)
        if v is True or (v is not False and truthy(v)):
            fn(run)

    return guarded
