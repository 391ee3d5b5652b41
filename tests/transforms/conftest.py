"""Helpers for the transform tests: write a mapping into a temporary directory and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from transforms import LookupMissRegistry, Mapping, load_mapping

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "fixtures" / "samples"

ORM = (SAMPLES / "orm_o01_nw_v231.hl7").read_bytes().decode("latin-1").replace("\n", "\r")
OMI = (SAMPLES / "omi_o23_nw_v251.hl7").read_bytes().decode("latin-1").replace("\n", "\r")


def hl7(text: str) -> str:
    """Dedented HL7 text with CR segment separators."""
    return textwrap.dedent(text).strip("\n").replace("\n", "\r") + "\r"


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write(yaml_text, name="m.yaml")`` → the path of the written (dedented) file."""
    def _write(text: str, name: str = "m.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def mapping(write: Callable[..., Path]) -> Callable[..., Mapping]:
    """``mapping(yaml_text, **params)`` → a loaded mapping counting misses privately."""
    def _load(text: str, **params: object) -> Mapping:
        return load_mapping(write(text), params=params or None, misses=LookupMissRegistry())

    return _load
