"""hl7apy-backed reference data: field_exists, known_versions, validate_structure."""

from __future__ import annotations

import pytest

from engine.hl7.reference import field_exists, known_versions, validate_structure

from .conftest import fixture_bytes, fixture_text


def test_known_versions_are_sorted() -> None:
    versions = known_versions()
    assert versions[0] == "2.1"
    assert versions[-1] == "2.8.2"
    assert "2.3.1" in versions
    assert "2.5.1" in versions


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("2.5", "OBR", 18), True),
        (("2.5", "OBR", 50), False),
        (("2.5", "OBR", 0), False),
        (("2.5", "OBR", 4, 2), True),
        (("2.5", "OBR", 4, 7), False),
        (("2.5", "OBR", 18, 1), True),
        (("2.5", "OBR", 18, 2), False),
        (("2.5.1", "IPC", 9), True),
        (("2.3.1", "IPC", 1), None),
        (("9.9", "OBR", 1), None),
        (("2.5", "ZDS", 1), None),
        (("2.5", "OBX", 5, 2), None),
        (("2.3.1", "PID", 3, 4), True),
    ],
)
def test_field_exists(args: tuple[str, str, int], expected: bool | None) -> None:
    assert field_exists(*args) is expected


def test_validate_structure_valid_message() -> None:
    assert validate_structure(fixture_text("omi_o23_nw_v251.hl7")) == []


def test_validate_structure_reports_problems_without_raising() -> None:
    problems = validate_structure(fixture_text("omi_o23_nw_v251.hl7").replace("PID|1|", "PID|X|"))
    assert problems
    assert any("SI" in p for p in problems)


def test_validate_structure_malformed_inputs() -> None:
    assert validate_structure(fixture_text("malformed_no_msh.hl7")) == [
        "message does not start with MSH"
    ]
    assert validate_structure(fixture_text("malformed_truncated_msh.hl7"))[0].startswith(
        "MSH-9 message type is missing"
    )
    assert validate_structure(fixture_bytes("binary_junk.bin").decode("latin-1")) == [
        "message does not start with MSH"
    ]
    assert "not supported by hl7apy" in validate_structure(fixture_text("unknown_version.hl7"))[0]
