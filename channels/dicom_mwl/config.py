"""Configuration model of the Modality Worklist SCP (``type: dicom_mwl_scp``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from engine.config.models import SourceCommon

AETitle = Annotated[
    str, Field(max_length=16, pattern=r"^ *[\x21-\x5b\x5d-\x7e][\x20-\x5b\x5d-\x7e]*$")
]
"""1 to 16 printable ASCII characters, no backslash, not only spaces."""
SPSStatus = Literal[
    "SCHEDULED", "ARRIVED", "READY", "STARTED", "DEPARTED", "CANCELED", "DISCONTINUED",
    "COMPLETED",
]


class MWLSCPConfig(SourceCommon):
    """DICOM Modality Worklist SCP (C-FIND, Modality Worklist Information Model - FIND) and
    Verification (C-ECHO), answered from the engine's worklist table."""

    type: Literal["dicom_mwl_scp"]
    host: str = "0.0.0.0"
    port: int = Field(11112, ge=0, le=65535)
    ae_title: AETitle = "RADBRIDGE"
    max_associations: int = Field(50, ge=1)
    """Simultaneous associations; beyond this a request is rejected (transient)."""
    allowed_calling_aes: list[AETitle] = []
    """Calling AE titles allowed to associate; empty: any."""
    require_called_ae: bool = False
    """Reject associations whose Called AE Title is not ``ae_title``."""
    station_coercion: bool = False
    """A query without a Scheduled Station AE Title is restricted to the calling AE title
    (for modalities that do not send their own)."""
    query_timeout_s: float = Field(10.0, gt=0)
    """A worklist query not answered within this long gets a failure status (0xC001)."""
    max_responses: int = Field(1000, ge=1)
    """A query matching more steps is refused (0xA700) so the modality narrows it."""
    hidden_statuses: list[SPSStatus] = [
        "STARTED", "DEPARTED", "CANCELED", "DISCONTINUED", "COMPLETED",
    ]
    """Steps in these states are left out unless the query matches on SPS Status."""
    network_timeout_s: float = Field(60.0, gt=0)
    """An idle association is closed after this long."""
    acse_timeout_s: float = Field(30.0, gt=0)
    dimse_timeout_s: float = Field(30.0, gt=0)
