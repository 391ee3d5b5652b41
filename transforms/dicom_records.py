"""Records ↔ pydicom datasets, so DICOM services can feed and consume mappings.

A record is keyword → value: text for single values (PN as ``FAMILY^GIVEN``, numbers as
their DICOM text), a list of texts for multi-valued attributes, a list of records for a
sequence.  Keys starting with ``_`` are the mapping's own (``_order``) and never become
DICOM attributes; unknown keywords are refused rather than guessed.
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR, keyword_dict
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

__all__ = ["dataset_from_record", "record_from_dataset", "split_sequence"]


def split_sequence(record: dict[str, Any], key: str = "ScheduledProcedureStepSequence"
                   ) -> list[dict[str, Any]]:
    """One record per item of the sequence ``key``, each holding that single item and
    every other DICOM key of ``record`` (``_``-prefixed keys dropped): the worklist's one
    row per scheduled procedure step.  No items: no records."""
    shared = {k: v for k, v in record.items() if k != key and not k.startswith("_")}
    items = record.get(key)
    if not isinstance(items, list):
        return []
    return [{**shared, key: [item]} for item in items if isinstance(item, dict)]


def record_from_dataset(ds: Dataset) -> dict[str, Any]:
    """A record of every element of ``ds`` that has a keyword (private tags are skipped)."""
    record: dict[str, Any] = {}
    for elem in ds:
        if not elem.keyword:
            continue
        value = elem.value
        if elem.VR == "SQ":
            record[elem.keyword] = [record_from_dataset(item) for item in value or []]
        elif isinstance(value, MultiValue | list):
            record[elem.keyword] = [_text(v) for v in value]
        else:
            record[elem.keyword] = _text(value)
    return record


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def dataset_from_record(record: dict[str, Any]) -> Dataset:
    """A dataset from a record; raises ``KeyError`` for a key that is not a DICOM keyword
    and ``TypeError`` for a value of the wrong shape (a list of records for a non-sequence)."""
    ds = Dataset()
    for key, value in record.items():
        if key.startswith("_"):
            continue
        if key not in keyword_dict:
            raise KeyError(f"{key!r} is not a DICOM keyword")
        vr = dictionary_VR(keyword_dict[key])
        if vr == "SQ":
            if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
                raise TypeError(f"{key} is a sequence: its value must be a list of records")
            setattr(ds, key, Sequence([dataset_from_record(item) for item in value]))
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            raise TypeError(f"{key} is not a sequence ({vr})")
        else:
            setattr(ds, key, list(value) if isinstance(value, list) else value)
    return ds
