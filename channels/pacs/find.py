"""The C-FIND SCU: one association per pass, one C-FIND per date window, Study Root.

Blocking (pynetdicom); ``afind_studies`` runs it in a worker thread. Failures (no
association, a failure status, a timeout) raise ``PACSQueryError`` naming the peer, never
a patient identifier. Answers are de-duplicated on Study Instance UID.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

from channels.pacs.query import date_windows, study_identifier, study_record
from engine.dicom.scu import tcp_nodelay_handlers
from engine.errors import ChannelError

_PENDING = (0xFF00, 0xFF01)


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


def find_studies(cfg: PACSFindConfig, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """Every study dated ``start``..``end`` as ``channels.pacs.query.study_record`` dicts."""
    ae = AE(ae_title=cfg.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = cfg.timeout
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    peer = f"{cfg.called_ae}@{cfg.host}:{cfg.port}"
    assoc = ae.associate(cfg.host, cfg.port, ae_title=cfg.called_ae,
                         evt_handlers=tcp_nodelay_handlers())
    if not assoc.is_established:
        raise PACSQueryError(f"no association with {peer}")
    found: dict[str, dict[str, Any]] = {}
    try:
        for first, last in date_windows(start, end, cfg.window_days):
            ident = study_identifier(first, last, accession_issuer=cfg.accession_issuer)
            for status, answer in assoc.send_c_find(
                    ident, StudyRootQueryRetrieveInformationModelFind):
                code = getattr(status, "Status", None)
                if code is None:
                    raise PACSQueryError(f"no C-FIND response from {peer} (timeout or abort)")
                if code in _PENDING and answer is not None:
                    rec = study_record(answer)
                    found.setdefault(str(rec.get("StudyInstanceUID", "")) or
                                     f"#{len(found)}", rec)
                elif code != 0x0000 and code not in _PENDING:
                    raise PACSQueryError(f"C-FIND failed at {peer}: status 0x{code:04X}")
    finally:
        assoc.release()
        ae.shutdown()
    return list(found.values())


async def afind_studies(cfg: PACSFindConfig, start: dt.date, end: dt.date
                        ) -> list[dict[str, Any]]:
    """``find_studies`` in a worker thread, bounded by the configured timeout per window."""
    windows = len(date_windows(start, end, cfg.window_days))
    async with asyncio.timeout(cfg.timeout * (windows + 2)):
        return await asyncio.to_thread(find_studies, cfg, start, end)
