"""Load a mapping file: check the top-level keys, load tables and template, compile steps.

``load_mapping(path)`` returns a ready ``Mapping`` or raises ``MappingError`` listing every
problem; ``compile_mapping`` returns the problems (and what the compiler learnt) without
raising, for lint.  ``params`` overrides the mapping's declared parameters (a channel's
settings, or a test's).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

from engine.config.loader import load_file
from engine.config.problems import ConfigProblem, has_errors
from engine.hl7 import HL7Message, HL7ParseError, is_known_version
from transforms.compiler import Block, Compiler
from transforms.errors import MappingError
from transforms.mapping import CONTROL_ID_PLACEHOLDER, Mapping
from transforms.misses import MISSES, LookupMissRegistry
from transforms.spec import INPUTS, LENGTH_POLICIES, OUTPUTS, TOP_KEYS
from transforms.tables import LookupTable, load_table

__all__ = ["compile_mapping", "load_mapping"]

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def load_mapping(path: str | FsPath, params: dict[str, Any] | None = None,
                 misses: LookupMissRegistry | None = None) -> Mapping:
    """Load and compile ``path``; raises ``MappingError`` with every problem.

    Warnings alone do not stop loading.  ``misses`` is where lookup misses are counted
    (default: the process-wide ``transforms.misses.MISSES``).
    """
    mapping, problems, _ = compile_mapping(path, params, misses)
    if mapping is None or has_errors(problems):
        raise MappingError(problems)
    return mapping


def compile_mapping(path: str | FsPath, params: dict[str, Any] | None = None,
                    misses: LookupMissRegistry | None = None
                    ) -> tuple[Mapping | None, list[ConfigProblem], Compiler]:
    """Compile without raising: (mapping or ``None``, problems, the compiler with its facts)."""
    loaded = load_file(path)
    c = Compiler(loaded, FsPath(path).resolve().parent, misses or MISSES)
    if not loaded.parsed:
        c.problems = [_hint(p, loaded.text) for p in c.problems]
        return None, c.problems, c
    data = loaded.data
    if not isinstance(data, dict):
        c.problem((), "a mapping file is a YAML mapping with mapping:, input:, output: and "
                  "steps:")
        return None, c.problems, c
    c.unknown_keys(data, list(TOP_KEYS), ())
    name = _name(c, data, FsPath(path))
    c.ops.mapping = name
    c.input = _choice(c, data, "input", INPUTS)
    c.output = _choice(c, data, "output", OUTPUTS)
    versions = _versions(c, data.get("hl7_versions"))
    if data.get("record_keywords") not in (None, "dicom"):
        c.problem(("record_keywords",), "record_keywords can only be 'dicom'")
    description = data.get("description", "")
    if not isinstance(description, str):
        c.problem(("description",), "description must be text")
        description = ""
    c.params = _params(c, data.get("params"), params or {})
    policy = c.param_value(data.get("length_policy", "reject"), ("length_policy",), "")
    if policy not in LENGTH_POLICIES:
        c.problem(("length_policy",), f"length_policy must be one of {', '.join(LENGTH_POLICIES)}")
    else:
        c.length_policy = policy
    tables = _tables(c, data.get("tables"))
    c.ops.tables = tables
    c.ops.declared = set(c.facts.tables)
    template = _template(c, data)
    rs = c.ref_scope(frozenset(), tables)
    steps = c.steps(data.get("steps"), ("steps",), rs, "", Block())
    if has_errors(c.problems):
        return None, c.problems, c
    mapping = Mapping(name, str(path), c.input, c.output, steps, description, template,
                      dict(c.params), tables, c.ops.misses, versions)
    return mapping, c.problems, c


_INDEXED_IN_FLOW = re.compile(r"\[[^\]\n]*[A-Za-z0-9]\[[0-9*#]+\]")


def _hint(problem: ConfigProblem, text: str) -> ConfigProblem:
    """Explain the commonest YAML error in mappings: ``[A[0].B, C]`` is a nested list."""
    lines = text.splitlines()
    line = lines[problem.line - 1] if 0 < problem.line <= len(lines) else ""
    if "flow sequence" in problem.message and _INDEXED_IN_FLOW.search(line):
        return replace(problem, message=problem.message + "; a path with [n] inside [ , ] "
                       "needs quotes (\"PID-3[2].1\") or a block list (- PID-3[2].1)")
    return problem


def _name(c: Compiler, data: dict[str, Any], path: FsPath) -> str:
    name = data.get("mapping")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        c.problem(("mapping",), "mapping: needs a name (letters, digits, _ . -), usually the "
                  "file name", key="mapping" not in data)
        return path.stem
    return name


def _choice(c: Compiler, data: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = data.get(key)
    if value not in choices:
        what = "is missing" if value is None else f"is {value!r}"
        c.problem((key,), f"{key} {what}; choose one of {', '.join(choices)}")
        return choices[0]
    return str(value)


def _versions(c: Compiler, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for i, v in enumerate(items):
        text = str(v)
        loc = ("hl7_versions", i) if isinstance(raw, list) else ("hl7_versions",)
        if isinstance(v, bool) or not is_known_version(text):
            c.problem(loc, f"unknown HL7 version {text!r} (write it quoted, e.g. \"2.5.1\")")
        else:
            out.append(text)
    return tuple(out)


def _params(c: Compiler, raw: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """Declared parameters with overrides applied.  A parameter is a default value, or
    ``{default: ..., choices: [...], description: ...}``; overrides must be declared and,
    with choices, one of them."""
    declared: dict[str, Any] = {}
    choices: dict[str, list[Any]] = {}
    if raw is not None and not isinstance(raw, dict):
        c.problem(("params",), "params must be a mapping of name → default value")
        raw = {}
    for k, v in (raw or {}).items():
        if not _PARAM_NAME.fullmatch(k):
            c.problem(("params", k), f"parameter name {k!r} must be letters, digits and _",
                      key=True)
            continue
        value = v
        if isinstance(v, dict):
            c.unknown_keys(v, ("default", "choices", "description"), ("params", k))
            allowed = v.get("choices")
            if allowed is not None and not isinstance(allowed, list):
                c.problem(("params", k, "choices"), "choices must be a list")
                allowed = None
            if allowed is not None and v.get("default") not in allowed:
                c.problem(("params", k, "default"), f"default of {k!r} is not one of its choices")
            if allowed is not None:
                choices[k] = allowed
            value = v.get("default", "")
        if isinstance(value, dict):
            c.problem(("params", k), "a parameter is a text, number, true/false or a list")
            continue
        declared[k] = "" if value is None else value
    for k, v in overrides.items():
        if k not in declared:
            from transforms.suggest import did_you_mean

            c.problem(("params",), f"parameter {k!r} given for this mapping is not declared "
                      f"under params{did_you_mean(k, declared)}", key=True)
        elif k in choices and v not in choices[k]:
            c.problem(("params", k), f"parameter {k!r} is {v!r}; choose one of "
                      f"{', '.join(map(str, choices[k]))}", key=True)
        else:
            declared[k] = v
    return declared


def _tables(c: Compiler, raw: Any) -> dict[str, LookupTable]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        c.problem(("tables",), "tables must be a mapping of name → file")
        return {}
    out: dict[str, LookupTable] = {}
    for name, spec in raw.items():
        line, col = c.pos(("tables", name))
        c.facts.tables[name] = c.pos(("tables", name), key=True)
        table, problems = load_table(name, spec, c.base, (c.file, line, col))
        c.problems.extend(problems)
        if table is not None:
            out[name] = table
    return out


def _template(c: Compiler, data: dict[str, Any]) -> str | None:
    raw = data.get("template")
    if c.output != "hl7":
        if raw is not None:
            c.problem(("template",), "template is only used with output: hl7", key=True)
        return None
    if not isinstance(raw, str) or not raw.strip():
        c.problem(("template",), "output: hl7 needs a template: the HL7 text to start from "
                  "(at least an MSH segment)", key="template" not in data)
        return None
    text = raw.strip().replace("\r\n", "\r").replace("\n", "\r") + "\r"
    msh, _, rest = text.partition("\r")
    fields = msh.split(msh[3:4]) if msh.startswith("MSH") and len(msh) > 3 else []
    if len(fields) > 9 and not fields[9]:  # MSH-10 left for the run to fill
        fields[9] = CONTROL_ID_PLACEHOLDER
        text = msh[3:4].join(fields) + "\r" + rest
    try:
        HL7Message.parse(text)
    except HL7ParseError as exc:
        c.problem(("template",), f"template is not valid HL7: {exc.reason}")
        return None
    return text
