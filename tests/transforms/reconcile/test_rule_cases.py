"""Runs every case of mappings/reconcile_tests/reconcile.cases.yaml; the runner can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from transforms.reconcile import MISMATCH_TYPES
from transforms.reconcile.testcases import load_cases, run_case, run_rule_tests
from transforms.testing import collect_cases

REPO = Path(__file__).resolve().parents[3]
CASES = REPO / "mappings" / "reconcile_tests" / "reconcile.cases.yaml"
RULES, DEFAULTS, TESTS = load_cases(CASES)


@pytest.mark.parametrize("case", TESTS, ids=[str(c["name"]) for c in TESTS])
def test_rule_case_passes(case: dict[str, object]) -> None:
    result = run_case(case, DEFAULTS, RULES)
    assert result.ok, result.problems


def test_every_mismatch_type_has_a_case() -> None:
    covered = set()
    for case in TESTS:
        for exp in case.get("expect") or []:
            covered.add(exp["type"] if isinstance(exp, dict) else exp)
    assert covered == set(MISMATCH_TYPES)


def test_runner_reports_a_wrong_expectation() -> None:
    case = {"name": "wrong", "study": {"PatientSex": "M"}, "expect": ["name_mismatch"]}
    result = run_case(case, DEFAULTS, RULES)
    assert not result.ok
    assert "sex_mismatch" in result.problems[0]


def test_runner_reports_a_wrong_severity() -> None:
    case = {"name": "wrong", "study": {"PatientSex": "M"},
            "expect": [{"type": "sex_mismatch", "severity": "critical"}]}
    assert run_case(case, DEFAULTS, RULES).problems == [
        "sex_mismatch: severity low, expected critical"]


def test_run_rule_tests_returns_one_result_per_case() -> None:
    assert len(run_rule_tests(CASES)) == len(TESTS)


def test_transform_test_tooling_does_not_take_the_rules_for_a_mapping() -> None:
    cases, problems, _ = collect_cases([REPO / "mappings"])
    assert not [c for c in cases if c.mapping.stem == "reconcile"]
    assert not [p for p in problems if "reconcile" in str(p)]
