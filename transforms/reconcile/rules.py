"""Reconciliation rules: the pydantic model of ``mappings/reconcile.yml`` and its loader.

Every knob of the reconciler (pairing order, windows, normalisers, severities, explanation
texts) lives in the YAML; this module only validates it (``extra="forbid"``, every problem
listed at once by pydantic) and precomputes the lookup sets the hot path needs.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import RadBridgeError

Severity = Literal["critical", "high", "medium", "low", "info"]
PairingStep = Literal["study_instance_uid", "accession", "candidates"]

MISMATCH_TYPES = (
    "orphan_study", "order_without_study", "accession_mismatch", "study_uid_mismatch",
    "different_patient", "patient_id_mismatch", "issuer_mismatch", "name_mismatch",
    "birth_date_mismatch", "sex_mismatch", "modality_mismatch", "study_date_mismatch",
    "cancelled_order_images", "unscheduled_mpps", "completeness_mismatch",
    "procedure_code_mismatch", "merged_patient_residue", "study_split", "grouped_study",
    "physician_mismatch", "encoding_defect",
)


class ReconcileRulesError(RadBridgeError, ValueError):
    """The rules file is missing, not YAML, or does not validate."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccessionConfig(_Model):
    use_issuer: bool = True
    """An issuer present on both sides must agree for an accession to pair."""
    case_insensitive: bool = True


class CandidatesConfig(_Model):
    date_window_days: int = Field(1, ge=0)
    """A candidate order is scheduled within this many days of the study date."""
    same_modality: bool = True


class WindowsConfig(_Model):
    study_date_days: int = Field(1, ge=0)
    order_without_study_days: int = Field(2, ge=0)


class OrderStatusesConfig(_Model):
    open: list[str] = ["SCHEDULED", "ARRIVED", "READY", "STARTED"]
    cancelled: list[str] = ["CANCELED", "CANCELLED", "DISCONTINUED"]


class PatientIDConfig(_Model):
    strip_leading_zeros: bool = True
    case_insensitive: bool = True


class IssuerConfig(_Model):
    empty_matches_any: bool = True
    aliases: dict[str, str] = {}


class PatientNameConfig(_Model):
    components: int = Field(3, ge=1, le=5)
    strip_accents: bool = True
    case_insensitive: bool = True
    unknown_chars: str = "?"


class BirthDateConfig(_Model):
    unknown: list[str] = ["19000101"]


class SexConfig(_Model):
    map: dict[str, str] = {}
    empty_matches_any: bool = True


class ModalityConfig(_Model):
    synonyms: list[list[str]] = []
    ignore: list[str] = []

    @cached_property
    def canonical(self) -> dict[str, str]:
        """Modality code -> the first code of its synonym group."""
        out: dict[str, str] = {}
        for group in self.synonyms:
            for code in group:
                out[code.upper()] = group[0].upper()
        return out

    @cached_property
    def ignored(self) -> frozenset[str]:
        return frozenset(c.upper() for c in self.ignore)


class NormaliseConfig(_Model):
    patient_id: PatientIDConfig = PatientIDConfig()
    issuer: IssuerConfig = IssuerConfig()
    patient_name: PatientNameConfig = PatientNameConfig()
    birth_date: BirthDateConfig = BirthDateConfig()
    sex: SexConfig = SexConfig()
    modality: ModalityConfig = ModalityConfig()


class ProcedureCodeConfig(_Model):
    order_sources: list[str] = ["RequestedProcedureCodeSequence"]
    """Where the order's code is, first found wins (``A.B`` is ``A[0].B[0]``)."""
    study_sources: list[str] = ["ProcedureCodeSequence",
                                "RequestAttributesSequence.RequestedProcedureCodeSequence"]
    compare_scheme: bool = True
    """Coding Scheme Designators present on both sides must agree too."""
    case_insensitive: bool = True
    scheme_aliases: dict[str, str] = {}
    """Scheme designator -> the one it compares as (e.g. ``99LOCAL: LOCAL``)."""

    @cached_property
    def canonical_schemes(self) -> dict[str, str]:
        return {k.upper(): v.upper() for k, v in self.scheme_aliases.items()}

    def scheme(self, designator: str) -> str:
        """A Coding Scheme Designator as it compares (upper case, aliases applied)."""
        key = designator.upper()
        return self.canonical_schemes.get(key, key)


class PhysicianConfig(_Model):
    fields: dict[str, str] = {"ReferringPhysicianName": "ReferringPhysicianName",
                              "RequestingPhysician": "RequestingPhysician"}
    """Order keyword -> study keyword; each pair compared when both sides have a name."""


class EncodingConfig(_Model):
    max_length: dict[str, int] = {}
    """Keyword -> VR maximum length: the fields checked for charset damage and truncation
    (a value exactly this long on one side, longer with the same start on the other)."""
    replacement_chars: str = "\ufffd"
    """Characters a decoder puts in place of bytes it could not read."""
    mojibake: bool = True
    """Flag UTF-8 text read as a single-byte charset (``MÃ¼LLER`` for ``MÜLLER``)."""

    @cached_property
    def fields(self) -> tuple[tuple[str, int], ...]:
        """``max_length`` as (keyword, maximum) pairs, for the per-pair loop."""
        return tuple(self.max_length.items())


class TypeConfig(_Model):
    severity: Severity
    explain: str
    enabled: bool = True
    """``false`` turns the check off (nothing of this type is reported)."""


class ReconcileRules(_Model):
    """The whole rules file."""

    version: Literal[1]
    pairing: list[PairingStep] = ["study_instance_uid", "accession", "candidates"]
    accession: AccessionConfig = AccessionConfig()
    candidates: CandidatesConfig = CandidatesConfig()
    windows: WindowsConfig = WindowsConfig()
    order_statuses: OrderStatusesConfig = OrderStatusesConfig()
    normalise: NormaliseConfig = NormaliseConfig()
    procedure_code: ProcedureCodeConfig = ProcedureCodeConfig()
    physician: PhysicianConfig = PhysicianConfig()
    encoding: EncodingConfig = EncodingConfig()
    types: dict[str, TypeConfig]

    @model_validator(mode="after")
    def _every_type_declared(self) -> ReconcileRules:
        unknown = sorted(set(self.types) - set(MISMATCH_TYPES))
        missing = sorted(set(MISMATCH_TYPES) - set(self.types))
        problems = [f"unknown mismatch type {t!r}" for t in unknown]
        problems += [f"mismatch type {t!r} has no entry" for t in missing]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @cached_property
    def open_statuses(self) -> frozenset[str]:
        return frozenset(s.upper() for s in self.order_statuses.open)

    @cached_property
    def cancelled_statuses(self) -> frozenset[str]:
        return frozenset(s.upper() for s in self.order_statuses.cancelled)


def parse_rules(data: object, source: str = "<rules>") -> ReconcileRules:
    """Validate already-parsed YAML; every problem is listed in the error."""
    try:
        return ReconcileRules.model_validate(data)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                 for e in exc.errors()]
        raise ReconcileRulesError(f"{source}: " + "; ".join(lines)) from exc


def load_rules(path: str | Path) -> ReconcileRules:
    """Read and validate a rules file (``mappings/reconcile.yml``)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReconcileRulesError(f"{path}: {exc}") from exc
    return parse_rules(data, str(path))
