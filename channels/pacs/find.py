"""The C-FIND SCU: one association per pass, one C-FIND per date window, Study Root.

Blocking (pynetdicom); ``afind_studies`` runs it in a worker thread. Failures (no
association, a failure status, a timeout) raise ``PACSQueryError`` naming the peer, never
a patient identifier. Answers are de-duplicated on Study Instance UID.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

from channels.pacs.query import date_windows, study_identifier, study_record
from engine.dicom.scu import tcp_nodelay_handlers
from engine.errors import ChannelError

_PENDING = (0xFF00, 0xFF01)
_ANY_DAY = dt.date(2000, 1, 1)  # placeholder: the key queries clear StudyDate


class PACSQueryError(ChannelError):
    """The PACS could not be queried (association refused, failure status, timeout)."""


class PACSFindConfig(BaseModel):
    """Where and how to query the PACS for reconciliation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str
    port: int = Field(ge=1, le=65535)
    called_ae: str = Field(max_length=16)
    calling_ae: str = Field("RADBRIDGE", max_length=16)
    window_days: int = Field(1, ge=1)
    """Days per C-FIND (keeps each answer set bounded)."""
    timeout: float = Field(30.0, gt=0)
    """ACSE, DIMSE and network timeout, seconds."""
    accession_issuer: bool = False
    """Also ask for Issuer of Accession Number Sequence (not every PACS supports it)."""


def _identifiers_by_date(cfg: PACSFindConfig, start: dt.date, end: dt.date) -> list[Dataset]:
    return [study_identifier(first, last, accession_issuer=cfg.accession_issuer)
            for first, last in date_windows(start, end, cfg.window_days)]


def _identifiers_by_key(cfg: PACSFindConfig, uids: Iterable[str], accessions: Iterable[str]
                        ) -> list[Dataset]:
    out: list[Dataset] = []
    for keyword, values in (("StudyInstanceUID", uids), ("AccessionNumber", accessions)):
        for value in dict.fromkeys(v for v in values if v):
            ident = study_identifier(_ANY_DAY, _ANY_DAY,
                                     accession_issuer=cfg.accession_issuer)
            ident.StudyDate = ""
            setattr(ident, keyword, value)
            out.append(ident)
    return out


def _reachable(cfg: PACSFindConfig, peer: str) -> None:
    """A plain TCP connect first: a clear error, and no socket left open (pynetdicom 3
    leaks the socket of a refused connection: ``shutdown()`` raises before ``close()``)."""
    try:
        socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout).close()
    except OSError as exc:
        raise PACSQueryError(f"cannot connect to {peer}: {exc.strerror or exc}") from exc


def _run_finds(cfg: PACSFindConfig, identifiers: list[Dataset]) -> list[dict[str, Any]]:
    """One association, one C-FIND per identifier; answers de-duplicated on the UID."""
    found: dict[str, dict[str, Any]] = {}
    if not identifiers:
        return []
    ae = AE(ae_title=cfg.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = cfg.timeout
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    peer = f"{cfg.called_ae}@{cfg.host}:{cfg.port}"
    try:
        _reachable(cfg, peer)
        assoc = ae.associate(cfg.host, cfg.port, ae_title=cfg.called_ae,
                             evt_handlers=tcp_nodelay_handlers())
        if not assoc.is_established:
            raise PACSQueryError(f"no association with {peer}")
        try:
            for ident in identifiers:
                for status, answer in assoc.send_c_find(
                        ident, StudyRootQueryRetrieveInformationModelFind):
                    code = getattr(status, "Status", None)
                    if code is None:
                        raise PACSQueryError(
                            f"no C-FIND response from {peer} (timeout or abort)")
                    if code in _PENDING and answer is not None:
                        rec = study_record(answer)
                        found.setdefault(str(rec.get("StudyInstanceUID", "")) or
                                         f"#{len(found)}", rec)
                    elif code != 0x0000 and code not in _PENDING:
                        raise PACSQueryError(f"C-FIND failed at {peer}: status 0x{code:04X}")
        finally:
            assoc.release()
    finally:
        ae.shutdown()
    return list(found.values())


def find_studies(cfg: PACSFindConfig, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """Every study dated ``start``..``end`` as ``channels.pacs.query.study_record`` dicts."""
    return _run_finds(cfg, _identifiers_by_date(cfg, start, end))


def find_by_keys(cfg: PACSFindConfig, *, uids: Iterable[str] = (),
                 accessions: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The studies with one of these Study Instance UIDs or accession numbers (any date):
    what the reconciler asks when an MPPS says a procedure ended."""
    return _run_finds(cfg, _identifiers_by_key(cfg, uids, accessions))


async def afind_studies(cfg: PACSFindConfig, start: dt.date, end: dt.date
                        ) -> list[dict[str, Any]]:
    """``find_studies`` in a worker thread, bounded by the configured timeout per window."""
    windows = len(date_windows(start, end, cfg.window_days))
    async with asyncio.timeout(cfg.timeout * (windows + 2)):
        return await asyncio.to_thread(find_studies, cfg, start, end)


async def afind_by_keys(cfg: PACSFindConfig, *, uids: Iterable[str] = (),
                        accessions: Iterable[str] = ()) -> list[dict[str, Any]]:
    """``find_by_keys`` in a worker thread, bounded by the configured timeout per query."""
    uids, accessions = list(uids), list(accessions)
    async with asyncio.timeout(cfg.timeout * (len(uids) + len(accessions) + 2)):
        return await asyncio.to_thread(find_by_keys, cfg, uids=uids, accessions=accessions)
