"""Lookup tables (CSV, YAML, inline) and the process-wide miss registry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from transforms.misses import MAX_ENTRIES, LookupMissRegistry, Miss, format_misses
from transforms.tables import LookupTable, load_table

REPO = Path(__file__).resolve().parents[2]
TABLES = REPO / "mappings" / "tables"


def load(spec: object, base: Path) -> tuple[LookupTable | None, list[str]]:
    table, problems = load_table("t", spec, base, ("m.yaml", 3, 5))
    return table, [str(p) for p in problems]


def test_csv_from_to_columns_with_comments(write: Callable[..., Path]) -> None:
    path = write("# a comment\nfrom,to,note\nCT,CT,x\n  RX , CR ,\n\n# SC_IP,STARTED\n", "t.csv")
    table, problems = load(path.name, path.parent)
    assert problems == [] and table is not None
    assert table.get("RX") == "CR" and table.get(" RX ") == "CR"
    assert table.get("SC_IP") is None and "CT" in table and "XX" not in table
    assert table.columns == ("from", "to", "note")


def test_csv_named_key_and_value_columns(write: Callable[..., Path]) -> None:
    path = write("code,modality,station\nCTHEAD,CT,CT1AE\n", "t.csv")
    table, _ = load({"file": path.name, "key": "code", "value": "station"}, path.parent)
    assert table is not None
    assert table.get("CTHEAD") == "CT1AE" and table.get("CTHEAD", "modality") == "CT"


def test_two_column_csv_without_from_to_uses_first_and_second(write: Callable[..., Path]) -> None:
    path = write("a,b\nx,y\n", "t.csv")
    table, _ = load(path.name, path.parent)
    assert table is not None and table.get("x") == "y"


def test_ignore_case(write: Callable[..., Path]) -> None:
    path = write("from,to\nF,F\n", "t.csv")
    table, _ = load({"file": path.name, "ignore_case": True}, path.parent)
    assert table is not None and table.get("f") == "F"


def test_yaml_table_scalar_and_column_rows(write: Callable[..., Path]) -> None:
    path = write("CT: CT\nRX: CR\n", "t.yaml")
    table, _ = load(path.name, path.parent)
    assert table is not None and table.get("RX") == "CR"
    path = write("CTHEAD: {modality: CT, station: CT1AE}\n", "u.yaml")
    table, _ = load({"file": path.name, "value": "station"}, path.parent)
    assert table is not None and table.get("CTHEAD") == "CT1AE"


def test_inline_values(tmp_path: Path) -> None:
    table, _ = load({"values": {"S": "STAT", "R": "ROUTINE"}}, tmp_path)
    assert table is not None and table.get("S") == "STAT" and table.source == "inline"


@pytest.mark.parametrize(("content", "spec", "message"), [
    ("from,to\nA,1\nA,2\n", "t.csv", "t.csv:3:1: table 't': duplicate key 'A'"),
    ("from,to\nA,1,extra\n", "t.csv", "row has 3 cells but the header names 2 columns"),
    ("from,from\n", "t.csv", "empty or repeated column name"),
    ("", "t.csv", "table is empty"),
    ("from,to\n", {"file": "t.csv", "value": "nope"}, "value column 'nope' is not in t.csv"),
    ("from,to\n", {"file": "t.csv", "kye": "from"}, "unknown key 'kye' (did you mean 'key'?)"),
    ("from,to\n", {"file": "t.csv", "values": {}}, "exactly one of 'file' or 'values'"),
    ("from,to\n", "missing.csv", "m.yaml:3:5: table 't': file 'missing.csv' does not exist"),
    ("from,to\n", "t.txt", "tables are .csv, .yaml or .yml files"),
    ("NO: x\n", "t.yaml", "read as bool"),
])
def test_table_problems_are_positioned(write: Callable[..., Path], content: str, spec: object,
                                       message: str) -> None:
    path = write(content, "t.txt" if spec == "t.txt" else "t.yaml" if spec == "t.yaml"
                 else "t.csv")
    table, problems = load(spec, path.parent)
    assert table is None
    assert any(message in p for p in problems), problems


def test_shipped_tables_load() -> None:
    specs = {"hl7_0074_to_dicom_modality.csv": {}, "sex_hl7_to_dicom.csv": {},
             "hl7_charset_to_dicom.csv": {},
             "procedure_to_modality_station.csv": {"key": "procedure_code", "value": "station_ae"},
             "order_status_to_sps_status.csv": {"key": "control_status", "value": "sps_status"}}
    for name, extra in specs.items():
        table, problems = load({"file": name, **extra}, TABLES)
        assert problems == [] and table is not None and table.rows, name


def test_sps_status_table_is_dcm4chee_default() -> None:
    table, _ = load({"file": "order_status_to_sps_status.csv", "key": "control_status",
                     "value": "sps_status"}, TABLES)
    assert table is not None
    assert {k: table.get(k) for k in table.rows} == {
        "NW_SC": "SCHEDULED", "NW_IP": "SCHEDULED", "XO_SC": "SCHEDULED",
        "XO_CM": "COMPLETED", "SC_CM": "COMPLETED", "SC_A": "COMPLETED",
        "CA_CA": "CANCELED", "DC_CA": "DISCONTINUED"}


def test_modality_and_sex_tables_map_the_usual_codes() -> None:
    modality, _ = load("hl7_0074_to_dicom_modality.csv", TABLES)
    sex, _ = load("sex_hl7_to_dicom.csv", TABLES)
    assert modality is not None and sex is not None
    assert [modality.get(c) for c in ("CT", "NMR", "NMS", "RX", "CR", "RUS", "XRC", "MG")] == \
        ["CT", "MR", "NM", "CR", "CR", "US", "XA", "MG"]
    assert modality.get("PT") is None  # HL7 0074 PT is physical therapy
    assert [sex.get(c) for c in "FMOAUN"] == ["F", "M", "O", "O", "", ""]


# ---- miss registry -------------------------------------------------------------------------
def test_misses_count_with_first_and_last_seen() -> None:
    reg = LookupMissRegistry()
    reg.record("m", "modality", "XX", now=100.0)
    reg.record("m", "modality", "XX", now=200.0)
    reg.record("m", "sex", "Q", now=150.0)
    assert reg.misses() == [Miss("m", "modality", "XX", 2, 100.0, 200.0),
                            Miss("m", "sex", "Q", 1, 150.0, 150.0)]


def test_on_miss_callback_is_told_and_can_unsubscribe() -> None:
    reg = LookupMissRegistry()
    seen: list[Miss] = []
    stop = reg.on_miss(seen.append)
    reg.record("m", "t", "A")
    stop()
    reg.record("m", "t", "A")
    assert [m.count for m in seen] == [1]


def test_failing_callback_never_fails_the_lookup() -> None:
    reg = LookupMissRegistry()

    def boom(miss: Miss) -> None:
        raise RuntimeError("observer broke")

    reg.on_miss(boom)
    assert reg.record("m", "t", "A") is not None
    assert reg.callback_errors == 1


def test_restore_merges_persisted_misses() -> None:
    reg = LookupMissRegistry()
    reg.record("m", "t", "A", now=50.0)
    reg.restore([Miss("m", "t", "A", 5, 10.0, 40.0), Miss("m", "t", "B", 1, 1.0, 1.0)])
    assert {m.key: (m.count, m.first_seen, m.last_seen) for m in reg.misses()} == \
        {"A": (6, 10.0, 50.0), "B": (1, 1.0, 1.0)}


def test_registry_is_bounded_and_keys_are_cut() -> None:
    reg = LookupMissRegistry()
    for i in range(MAX_ENTRIES + 5):
        reg.record("m", "t", str(i))
    assert len(reg.misses()) == MAX_ENTRIES and reg.dropped == 5
    reg.clear()
    reg.record("m", "t", "K" * 500)
    assert len(reg.misses()[0].key) == 64


def test_registry_counts_correctly_from_many_threads() -> None:
    reg = LookupMissRegistry()
    threads = [threading.Thread(target=lambda: [reg.record("m", "t", "A") for _ in range(500)])
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reg.misses()[0].count == 4000


def test_format_misses_is_a_markdown_table() -> None:
    assert format_misses([]) == "no lookup misses recorded"
    text = format_misses([Miss("order_to_worklist", "modality", "X|Y", 3, 0.0, 86400.0)])
    assert text.splitlines()[2] == ("| order_to_worklist | modality | X\\|Y | 3 | "
                                    "1970-01-01T00:00:00Z | 1970-01-02T00:00:00Z |")
