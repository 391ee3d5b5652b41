"""Rule tests beside the rules: ``mappings/reconcile_tests/reconcile.cases.yaml``.

The file names the rules (``rules:``, relative to itself), ``defaults`` (a base ``order``,
``study`` and ``today``) and ``tests``: each case gives ``order``/``orders``,
``study``/``studies`` (merged over the defaults; ``null`` for none), optional ``mpps`` and
``merged`` (patient merges: old ID -> surviving ID) and ``expect`` - the exact list of
mismatch types found, each optionally with ``severity`` and ``explains`` (a substring of
the explanation). ``run_rule_tests`` returns one result per case; the pytest hook in
``tests/transforms/reconcile`` parametrises over them, and ``radbridge test`` runs every
``*.cases.yaml`` under ``mappings/`` after the mapping tests (``run_case_files``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from transforms.reconcile.core import reconcile
from transforms.reconcile.rules import ReconcileRules, ReconcileRulesError, load_rules


@dataclass
class CaseResult:
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def merge(base: Any, over: Any) -> Any:
    """``over`` merged into ``base``: dicts key by key, lists of dicts item by item."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if (isinstance(base, list) and isinstance(over, list) and base and over
            and all(isinstance(x, Mapping) for x in (*base, *over))):
        return [merge(base[i], v) if i < len(base) else v for i, v in enumerate(over)]
    return over


def _side(case: Mapping[str, Any], defaults: Mapping[str, Any], one: str, many: str
          ) -> list[dict[str, Any]]:
    if many in case:
        return [merge(defaults.get(one, {}), x) for x in case[many] or []]
    value = case.get(one, {})
    return [] if value is None else [merge(defaults.get(one, {}), value)]


def run_case(case: Mapping[str, Any], defaults: Mapping[str, Any], rules: ReconcileRules
             ) -> CaseResult:
    result = CaseResult(str(case.get("name", "?")))
    found = reconcile(
        _side(case, defaults, "order", "orders"), _side(case, defaults, "study", "studies"),
        rules, mpps=case.get("mpps") or [], today=case.get("today", defaults.get("today")),
        merged=case.get("merged"),
    )
    want = [e if isinstance(e, Mapping) else {"type": e} for e in case.get("expect") or []]
    got_types = sorted(m.type for m in found)
    if got_types != sorted(str(e["type"]) for e in want):
        result.problems.append(f"expected {sorted(e['type'] for e in want)}, got {got_types}: "
                               + " | ".join(m.explanation for m in found))
        return result
    for exp in want:
        m = next(m for m in found if m.type == exp["type"])
        if "severity" in exp and m.severity != exp["severity"]:
            result.problems.append(f"{m.type}: severity {m.severity}, expected {exp['severity']}")
        if "explains" in exp and str(exp["explains"]) not in m.explanation:
            result.problems.append(f"{m.type}: explanation {m.explanation!r} lacks "
                                   f"{exp['explains']!r}")
    return result


def load_cases(path: str | Path) -> tuple[ReconcileRules, dict[str, Any], list[dict[str, Any]]]:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReconcileRulesError(f"{path}: {exc}") from exc
    rules = load_rules(path.parent / str(doc.get("rules", "../reconcile.yml")))
    return rules, dict(doc.get("defaults") or {}), list(doc.get("tests") or [])


def run_rule_tests(path: str | Path) -> list[CaseResult]:
    rules, defaults, cases = load_cases(path)
    return [run_case(c, defaults, rules) for c in cases]


def find_case_files(paths: Sequence[Path]) -> list[Path]:
    """Every ``*.cases.yaml`` among ``paths`` (files, or directories searched recursively)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(p.rglob("*.cases.yaml"))
        elif p.name.endswith(".cases.yaml"):
            found.append(p)
    return found


def run_case_files(files: Sequence[Path], stream: TextIO, *, verbose: bool = False,
                   keyword: str = "") -> tuple[int, int]:
    """Run the rule cases of ``files`` (``radbridge test``): print a line per failing case
    (every case with ``verbose``); return (passed, failed). A file that cannot be loaded
    counts as one failure."""
    passed = failed = 0
    for path in files:
        try:
            rules, defaults, cases = load_cases(path)
        except ReconcileRulesError as exc:
            print(f"FAIL {path}: {exc}", file=stream)
            failed += 1
            continue
        for case in cases:
            name = str(case.get("name", "?"))
            if keyword and keyword not in name:
                continue
            result = run_case(case, defaults, rules)
            if result.ok:
                passed += 1
                if verbose:
                    print(f"PASS {path} {name}", file=stream)
                continue
            failed += 1
            print(f"FAIL {path} {name}", file=stream)
            for problem in result.problems:
                print(f"  {problem}", file=stream)
    return passed, failed
