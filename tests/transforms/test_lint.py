"""Lint: every problem at once, HL7 paths against the version, DICOM keywords, targets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from transforms.lint import lint_mapping, lint_paths, main

REPO = Path(__file__).resolve().parents[2]


def lint(path: Path, **kwargs: object) -> list[str]:
    return [f"{p.line}:{p.col}: {'warning: ' if not p.is_error else ''}{p.message}"
            for p in lint_mapping(path, **kwargs)]  # type: ignore[arg-type]


def test_shipped_mappings_lint_clean() -> None:
    assert [str(p) for p in lint_paths([REPO / "mappings"])] == []


@pytest.mark.parametrize("version", ["2.3.1", "2.5.1"])
def test_order_mapping_paths_exist_in_each_declared_version_or_are_fallbacks(version: str) -> None:
    problems = lint_mapping(REPO / "mappings" / "order_to_worklist.yaml", version)
    # in one version alone, the other version's fields (TQ1 / IPC, ORC-28) may be unknown
    assert all("does not exist in HL7" in p.message or "no component" in p.message
               for p in problems if p.is_error), problems


def test_hl7_paths_checked_against_the_version(write: Callable[..., Path]) -> None:
    path = write("""\
        mapping: m
        input: hl7
        output: record
        hl7_versions: ["2.3.1"]
        steps:
          - set: X
            from: [OBR-18, OBR-47, PID-5.9, ZDS-1.1, IPC-1.1]
            when: 'present(OBR-50)'
        """)
    assert lint(path) == [
        "1:1: warning: no tests: add m.test.yaml beside the mapping",
        "7:20: step 1 (set X): OBR-47 does not exist in HL7 v2.3.1",   # ZDS / IPC: unknown,
        "7:28: step 1 (set X): PID-5 has no component 9 in HL7 v2.3.1",  # so not checked
        "8:20: step 1 (set X): OBR-50 does not exist in HL7 v2.3.1",
    ]
    # v2.5.1 has OBR-47, OBR-50 and a 14-component XPN: the version given wins
    assert lint(path, hl7_version="2.5.1") == [
        "1:1: warning: no tests: add m.test.yaml beside the mapping"]


def test_dicom_keywords_targets_and_unused_things(write: Callable[..., Path]) -> None:
    path = write("""\
        mapping: other_name
        input: hl7
        output: record
        record_keywords: dicom
        tables:
          unused: {values: {A: B}}
        steps:
          - set: PatientsName
            from: PID-5
          - set: PatientName
            from: PID-5
          - set: PatientName
            from: PID-6
          - set: PatientID[0].X
            from: PID-3
          - set: _order.control
            from: ORC-1
          - set: _order
            from: ORC-1
          - let: nothing
            from: PID-3
          - filter: always
          - route: [ehr, archiv]
        """)
    found = lint(path, destinations=["ehr", "archive"])
    for expected in [
        "1:1: warning: no tests: add m.test.yaml beside the mapping",
        "1:10: warning: mapping 'other_name' is in a file named 'm'; keep them the same so "
        "tests and channels find it",
        "6:3: warning: table 'unused' is never used",
        "8:10: warning: step 1 (set PatientsName): 'PatientsName' is not a DICOM keyword (did "
        "you mean 'PatientName'?)",
        "12:10: warning: step 3 (set PatientName): PatientName is already set by step 2 (set "
        "PatientName) (line 10); the later value wins whenever it is not empty",
        "14:10: warning: step 4 (set PatientID[0].X): PatientID is not a sequence, so "
        "PatientID[0] cannot be indexed",
        "18:10: step 6 (set _order): _order is written as a value here and as a container by "
        "step 5 (set _order.control)",
        "20:10: warning: step 7 (let nothing): $nothing is never used",
        "23:5: warning: step 9 (route ehr, archiv): never runs (an earlier filter or reject "
        "always stops the message)",
        "23:18: route to unknown destination 'archiv' (did you mean 'archive'?)",
    ]:
        assert expected in found, found


def test_conditional_duplicate_targets_are_fine(write: Callable[..., Path]) -> None:
    path = write("""\
        mapping: m
        input: hl7
        output: record
        steps:
          - set: X
            from: PID-3
          - set: X
            from: PID-4
            when: empty(PID-3)
        """)
    assert not any("already set" in p for p in lint(path))


def test_lint_reports_load_problems_too(write: Callable[..., Path]) -> None:
    path = write("mapping: m\ninput: hl7\noutput: record\nsteps:\n  - set: X\n    ops: [uper]\n")
    found = lint(path)
    assert "5:5: step 1 (set X): needs a source: 'from' (field paths, first non-empty wins), " \
        "'value' or 'concat'" in found
    assert "6:11: step 1 (set X): unknown op 'uper' (did you mean 'upper'?)" in found


def test_main_exit_codes(write: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    good = write("mapping: m\ninput: hl7\noutput: record\nsteps:\n  - set: X\n    from: PID-3\n")
    assert main([str(good)]) == 0
    bad = write("mapping: b\ninput: hl7\noutput: record\nsteps:\n  - sett: X\n", "b.yaml")
    assert main([str(bad)]) == 1
    assert "unknown step kind 'sett'" in capsys.readouterr().out


def test_hl7_output_paths_are_not_checked_when_no_version_is_declared(
    write: Callable[..., Path],
) -> None:
    path = write("""\
        mapping: m
        input: hl7
        output: hl7
        template: |
          MSH|^~\\&|A|B|C|D|||ORM^O01||P|2.3.1
        steps:
          - set: OBR-4.2
            from: OBR-4.2
        """)
    assert lint(path) == ["1:1: warning: no tests: add m.test.yaml beside the mapping"]
