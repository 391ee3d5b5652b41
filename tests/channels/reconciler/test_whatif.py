"""``radbridge reconcile --what-if CANDIDATE.yml``: the running rules and a candidate on the
same stored data; nothing queried, nothing written."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.store import reconcile as rstore
from engine.store import worklist
from engine.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[3]


def order(n: int, sex: str = "F") -> dict[str, Any]:
    return {"PatientName": f"TEST^P{n}", "PatientID": f"P{n}", "PatientSex": sex,
            "PatientBirthDate": "19800101", "AccessionNumber": f"A{n}",
            "StudyInstanceUID": f"2.25.{n}",
            "ScheduledProcedureStepSequence": [{
                "ScheduledProcedureStepID": f"S{n}", "Modality": "CT",
                "ScheduledProcedureStepStartDate": "20240110"}]}


def study(n: int, sex: str = "F", accession: str | None = None) -> dict[str, Any]:
    o = order(n, sex)
    return {k: o[k] for k in ("PatientName", "PatientID", "PatientSex", "PatientBirthDate",
                              "StudyInstanceUID")} | {
        "AccessionNumber": accession or o["AccessionNumber"], "StudyDate": "20240110",
        "ModalitiesInStudy": ["CT"]}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "mappings" / "reconcile.yml", tmp_path / "reconcile.yml")
    (tmp_path / "channels.yaml").write_text(
        "engine:\n  data_dir: ./data\nchannels: {}\n")
    (tmp_path / "data").mkdir()

    async def fill() -> None:
        db = SQLiteStore(tmp_path / "data" / "radbridge.db")
        await db.open()

        def write(conn: Any) -> None:
            # 1 agrees; 2: HL7 sex U vs DICOM O (equal under the shipped sex map);
            # 3: sex F vs M; 4: a typo'd accession at the modality (same UID)
            for o in (order(1), order(2, "U"), order(3), order(4)):
                worklist.upsert_step(conn, o, now=1.0)
            rstore.replace_studies(conn, [study(1), study(2, "O"), study(3, "M"),
                                          study(4, accession="A4X")], "PACS", 1.0)

        await db.write_tx(write)
        await db.aclose()

    asyncio.run(fill())
    return tmp_path


def test_what_if_reports_what_a_rules_change_would_add_drop_and_regrade(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = site / "candidate.yml"
    text = (site / "reconcile.yml").read_text()
    assert "map: {U: O, A: O, N: O, X: O}" in text
    text = text.replace("map: {U: O, A: O, N: O, X: O}", "map: {}")  # U no longer O
    text = text.replace("  sex_mismatch:\n    severity: low", "  sex_mismatch:\n    severity: high")
    text = text.replace("  accession_mismatch:\n    severity: high",
                        "  accession_mismatch:\n    severity: high\n    enabled: false")
    candidate.write_text(text)
    rc = main(["-c", str(site / "channels.yaml"), "reconcile", "--rules", "reconcile.yml",
               "--what-if", str(candidate)])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[1] == ("would add 1, no longer report 1, change the severity of 1;"
                        " 0 unchanged"), out
    assert "  + sex_mismatch: 1" in lines and "  - accession_mismatch: 1" in lines
    assert any(line.startswith("  ~ sex_mismatch: low -> high: accession A3") for line in lines)
    assert any(line.startswith("  + sex_mismatch [high]: accession A2") for line in lines)
    # nothing was written: no mismatch rows
    async def count() -> int:
        db = SQLiteStore(site / "data" / "radbridge.db")
        await db.open()
        try:
            return int(await db.read_tx(
                lambda c: c.execute("SELECT COUNT(*) FROM mismatches").fetchone()[0]))
        finally:
            await db.aclose()

    assert asyncio.run(count()) == 0
