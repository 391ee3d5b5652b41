"""Run mapping tests (``foo.test.yaml`` beside ``foo.yaml``) and report field-by-field diffs.

``run_tests(paths)`` discovers and runs every case and returns a ``TestReport``;
``main(argv)`` is ``radbridge test``: it prints failures as ::

    FAIL mappings/order_to_worklist.test.yaml:12 v2.3.1 NW order with ZDS
      mappings/order_to_worklist.test.yaml:17:7: PatientName: expected "DOE", got "Doe"

and exits 1 when any case fails or any test file or mapping cannot be loaded.  Mappings
are compiled once per (file, params) and count lookup misses in a private registry, so
tests never pollute the engine's miss counters.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from engine.config.problems import ConfigProblem, sort_problems
from transforms.errors import MappingError
from transforms.expect import FieldDiff, compare
from transforms.load import load_mapping
from transforms.mapping import Mapping
from transforms.misses import LookupMissRegistry
from transforms.testcases import MappingTestCase, discover, read_cases

__all__ = ["CaseResult", "TestReport", "collect_cases", "main", "run_case", "run_tests"]


@dataclass
class CaseResult:
    case: MappingTestCase
    diffs: list[FieldDiff] = field(default_factory=list)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.diffs and not self.error

    def format(self) -> str:
        head = f"{'PASS' if self.passed else 'FAIL'} {self.case.file}:{self.case.line} " \
               f"{self.case.name}"
        lines = [head]
        if self.error:
            lines.append(f"  {self.error}")
        lines.extend(f"  {d}" for d in self.diffs)
        return "\n".join(lines)


@dataclass
class TestReport:
    results: list[CaseResult] = field(default_factory=list)
    problems: list[ConfigProblem] = field(default_factory=list)
    files: int = 0

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not any(p.is_error for p in self.problems)

    def format(self, verbose: bool = False) -> str:
        out = [str(p) for p in sort_problems(self.problems)]
        out += [r.format() for r in self.results if verbose or not r.passed]
        summary = f"{self.passed} passed, {self.failed} failed in {self.files} test file" \
                  f"{'' if self.files == 1 else 's'}"
        if self.problems:
            summary += f", {len(self.problems)} problem{'' if len(self.problems) == 1 else 's'}"
        out.append(summary)
        return "\n".join(out)


class _Mappings:
    """Compiled mappings by (path, params); load problems are remembered, not repeated."""

    def __init__(self) -> None:
        self.misses = LookupMissRegistry()
        self.cache: dict[tuple[Path, str], Mapping | MappingError] = {}

    def get(self, path: Path, params: dict[str, Any]) -> Mapping | MappingError:
        key = (path, repr(sorted(params.items())))
        found = self.cache.get(key)
        if found is None:
            try:
                found = load_mapping(path, params=params, misses=self.misses)
            except MappingError as exc:
                found = exc
            self.cache[key] = found
        return found


def collect_cases(paths: Sequence[Path]) -> tuple[list[MappingTestCase], list[ConfigProblem], int]:
    """Every case under ``paths``, the problems of unreadable test files, and the file count."""
    files = discover([Path(p) for p in paths])
    cases: list[MappingTestCase] = []
    problems: list[ConfigProblem] = []
    for f in files:
        found, bad = read_cases(f)
        cases.extend(found)
        problems.extend(bad)
    return cases, problems, len(files)


def run_case(case: MappingTestCase, mappings: _Mappings | None = None) -> CaseResult:
    """Run one case (loading its mapping) and compare the result with its expectations."""
    mapping = (mappings or _Mappings()).get(case.mapping, case.params)
    if isinstance(mapping, MappingError):
        n = len(mapping.problems)
        return CaseResult(case, error=f"mapping {case.mapping} does not load ({n} problem"
                          f"{'' if n == 1 else 's'}, listed with the summary)")
    if case.input is None:
        return CaseResult(case, error="no usable input")
    if (mapping.input == "record") != isinstance(case.input, dict):
        kind = "a record (a mapping)" if mapping.input == "record" else "HL7 text"
        return CaseResult(case, error=f"mapping {mapping.name} reads {kind}")
    result = mapping.run(case.input)
    return CaseResult(case, compare(case, result))


def run_tests(paths: Sequence[Path], *, stream: TextIO | None = None, verbose: bool = False,
              keyword: str = "") -> TestReport:
    """Discover and run the mapping tests under ``paths``; with ``stream``, print each
    failure (every case with ``verbose``) as it happens.  ``keyword`` keeps only cases
    whose name contains it."""
    cases, problems, files = collect_cases(paths)
    report = TestReport(problems=problems, files=files)
    mappings = _Mappings()
    for case in cases:
        if keyword and keyword.lower() not in case.name.lower():
            continue
        result = run_case(case, mappings)
        report.results.append(result)
        if stream is not None and (verbose or not result.passed):
            print(result.format(), file=stream)
    for entry in mappings.cache.values():
        if isinstance(entry, MappingError):
            for p in entry.problems:
                if p not in report.problems:
                    report.problems.append(p)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``radbridge test [PATH ...] [-v] [-k NAME]``; 0 when every case passes."""
    ap = argparse.ArgumentParser(prog="radbridge test", description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path, default=[Path("mappings")],
                    help="mapping files, test files or directories (default: mappings)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    ap.add_argument("-k", "--keyword", default="", help="only tests whose name contains this")
    args = ap.parse_args(argv)
    missing = [p for p in args.paths if not p.exists()]
    for p in missing:
        print(f"{p}: no such file or directory", file=sys.stderr)
    report = run_tests(args.paths, stream=sys.stdout, verbose=args.verbose, keyword=args.keyword)
    for p in sort_problems(report.problems):
        print(p)
    print(report.format().splitlines()[-1])
    if not report.results and not report.problems:
        print("no mapping tests found", file=sys.stderr)
        return 1
    return 0 if report.ok and not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
