"""Split and grouped studies (catalogue #15), decided on the whole pass, deterministically.

- ``study_split``: one accession (with its issuer, when the rules pair on issuers) spread
  over several Study Instance UIDs in PACS; one mismatch per accession, its study ref the
  lowest of those UIDs (a real study, so a partial pass that sees it can resolve it; the
  key stays while that part does), every UID in ``study_uids``.
- ``grouped_study``: one study standing for several requested procedures: the orders paired
  with it by UID carry several accessions, or its Request Attributes Sequence lists several.
  Orders whose accession a study lists are *covered*: not orders without a study.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from transforms.reconcile.mismatch import Mismatch, make
from transforms.reconcile.pairing import OrderIndex, Pair
from transforms.reconcile.records import OrderView, StudyView
from transforms.reconcile.rules import ReconcileRules

SplitKey = tuple[str, str]  # (normalised accession, accession issuer or "")


def split_groups(studies: Sequence[StudyView], rules: ReconcileRules
                 ) -> dict[SplitKey, tuple[str, ...]]:
    """Accessions held by more than one Study Instance UID -> those UIDs, sorted."""
    first: dict[SplitKey, str] = {}
    more: dict[SplitKey, set[str]] = {}
    use_issuer = rules.accession.use_issuer
    for s in studies:
        if s.accession and s.uid:
            key = (s.accession, s.accession_issuer if use_issuer else "")
            uid = first.setdefault(key, s.uid)
            if uid != s.uid:
                more.setdefault(key, {uid}).add(s.uid)
    return {k: tuple(sorted(v)) for k, v in more.items()}


def split_siblings(groups: Mapping[SplitKey, tuple[str, ...]]) -> dict[str, frozenset[str]]:
    """Study UID -> every UID of its split group (itself included)."""
    out: dict[str, frozenset[str]] = {}
    for uids in groups.values():
        group = frozenset(uids)
        for uid in uids:
            out[uid] = out.get(uid, frozenset()) | group
    return out


def split_mismatches(groups: Mapping[SplitKey, tuple[str, ...]], index: OrderIndex,
                     rules: ReconcileRules) -> Iterator[Mismatch | None]:
    for (acc, issuer), uids in sorted(groups.items()):
        orders = sorted((o for o in index.by_accession.get(acc, ())
                         if not issuer or not o.accession_issuer or o.accession_issuer == issuer),
                        key=lambda o: o.ref)
        first: OrderView | None = orders[0] if orders else None
        yield make(rules, "study_split", order_ref=first.ref if first else None,
                   study_ref=uids[0],
                   order_value=first.uid if first else "", study_value="\\".join(uids),
                   study_accession=acc, accession_issuer=issuer, count=len(uids),
                   study_uids=list(uids), order_uid=first.uid if first else "")


def covered_orders(studies: Sequence[StudyView], index: OrderIndex) -> set[str]:
    """Refs of orders whose accession some study's Request Attributes Sequence lists."""
    out: set[str] = set()
    for s in studies:
        for acc in s.request_accessions:
            out.update(o.ref for o in index.by_accession.get(acc, ()))
    return out


def accession_grouped(o: OrderView, s: StudyView, order_accessions: frozenset[str]) -> bool:
    """An order paired by UID whose accession differs from the study's belongs to a group:
    the study lists its accession, or the study's accession is another grouped order's."""
    return o.accession in s.request_accessions or (
        len(order_accessions) > 1 and s.accession in order_accessions)


def grouped(p: Pair, order_accessions: frozenset[str], rules: ReconcileRules
            ) -> Mismatch | None:
    """``grouped_study`` for a paired study standing for several requested procedures."""
    s = p.study
    if not p.orders or (len(order_accessions) < 2 and not s.request_accessions):
        return None
    study_accs = set(s.request_accessions)
    if s.accession:
        study_accs.add(s.accession)
    if len(order_accessions) < 2 and len(study_accs) < 2:
        return None
    every = order_accessions | study_accs
    return make(rules, "grouped_study", order_ref=min(o.ref for o in p.orders), study_ref=s.ref,
                order_value="\\".join(sorted(order_accessions)),
                study_value="\\".join(sorted(study_accs)), count=len(every),
                study_uid=s.uid, study_accession=s.accession_raw or "(empty)")
