"""Pairing studies with orders, in the order the rules give, using dict indexes only.

1. Study Instance UID; 2. accession number (an issuer present on both sides must agree);
3. for studies still alone, candidate orders of the same (normalised) patient ID scheduled
within the candidate window and, optionally, for a modality in the study (a study under a
merged, old patient ID also looks under the surviving ID). Candidates are taken from orders
not already paired in steps 1-2, so one pass is O(orders + studies).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from transforms.reconcile.records import OrderView, StudyView
from transforms.reconcile.rules import ReconcileRules


@dataclass(frozen=True, slots=True)
class Pair:
    """A study with the orders it was paired with, and how (``study_instance_uid``,
    ``accession``, ``candidates``; ``none`` with no order)."""

    study: StudyView
    orders: tuple[OrderView, ...]
    by: str


class OrderIndex:
    """Orders indexed by Study Instance UID, accession and patient ID."""

    def __init__(self, orders: Sequence[OrderView]) -> None:
        self.by_uid: dict[str, list[OrderView]] = defaultdict(list)
        self.by_accession: dict[str, list[OrderView]] = defaultdict(list)
        self.by_patient: dict[str, list[OrderView]] = defaultdict(list)
        for order in orders:
            if order.uid:
                self.by_uid[order.uid].append(order)
            if order.accession:
                self.by_accession[order.accession].append(order)
            if order.pid:
                self.by_patient[order.pid].append(order)

    def candidates(self, study: StudyView, rules: ReconcileRules, taken: set[str],
                   merged: Mapping[str, str] | None = None) -> list[OrderView]:
        """Orders of the study's patient near its date, closest first."""
        window = rules.candidates.date_window_days
        found: list[tuple[int, OrderView]] = []
        orders = self.by_patient.get(study.pid, [])
        survivor = merged.get(study.pid) if merged else None
        if survivor:
            orders = [*orders, *self.by_patient.get(survivor, ())]
        for order in orders:
            if order.ref in taken:
                continue
            if study.date is None or order.date is None:
                continue
            gap = abs(study.date - order.date)
            if gap > window:
                continue
            if (rules.candidates.same_modality and order.modality and study.modalities
                    and order.modality not in study.modalities):
                continue
            found.append((gap, order))
        found.sort(key=lambda g: (g[0], g[1].ref))
        return [o for _, o in found]


def _issuer_ok(order: OrderView, study: StudyView, rules: ReconcileRules) -> bool:
    if not rules.accession.use_issuer:
        return True
    a, b = order.accession_issuer, study.accession_issuer
    return not a or not b or a == b


def pair(studies: Sequence[StudyView], index: OrderIndex, rules: ReconcileRules,
         merged: Mapping[str, str] | None = None) -> tuple[list[Pair], set[str]]:
    """Every study with its pairing, and the refs of every order paired (``merged``: old
    normalised patient ID -> surviving one, for the candidate search)."""
    pairs: list[Pair | None] = [None] * len(studies)
    taken: set[str] = set()
    for i, study in enumerate(studies):
        for step in rules.pairing:
            found: list[OrderView] = []
            if step == "study_instance_uid" and study.uid:
                found = index.by_uid.get(study.uid, [])
            elif step == "accession" and study.accession:
                found = [o for o in index.by_accession.get(study.accession, ())
                         if _issuer_ok(o, study, rules)]
            if found:
                pairs[i] = Pair(study, tuple(found), step)
                taken.update(o.ref for o in found)
                break
    use_candidates = "candidates" in rules.pairing
    alone = sorted((i for i, p in enumerate(pairs) if p is None),
                   key=lambda i: (studies[i].date or 0, studies[i].ref))  # input order free
    for i in alone:
        study = studies[i]
        cands = index.candidates(study, rules, taken, merged) if use_candidates else []
        if cands:
            pairs[i] = Pair(study, (cands[0],), "candidates")
            taken.add(cands[0].ref)
        else:
            pairs[i] = Pair(study, (), "none")
    return [p for p in pairs if p is not None], taken
