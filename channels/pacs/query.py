"""Study-level C-FIND identifiers and answers, sans I/O.

``study_identifier`` asks for the keys reconciliation compares; ``study_record`` turns an
answer into the keyword -> value dict ``transforms.reconcile`` reads (PN as text,
multi-valued as lists, sequences as lists of such dicts, the accession issuer flattened to
``IssuerOfAccessionNumber``).

``SEQUENCE_KEYS`` (procedure code, request attributes) are asked as empty sequences, which
returns whole items. Orthanc answers them at study level from a stored instance (they are
not main DICOM tags: each answer costs a read unless configured as ``ExtraMainDicomTags``,
and ``StorageAccessOnFind: Never`` drops them); a PACS that does not return them only
leaves the procedure-code and grouped-study checks without data.
``date_windows`` splits a long range so that no single answer set grows without bound.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import PersonName

RETURN_KEYS = (
    "StudyInstanceUID", "AccessionNumber", "PatientID", "IssuerOfPatientID", "PatientName",
    "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "ModalitiesInStudy",
    "NumberOfStudyRelatedInstances", "ReferringPhysicianName", "RequestingPhysician",
)
SEQUENCE_KEYS = ("ProcedureCodeSequence", "RequestAttributesSequence")


def date_windows(start: dt.date, end: dt.date, days: int) -> list[tuple[dt.date, dt.date]]:
    """``[start, end]`` cut into inclusive windows of at most ``days`` days."""
    if days < 1:
        raise ValueError("days must be at least 1")
    out: list[tuple[dt.date, dt.date]] = []
    cur = start
    while cur <= end:
        last = min(end, cur + dt.timedelta(days=days - 1))
        out.append((cur, last))
        cur = last + dt.timedelta(days=1)
    return out


def study_identifier(start: dt.date, end: dt.date, *, accession_issuer: bool = False,
                     sequences: bool = True) -> Dataset:
    """A Study Root, STUDY level identifier for studies dated ``start``..``end``
    (``sequences``: also ask for ``SEQUENCE_KEYS``)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for key in RETURN_KEYS:
        setattr(ds, key, "")
    if sequences:
        for key in SEQUENCE_KEYS:
            setattr(ds, key, DicomSequence([]))
    ds.StudyDate = (start.strftime("%Y%m%d") if start == end
                    else f"{start:%Y%m%d}-{end:%Y%m%d}")
    if accession_issuer:
        ds.IssuerOfAccessionNumberSequence = DicomSequence([])
    return ds


def _item(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for elem in ds:
        if elem.keyword:
            value = _value(elem.value)
            out[elem.keyword] = "" if value is None else value
    return out


def _value(value: object) -> Any:
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, DicomSequence):
        return [_item(item) for item in value]
    if isinstance(value, MultiValue):
        return [_value(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return value if isinstance(value, str | int | float) or value is None else str(value)


def study_record(ds: Dataset) -> dict[str, Any]:
    """A C-FIND answer as a plain dict of the returned keys (absent keys omitted)."""
    out: dict[str, Any] = {}
    for key in (*RETURN_KEYS, *SEQUENCE_KEYS):
        if key in ds:
            value = _value(ds[key].value)
            out[key] = "" if value is None else value
    mods = out.get("ModalitiesInStudy")
    if isinstance(mods, str):
        out["ModalitiesInStudy"] = [m for m in mods.split("\\") if m]
    seq = ds.get("IssuerOfAccessionNumberSequence")
    if seq:
        out["IssuerOfAccessionNumber"] = str(seq[0].get("LocalNamespaceEntityID", ""))
    return out
