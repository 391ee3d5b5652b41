"""Field-by-field comparison of a paired study and order, on normalised values.

Identity first: a study under a merged (old) patient ID whose surviving ID is the order's
(or the reverse) is ``merged_patient_residue``; otherwise a different patient ID with
different demographics on a study paired by UID or accession is the critical
``different_patient`` (and the demographic comparisons are skipped: they would only repeat
it); a different ID with agreeing demographics is a ``patient_id_mismatch``; same ID under
another issuer an ``issuer_mismatch``. Then the procedure (modality, date, status, code),
the physicians and the encoding checks.

A difference something else explains is reported once, as that: a name or physician field
with charset damage or truncation only as ``encoding_defect``; a UID differing within a
split study only as ``study_split``; an accession differing within a grouped study only as
``grouped_study``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from transforms.reconcile import normalise as n
from transforms.reconcile.encoding import Defect, defect
from transforms.reconcile.grouping import accession_grouped, grouped
from transforms.reconcile.mismatch import Mismatch, make, short_uid
from transforms.reconcile.pairing import Pair
from transforms.reconcile.records import OrderView, StudyView, code
from transforms.reconcile.rules import ReconcileRules


@dataclass(frozen=True, slots=True)
class Context:
    """What the whole pass knows beyond one pair."""

    merged: Mapping[str, str] = field(default_factory=dict)
    """Old normalised patient ID -> surviving one (chains resolved)."""
    split_of: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Study UID -> the UIDs of its split group."""


Found = dict[str, tuple[Defect, str, str]]  # keyword -> (defect, order text, study text)


def _when(gap: int) -> str:
    return "on the same day" if gap == 0 else f"{gap} day(s) apart"


def _merge_side(o: OrderView, s: StudyView, ctx: Context) -> str:
    """``study`` (``order``) when that side's patient ID was merged into the other's."""
    if ctx.merged.get(s.pid) == o.pid:
        return "study"
    return "order" if ctx.merged.get(o.pid) == s.pid else ""


def _identity(o: OrderView, s: StudyView, p: Pair, rules: ReconcileRules, ctx: Context,
              group: frozenset[str], damaged: Found) -> Iterator[Mismatch | None]:
    cfg = rules.normalise
    base = {"order_ref": o.ref, "study_ref": s.ref, "order_accession": o.accession_raw,
            "study_accession": s.accession_raw, "study_uid": s.uid, "order_uid": o.uid}
    if (p.by == "study_instance_uid" and o.accession != s.accession
            and not accession_grouped(o, s, group)):
        yield make(rules, "accession_mismatch", order_value=o.accession_raw,
                   study_value=s.accession_raw,
                   reason=f"differs from its order's {o.accession_raw or '(empty)'} "
                          "(same Study Instance UID)", **base)
    if (p.by == "accession" and o.uid and s.uid and o.uid != s.uid
            and o.uid not in ctx.split_of.get(s.uid, ())):
        yield make(rules, "study_uid_mismatch", order_value=o.uid, study_value=s.uid, **base)
    if p.by == "candidates":
        gap = abs((s.date or 0) - (o.date or 0))
        yield make(rules, "accession_mismatch", order_value=o.accession_raw,
                   study_value=s.accession_raw,
                   reason=f"has no order; closest order {o.accession_raw} for the same "
                          f"patient {_when(gap)}", **base)
    side = _merge_side(o, s, ctx) if o.pid != s.pid and ctx.merged else ""
    if side and rules.types["merged_patient_residue"].enabled:
        yield make(rules, "merged_patient_residue", order_value=o.pid_raw,
                   study_value=s.pid_raw, side=side, **base)
    elif o.pid and s.pid and o.pid != s.pid:
        name_diff = bool(o.name and s.name and "PatientName" not in damaged
                         and n.names_differ(o.name, s.name, cfg))
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
    yield from _demographics(o, s, rules, base, damaged)


def _demographics(o: OrderView, s: StudyView, rules: ReconcileRules, base: dict[str, str],
                  damaged: Found) -> Iterator[Mismatch | None]:
    cfg = rules.normalise
    if o.name and s.name and "PatientName" not in damaged:
        fields = n.names_differ(o.name, s.name, cfg)
        if fields:
            yield make(rules, "name_mismatch", order_value="^".join(o.name),
                       study_value="^".join(s.name), fields=", ".join(fields), **base)
    if o.birth and s.birth and o.birth != s.birth:
        yield make(rules, "birth_date_mismatch", order_value=o.birth, study_value=s.birth,
                   **base)
    if o.sex != s.sex and not (cfg.sex.empty_matches_any and (not o.sex or not s.sex)):
        yield make(rules, "sex_mismatch", order_value=o.sex, study_value=s.sex, **base)


def _procedure(o: OrderView, s: StudyView, rules: ReconcileRules, base: dict[str, str]
               ) -> Iterator[Mismatch | None]:
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
    if rules.types["procedure_code_mismatch"].enabled:
        yield _procedure_code(o, s, rules, base)


def _code_text(value: str, scheme: str) -> str:
    return f"{value} ({scheme})" if scheme else value


def _procedure_code(o: OrderView, s: StudyView, rules: ReconcileRules, base: dict[str, str]
                    ) -> Mismatch | None:
    """Requested procedure code vs the study's, only when both sides have one."""
    cfg = rules.procedure_code
    o_code, o_scheme = code(o.raw, cfg.order_sources)
    if not o_code:
        return None
    s_code, s_scheme = code(s.raw, cfg.study_sources)
    if not s_code:
        return None
    if cfg.case_insensitive:
        o_code, s_code = o_code.upper(), s_code.upper()
    differ = o_code != s_code
    if not differ and cfg.compare_scheme and o_scheme and s_scheme:
        differ = cfg.scheme(o_scheme) != cfg.scheme(s_scheme)
    if not differ:
        return None
    return make(rules, "procedure_code_mismatch", order_value=_code_text(o_code, o_scheme),
                study_value=_code_text(s_code, s_scheme), **base)


def _physicians(o: OrderView, s: StudyView, rules: ReconcileRules, base: dict[str, str],
                damaged: Found) -> Iterator[Mismatch | None]:
    """Each configured order/study physician pair, PN-normalised like patient names."""
    cfg = rules.normalise
    order_get, study_get = o.raw.get, s.raw.get
    for order_key, study_key in rules.physician.fields.items():
        a, b = order_get(order_key), study_get(study_key)
        if a == b or not a or not b or order_key in damaged or study_key in damaged:
            continue
        ta, tb = n.text(a), n.text(b)
        if not ta or not tb:
            continue
        fields = n.names_differ(n.person_name(ta, cfg), n.person_name(tb, cfg), cfg)
        if fields:
            yield make(rules, "physician_mismatch", order_value=ta, study_value=tb,
                       key_part=order_key, field=order_key, fields=", ".join(fields), **base)


def _damaged(o: OrderView, s: StudyView, rules: ReconcileRules) -> Found:
    """Fields whose difference an encoding defect explains."""
    out: Found = {}
    order_get, study_get = o.raw.get, s.raw.get
    for keyword, max_length in rules.encoding.fields:
        a, b = order_get(keyword), study_get(keyword)
        if a == b or not a or not b:
            continue
        if (type(a) is str and type(b) is str and a.isascii() and b.isascii()
                and min(len(a), len(b)) < max_length):
            continue  # fast path: neither charset damage nor truncation possible
        ta, tb = n.text(a), n.text(b)
        if ta and tb:
            found = defect(ta, tb, max_length, rules)
            if found is not None:
                out[keyword] = (found, ta, tb)
    return out


def _encoding(base: dict[str, str], damaged: Found, rules: ReconcileRules
              ) -> Iterator[Mismatch | None]:
    for keyword, (d, ta, tb) in damaged.items():
        yield make(rules, "encoding_defect", order_value=ta, study_value=tb, key_part=keyword,
                   field=keyword, defect=d.what, side=d.side, **base)


def compare(p: Pair, rules: ReconcileRules, ctx: Context | None = None) -> Iterator[Mismatch]:
    """The mismatches of one pair (an orphan study when it has no order)."""
    ctx = ctx or Context()
    s = p.study
    if not p.orders:
        found: Iterable[Mismatch | None] = [make(
            rules, "orphan_study", order_ref=None, study_ref=s.ref, study_value=s.accession_raw,
            study_uid=s.uid, study_accession=s.accession_raw or "(empty)")]
    else:
        found = _paired(p, rules, ctx)
    yield from (m for m in found if m is not None)


def _paired(p: Pair, rules: ReconcileRules, ctx: Context) -> Iterator[Mismatch | None]:
    s = p.study
    group = frozenset(o.accession for o in p.orders if o.accession)
    check_encoding = rules.types["encoding_defect"].enabled
    check_physicians = rules.types["physician_mismatch"].enabled
    for o in p.orders:
        damaged = _damaged(o, s, rules) if check_encoding else {}
        base = {"order_ref": o.ref, "study_ref": s.ref, "order_accession": o.accession_raw,
                "study_accession": s.accession_raw, "study_uid": s.uid}
        yield from _identity(o, s, p, rules, ctx, group, damaged)
        yield from _procedure(o, s, rules, base)
        if check_physicians:
            yield from _physicians(o, s, rules, base, damaged)
        if damaged:
            yield from _encoding(base, damaged, rules)
    if len(group) > 1 or s.request_accessions:
        yield grouped(p, group, rules)
