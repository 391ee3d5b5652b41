"""Flow steps: ``filter`` (drop with a reason), ``reject`` (refuse with a reason, HL7 error
code and ERR location) and ``route`` (send only to the named destinations).

Routes accumulate: every ``route`` step that runs adds its destinations (in order, once
each).  A run where no ``route`` step ran leaves ``MappingResult.routes`` as ``None``,
meaning "deliver as the channel's destinations say".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from engine.config.loader import YamlPath
from engine.hl7 import Path
from transforms.errors import Filtered, Rejected
from transforms.hl7_values import err_location
from transforms.refs import RefScope
from transforms.runtime import Run, StepFn

if TYPE_CHECKING:
    from transforms.compiler import Block, Compiler

__all__ = ["compile_filter", "compile_reject", "compile_route"]

_ROUTE = re.compile(r"[A-Za-z0-9_.-]+")


def compile_filter(c: Compiler, raw: dict[str, Any], loc: YamlPath, rs: RefScope,
                   label: str, block: Block) -> StepFn | None:
    reason = c.scalar_text(raw["filter"], (*loc, "filter"), label)
    if reason is None:
        return None
    if not isinstance(reason, str) or not reason.strip():
        c.problem((*loc, "filter"), "filter needs the reason to record, e.g. "
                  "filter: \"not an order\"", label)
        return None

    def step(run: Run) -> None:
        raise Filtered(reason)

    return step


def compile_reject(c: Compiler, raw: dict[str, Any], loc: YamlPath, rs: RefScope,
                   label: str, block: Block) -> StepFn | None:
    reason = c.scalar_text(raw["reject"], (*loc, "reject"), label)
    code = str(raw.get("error_code", "207"))
    if reason is None:
        return None
    where = raw.get("location")
    if not isinstance(reason, str) or not reason.strip():
        c.problem((*loc, "reject"), "reject needs the reason to answer with", label)
        return None
    if not re.fullmatch(r"[0-9]{3}", code):
        c.problem((*loc, "error_code"), "error_code is an HL7 table 0357 code such as 101",
                  label)
        return None
    path: Path | None = None
    if where is not None:
        try:
            path = Path.parse(str(where))
        except ValueError as exc:
            c.problem((*loc, "location"), str(exc), label)
            return None

    def step(run: Run) -> None:
        raise Rejected(reason, code, err_location(run, path) if path is not None else "")

    return step


def compile_route(c: Compiler, raw: dict[str, Any], loc: YamlPath, rs: RefScope,
                  label: str, block: Block) -> StepFn | None:
    names = raw["route"] if isinstance(raw["route"], list) else [raw["route"]]
    bad = [n for n in names if not isinstance(n, str) or not _ROUTE.fullmatch(n)]
    if bad or not names:
        c.problem((*loc, "route"), "route needs destination names (letters, digits, _ . -)",
                  label)
        return None
    for i, n in enumerate(names):
        at = (*loc, "route", i) if isinstance(raw["route"], list) else (*loc, "route")
        c.facts.routes.append((n, c.pos(at)))
    wanted = list(dict.fromkeys(names))

    def step(run: Run) -> None:
        routes = run.routes
        if routes is None:
            run.routes = list(wanted)
            return
        for n in wanted:
            if n not in routes:
                routes.append(n)

    return step
