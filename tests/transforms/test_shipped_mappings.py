"""Every test beside every shipped mapping runs as part of the project's suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from transforms.testcases import MappingTestCase
from transforms.testing import collect_cases, run_case

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
CASES, PROBLEMS, FILES = collect_cases([MAPPINGS])


def test_every_shipped_mapping_has_tests() -> None:
    mappings = {p.stem for p in MAPPINGS.glob("*.yaml") if not p.name.endswith(".test.yaml")}
    tested = {case.mapping.stem for case in CASES}
    assert mappings and mappings == tested


def test_shipped_test_files_load() -> None:
    assert [str(p) for p in PROBLEMS] == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_shipped_mapping_case(case: MappingTestCase) -> None:
    result = run_case(case)
    assert result.passed, result.format()
