"""``radbridge lint``: every problem of a mapping at once, as ``file:line:col: message``.

Beyond what loading reports (YAML, unknown step kinds/keys/ops with suggestions, bad
expressions with their column, missing tables and columns, bad paths, undefined
variables and parameters), lint checks:

* HL7 paths against the HL7 version (``hl7_version``, else the mapping's
  ``hl7_versions``; a path must exist in at least one of them).  Z-segments and
  segments the reference does not know are not checked;
* record paths against the DICOM dictionary when ``record_keywords: dicom`` (keys
  starting with ``_`` are the mapping's own; an indexed key must be a sequence);
* the same target set twice without a condition, and a target written both as a value
  and as a container;
* steps after an unconditional ``filter``/``reject``, unused tables and variables;
* route names against the channel's destinations (when given);
* a mapping name that differs from its file name, and a mapping without tests.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path as FsPath
from typing import Protocol

from engine.config.loader import load_file
from engine.config.problems import ConfigProblem, Severity, has_errors, sort_problems
from engine.hl7 import Path
from transforms.compiler import Compiler, Position
from transforms.load import compile_mapping
from transforms.misses import LookupMissRegistry
from transforms.records import format_record_path
from transforms.suggest import did_you_mean
from transforms.testcases import discover

__all__ = ["lint_mapping", "lint_paths", "main"]


class Add(Protocol):
    """Records one problem at a position."""

    def __call__(self, at: Position, message: str, severity: Severity = "error") -> None: ...


def lint_mapping(path: str | FsPath, hl7_version: str | None = None, *,
                 destinations: Iterable[str] | None = None) -> list[ConfigProblem]:
    """Every problem of the mapping at ``path``, sorted by line and column."""
    _, problems, c = compile_mapping(path, misses=LookupMissRegistry())
    if not c.loaded.parsed or not isinstance(c.loaded.data, dict):
        return sort_problems(problems)
    found = list(problems)

    def add(at: Position, message: str, severity: Severity = "error") -> None:
        found.append(ConfigProblem(c.file, at[0], at[1], message, severity))

    versions = [hl7_version] if hl7_version else _declared_versions(c)
    if versions and c.input == "hl7":
        _check_hl7(c.facts.hl7_paths, versions, add)
    out_versions = [hl7_version] if hl7_version else versions
    if c.output == "hl7" and out_versions:
        _check_hl7(c.facts.out_hl7_paths, out_versions, add)
    if c.loaded.data.get("record_keywords") == "dicom":
        _check_keywords(c, add)
    _check_targets(c, add)
    for label, at in c.facts.unreachable:
        add(at, f"{label}: never runs (an earlier filter or reject always stops the message)",
            "warning")
    for name, at in c.facts.tables.items():
        if name not in c.ops.tables_used:
            add(at, f"table {name!r} is never used", "warning")
    for name, (label, at) in c.facts.lets.items():
        if name not in c.facts.vars_used:
            add(at, f"{label}: ${name} is never used", "warning")
    if destinations is not None:
        known = list(destinations)
        for name, at in c.facts.routes:
            if name not in known:
                add(at, f"route to unknown destination {name!r}{did_you_mean(name, known)}")
    declared = c.loaded.data.get("mapping")
    stem = FsPath(path).name.split(".")[0]
    if isinstance(declared, str) and declared != stem:
        add(c.pos(("mapping",)), f"mapping {declared!r} is in a file named {stem!r}; keep them "
            "the same so tests and channels find it", "warning")
    if not discover([FsPath(path)]):
        add((1, 1), f"no tests: add {stem}.test.yaml beside the mapping", "warning")
    return sort_problems(found)


def _declared_versions(c: Compiler) -> list[str]:
    raw = c.loaded.data.get("hl7_versions") if isinstance(c.loaded.data, dict) else None
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    return [str(v) for v in items]


def _check_hl7(paths: list[tuple[str, Path, Position]], versions: list[str], add: Add) -> None:
    from engine.hl7.reference import field_exists  # loads hl7apy: lint only

    seen: set[tuple[Path, Position]] = set()
    for label, p, at in paths:
        if (p, at) in seen:
            continue
        seen.add((p, at))
        results = [field_exists(v, p.segment, p.field, p.component) for v in versions]
        if any(r is not False for r in results):
            continue
        where = " or ".join(versions)
        field_only = [field_exists(v, p.segment, p.field) for v in versions]
        if p.component is not None and any(r is not False for r in field_only):
            add(at, f"{label}: {p.segment}-{p.field} has no component {p.component} in "
                f"HL7 v{where}")
        else:
            add(at, f"{label}: {p.segment}-{p.field} does not exist in HL7 v{where}")


def _check_keywords(c: Compiler, add: Add) -> None:
    from pydicom.datadict import dictionary_VR, keyword_dict

    keywords = list(keyword_dict)
    sides = {"out"} if c.output == "record" else set()
    if c.input == "record":
        sides.add("in")
    seen: set[tuple[str, Position]] = set()
    for side, label, path, at in c.facts.record_paths:
        if side not in sides:
            continue
        for i, part in enumerate(path):
            if not isinstance(part, str) or part.startswith("_"):
                if isinstance(part, str):
                    break  # the mapping's own subtree, e.g. _order.*
                continue
            if (part, at) in seen:
                break
            seen.add((part, at))
            if part not in keyword_dict:
                add(at, f"{label}: {part!r} is not a DICOM keyword"
                    f"{did_you_mean(part, keywords)}", "warning")
                break
            indexed = i + 1 < len(path) and isinstance(path[i + 1], int)
            if indexed and dictionary_VR(keyword_dict[part]) != "SQ":
                add(at, f"{label}: {part} is not a sequence, so "
                    f"{format_record_path(path[: i + 2])} cannot be indexed", "warning")
                break


def _check_targets(c: Compiler, add: Add) -> None:
    first: dict[tuple[str, str], tuple[str, Position]] = {}
    containers: dict[tuple[str, str], str] = {}
    for label, block, text, conditional, at in c.facts.targets:
        key = (block, text)
        if not conditional and key in first:
            other, (line, _) = first[key]
            add(at, f"{label}: {text} is already set by {other} (line {line}); the later "
                "value wins whenever it is not empty", "warning")
        if not conditional:
            first.setdefault(key, (label, at))
        parts = text.replace("[", ".[").split(".")
        for n in range(1, len(parts)):
            containers[(block, ".".join(parts[:n]).replace(".[", "["))] = label
    for label, block, text, _, at in c.facts.targets:
        if (block, text) in containers:
            add(at, f"{label}: {text} is written as a value here and as a container by "
                f"{containers[(block, text)]}")


def lint_paths(paths: Sequence[FsPath], hl7_version: str | None = None) -> list[ConfigProblem]:
    """Lint every mapping file under ``paths`` (directories are searched for files with a
    top-level ``mapping:`` key; test files and ``tables/`` are skipped)."""
    problems: list[ConfigProblem] = []
    for f in _mapping_files(paths):
        problems.extend(lint_mapping(f, hl7_version))
    return problems


def _mapping_files(paths: Sequence[FsPath]) -> list[FsPath]:
    out: list[FsPath] = []
    for p in paths:
        if p.is_file():
            out.append(p)
            continue
        for f in sorted(p.rglob("*.y*ml")):
            parts = f.relative_to(p).parts
            if f.name.endswith((".test.yaml", ".test.yml")) or "tests" in parts[:-1] \
                    or "tables" in parts[:-1] or any(x.startswith(".") for x in parts):
                continue
            data = load_file(f).data
            if isinstance(data, dict) and "mapping" in data:
                out.append(f)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``radbridge lint [PATH ...] [--hl7-version V]``; 1 when any error is found."""
    ap = argparse.ArgumentParser(prog="radbridge lint", description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=FsPath, default=[FsPath("mappings")])
    ap.add_argument("--hl7-version", default=None, help="check HL7 paths against this version")
    args = ap.parse_args(argv)
    problems = lint_paths(args.paths, args.hl7_version)
    for p in problems:
        print(p)
    errors = sum(1 for p in problems if p.is_error)
    print(f"{errors} error{'' if errors == 1 else 's'}, {len(problems) - errors} warning"
          f"{'' if len(problems) - errors == 1 else 's'}", file=sys.stderr)
    return 1 if has_errors(problems) else 0


if __name__ == "__main__":
    raise SystemExit(main())
