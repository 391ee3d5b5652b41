"""Mapping tests: find the test files beside mappings and read them into cases.

Discovery: ``foo.test.yaml`` tests ``foo.yaml`` beside it; ``tests/foo.yaml`` and
``tests/foo.<anything>.yaml`` test ``../foo.yaml``; a ``mapping:`` key names another one.
A directory is searched recursively (hidden directories, ``.venv``, ``__pycache__`` and
``node_modules`` skipped); a mapping file given directly brings its own tests.

A test file::

    mapping: order_to_worklist.yaml        # optional (see above)
    params: {length_policy: truncate}      # optional, for every test of the file
    tests:
      - name: v2.3.1 NW order with ZDS
        input_file: ../tests/fixtures/samples/orm_o01_nw_v231.hl7    # or input: |
        params: {...}                      # optional, this test only
        expect: {AccessionNumber: ACC0001, ScheduledProcedureStepSequence[0].Modality: CT}
        expect_reject: "no accession number"    # or expect_filter; substrings of the reason
        expect_error_code: "101"
        expect_location: OBR^1^18
        expect_routes: [ehr]
        expect_warnings: ["truncated"]     # each must be a substring of some warning
        expect_segments: [MSH, PID, ORC]   # HL7 output: the segment names in order
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config.loader import LoadedYAML, YamlPath, load_file, mark_for
from engine.config.problems import ConfigProblem
from engine.hl7 import decode_message

__all__ = ["CASE_KEYS", "Expectation", "MappingTestCase", "discover", "read_cases", "shown"]

CASE_KEYS = ("name", "input", "input_file", "params", "expect", "expect_reject",
             "expect_filter", "expect_error_code", "expect_location", "expect_routes",
             "expect_warnings", "expect_segments")
_FILE_KEYS = ("mapping", "params", "tests", "description")
_SKIP_DIRS = {".venv", "venv", "__pycache__", "node_modules", ".git"}


@dataclass(frozen=True)
class Expectation:
    """One expected value: ``field`` (an output path or a pseudo-field such as
    ``status``), what the YAML says, and where it is written."""

    field: str
    expected: Any
    line: int
    col: int
    raw: str | None = None  # the text as written, for scalars YAML read as numbers


@dataclass
class MappingTestCase:
    file: Path
    name: str
    line: int
    col: int
    mapping: Path
    params: dict[str, Any]
    input: str | dict[str, Any] | None
    expect: list[Expectation] = field(default_factory=list)
    outcome: str = "ok"  # ok | rejected | filtered
    outcome_text: Expectation | None = None  # substring of the reason
    checks: list[Expectation] = field(default_factory=list)  # expect_error_code ...

    @property
    def id(self) -> str:
        return f"{self.file.name}::{self.name}"


def discover(paths: list[Path]) -> list[Path]:
    """Every test file for ``paths`` (files and directories), sorted, without duplicates."""
    found: set[Path] = set()
    for p in paths:
        if p.is_file():
            if _is_test_file(p) or p.parent.name == "tests":
                found.add(shown(p))
            elif p.suffix in (".yaml", ".yml"):
                found.update(_tests_of_mapping(p))
        elif p.is_dir():
            for f in p.rglob("*.y*ml"):
                rel = f.relative_to(p).parts[:-1]
                if any(part.startswith(".") or part in _SKIP_DIRS for part in rel):
                    continue
                if _is_test_file(f) or (f.parent.name == "tests" and _mapping_beside(f)):
                    found.add(shown(f))
    return sorted(found)


def shown(p: Path) -> Path:
    """``p`` relative to the working directory when it is below it (for messages)."""
    try:
        return p.resolve().relative_to(Path.cwd())
    except ValueError:
        return p.resolve()


def _is_test_file(p: Path) -> bool:
    return p.name.endswith((".test.yaml", ".test.yml"))


def _tests_of_mapping(mapping: Path) -> set[Path]:
    stem = mapping.name.split(".")[0]
    out = {shown(t) for t in mapping.parent.glob(f"{stem}.test.y*ml")}
    tests_dir = mapping.parent / "tests"
    if tests_dir.is_dir():
        out.update(shown(t) for t in tests_dir.glob("*.y*ml") if t.name.split(".")[0] == stem)
    return out


def _mapping_beside(test: Path) -> Path | None:
    stem = test.name.split(".")[0]
    for suffix in (".yaml", ".yml"):
        candidate = test.parent.parent / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _default_mapping(test: Path) -> Path | None:
    if _is_test_file(test):
        base = test.name.rsplit(".test.", 1)[0]
        for suffix in (".yaml", ".yml"):
            if (test.parent / f"{base}{suffix}").is_file():
                return test.parent / f"{base}{suffix}"
        return None
    return _mapping_beside(test)


class _Reader:
    def __init__(self, path: Path, loaded: LoadedYAML) -> None:
        self.path = path
        self.loaded = loaded
        self.problems: list[ConfigProblem] = list(loaded.problems)

    def pos(self, loc: YamlPath, key: bool = False) -> tuple[int, int]:
        return mark_for(self.loaded, loc, prefer_key=key)

    def problem(self, loc: YamlPath, message: str, key: bool = False) -> None:
        line, col = self.pos(loc, key)
        self.problems.append(ConfigProblem(str(self.path), line, col, message))

    def raw_text(self, loc: YamlPath, value: Any) -> str | None:
        """How a number/boolean scalar is written (``+0100`` rather than 100)."""
        if isinstance(value, str) or value is None or isinstance(value, dict | list):
            return None
        line, col = self.pos(loc)
        lines = self.loaded.text.splitlines()
        if not 0 < line <= len(lines):
            return None
        text = lines[line - 1][col - 1 :]
        for stop in (" #", ",", "}", "]"):
            text = text.split(stop)[0]
        return text.strip() or None

    def expectation(self, name: str, loc: YamlPath, value: Any, key_pos: bool = True
                    ) -> Expectation:
        line, col = self.pos(loc, key=key_pos)
        return Expectation(name, value, line, col, self.raw_text(loc, value))


def read_cases(path: Path) -> tuple[list[MappingTestCase], list[ConfigProblem]]:
    """The cases of one test file, and the problems that stopped others from being read."""
    loaded = load_file(path)
    r = _Reader(path, loaded)
    data = loaded.data
    if not loaded.parsed:
        return [], r.problems
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        r.problem((), "a test file is a mapping with a 'tests:' list")
        return [], r.problems
    from transforms.suggest import did_you_mean

    for k in data:
        if k not in _FILE_KEYS:
            r.problem((k,), f"unknown key {k!r}{did_you_mean(k, _FILE_KEYS)}", key=True)
    if "mapping" in data:
        mapping: Path | None = shown(path.parent / str(data["mapping"]))
        if mapping is None or not mapping.is_file():
            r.problem(("mapping",), f"mapping file {data['mapping']!r} does not exist")
            return [], r.problems
    else:
        mapping = _default_mapping(path)
        if mapping is not None:
            mapping = shown(mapping)
        if mapping is None:
            r.problem((), "cannot tell which mapping this file tests: name it 'foo.test.yaml' "
                      "beside 'foo.yaml' or add 'mapping: foo.yaml'")
            return [], r.problems
    file_params = data.get("params") or {}
    if not isinstance(file_params, dict):
        r.problem(("params",), "params must be a mapping")
        file_params = {}
    cases = []
    for i, raw in enumerate(data["tests"]):
        case = _case(r, raw, ("tests", i), mapping, file_params)
        if case is not None:
            cases.append(case)
    return cases, r.problems


def _case(r: _Reader, raw: Any, loc: YamlPath, mapping: Path, file_params: dict[str, Any]
          ) -> MappingTestCase | None:
    from transforms.suggest import did_you_mean

    line, col = r.pos(loc)
    if not isinstance(raw, dict):
        r.problem(loc, "a test is a mapping with name, input or input_file, and expectations")
        return None
    name = str(raw.get("name") or f"test {loc[-1] + 1 if isinstance(loc[-1], int) else ''}")
    for k in raw:
        if k not in CASE_KEYS:
            r.problem((*loc, k), f"{name}: unknown key {k!r}{did_you_mean(k, CASE_KEYS)}",
                      key=True)
    params = {**file_params, **(raw.get("params") or {})}
    case = MappingTestCase(r.path, name, line, col, mapping, params, _input(r, raw, loc, name))
    expect = raw.get("expect", {})
    if not isinstance(expect, dict):
        r.problem((*loc, "expect"), f"{name}: expect is a mapping of output path → value")
        expect = {}
    case.expect = [r.expectation(str(k), (*loc, "expect", k), v) for k, v in expect.items()]
    for key, outcome in (("expect_reject", "rejected"), ("expect_filter", "filtered")):
        if key in raw:
            case.outcome = outcome
            text = raw[key]
            case.outcome_text = r.expectation(key, (*loc, key),
                                              "" if text is True or text is None else str(text))
    for key in ("expect_error_code", "expect_location", "expect_routes", "expect_warnings",
                "expect_segments"):
        if key in raw:
            case.checks.append(r.expectation(key, (*loc, key), raw[key]))
    if "expect_reject" in raw and "expect_filter" in raw:
        r.problem(loc, f"{name}: expect_reject and expect_filter exclude each other")
    return case


def _input(r: _Reader, raw: dict[str, Any], loc: YamlPath, name: str
           ) -> str | dict[str, Any] | None:
    if ("input" in raw) == ("input_file" in raw):
        r.problem(loc, f"{name}: give exactly one of input or input_file")
        return None
    if "input" in raw:
        value = raw["input"]
        if isinstance(value, dict):
            return value
        return str(value).strip("\n").replace("\r\n", "\r").replace("\n", "\r") + "\r"
    file = r.path.parent / str(raw["input_file"])
    try:
        data = file.read_bytes()
    except OSError as exc:
        r.problem((*loc, "input_file"), f"{name}: cannot read {raw['input_file']}: "
                  f"{exc.strerror or exc}")
        return None
    if file.suffix.lower() in (".yaml", ".yml", ".json"):
        loaded = load_file(file)
        if loaded.problems or not isinstance(loaded.data, dict):
            r.problem((*loc, "input_file"), f"{name}: {raw['input_file']} must hold a record "
                      "(a mapping)")
            return None
        record: dict[str, Any] = loaded.data
        return record
    text = decode_message(data).text
    return text.replace("\r\n", "\r").replace("\n", "\r")
