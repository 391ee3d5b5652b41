"""``radbridge mismatches export``: the mismatch list as CSV or one self-contained HTML file.

The core is pure: ``export_row`` flattens a stored mismatch into the exported columns,
``to_csv`` and ``to_html`` turn those rows into text. Around it, a thin adapter:
``select_mismatches`` reads the table with the export's filters and ``export`` writes the
file (mode 0600: the values identify patients) and prints one count line to stderr.
Values are never logged or printed anywhere but in the report itself.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import sqlite3
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.store import reconcile as rstore

COLUMNS = ("id", "type", "severity", "status", "first_seen", "last_seen", "order_ref",
           "study_ref", "order_value", "study_value", "explanation", "who", "why", "status_at")
SEVERITIES = ("critical", "high", "medium", "low", "info")   # transforms.reconcile.rules
STATUSES = ("open", "acknowledged", "resolved", "ignored")
# A spreadsheet treats a cell starting with one of these as a formula (OWASP CSV injection;
# tab and CR included because Excel strips them before looking).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which mismatches to export (``None``: any)."""

    status: str | None = "open"
    type: str | None = None
    severity: str | None = None
    since: float | None = None        # last_seen at or after this (epoch seconds)

    def describe(self) -> str:
        since = "any time" if self.since is None else iso_utc(self.since)
        return (f"status={self.status or 'all'}, type={self.type or 'any'}, "
                f"severity={self.severity or 'any'}, last seen since {since}")


# -- pure: rows -> text --------------------------------------------------------------
def iso_utc(ts: float | None) -> str:
    """Epoch seconds as ISO 8601 UTC (``2026-11-22T23:41:32Z``); ``''`` for none."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def export_row(m: Mapping[str, Any]) -> dict[str, str]:
    """A stored mismatch (``list_mismatches`` shape) as the exported columns, all text."""
    details = m.get("details") or {}
    if isinstance(details, str):
        details = json.loads(details)
    row = {name: "" if m.get(name) is None else str(m[name]) for name in COLUMNS}
    row.update(first_seen=iso_utc(m.get("first_seen")), last_seen=iso_utc(m.get("last_seen")),
               status_at=iso_utc(m.get("status_at")),
               order_value=str(details.get("order_value", "")),
               study_value=str(details.get("study_value", "")))
    return row


def _sheet_safe(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def to_csv(rows: Sequence[Mapping[str, str]]) -> str:
    """CSV with a header row; cells a spreadsheet would run as a formula get a leading '."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _sheet_safe(row.get(k, "")) for k in COLUMNS})
    return out.getvalue()


_CSS = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 1.5em; color: #111; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.15em; margin: 1.4em 0 .4em; }
p.meta { color: #444; margin: 0 0 1em; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { border: 1px solid #bbb; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #eee; } td { overflow-wrap: anywhere; }
.summary { display: flex; flex-wrap: wrap; gap: 2em; } .summary td.n { text-align: right; }
.sev-critical h2 { color: #a00; } .sev-high h2 { color: #c50; }
@page { size: landscape; margin: 1cm; }
@media print {
  body { margin: 0; font-size: 9px; } tr { break-inside: avoid; }
  thead { display: table-header-group; } section { break-before: auto; }
}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _severity_rank(sev: str) -> int:
    return SEVERITIES.index(sev) if sev in SEVERITIES else len(SEVERITIES)


def _counts_table(title: str, counts: Counter[str], order: Sequence[str] = ()) -> str:
    keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    body = "".join(f'<tr><td>{_e(k)}</td><td class="n">{counts[k]}</td></tr>' for k in keys)
    return (f"<table><thead><tr><th>{_e(title)}</th><th>count</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def to_html(rows: Sequence[Mapping[str, str]], *, generated_at: float,
            filters: str) -> str:
    """One self-contained page: summary counts, then one table per severity (critical
    first). Every value is escaped; a CSP forbids scripts and any outside resource."""
    title = f"RadBridge mismatches, generated {iso_utc(generated_at)}"
    by_sev = Counter(r.get("severity", "") for r in rows)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
        ' style-src \'unsafe-inline\'">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(title)} ({_e(filters)})</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Filters: {_e(filters)}. {len(rows)} mismatches. '
        "Contains patient-identifying values: handle as PHI.</p>",
        '<div class="summary">',
        _counts_table("severity", by_sev, SEVERITIES),
        _counts_table("status", Counter(r.get("status", "") for r in rows), STATUSES),
        _counts_table("type", Counter(r.get("type", "") for r in rows)),
        "</div>",
    ]
    if not rows:
        parts.append("<p>No mismatches match these filters.</p>")
    head = "".join(f"<th>{_e(c)}</th>" for c in COLUMNS)
    for sev in sorted(by_sev, key=lambda s: (_severity_rank(s), s)):
        body = "".join(
            "<tr>" + "".join(f"<td>{_e(r.get(c, ''))}</td>" for c in COLUMNS) + "</tr>"
            for r in rows if r.get("severity", "") == sev)
        parts.append(f'<section class="sev-{_e(sev)}"><h2>{_e(sev)} ({by_sev[sev]})</h2>'
                     f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                     "</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# -- adapter: the table in, a file out ------------------------------------------------
def select_mismatches(conn: sqlite3.Connection, f: ExportFilter) -> list[dict[str, Any]]:
    """Mismatches matching ``f``, most severe first, then most recently seen."""
    return rstore.list_mismatches(conn, status=f.status, type=f.type, severity=f.severity,
                                  since=f.since, limit=None)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` with mode 0600, atomically (temp file + rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def export(store: Any, args: Any) -> int:
    """The ``mismatches export`` command on an open store; returns the exit code."""
    if args.severity is not None and args.severity not in SEVERITIES:
        print(f"radbridge mismatches export: --severity must be one of "
              f"{', '.join(SEVERITIES)}", file=sys.stderr)
        return 2
    f = ExportFilter(status=None if args.status == "all" else args.status,
                     type=args.type, severity=args.severity, since=args.since)
    stored = await store.read_tx(lambda c: select_mismatches(c, f))
    rows = [export_row(m) for m in stored]
    if args.format == "csv":
        text = to_csv(rows)
    else:
        text = to_html(rows, generated_at=datetime.now(UTC).timestamp(), filters=f.describe())
    if args.output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        where = "stdout"
    else:
        try:
            write_private(Path(args.output), text)
        except OSError as exc:
            print(f"radbridge mismatches export: cannot write {args.output}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 1
        where = args.output
    print(f"wrote {len(rows)} mismatches to {where}", file=sys.stderr)
    return 0
