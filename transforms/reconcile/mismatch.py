"""The result type of reconciliation, and how one is built from the rules.

A ``Mismatch`` carries its type, the severity the rules give that type, a stable ``key``
(type + study ref + order ref, plus the field for per-field types: the store
de-duplicates on it across runs), both sides'
references, the differing values, free-form ``details`` and a human explanation rendered
from the rules' template. Templates only get identifiers of orders and studies (accession,
shortened UIDs) and the differing values the type names; never a patient name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transforms.reconcile.rules import ReconcileRules


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One discrepancy between an order and a PACS study (or an MPPS)."""

    type: str
    severity: str
    key: str
    order_ref: str | None
    study_ref: str | None
    order_value: str
    study_value: str
    explanation: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type, "severity": self.severity, "key": self.key,
            "order_ref": self.order_ref, "study_ref": self.study_ref,
            "order_value": self.order_value, "study_value": self.study_value,
            "explanation": self.explanation, "details": dict(self.details),
        }


def short_uid(uid: str) -> str:
    """The tail of a UID, enough to find it, short enough to read."""
    return uid if len(uid) <= 16 else "…" + uid[-12:]


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def make(rules: ReconcileRules, kind: str, *, order_ref: str | None, study_ref: str | None,
         order_value: object = "", study_value: object = "", key_part: str = "",
         **details: Any) -> Mismatch | None:
    """Build a mismatch of ``kind`` (``None`` when the rules disable it). ``key_part``
    (a field keyword) keeps one mismatch per field of a pair apart in the key."""
    spec = rules.types[kind]
    if not spec.enabled:
        return None
    fields = _Blank(details)
    fields.update(order_value=order_value, study_value=study_value)
    for name in ("study_uid", "order_uid", "mpps_uid"):
        if name in details:
            fields[f"{name}_short"] = short_uid(str(details[name]))
    return Mismatch(
        type=kind, severity=spec.severity,
        key=f"{kind}|{study_ref or ''}|{order_ref or ''}" + (f"|{key_part}" if key_part else ""),
        order_ref=order_ref, study_ref=study_ref,
        order_value=str(order_value), study_value=str(study_value),
        explanation=spec.explain.format_map(fields),
        details=details,
    )
