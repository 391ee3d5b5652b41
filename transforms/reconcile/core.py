"""``reconcile(orders, studies, rules)``: one full, pure reconciliation pass.

Normalise both sides once, index the orders, find split accessions (``grouping``), pair
every study (``pairing``), compare each pair (``compare``), then the order-side checks (open
orders past the window with no study, unless a grouped study lists their accession) and the
MPPS checks (unscheduled MPPS; fewer instances in PACS than the MPPS reported). Mismatches
come back de-duplicated by key, in a stable order.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from transforms.reconcile import normalise as n
from transforms.reconcile.compare import Context, compare
from transforms.reconcile.grouping import (
    covered_orders,
    split_groups,
    split_mismatches,
    split_siblings,
)
from transforms.reconcile.mismatch import Mismatch, make
from transforms.reconcile.pairing import OrderIndex, pair
from transforms.reconcile.records import mpps_instance_count, order_view, study_view
from transforms.reconcile.rules import ReconcileRules


def _today(today: str | dt.date | None) -> int | None:
    if today is None:
        return None
    if isinstance(today, dt.date):
        return today.toordinal()
    return n.date_ordinal(today)


def _mpps_checks(mpps: Sequence[Mapping[str, Any]], index: OrderIndex,
                 counts_in_pacs: dict[str, int | None], rules: ReconcileRules
                 ) -> Iterable[Mismatch | None]:
    expected: dict[str, int] = defaultdict(int)
    for rec in mpps:
        uid = n.text(rec.get("sop_instance_uid"))
        study_uid = n.text(rec.get("study_instance_uid"))
        if rec.get("unscheduled") and not rec.get("reconciled_at"):
            acc = n.text(rec.get("accession_number"))
            hit = index.by_accession.get(n.accession(acc, rules.accession.case_insensitive))
            closest = f"; accession matches order {hit[0].ref}" if hit else ""
            yield make(rules, "unscheduled_mpps", order_ref=None, study_ref=f"mpps:{uid}",
                       study_value=acc, mpps_uid=uid, study_uid=study_uid,
                       study_accession=acc or "(empty)", closest=closest)
        if n.text(rec.get("status")).upper() == "COMPLETED" and study_uid:
            expected[study_uid] += mpps_instance_count(rec)
    for study_uid, want in sorted(expected.items()):
        have = counts_in_pacs.get(study_uid)
        if have is not None and have < want:
            yield make(rules, "completeness_mismatch", order_ref=None, study_ref=study_uid,
                       order_value=want, study_value=have, study_uid=study_uid)


def resolve_merges(merged: Mapping[str, str] | None, rules: ReconcileRules) -> dict[str, str]:
    """Old -> surviving patient ID, both normalised, chains followed to the last survivor
    (A->B, B->C gives A->C); an ID in a merge cycle is left out (no survivor to remap to)."""
    if not merged:
        return {}
    cfg = rules.normalise
    direct: dict[str, str] = {}
    for old, new in merged.items():
        o, nw = n.patient_id(old, cfg), n.patient_id(new, cfg)
        if o and nw and o != nw:
            direct[o] = nw
    out: dict[str, str] = {}
    for old, first in direct.items():
        seen, last = {old}, first
        while last in direct and last not in seen:
            seen.add(last)
            last = direct[last]
        if last not in seen:
            out[old] = last
    return out


def reconcile(orders: Sequence[Mapping[str, Any]], studies: Sequence[Mapping[str, Any]],
              rules: ReconcileRules, *, mpps: Sequence[Mapping[str, Any]] = (),
              today: str | dt.date | None = None,
              merged: Mapping[str, str] | None = None) -> list[Mismatch]:
    """Every mismatch between ``orders`` (worklist rows or MWL items) and ``studies``
    (study-level C-FIND answers), plus the MPPS checks. ``today`` (``YYYYMMDD``) enables
    the order-without-study check; without it that check is skipped. ``merged`` maps a
    merged (old) patient ID to its surviving ID (``engine.store.reconcile_merges``): a
    study under the old ID paired with the survivor's order is ``merged_patient_residue``."""
    order_views = [order_view(o, rules) for o in orders]
    study_views = [study_view(s, rules) for s in studies]
    index = OrderIndex(order_views)
    merges = resolve_merges(merged, rules)
    splits = split_groups(study_views, rules)
    ctx = Context(merged=merges, split_of=split_siblings(splits))
    pairs, taken = pair(study_views, index, rules, merges)
    found: dict[str, Mismatch] = {}

    def keep(items: Iterable[Mismatch | None]) -> None:
        for m in items:
            if m is not None and m.key not in found:
                found[m.key] = m

    for p in pairs:
        keep(compare(p, rules, ctx))
    keep(split_mismatches(splits, index, rules))
    day = _today(today)
    if day is not None:
        window = rules.windows.order_without_study_days
        taken |= covered_orders(study_views, index)
        for o in order_views:
            if (o.ref not in taken and o.status in rules.open_statuses and o.date is not None
                    and day - o.date > window):
                keep([make(rules, "order_without_study", order_ref=o.ref, study_ref=None,
                           order_value=o.status, order_accession=o.accession_raw,
                           order_date=n.date_text(o.date), window=window,
                           order_uid=o.uid)])
    if mpps:
        counts = {s.uid: s.instances for s in study_views if s.uid}
        keep(_mpps_checks(mpps, index, counts, rules))
    return list(found.values())
