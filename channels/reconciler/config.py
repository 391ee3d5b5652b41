"""Configuration model of the reconciler (``type: pacs_reconciler``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from channels.pacs.find import PACSFindConfig
from engine.config.models import SourceCommon


class ScheduleConfig(BaseModel):
    """The windowed pass: the studies of the last ``days`` days, every ``every_s`` seconds."""

    model_config = ConfigDict(extra="forbid")
    every_s: float = Field(900.0, ge=0)
    """Seconds between windowed passes (0: no schedule, CLI and MPPS only)."""
    days: int = Field(3, ge=0)
    """Window: today minus this many days up to today. Keep it above the rules'
    ``order_without_study_days`` so that check sees old enough orders."""
    at_start_s: float = Field(10.0, ge=0)
    """First pass this long after start-up (0: at once)."""


class OnMPPSConfig(BaseModel):
    """Check a study when its MPPS says the procedure ended."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    delay_s: float = Field(300.0, ge=0)
    """Wait this long after COMPLETED / DISCONTINUED so the images can arrive."""
    poll_s: float = Field(5.0, gt=0)
    """How often ended MPPS instances are looked for (they are read from the store)."""


class ReconcilerConfig(SourceCommon):
    """Reconciles RIS orders (the worklist) with PACS studies (study-level C-FIND) and
    flags every mismatch; a destination with a ``mapping:`` gets an HL7 notification of
    each new, re-opened or changed one."""

    type: Literal["pacs_reconciler"]
    pacs: PACSFindConfig
    rules: str = "mappings/reconcile.yml"
    """The reconciliation rules (relative to channels.yaml)."""
    schedule: ScheduleConfig = ScheduleConfig()
    on_mpps: OnMPPSConfig = OnMPPSConfig()
    retry_s: float = Field(60.0, gt=0)
    """After a failed pass (PACS unreachable), try again this soon."""
    notify: list[Literal["new", "reopened", "changed"]] = ["new", "reopened"]
    """Which flagged mismatches go to the channel's destinations (events get all three)."""

    def check_files(self, base: Path) -> list[tuple[str, str]]:
        """(field, problem) for ``radbridge validate``: the rules file must load."""
        from transforms.reconcile.rules import ReconcileRulesError, load_rules

        path = base / self.rules
        if not path.is_file():
            return [("rules", f"rules file {self.rules!r} does not exist")]
        try:
            load_rules(path)
        except ReconcileRulesError as exc:
            return [("rules", str(exc))]
        return []
