"""``radbridge test`` also runs the reconciliation rule cases (``*.cases.yaml``) so an
analyst who edits ``mappings/reconcile.yml`` sees a broken rule before it goes live."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    (tmp_path / "channels.yaml").write_text("engine:\n  data_dir: ./data\nchannels: {}\n")
    return tmp_path


def test_shipped_rule_cases_pass_with_the_mapping_tests(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(ROOT / "channels.yaml"), "test"]) == 0
    out = capsys.readouterr().out
    assert "reconciliation rule cases passed, 0 failed in 1 file(s)" in out


def test_a_rule_change_that_breaks_a_case_fails_with_the_case_named(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = site / "mappings" / "reconcile.yml"
    text = rules.read_text()
    # an analyst turns the sex map off: U in HL7 no longer equals O in DICOM
    assert "map: {U: O, A: O, N: O, X: O}" in text
    rules.write_text(text.replace("map: {U: O, A: O, N: O, X: O}", "map: {}"))
    cases = site / "mappings" / "reconcile_tests" / "reconcile.cases.yaml"
    assert main(["-c", str(site / "channels.yaml"), "test", str(cases)]) == 1
    out = capsys.readouterr().out
    assert "FAIL " in out and "sex_mismatch" in out
    assert "0 reconciliation rule cases passed" not in out  # the others still pass


def test_a_reload_is_refused_while_a_rule_case_fails(site: Path) -> None:
    from engine.cli import _rule_case_failures

    assert _rule_case_failures(site / "mappings") == []
    rules = site / "mappings" / "reconcile.yml"
    rules.write_text(rules.read_text().replace("map: {U: O, A: O, N: O, X: O}", "map: {}"))
    problems = _rule_case_failures(site / "mappings")
    assert problems[-1].startswith("reconciliation rule cases failed: ")
    assert any(p.startswith("FAIL ") for p in problems)
