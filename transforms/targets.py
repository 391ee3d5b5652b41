"""Compile ``set`` / ``copy`` targets into writers ``write(run, value)``.

Record output: dotted keys with 0-based ``[i]`` (``ScheduledProcedureStepSequence[0].Modality``).
Inside ``foreach ... into:`` a target is relative to the current item; ``out.`` makes it
absolute (the output root).

HL7 output: an HL7 path (``PID-5.1``, ``OBX[2]-5``); inside ``foreach`` the occurrence
``[#]`` means the current iteration (``OBR[#]-4.1`` writes the n-th OBR).  Values are
escaped (one leaf each); a list writes one repetition per item.  Structure is copied
with ``copy``, never with ``set``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.config.loader import YamlPath
from engine.hl7 import HL7Message, Path
from transforms.records import RecordPathError, parse_record_path, set_in
from transforms.runtime import Run, text_of

if TYPE_CHECKING:
    from transforms.compiler import Block, Compiler

__all__ = ["Writer", "compile_hl7_target", "compile_target"]

Writer = Callable[[Run, Any], None]
_ITERATION = re.compile(r"([A-Z][A-Z0-9]{2})\[#\](-.*)")


def compile_target(c: Compiler, text: Any, loc: YamlPath, label: str, block: Block,
                   conditional: bool = False) -> Writer | None:
    if not isinstance(text, str) or not text.strip():
        c.problem(loc, "the target must be a text: a record path or an HL7 path", label)
        return None
    if c.output == "hl7":
        return compile_hl7_target(c, text, loc, label, block, conditional)
    absolute = text.startswith("out.")
    try:
        path = parse_record_path(text.removeprefix("out."))
    except RecordPathError as exc:
        c.problem(loc, str(exc), label)
        return None
    at = c.pos(loc)
    scope = "top" if absolute or not block.into else block.key
    c.facts.targets.append((label, scope, text.removeprefix("out."), conditional, at))
    c.facts.record_paths.append(("out", label, path, at))
    return _record_writer(path, absolute)


def _record_writer(path: tuple[str | int, ...], absolute: bool) -> Writer:
    """Writers specialised for the common shapes ``Key``, ``Key.Key`` and ``Key[i].Key``;
    the general ``set_in`` handles the rest and every shape conflict."""
    first = path[0]
    assert isinstance(first, str)
    if len(path) == 1:
        def put(run: Run, value: Any) -> None:
            (run.out if absolute else run.target)[first] = value

        return put
    second = path[1]
    if len(path) == 2 and isinstance(second, str):
        def put2(run: Run, value: Any) -> None:
            root = run.out if absolute else run.target
            inner = root.get(first)
            if inner.__class__ is dict:
                inner[second] = value
            else:
                set_in(root, path, value)

        return put2
    third = path[2] if len(path) == 3 else None
    if isinstance(second, int) and isinstance(third, str):
        def put3(run: Run, value: Any) -> None:
            root = run.out if absolute else run.target
            items = root.get(first)
            if items.__class__ is list and len(items) > second:
                item = items[second]
                if item.__class__ is dict:
                    item[third] = value
                    return
            set_in(root, path, value)

        return put3
    return lambda run, value: set_in(run.out if absolute else run.target, path, value)


def compile_hl7_target(c: Compiler, text: str, loc: YamlPath, label: str, block: Block,
                       conditional: bool = False, raw: bool = False) -> Writer | None:
    """An HL7 writer; ``raw=True`` writes ER7 as given (``copy``) instead of escaping."""
    text = text.removeprefix("out.")
    m = _ITERATION.fullmatch(text)
    per_item = m is not None
    if m is not None:
        if not block.in_foreach:
            c.problem(loc, "[#] (the current item) is only valid inside foreach", label)
            return None
        text = f"{m.group(1)}[1]{m.group(2)}"
    try:
        path = Path.parse(text)
    except ValueError as exc:
        c.problem(loc, str(exc), label)
        return None
    if path.is_msh_delimiter:
        c.problem(loc, "MSH-1 and MSH-2 are the delimiters; set them in the template", label)
        return None
    at = c.pos(loc)
    c.facts.out_hl7_paths.append((label, path, at))
    c.facts.targets.append((label, block.key if per_item else "top", text, conditional, at))
    escape = not raw
    if not per_item:
        return lambda run, value: _write(run.out, path, value, escape)

    def write_item(run: Run, value: Any) -> None:
        _write(run.out, path._replace(occurrence=run.iteration), value, escape)

    return write_item


def _write(msg: HL7Message, path: Path, value: Any, escape: bool) -> None:
    if isinstance(value, list) and path.repetition is None:
        for i, item in enumerate(value, 1):
            msg.set(str(path._replace(repetition=i)), text_of(item), escape_value=escape)
        return
    msg.set(str(path), text_of(value), escape_value=escape)
