"""``radbridge mismatches export``: CSV and HTML reports of stored mismatches, run through the
CLI's ``main()`` against a real SQLite store filled by the reconciliation store API."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import stat
import time
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

import pytest

from engine.cli import main
from engine.reconcile_report import COLUMNS, SEVERITIES, to_csv, to_html
from engine.store import reconcile as rstore
from engine.store.sqlite import SQLiteStore
from transforms.reconcile.mismatch import Mismatch
from transforms.reconcile.rules import Severity

NOW = time.time()
SCRIPT = "<script>alert('x')</script>"


def mismatch(kind: str, severity: str, n: int, order_value: str, study_value: str
             ) -> Mismatch:
    """Built directly (not through ``make`` and the shipped rules) so these tests do not
    depend on the rule set of the day; the fields are the ones ``make`` fills."""
    return Mismatch(type=kind, severity=severity, key=f"{kind}|2.25.{n}|2.25.{n}/S{n}",
                    order_ref=f"2.25.{n}/S{n}", study_ref=f"2.25.{n}",
                    order_value=order_value, study_value=study_value,
                    explanation=f"accession A{n}: {kind.replace('_', ' ')}",
                    details={"order_accession": f"A{n}"})


SEX = mismatch("sex_mismatch", "low", 1, "F", '=HYPERLINK("http://evil.example/x","y")')
PATIENT = mismatch("different_patient", "critical", 2, SCRIPT, "Müller^Jürgen")
MODALITY = mismatch("modality_mismatch", "low", 3, "+CT", "MR")
ORPHAN = mismatch("orphan_study", "high", 4, "", "")
DATE = mismatch("study_date_mismatch", "low", 5, "20261120", "20261125")


async def fill(db_path: Path) -> None:
    """Pass 1 three days ago finds all five; ORPHAN is then ignored by a person; pass 2 an
    hour ago finds SEX, PATIENT, MODALITY (DATE is auto-resolved); SEX is acknowledged."""
    db = SQLiteStore(db_path)
    await db.open()
    try:
        await db.write_tx(lambda c: rstore.upsert_mismatches(
            c, [SEX, PATIENT, MODALITY, ORPHAN, DATE], NOW - 3 * 86400))
        ids = {r["type"]: r["id"] for r in await db.read_tx(
            lambda c: rstore.list_mismatches(c, status=None))}
        await db.write_tx(lambda c: rstore.set_status(
            c, ids["orphan_study"], "ignored", "pacs.admin", "test study", NOW - 2 * 86400))
        await db.write_tx(lambda c: rstore.upsert_mismatches(
            c, [SEX, PATIENT, MODALITY], NOW - 3600))
        await db.write_tx(lambda c: rstore.set_status(
            c, ids["sex_mismatch"], "acknowledged", "@qc", "-checked by phone", NOW - 60))
    finally:
        await db.aclose()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "channels.yaml").write_text("engine:\n  data_dir: ./data\nchannels: {}\n")
    (tmp_path / "data").mkdir()
    asyncio.run(fill(tmp_path / "data" / "radbridge.db"))
    return tmp_path


def export(site: Path, *args: str) -> int:
    return main(["-c", str(site / "channels.yaml"), "mismatches", "export", *args])


def csv_rows(site: Path, *filters: str) -> list[dict[str, str]]:
    out = site / "report.csv"
    assert export(site, "--format", "csv", *filters, "-o", str(out)) == 0
    return list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))


def test_csv_has_a_header_and_one_row_per_open_mismatch_critical_first(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = site / "report.csv"
    assert export(site, "--format", "csv", "-o", str(out)) == 0
    with out.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == COLUMNS
    assert [(r["type"], r["severity"], r["status"]) for r in rows] == [
        ("different_patient", "critical", "open"), ("modality_mismatch", "low", "open")]
    patient = rows[0]
    assert (patient["order_ref"], patient["study_ref"]) == ("2.25.2/S2", "2.25.2")
    assert (patient["order_value"], patient["study_value"]) == (SCRIPT, "Müller^Jürgen")
    assert patient["explanation"] == PATIENT.explanation
    assert patient["last_seen"].endswith("Z")
    assert datetime.fromisoformat(patient["last_seen"]).timestamp() == pytest.approx(
        NOW - 3600, abs=1)
    assert datetime.fromisoformat(patient["first_seen"]).timestamp() == pytest.approx(
        NOW - 3 * 86400, abs=1)
    assert capsys.readouterr().err == f"wrote 2 mismatches to {out}\n"


@pytest.mark.parametrize(("filters", "types"), [
    (("--status", "all"), {"sex_mismatch", "different_patient", "modality_mismatch",
                           "orphan_study", "study_date_mismatch"}),
    (("--status", "all", "--since", "24h"),
     {"sex_mismatch", "different_patient", "modality_mismatch"}),
    (("--status", "resolved"), {"study_date_mismatch"}),
    (("--status", "ignored"), {"orphan_study"}),
    (("--status", "acknowledged"), {"sex_mismatch"}),
    (("--status", "all", "--severity", "low"),
     {"sex_mismatch", "modality_mismatch", "study_date_mismatch"}),
    (("--status", "all", "--severity", "low", "--since", "1d"),
     {"sex_mismatch", "modality_mismatch"}),
    (("--status", "all", "--type", "orphan_study"), {"orphan_study"}),
    (("--type", "orphan_study"), set()),
])
def test_filters_select_by_status_type_severity_and_last_seen(
        site: Path, filters: tuple[str, ...], types: set[str]) -> None:
    rows = csv_rows(site, *filters)
    assert {r["type"] for r in rows} == types
    assert len(rows) == len(types)


def test_decisions_are_exported_with_who_why_and_when(site: Path) -> None:
    by_type = {r["type"]: r for r in csv_rows(site, "--status", "all")}
    ignored, resolved = by_type["orphan_study"], by_type["study_date_mismatch"]
    assert (ignored["status"], ignored["who"], ignored["why"]) == (
        "ignored", "pacs.admin", "test study")
    assert datetime.fromisoformat(ignored["status_at"]).timestamp() == pytest.approx(
        NOW - 2 * 86400, abs=1)
    assert (resolved["who"], resolved["why"]) == ("reconciler", "no longer found")
    assert by_type["modality_mismatch"]["status_at"] == ""


def test_csv_cells_that_would_run_as_a_formula_are_prefixed(site: Path) -> None:
    by_type = {r["type"]: r for r in csv_rows(site, "--status", "all")}
    sex, modality = by_type["sex_mismatch"], by_type["modality_mismatch"]
    assert sex["study_value"] == "'" + SEX.study_value
    assert (sex["who"], sex["why"]) == ("'@qc", "'-checked by phone")
    assert modality["order_value"] == "'+CT"
    assert sex["order_value"] == "F"      # only cells that start a formula are touched


def test_csv_prefixes_tab_and_carriage_return_starts_too() -> None:
    text = to_csv([{"id": "1", "who": "\t=1+1", "why": "\r=2", "explanation": "a = b"}])
    row = next(csv.DictReader(io.StringIO(text, newline="")))
    assert (row["who"], row["why"], row["explanation"]) == ("'\t=1+1", "'\r=2", "a = b")


def test_html_report_escapes_every_value_and_loads_nothing_from_outside(site: Path) -> None:
    out = site / "report.html"
    assert export(site, "--format", "html", "--status", "all", "-o", str(out)) == 0
    page = out.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "Müller^Jürgen" in page
    assert "=HYPERLINK(&quot;http://evil.example/x&quot;" in page   # text, not a link
    assert not re.search(r"\b(src|href|action)\s*=", page, re.IGNORECASE)
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page


def test_html_report_has_title_filters_summary_and_critical_first(site: Path) -> None:
    out = site / "report.html"
    assert export(site, "--format", "html", "--status", "all", "--since", "7d",
                  "-o", str(out)) == 0
    page = out.read_text(encoding="utf-8")
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    assert title is not None
    assert "generated 20" in title.group(1)
    assert "status=all, type=any, severity=any, last seen since 20" in title.group(1)
    summary = page[page.index('<div class="summary">'):page.index("</div>")]
    assert '<td>low</td><td class="n">3</td>' in summary
    assert '<td>critical</td><td class="n">1</td>' in summary
    assert '<td>resolved</td><td class="n">1</td>' in summary
    assert '<td>orphan_study</td><td class="n">1</td>' in summary
    sections = re.findall(r'<section class="sev-(\w+)">', page)
    assert sections == ["critical", "high", "low"]
    assert "@media print" in page


def test_html_says_so_when_nothing_matches() -> None:
    page = to_html([], generated_at=NOW, filters="status=open")
    assert "No mismatches match these filters." in page
    assert "<section" not in page


def test_report_file_is_private_even_over_an_existing_file(site: Path) -> None:
    out = site / "report.html"
    out.write_text("old")
    out.chmod(0o644)
    old_umask = os.umask(0)
    try:
        assert export(site, "--format", "html", "-o", str(out)) == 0
        assert export(site, "--format", "csv", "-o", str(site / "new.csv")) == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE((site / "new.csv").stat().st_mode) == 0o600
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_stdout_gets_the_report_and_stderr_one_line_without_values(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export(site, "--format", "csv", "--status", "all", "-o", "-") == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out, newline="")))
    assert len(rows) == 5
    assert captured.err == "wrote 5 mismatches to stdout\n"
    for value in ("Müller", "script", "HYPERLINK", "A2", "2.25."):
        assert value not in captured.err


def test_unwritable_destination_fails_without_values_or_leftovers(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = site / "no-such-dir" / "r.csv"
    assert export(site, "--format", "csv", "-o", str(missing)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"radbridge mismatches export: cannot write {missing}: ")
    assert "Müller" not in err
    assert not list(site.glob(".r.csv.*"))


def test_unknown_severity_is_a_usage_error(site: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert export(site, "--format", "csv", "--severity", "urgent", "-o", "-") == 2
    assert "--severity must be one of critical, high, medium, low, info" in (
        capsys.readouterr().err)


def test_severity_order_matches_the_rules_model() -> None:
    assert get_args(Severity) == SEVERITIES


def test_rows_render_the_same_through_the_pure_functions() -> None:
    row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
    row.update(id="7", type="sex_mismatch", severity="low", order_value="&")
    assert "<td>&amp;</td>" in to_html([row], generated_at=NOW, filters="x")
    assert to_csv([row]).splitlines()[1].startswith("7,sex_mismatch,low,")
