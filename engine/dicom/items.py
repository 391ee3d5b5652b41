"""Convert between pydicom Datasets and *items*: JSON-able dicts keyed by DICOM keyword.

Items are how the engine stores DICOM attribute sets (the worklist keeps one per scheduled
procedure step): a text value is a string, a multi-valued one a list of strings, a number
stays a number, a sequence is a list of items. Elements without a keyword (private tags),
binary values and group 0x0002 are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})


def _plain(vr: str, value: Any) -> Any:
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return int(value)
    if vr in ("FL", "FD"):
        return float(value)
    return str(value)  # text VRs, IS and DS keep their string form


def item_from_dataset(ds: Dataset) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for elem in ds:
        keyword = elem.keyword
        if not keyword or elem.tag.group == 0x0002 or elem.VR in _BINARY:
            continue
        if elem.VR == "SQ":
            item[keyword] = [item_from_dataset(sub) for sub in elem.value]
        elif elem.value is None or elem.value == "":
            item[keyword] = ""
        elif isinstance(elem.value, MultiValue | list):
            item[keyword] = [_plain(elem.VR, v) for v in elem.value]
        else:
            item[keyword] = _plain(elem.VR, elem.value)
    return item


def dataset_from_item(item: Mapping[str, Any]) -> Dataset:
    ds = Dataset()
    for keyword, value in item.items():
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            setattr(ds, keyword, [dataset_from_item(sub) for sub in value])
        else:
            setattr(ds, keyword, value)
    return ds
