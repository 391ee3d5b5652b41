"""Lookup tables: CSV files, YAML files or inline values, loaded once with a mapping.

Declared under ``tables:`` in a mapping (paths relative to the mapping file)::

    tables:
      modality: tables/hl7_0074_to_dicom_modality.csv          # columns from,to
      station: {file: tables/procedure_to_modality_station.csv, key: procedure_code,
                value: station_ae}
      priority: {values: {S: STAT, A: HIGH, R: ROUTINE}}       # inline
      sex: {file: tables/sex_hl7_to_dicom.csv, ignore_case: true}

CSV: the first row names the columns; rows whose first cell starts with ``#`` are
comments.  The key column is ``key:`` (default ``from``, else the first column), the
value column ``value:`` (default ``to``, else the second); a ``lookup`` op may pick
another value column with ``column:``.  YAML: a mapping of key → value, or key →
{column: value}.  Keys and values are trimmed; duplicate keys are errors.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config.loader import load_file
from engine.config.problems import ConfigProblem

__all__ = ["LookupTable", "load_table"]

_SPEC_KEYS = ("file", "values", "key", "value", "ignore_case")


@dataclass
class LookupTable:
    """One loaded table; ``get(key)`` returns the value or ``None`` on a miss."""

    name: str
    source: str
    key_column: str
    value_column: str
    columns: tuple[str, ...]
    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    ignore_case: bool = False

    def _norm(self, key: str) -> str:
        key = key.strip()
        return key.upper() if self.ignore_case else key

    def get(self, key: str, column: str | None = None) -> str | None:
        row = self.rows.get(self._norm(key))
        if row is None:
            return None
        return row.get(column or self.value_column, "")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._norm(key) in self.rows


def load_table(
    name: str, spec: Any, base: Path, where: tuple[str, int, int]
) -> tuple[LookupTable | None, list[ConfigProblem]]:
    """Load the table declared as ``name: spec``; ``where`` is (file, line, col) of the
    declaration, used for problems that are not inside the table file itself."""
    file, line, col = where

    def fail(message: str) -> tuple[None, list[ConfigProblem]]:
        return None, [ConfigProblem(file, line, col, f"table {name!r}: {message}")]

    if isinstance(spec, str):
        spec = {"file": spec}
    if not isinstance(spec, dict):
        return fail("expected a file path or {file: ..., key: ..., value: ...} or {values: {...}}")
    unknown = [k for k in spec if k not in _SPEC_KEYS]
    if unknown:
        from transforms.suggest import did_you_mean

        return fail(f"unknown key {unknown[0]!r}{did_you_mean(unknown[0], _SPEC_KEYS)}")
    if ("file" in spec) == ("values" in spec):
        return fail("give exactly one of 'file' or 'values'")
    key_col, value_col = spec.get("key"), spec.get("value")
    for label, v in (("key", key_col), ("value", value_col)):
        if v is not None and not isinstance(v, str):
            return fail(f"'{label}' must be a column name")
    ignore_case = bool(spec.get("ignore_case", False))
    if "values" in spec:
        if not isinstance(spec["values"], dict):
            return fail("'values' must be a mapping of key → value")
        header, rows, problems = _from_mapping(spec["values"], file, line)
        source = "inline"
    else:
        path = (base / str(spec["file"])).resolve()
        source = str(spec["file"])
        if not path.is_file():
            return fail(f"file {source!r} does not exist (looked for {path})")
        if path.suffix.lower() == ".csv":
            header, rows, problems = _read_csv(path, source)
        elif path.suffix.lower() in (".yaml", ".yml"):
            loaded = load_file(path)
            if loaded.problems:
                return None, list(loaded.problems)
            if not isinstance(loaded.data, dict):
                return fail(f"{source} must hold a mapping of key → value")
            header, rows, problems = _from_mapping(loaded.data, str(path), 1)
        else:
            return fail(f"{source}: tables are .csv, .yaml or .yml files")
    if problems:
        return None, problems
    key = key_col or ("from" if "from" in header else header[0] if header else "from")
    value = value_col or ("to" if "to" in header else header[1] if len(header) > 1 else "to")
    for label, col_name in (("key", key), ("value", value)):
        if col_name not in header:
            return fail(f"{label} column {col_name!r} is not in {source} (columns: "
                        f"{', '.join(header) or 'none'}); name it with '{label}:'")
    table = LookupTable(name, source, key, value, tuple(header), ignore_case=ignore_case)
    for n, row in rows:
        k = table._norm(row.get(key, ""))
        if k in table.rows:
            where_file = file if source == "inline" else str((base / source).resolve())
            return None, [ConfigProblem(where_file, n, 1, f"table {name!r}: duplicate key {k!r}")]
        table.rows[k] = row
    return table, []


Rows = list[tuple[int, dict[str, str]]]


def _read_csv(path: Path, source: str) -> tuple[list[str], Rows, list[ConfigProblem]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [], [ConfigProblem(str(path), 1, 1, f"cannot read table {source}: {exc}")]
    header: list[str] = []
    rows: Rows = []
    reader = csv.reader(io.StringIO(text))
    for raw in reader:
        n = reader.line_num
        if not raw or not any(c.strip() for c in raw) or raw[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in raw]
        if not header:
            header = cells
            if len(set(header)) != len(header) or "" in header:
                return [], [], [ConfigProblem(str(path), n, 1,
                                              "header row has an empty or repeated column name")]
            continue
        if len(cells) > len(header):
            return [], [], [ConfigProblem(str(path), n, 1, f"row has {len(cells)} cells but the "
                                          f"header names {len(header)} columns")]
        rows.append((n, dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True))))
    if not header:
        return [], [], [ConfigProblem(str(path), 1, 1, "table is empty (no header row)")]
    return header, rows, []


def _text(v: Any) -> str:
    return "" if v is None else str(v).strip()


def _from_mapping(data: dict[str, Any], file: str, line: int
                  ) -> tuple[list[str], Rows, list[ConfigProblem]]:
    header = ["from"]
    if any(not isinstance(v, dict) for v in data.values()):
        header.append("to")
    rows: Rows = []
    for k, v in data.items():
        if isinstance(v, dict):
            for col in v:
                if str(col) not in header:
                    header.append(str(col))
            rows.append((line, {"from": _text(k), **{c: _text(x) for c, x in v.items()}}))
        elif isinstance(v, list):
            return [], [], [ConfigProblem(file, line, 1, f"table value for {k!r} is a list; "
                                          "use a text or a mapping of columns")]
        else:
            rows.append((line, {"from": _text(k), "to": _text(v)}))
    return header, rows, []
