"""``foreach`` (one pass of nested steps per segment group, segment or record item) and
``run_steps`` (the loop that runs compiled steps).

foreach over HL7 input::

    foreach: {group: ORC, members: [OBR, TQ1, IPC, ZDS, NTE], each: IPC}
    foreach: {segment: OBX}

A group is each ``ORC`` with the member segments that follow it; inside, paths to the
group's segment names read that group only.  ``each: IPC`` makes one pass per IPC of
the group (or one pass when it has none).  Over a record input:
``foreach: {items: ScheduledStepAttributesSequence}`` (read items as ``item.X``).
``into: SomeSequence`` (record output) appends one item per pass that wrote anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engine.config.loader import YamlPath
from engine.hl7 import Segment
from transforms.errors import Rejected, StepSignal
from transforms.records import RecordPathError, get_in, parse_record_path, set_in
from transforms.refs import RefScope
from transforms.runtime import Reader, Run, StepFn

if TYPE_CHECKING:
    from transforms.compiler import Block, Compiler

__all__ = ["compile_foreach", "run_steps"]

_SEG = re.compile(r"[A-Z][A-Z0-9]{2}")
_SEG_OCC = re.compile(r"([A-Z][A-Z0-9]{2})(?:\[([0-9]+)\])?")


def run_steps(steps: list[tuple[str, StepFn]], run: Run) -> None:
    """Run compiled steps in order; an unexpected failure becomes a rejection naming the step."""
    for label, fn in steps:
        try:
            fn(run)
        except StepSignal:
            raise
        except Exception as exc:
            raise Rejected(f"{label}: mapping failed ({type(exc).__name__})", "207") from exc


def _list_at(base: dict[str, Any], path: tuple[str | int, ...]) -> list[Any]:
    found = get_in(base, path)
    if isinstance(found, list):
        return found
    if found not in ("", None):
        raise TypeError("foreach 'into' target already holds a value that is not a list")
    new: list[Any] = []
    set_in(base, path, new)
    return new


def compile_foreach(c: Compiler, raw: dict[str, Any], loc: YamlPath, rs: RefScope, label: str,
                    block: Block) -> StepFn | None:
    from transforms.compiler import Block as BlockType

    spec, spec_loc = raw["foreach"], (*loc, "foreach")
    if not isinstance(spec, dict):
        c.problem(spec_loc, "foreach needs {group: ORC, members: [...]}, {segment: OBX} or "
                  "{items: SomeSequence}", label)
        return None
    allowed = ("group", "members", "each", "segment") if c.input == "hl7" else ("items",)
    c.unknown_keys(spec, allowed, spec_loc, label)
    into_text = raw.get("into")
    into: tuple[str | int, ...] | None = None
    absolute = False
    if into_text is not None:
        if c.output != "record" or not isinstance(into_text, str):
            c.problem((*loc, "into"), "into names a record sequence (record output only; an "
                      "HL7 output writes each item with [#] targets)", label)
            return None
        absolute = into_text.startswith("out.")
        try:
            into = parse_record_path(into_text.removeprefix("out."))
        except RecordPathError as exc:
            c.problem((*loc, "into"), str(exc), label)
            return None
    number = label.split()[1]
    inner = BlockType(key=label if into is not None else block.key, in_foreach=True,
                      into=into is not None or block.into)
    inner_rs = rs
    if c.input == "record":
        inner_rs = replace(rs, in_items=True)
    body = c.steps(raw.get("steps"), (*loc, "steps"), inner_rs, f"{number}.", inner)
    passes = _passes(c, spec, spec_loc, rs, label)
    if passes is None or not body:
        return None

    def step(run: Run) -> None:
        saved = (run.scope, run.fields, run.target, run.vars, run.iteration, run.item)
        base = run.out if absolute else run.target
        container: list[Any] | None = None
        try:
            for n, setup in enumerate(passes(run), 1):
                setup(run, saved[0], saved[1])
                run.vars = dict(saved[3])
                run.iteration = n
                if into is None:
                    run.target = saved[2]
                    run_steps(body, run)
                    continue
                item: dict[str, Any] = {}
                run.target = item
                run_steps(body, run)
                if item:
                    if container is None:
                        container = _list_at(base, into)
                    container.append(item)
        finally:
            run.scope, run.fields, run.target, run.vars, run.iteration, run.item = saved

    return step


Scope = dict[str, list[Segment]]
Fields = dict[str, list[list[str]]]
Setup = Callable[[Run, Scope, Fields], None]


def _passes(c: Compiler, spec: dict[str, Any], loc: YamlPath, rs: RefScope, label: str) -> Any:
    """A function run → list of per-pass setup functions, or ``None`` after problems."""
    if c.input == "record":
        if "items" not in spec:
            c.problem(loc, "foreach over a record needs items: <sequence path>", label)
            return None
        compiled = c.expr(spec["items"], (*loc, "items"), rs, label)
        if compiled is None:
            return None
        read: Reader = compiled[0]

        def items(run: Run) -> list[Setup]:
            value = read(run)
            seq = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
            return [_item_setup(v) for v in seq]

        return items
    if ("group" in spec) == ("segment" in spec):
        c.problem(loc, "foreach needs exactly one of group or segment", label)
        return None
    if "segment" in spec:
        name = spec["segment"]
        if not isinstance(name, str) or not _SEG.fullmatch(name):
            c.problem((*loc, "segment"), "segment must be a segment name such as OBX", label)
            return None
        return lambda run: [_seg_setup(name, s) for s in run.scope.get(name, [])]
    start, members, each = spec["group"], spec.get("members", []), spec.get("each")
    names = [start, *members] if isinstance(members, list) else None
    if names is None or not all(isinstance(n, str) and _SEG.fullmatch(n) for n in names):
        c.problem(loc, "group and members must be segment names, e.g. {group: ORC, members: "
                  "[OBR, TQ1, IPC, ZDS, NTE]}", label)
        return None
    if each is not None and each not in members:
        c.problem((*loc, "each"), f"each must be one of the members ({', '.join(members)})",
                  label)
        return None
    def groups(run: Run) -> list[Setup]:
        """Each start segment with the members that follow it, read from the message-level
        scope by occurrence (no new segment views, no second split of any segment)."""
        assert run.msg is not None
        top_scope, top_fields = run.top
        count = dict.fromkeys(names, 0)
        found: list[tuple[Scope, Fields]] = []
        own_s: Scope = {}
        own_f: Fields = {}
        inside = False
        for n in run.msg.segment_names:
            k = count.get(n)
            if k is None:
                inside = False
                continue
            count[n] = k + 1
            if n == start:
                own_s, own_f = {m: [] for m in names}, {m: [] for m in names}
                found.append((own_s, own_f))
                inside = True
            elif not inside:
                continue
            own_s[n].append(top_scope[n][k])
            own_f[n].append(top_fields[n][k])
        out: list[Setup] = []
        for own_s, own_f in found:
            if each is None or not own_s[each]:
                out.append(_group_setup(own_s, own_f))
            else:
                out.extend(_group_setup({**own_s, each: [s]}, {**own_f, each: [f]})
                           for s, f in zip(own_s[each], own_f[each], strict=True))
        return out

    return groups


def _group_setup(own: Scope, own_fields: Fields) -> Setup:
    def setup(run: Run, scope: Scope, fields: Fields) -> None:
        run.scope = {**scope, **own}
        run.fields = {**fields, **own_fields}

    return setup


def _seg_setup(name: str, seg: Segment) -> Setup:
    def setup(run: Run, scope: Scope, fields: Fields) -> None:
        run.scope = {**scope, name: [seg]}
        run.fields = {**fields, name: [seg.fields]}

    return setup


def _item_setup(item: Any) -> Setup:
    def setup(run: Run, scope: Scope, fields: Fields) -> None:
        run.item = item

    return setup
