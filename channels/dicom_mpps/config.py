"""Settings of the MPPS service (the ``mpps:`` section of a ``dicom_mwl_scp`` source)."""

from __future__ import annotations

from pydantic import Field

from engine.config.models import Strict

TYPE1_N_CREATE = [
    "PerformedProcedureStepStatus", "ScheduledStepAttributesSequence",
    "PerformedProcedureStepID", "PerformedStationAETitle", "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime", "Modality",
]
"""Type 1 attributes of an MPPS N-CREATE (PS3.4 Table F.7.2-1)."""


class MPPSConfig(Strict):
    """Modality Performed Procedure Step SCP (N-CREATE / N-SET) on the worklist's AE."""

    enabled: bool = True
    required_attributes: list[str] = Field(default_factory=lambda: list(TYPE1_N_CREATE))
    """An N-CREATE without one of these is refused (0x0120; present but empty: 0x0121)."""
    timeout_s: float = Field(10.0, gt=0)
    """An MPPS not stored within this long is answered 0x0110 (processing failure)."""
    send_in_progress: bool = True
    """Send the HL7 status for IN PROGRESS (N-CREATE), not only COMPLETED / DISCONTINUED."""
    link_by_accession: bool = True
    """When (Study Instance UID, SPS ID) finds no worklist step, try the accession number."""
