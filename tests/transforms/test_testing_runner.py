"""The mapping test runner: discovery, field diffs with file:line, exit codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from transforms.testcases import discover
from transforms.testing import main, run_tests

MAPPING = """\
mapping: m
input: hl7
output: record
steps:
  - filter: not an order
    when: 'MSH-9.1 != "ORM"'
  - set: Name
    from: PID-5.1
  - set: Codes
    value: [A, B]
"""
MESSAGE = "      MSH|^~\\&|RIS|H|RB|H|20261122||ORM^O01|X1|P|2.3.1\n      PID|1||P1||Doe^Jo\n"


def test_failures_show_field_diffs_at_the_expectation(write: Callable[..., Path]) -> None:
    write(MAPPING)
    tests = write(
        "tests:\n"
        "  - name: passes\n"
        f"    input: |\n{MESSAGE}"
        "    expect: {Name: Doe, Codes: [A, B], Missing: null}\n"
        "  - name: wrong name\n"
        f"    input: |\n{MESSAGE}"
        "    expect:\n"
        "      Name: DOE\n"
        "      Codes: [A]\n"
        "      Missing: {present: true}\n"
        "  - name: expected a filter\n"
        f"    input: |\n{MESSAGE}"
        "    expect_filter: not an order\n", "m.test.yaml")
    report = run_tests([tests.parent])
    assert (report.passed, report.failed, report.ok) == (1, 2, False)
    failure = report.results[1].format().splitlines()
    assert failure[0] == f"FAIL {tests}:7 wrong name"
    assert failure[1:] == [
        f'  {tests}:12:7: Name: expected "DOE", got "Doe"',
        f'  {tests}:13:7: Codes: expected ["A"], got ["A", "B"]',
        f"  {tests}:14:7: Missing: expected a value, got (absent)",
    ]
    assert report.results[2].format().splitlines()[1] == \
        f"  {tests}:19:5: status: expected filtered, got ok"


def test_discovery_beside_mappings_and_in_tests_folders(write: Callable[..., Path]) -> None:
    write(MAPPING, "maps/a.yaml")
    write("tests: []\n", "maps/a.test.yaml")
    write(MAPPING, "maps/b.yaml")
    write("tests: []\n", "maps/tests/b.yaml")
    write("tests: []\n", "maps/tests/b.extra.yaml")
    write("tests: []\n", "maps/tests/orphan.yaml")   # no ../orphan.yaml: not a mapping test
    root = write(MAPPING, "maps/c.yaml").parent
    found = sorted(p.name for p in discover([root]))
    assert found == ["a.test.yaml", "b.extra.yaml", "b.yaml"]
    assert [p.name for p in discover([root / "b.yaml"])] == ["b.extra.yaml", "b.yaml"]


def test_numbers_compare_as_written_and_assertions(write: Callable[..., Path]) -> None:
    write("mapping: m\ninput: hl7\noutput: record\nsteps:\n  - set: Tz\n    value: '+0100'\n"
          "  - set: N\n    value: '0042'\n")
    tests = write(
        "tests:\n"
        "  - name: numbers\n"
        f"    input: |\n{MESSAGE}"
        "    expect: {Tz: +0100, N: 0042}\n"
        "  - name: assertions\n"
        f"    input: |\n{MESSAGE}"
        "    expect:\n"
        "      Tz: {matches: '^[+-][0-9]{4}$'}\n"
        "      N: {contains: '4'}\n", "m.test.yaml")
    report = run_tests([tests])
    assert report.ok, report.format()


def test_bad_test_files_and_mappings_are_problems(write: Callable[..., Path]) -> None:
    write("mapping: m\ninput: hl7\noutput: record\nsteps:\n  - sett: X\n")
    tests = write("tests:\n  - name: t\n    input: 'MSH|^~\\&|A'\n    expcet: {}\n",
                  "m.test.yaml")
    report = run_tests([tests])
    assert not report.ok
    text = report.format()
    assert f"{tests}:4:5: t: unknown key 'expcet' (did you mean 'expect'?)" in text
    assert "unknown step kind 'sett'" in text
    assert "does not load" in text


def test_main_exit_code_and_summary(write: Callable[..., Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    write(MAPPING)
    tests = write(f"tests:\n  - name: ok\n    input: |\n{MESSAGE}    expect: {{Name: Doe}}\n",
                  "m.test.yaml")
    assert main([str(tests.parent)]) == 0
    assert capsys.readouterr().out.strip() == "1 passed, 0 failed in 1 test file"
    tests.write_text(tests.read_text().replace("Name: Doe", "Name: Roe"))
    assert main([str(tests.parent), "-v"]) == 1
    out = capsys.readouterr().out
    assert 'Name: expected "Roe", got "Doe"' in out
    assert main([str(tests.parent / "nothing-here")]) == 1
