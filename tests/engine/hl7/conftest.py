"""Shared helpers for the HL7 core tests: synthetic fixtures from tests/fixtures/hl7."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_text(name: str, sep: str = "\r") -> str:
    """A fixture decoded as latin-1 (lossless) with its LF line endings turned into ``sep``."""
    return fixture_bytes(name).decode("latin-1").replace("\n", sep)


@pytest.fixture
def orm() -> str:
    return fixture_text("orm_o01_nw_v231.hl7")


@pytest.fixture
def omi() -> str:
    return fixture_text("omi_o23_nw_v251.hl7")
