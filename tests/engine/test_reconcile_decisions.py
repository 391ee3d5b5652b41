"""Remembered decisions: ``radbridge mismatches ignore ID --remember`` makes later mismatches
of the same type with the same values ignored at once (not flagged, not notified), and
``forget`` stops that. Run through the CLI's ``main()`` against a real SQLite store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.store import reconcile as rstore
from engine.store.sqlite import SQLiteStore
from transforms.reconcile.mismatch import Mismatch


def name_mismatch(n: int, order_value: str = "MUELLER", study_value: str = "MULLER"
                  ) -> Mismatch:
    return Mismatch(type="name_mismatch", severity="medium",
                    key=f"name_mismatch|2.25.{n}|2.25.{n}/S{n}", order_ref=f"2.25.{n}/S{n}",
                    study_ref=f"2.25.{n}", order_value=order_value, study_value=study_value,
                    explanation=f"accession A{n}: patient name differs (family)",
                    details={"order_accession": f"A{n}"})


def run(site: Path, fn: Callable[[Any], Any]) -> Any:
    async def go() -> Any:
        db = SQLiteStore(site / "data" / "radbridge.db")
        await db.open()
        try:
            return await db.write_tx(fn)
        finally:
            await db.aclose()

    return asyncio.run(go())


def cli(site: Path, *args: str) -> int:
    return main(["-c", str(site / "channels.yaml"), "mismatches", *args])


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "channels.yaml").write_text("engine:\n  data_dir: ./data\nchannels: {}\n")
    (tmp_path / "data").mkdir()
    return tmp_path


def statuses(site: Path) -> dict[str, tuple[str, str, str]]:
    rows = run(site, lambda c: rstore.list_mismatches(c, status=None))
    return {r["study_ref"]: (r["status"], r["who"], r["why"]) for r in rows}


def test_a_remembered_ignore_applies_to_later_mismatches_with_the_same_values(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run(site, lambda c: rstore.upsert_mismatches(c, [name_mismatch(1)], 1.0))
    [flag] = first.flagged
    assert cli(site, "ignore", str(flag.id), "--who", "pacs.admin", "--why",
               "transliteration of Ü", "--remember") == 0
    assert "decision 1 remembered" in capsys.readouterr().out
    # a later pass: another study with the same difference, and one with another difference
    later = run(site, lambda c: rstore.upsert_mismatches(
        c, [name_mismatch(1), name_mismatch(2), name_mismatch(3, "SMITH", "SMYTH")], 2.0))
    assert later.new == 2
    assert [f.key for f in later.flagged] == [name_mismatch(3, "SMITH", "SMYTH").key]
    got = statuses(site)
    assert got["2.25.1"] == ("ignored", "pacs.admin", "transliteration of Ü")
    assert got["2.25.2"] == ("ignored", "pacs.admin",
                             "remembered decision 1: transliteration of Ü")
    assert got["2.25.3"] == ("open", "", "")
    assert cli(site, "decisions", "--json") == 0
    [decision] = json.loads(capsys.readouterr().out)
    assert (decision["type"], decision["order_value"], decision["study_value"],
            decision["applied"]) == ("name_mismatch", "MUELLER", "MULLER", 1)
    # forgotten: the next new one with those values is open and flagged again
    assert cli(site, "forget", "1") == 0
    again = run(site, lambda c: rstore.upsert_mismatches(
        c, [name_mismatch(1), name_mismatch(2), name_mismatch(3, "SMITH", "SMYTH"),
            name_mismatch(4)], 3.0))
    assert [f.key for f in again.flagged] == [name_mismatch(4).key]
    assert statuses(site)["2.25.4"] == ("open", "", "")
    assert statuses(site)["2.25.2"][0] == "ignored"  # what it decided stays decided


def test_only_ignore_and_acknowledge_can_be_remembered(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [flag] = run(site, lambda c: rstore.upsert_mismatches(c, [name_mismatch(1)], 1.0)).flagged
    assert cli(site, "resolve", str(flag.id), "--remember") == 2
    assert "can be remembered" in capsys.readouterr().err
    assert statuses(site)["2.25.1"][0] == "open"  # nothing changed
    assert cli(site, "ignore", "999", "--remember") == 1
    assert cli(site, "forget", "7") == 1
    assert cli(site, "show", str(flag.id)) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["key"] == name_mismatch(1).key and shown["details"]["order_value"] == "MUELLER"
    assert cli(site, "show", "999") == 1


def test_list_filters_by_type_severity_status_and_since(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sex = Mismatch(type="sex_mismatch", severity="low", key="sex_mismatch|2.25.9|2.25.9/S9",
                   order_ref="2.25.9/S9", study_ref="2.25.9", order_value="F",
                   study_value="M", explanation="accession A9: sex differs (F vs M)")
    run(site, lambda c: rstore.upsert_mismatches(c, [name_mismatch(1), sex], 1.0))
    run(site, lambda c: rstore.upsert_mismatches(c, [name_mismatch(1)], 1000.0))  # sex resolved

    def listed(*args: str) -> list[str]:
        assert cli(site, "list", "--json", *args) == 0
        return [r["study_ref"] for r in json.loads(capsys.readouterr().out)]

    assert listed() == ["2.25.1"]
    assert listed("--status", "all") == ["2.25.1", "2.25.9"]  # medium before low
    assert listed("--status", "all", "--type", "sex_mismatch") == ["2.25.9"]
    assert listed("--status", "all", "--severity", "medium") == ["2.25.1"]
    assert listed("--status", "resolved") == ["2.25.9"]
    assert listed("--status", "all", "--since", "1970-01-01T00:10:00") == ["2.25.1"]
