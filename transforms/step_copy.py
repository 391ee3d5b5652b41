"""``copy``: structure as it is, where ``set`` would escape a value into one leaf.

* HL7 → HL7: ``copy: PID`` copies every PID in scope (a template's empty ``PID``
  placeholder is filled first, else the segment is appended); ``copy: OBR[2]`` one
  occurrence; ``copy: PID-3`` (``to: PID-3``) a field with all its repetitions,
  components and escapes, re-encoded if the output uses other delimiters.
* record → record: ``copy: ScheduledStepAttributesSequence`` (``to:`` another path) a
  deep copy of a subtree; ``copy: "*"`` the whole input merged into the output;
  ``copy: item`` / ``item.X`` inside ``foreach: {items: ...}``.
"""

from __future__ import annotations

import copy as copying
import re
from typing import TYPE_CHECKING, Any

from engine.config.loader import YamlPath
from engine.hl7 import Path
from transforms.hl7_values import translate_delimiters
from transforms.records import RecordPathError, get_in, parse_record_path
from transforms.refs import RefScope
from transforms.runtime import Run, StepFn, is_empty
from transforms.targets import compile_hl7_target, compile_target

if TYPE_CHECKING:
    from transforms.compiler import Block, Compiler

__all__ = ["compile_copy"]

_SEG = re.compile(r"[A-Z][A-Z0-9]{2}")
_SEG_OCC = re.compile(r"([A-Z][A-Z0-9]{2})(?:\[([0-9]+)\])?")


def compile_copy(c: Compiler, raw: dict[str, Any], loc: YamlPath, rs: RefScope, label: str,
                 block: Block) -> StepFn | None:
    src, to = raw["copy"], raw.get("to")
    if c.input != c.output:
        c.problem((*loc, "copy"), "copy keeps structure, so input and output must be of the "
                  "same kind (hl7 → hl7 or record → record); use set to move values", label)
        return None
    if not isinstance(src, str) or (to is not None and not isinstance(to, str)):
        c.problem((*loc, "copy"), "copy and to must be texts", label)
        return None
    if c.input == "hl7":
        m = _SEG_OCC.fullmatch(src)
        if m is not None:
            return _segment_copy(c, m.group(1), m.group(2), to, loc, label)
        return _field_copy(c, src, to, loc, label, block)
    return _record_copy(c, src, to, loc, label, block, "when" in raw)


def _segment_copy(c: Compiler, name: str, occ: str | None, to: str | None, loc: YamlPath,
                  label: str) -> StepFn | None:
    target = to or name
    if name == "MSH" or target == "MSH" or not _SEG.fullmatch(target):
        c.problem((*loc, "to" if to else "copy"), "copy a segment into another segment name "
                  "(MSH comes from the template)", label)
        return None
    k = int(occ) if occ else None

    def step(run: Run) -> None:
        segs = run.scope.get(name) or []
        if k is not None:
            segs = segs[k - 1 : k]
        out, din = run.out, run.delimiters
        assert din is not None
        for seg in segs:
            existing = out.segments(target)
            n = next((i for i, s in enumerate(existing, 1) if len(s) == 0), len(existing) + 1)
            fields = seg.fields
            for f in range(1, max(len(fields), 2)):
                value = translate_delimiters(fields[f], din, out.delimiters) if f < len(fields) \
                    else ""
                out.set(f"{target}[{n}]-{f}", value, escape_value=False)

    return step


def _field_copy(c: Compiler, src: str, to: str | None, loc: YamlPath, label: str,
                block: Block) -> StepFn | None:
    try:
        p = Path.parse(src)
    except ValueError as exc:
        c.problem((*loc, "copy"), str(exc), label)
        return None
    if p.is_msh_delimiter:
        c.problem((*loc, "copy"), "MSH-1 and MSH-2 cannot be copied", label)
        return None
    c.facts.hl7_paths.append((label, p, c.pos((*loc, "copy"))))
    write = compile_hl7_target(c, to or src, (*loc, "to" if to else "copy"), label, block,
                               raw=True)
    if write is None:
        return None
    idx = (p.occurrence or 1) - 1

    def step(run: Run) -> None:
        segs = run.scope.get(p.segment) or []
        if len(segs) <= idx or run.delimiters is None:
            return
        fields = segs[idx].fields
        value = fields[p.field] if p.field < len(fields) else ""
        d = run.delimiters
        if p.repetition is not None or p.component is not None:
            value = _narrow(value, p, d.repetition, d.component, d.subcomponent)
        if value:
            write(run, translate_delimiters(value, d, run.out.delimiters))

    return step


def _narrow(value: str, p: Path, rep_sep: str, comp_sep: str, sub_sep: str) -> str:
    for n, sep in ((p.repetition or 1, rep_sep), (p.component, comp_sep),
                   (p.subcomponent, sub_sep)):
        if n is None:
            break
        parts = value.split(sep)
        value = parts[n - 1] if n <= len(parts) else ""
    return value


def _record_copy(c: Compiler, src: str, to: str | None, loc: YamlPath, label: str,
                 block: Block, conditional: bool) -> StepFn | None:
    whole = src in ("*", "item")
    if src.startswith("item") and not block.in_foreach:
        c.problem((*loc, "copy"), "item is only defined inside foreach: {items: ...}", label)
        return None
    path: tuple[str | int, ...] = ()
    if not whole:
        try:
            path = parse_record_path(src.removeprefix("item."))
        except RecordPathError as exc:
            c.problem((*loc, "copy"), str(exc), label)
            return None
    from_item = src.startswith("item")
    write = None
    if to is not None or not whole:
        write = compile_target(c, to or src.removeprefix("item."),
                               (*loc, "to" if to else "copy"), label, block, conditional)
        if write is None:
            return None

    def step(run: Run) -> None:
        root = run.item if from_item else run.record
        value = root if whole else get_in(root, path)
        if is_empty(value):
            return
        value = copying.deepcopy(value)
        if write is not None:
            write(run, value)
        elif isinstance(value, dict):
            run.target.update(value)

    return step
