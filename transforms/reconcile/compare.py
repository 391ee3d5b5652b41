"""Field-by-field comparison of a paired study and order, on normalised values.

Identity first: a different patient ID with different demographics on a study paired by
UID or accession is the critical ``different_patient`` (and the demographic comparisons
are skipped: they would only repeat it); a different ID with agreeing demographics is a
``patient_id_mismatch``; same ID under another issuer an ``issuer_mismatch``.
"""

from __future__ import annotations

from collections.abc import Iterator

from transforms.reconcile import normalise as n
from transforms.reconcile.mismatch import Mismatch, make, short_uid
from transforms.reconcile.pairing import Pair
from transforms.reconcile.records import OrderView, StudyView
from transforms.reconcile.rules import ReconcileRules


def _when(gap: int) -> str:
    return "on the same day" if gap == 0 else f"{gap} day(s) apart"


def _identity(o: OrderView, s: StudyView, p: Pair, rules: ReconcileRules
              ) -> Iterator[Mismatch | None]:
    cfg = rules.normalise
    base = {"order_ref": o.ref, "study_ref": s.ref, "order_accession": o.accession_raw,
            "study_accession": s.accession_raw, "study_uid": s.uid, "order_uid": o.uid}
    if p.by == "study_instance_uid" and o.accession != s.accession:
        yield make(rules, "accession_mismatch", order_value=o.accession_raw,
                   study_value=s.accession_raw,
                   reason=f"differs from its order's {o.accession_raw or '(empty)'} "
                          "(same Study Instance UID)", **base)
    if p.by == "accession" and o.uid and s.uid and o.uid != s.uid:
        yield make(rules, "study_uid_mismatch", order_value=o.uid, study_value=s.uid, **base)
    if p.by == "candidates":
        gap = abs((s.date or 0) - (o.date or 0))
        yield make(rules, "accession_mismatch", order_value=o.accession_raw,
                   study_value=s.accession_raw,
                   reason=f"has no order; closest order {o.accession_raw} for the same "
                          f"patient {_when(gap)}", **base)
    if o.pid and s.pid and o.pid != s.pid:
        name_diff = bool(o.name and s.name and n.names_differ(o.name, s.name, cfg))
        birth_diff = bool(o.birth and s.birth and o.birth != s.birth)
        if name_diff or birth_diff:
            by_acc = p.by == "accession"
            yield make(rules, "different_patient", order_value=o.pid_raw, study_value=s.pid_raw,
                       paired_by="accession" if by_acc else "study",
                       paired_value=s.accession_raw if by_acc else short_uid(s.uid), **base)
            return
        yield make(rules, "patient_id_mismatch", order_value=o.pid_raw, study_value=s.pid_raw,
                   **base)
    elif n.issuers_differ(o.issuer, s.issuer, cfg):
        yield make(rules, "issuer_mismatch", order_value=o.issuer, study_value=s.issuer, **base)
    yield from _demographics(o, s, rules, base)


def _demographics(o: OrderView, s: StudyView, rules: ReconcileRules, base: dict[str, str]
                  ) -> Iterator[Mismatch | None]:
    cfg = rules.normalise
    if o.name and s.name:
        fields = n.names_differ(o.name, s.name, cfg)
        if fields:
            yield make(rules, "name_mismatch", order_value="^".join(o.name),
                       study_value="^".join(s.name), fields=", ".join(fields), **base)
    if o.birth and s.birth and o.birth != s.birth:
        yield make(rules, "birth_date_mismatch", order_value=o.birth, study_value=s.birth,
                   **base)
    if o.sex != s.sex and not (cfg.sex.empty_matches_any and (not o.sex or not s.sex)):
        yield make(rules, "sex_mismatch", order_value=o.sex, study_value=s.sex, **base)


def _procedure(o: OrderView, s: StudyView, rules: ReconcileRules) -> Iterator[Mismatch | None]:
    base = {"order_ref": o.ref, "study_ref": s.ref, "order_accession": o.accession_raw,
            "study_accession": s.accession_raw, "study_uid": s.uid}
    if o.modality and s.modalities and o.modality not in s.modalities:
        yield make(rules, "modality_mismatch", order_value=o.modality,
                   study_value="\\".join(sorted(s.modalities)), **base)
    if o.date is not None and s.date is not None:
        gap = s.date - o.date
        if abs(gap) > rules.windows.study_date_days:
            yield make(rules, "study_date_mismatch", order_value=n.date_text(o.date),
                       study_value=n.date_text(s.date), days=gap, **base)
    if o.status in rules.cancelled_statuses:
        yield make(rules, "cancelled_order_images", order_value=o.status, study_value="",
                   **base)


def compare(p: Pair, rules: ReconcileRules) -> Iterator[Mismatch]:
    """The mismatches of one pair (an orphan study when it has no order)."""
    s = p.study
    if not p.orders:
        m = make(rules, "orphan_study", order_ref=None, study_ref=s.ref,
                 study_value=s.accession_raw, study_uid=s.uid,
                 study_accession=s.accession_raw or "(empty)")
        if m is not None:
            yield m
        return
    for o in p.orders:
        for m2 in (*_identity(o, s, p, rules), *_procedure(o, s, rules)):
            if m2 is not None:
                yield m2
