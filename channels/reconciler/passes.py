"""Reconciliation passes: read the PACS, compare, record, flag, notify.

Three kinds, one recording path:

* ``window`` — C-FIND the studies dated in the last N days (one C-FIND per day window,
  ``channels.pacs``), replace that window of the snapshot, and compare the studies of the
  window with the orders scheduled around it plus every order or study the two sides
  reference by UID or accession. Only mismatches whose every side was compared can be
  resolved (:class:`engine.store.reconcile.Scope`), so a short window never clears older
  flags.
* ``full`` — the same read, then every stored order against every stored study; anything
  not found again is resolved (``radbridge reconcile --full``).
* ``mpps`` — an MPPS said a procedure ended: C-FIND that study (by its UID and accession,
  any date) and compare it with the steps it performed. A COMPLETED MPPS whose study the
  PACS does not hold at all is a completeness mismatch (PACS 0 instances).

Recording runs in one store transaction: upsert the mismatches (de-duplicated, resolved
when no longer found), and for every new, re-opened or changed one emit a
``mismatch_flagged`` event and queue an HL7 notification to each destination of the
channel that has a ``mapping:`` (input: a record with ``mismatch``, ``order`` and ``study``).
Nothing here logs a patient value.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from channels.pacs.find import PACSFindConfig, afind_by_keys, afind_studies
from engine import events
from engine.store import outbox
from engine.store import reconcile as rstore
from engine.store.reconcile_merges import load_merges
from transforms.reconcile import reconcile
from transforms.reconcile.mismatch import Mismatch, make
from transforms.reconcile.records import mpps_instance_count, order_ref, study_ref
from transforms.reconcile.rules import ReconcileRules


@dataclass(slots=True)
class PassContext:
    """What every pass needs; ``routes`` returns the channel's current destinations."""

    store: Any
    rules: ReconcileRules
    pacs: PACSFindConfig
    channel: str = "reconcile"
    routes: Callable[[], Sequence[Any]] = lambda: ()
    notify_changes: frozenset[str] = frozenset({"new", "reopened"})

    @property
    def source(self) -> str:
        return self.pacs.called_ae


@dataclass(frozen=True, slots=True)
class PassResult:
    kind: str
    studies_read: int
    orders: int
    studies: int
    summary: rstore.UpsertSummary
    message_id: int | None = None
    notifications: int = 0
    warnings: tuple[str, ...] = ()

    def log_fields(self) -> dict[str, Any]:
        s = self.summary
        return {"kind": self.kind, "studies_read": self.studies_read, "orders": self.orders,
                "studies": self.studies, "new": s.new, "seen_again": s.seen_again,
                "reopened": s.reopened, "resolved": s.resolved,
                "flagged": len(s.flagged), "notifications": self.notifications}


@dataclass(slots=True)
class _Data:
    orders: list[dict[str, Any]]
    studies: list[dict[str, Any]]
    mpps: list[dict[str, Any]]
    gone: frozenset[str] = frozenset()
    """Studies the PACS stopped returning: in scope, so their flags can resolve."""
    merged: dict[str, str] = field(default_factory=dict)
    """Merged (ADT^A40) patient ID -> surviving ID: merged-patient residue, not a mismatch."""


def _day(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def _uids_accessions(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    uids: set[str] = set()
    accs: set[str] = set()
    for row in rows:
        attrs = row.get("attributes", row)
        if isinstance(attrs, Mapping):
            if attrs.get("StudyInstanceUID"):
                uids.add(str(attrs["StudyInstanceUID"]))
            if attrs.get("AccessionNumber"):
                accs.add(str(attrs["AccessionNumber"]))
    return sorted(uids), sorted(accs)


def _merge_studies(*groups: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for group in groups:
        for s in group:
            out.setdefault(str(s.get("StudyInstanceUID", "")) or f"#{len(out)}", s)
    return list(out.values())


def _load_window(conn: sqlite3.Connection, window: tuple[str, str], orders_window: tuple[str, str],
                 since: float, gone: frozenset[str]) -> _Data:
    """The window's studies and the orders scheduled around it, plus one hop of UID /
    accession references either way; ``gone``: studies the PACS no longer returns, whose
    open mismatches' orders are compared again (an order may have lost its date, e.g. a
    cancel without a start time)."""
    studies = rstore.load_studies(conn, window=window)
    uids, accs = _uids_accessions(studies)
    order_uids = sorted(set(uids) | {ref.split("/", 1)[0]
                                     for ref in rstore.open_refs(conn, sorted(gone))})
    orders = rstore.load_orders(conn, window=orders_window, uids=order_uids, accessions=accs)
    o_uids, o_accs = _uids_accessions(orders)
    extra = rstore.load_studies(conn, uids=o_uids, accessions=o_accs)
    studies = _merge_studies(studies, extra)
    all_uids = sorted(set(uids) | set(o_uids))
    return _Data(orders, studies, rstore.load_mpps(conn, study_uids=all_uids, since=since),
                 gone, load_merges(conn))


def load_all(conn: sqlite3.Connection) -> _Data:
    """Everything stored: every order, the whole PACS snapshot, MPPS and merges."""
    return _Data(rstore.load_orders(conn), rstore.load_studies(conn), rstore.load_mpps(conn),
                 merged=load_merges(conn))


def _run_rules(ctx: PassContext, data: _Data, today: dt.date) -> list[Mismatch]:
    return reconcile(data.orders, data.studies, ctx.rules, mpps=data.mpps, today=_day(today),
                     merged=data.merged)


def _scope(ctx: PassContext, data: _Data, lone: frozenset[str] | None = None
           ) -> rstore.Scope:
    orders = frozenset(order_ref(o, ctx.rules) for o in data.orders)
    studies = {study_ref(s, ctx.rules) for s in data.studies}
    studies |= {f"mpps:{m['sop_instance_uid']}" for m in data.mpps}
    studies |= data.gone
    studies |= {str(m["study_instance_uid"]) for m in data.mpps if m.get("study_instance_uid")}
    return rstore.Scope(orders, frozenset(studies), lone)


def _scheduled_in(ctx: PassContext, orders: Sequence[Mapping[str, Any]],
                  window: tuple[str, str]) -> frozenset[str]:
    """Refs of the orders scheduled inside ``window``: a windowed pass read every study
    they can pair with, so it may judge their order-only flags. Orders it loaded from the
    tolerance margin or by reference only help pair the window's studies."""
    out: set[str] = set()
    for o in orders:
        attrs = o.get("attributes", o)
        sps = (attrs.get("ScheduledProcedureStepSequence") or [{}])[0] \
            if isinstance(attrs, Mapping) else {}
        day = str(sps.get("ScheduledProcedureStepStartDate") or "")[:8] \
            if isinstance(sps, Mapping) else ""
        if day and window[0] <= day <= window[1]:
            out.add(order_ref(o, ctx.rules))
    return frozenset(out)


def _judged(found: list[Mismatch], lone: frozenset[str]) -> list[Mismatch]:
    """``found`` without the order-only flags of orders the pass could not judge."""
    return [m for m in found if m.study_ref is not None or m.order_ref is None
            or m.order_ref in lone]


async def window_pass(ctx: PassContext, *, days: int, today: dt.date | None = None,
                      full: bool = False) -> PassResult:
    """Read the last ``days`` days from the PACS and compare (see the module docstring)."""
    today = today or dt.date.today()
    start = today - dt.timedelta(days=days)
    answers = await afind_studies(ctx.pacs, start, today)
    return await apply_window(ctx, answers, start, today, full=full)


async def apply_window(ctx: PassContext, answers: Sequence[Mapping[str, Any]],
                       start: dt.date, today: dt.date, *, full: bool = False) -> PassResult:
    """The rest of a windowed pass once the PACS answered for ``start``..``today`` (the
    benchmark feeds recorded answers here)."""
    window = (_day(start), _day(today))
    returned = frozenset(str(a.get("StudyInstanceUID", "")) for a in answers)

    def replace(conn: sqlite3.Connection) -> frozenset[str]:
        before = rstore.snapshot_uids(conn, ctx.source, window)
        rstore.replace_studies(conn, answers, ctx.source, window=window)
        return frozenset(before - returned)

    gone = await ctx.store.write_tx(replace)
    if full:
        data = await ctx.store.read_tx(load_all)
    else:
        tol = max(ctx.rules.candidates.date_window_days, ctx.rules.windows.study_date_days)
        orders_window = (_day(start - dt.timedelta(days=tol)),
                         _day(today + dt.timedelta(days=tol)))
        since = dt.datetime.combine(start, dt.time()).timestamp()
        data = await ctx.store.read_tx(
            lambda c: _load_window(c, window, orders_window, since, gone))
    found = _run_rules(ctx, data, today)
    if full:
        return await _record(ctx, "full", found, None, data, len(answers))
    lone = _scheduled_in(ctx, data.orders, window)
    return await _record(ctx, "window", _judged(found, lone), _scope(ctx, data, lone), data,
                         len(answers))


async def mpps_pass(ctx: PassContext, mpps: Mapping[str, Any],
                    today: dt.date | None = None) -> PassResult:
    """Check the study of one ended MPPS (a row of ``engine.store.reconcile.due_mpps``)."""
    today = today or dt.date.today()
    uid = str(mpps.get("study_instance_uid") or "")
    acc = str(mpps.get("accession_number") or "")
    sop = str(mpps["sop_instance_uid"])
    answers = await afind_by_keys(ctx.pacs, uids=[uid] if uid else [],
                                  accessions=[acc] if acc else [])

    def load(conn: sqlite3.Connection) -> _Data:
        steps = rstore.mpps_steps(conn, sop)
        uids = sorted({uid, *(s for s, _ in steps), *(str(a.get("StudyInstanceUID", ""))
                                                      for a in answers)} - {""})
        accs = sorted({acc, *(str(a.get("AccessionNumber", "")) for a in answers)} - {""})
        orders = rstore.load_orders(conn, uids=uids, accessions=accs)
        studies = rstore.load_studies(conn, uids=uids)
        mpps_rows = [m for m in rstore.load_mpps(conn, study_uids=uids)
                     if m["sop_instance_uid"] == sop or m["study_instance_uid"] in uids]
        return _Data(orders, studies, mpps_rows, merged=load_merges(conn))

    found_uids = [str(a.get("StudyInstanceUID", "")) for a in answers]
    await ctx.store.write_tx(lambda c: rstore.replace_studies(
        c, answers, ctx.source, clear=False, uids=sorted({uid, *found_uids} - {""})))
    data = await ctx.store.read_tx(load)
    # only the study (by UID and accession) was read: no order-only flag can be judged
    found = _judged(_run_rules(ctx, data, today), frozenset())
    missing = _missing_study(ctx, mpps, data)
    if missing is not None and all(m.key != missing.key for m in found):
        found.append(missing)
    return await _record(ctx, "mpps", found, _scope(ctx, data, frozenset()), data,
                         len(answers))


def _missing_study(ctx: PassContext, mpps: Mapping[str, Any], data: _Data) -> Mismatch | None:
    """A COMPLETED MPPS that reported instances whose study the PACS does not hold."""
    uid = str(mpps.get("study_instance_uid") or "")
    if str(mpps.get("status")) != "COMPLETED" or not uid:
        return None
    if any(str(s.get("StudyInstanceUID", "")) == uid for s in data.studies):
        return None
    rec = next((m for m in data.mpps if m["sop_instance_uid"] == mpps["sop_instance_uid"]), None)
    want = mpps_instance_count(rec) if rec is not None else 0
    if want <= 0:
        return None
    return make(ctx.rules, "completeness_mismatch", order_ref=None, study_ref=uid,
                order_value=want, study_value=0, study_uid=uid)


# -- recording --------------------------------------------------------------------------
def _by_ref(ctx: PassContext, data: _Data, flagged: Sequence[dict[str, Any]]
            ) -> tuple[dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]]]:
    want_o = {m["order_ref"] for m in flagged if m.get("order_ref")}
    want_s = {m["study_ref"] for m in flagged if m.get("study_ref")}
    orders: dict[str, Mapping[str, Any]] = {}
    studies: dict[str, Mapping[str, Any]] = {}
    if want_o:
        for o in data.orders:
            ref = order_ref(o, ctx.rules)
            if ref in want_o:
                attrs = o.get("attributes", o)
                orders[ref] = attrs if isinstance(attrs, Mapping) else {}
    if want_s:
        for s in data.studies:
            ref = study_ref(s, ctx.rules)
            if ref in want_s:
                studies[ref] = s
    return orders, studies


def notification_record(row: Mapping[str, Any], change: str, order: Mapping[str, Any],
                        study: Mapping[str, Any]) -> dict[str, Any]:
    """The input of a notification mapping: the mismatch, and both sides as stored."""
    details = dict(row.get("details") or {})
    mismatch = {
        "id": row["id"], "type": row["type"], "severity": row["severity"],
        "status": row["status"], "change": change, "explanation": row["explanation"],
        "order_ref": row.get("order_ref") or "", "study_ref": row.get("study_ref") or "",
        "order_value": details.get("order_value", ""),
        "study_value": details.get("study_value", ""),
        "first_seen": _ts(row["first_seen"]), "last_seen": _ts(row["last_seen"]),
        "accession_number": str(order.get("AccessionNumber") or study.get("AccessionNumber")
                                or details.get("order_accession")
                                or details.get("study_accession") or ""),
        "study_instance_uid": str(study.get("StudyInstanceUID")
                                  or order.get("StudyInstanceUID")
                                  or details.get("study_uid") or ""),
    }
    return {"mismatch": mismatch, "order": dict(order), "study": dict(study)}


def _ts(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y%m%d%H%M%S")


def _event(channel: str, mid: int, rec: Mapping[str, Any]) -> events.MismatchFlagged:
    m, order, study = rec["mismatch"], rec["order"], rec["study"]
    pid = str(order.get("PatientID") or study.get("PatientID") or "") or None
    issuer = str(order.get("IssuerOfPatientID") or study.get("IssuerOfPatientID") or "") or None
    sps = order.get("ScheduledProcedureStepSequence") or [{}]
    return events.MismatchFlagged(
        channel=channel, message_id=mid, mismatch_id=m["id"], kind=m["type"],
        severity=m["severity"], change=m["change"], explanation=m["explanation"],
        order_ref=m["order_ref"], study_ref=m["study_ref"],
        accession_number=m["accession_number"], study_instance_uid=m["study_instance_uid"],
        sps_id=str(sps[0].get("ScheduledProcedureStepID", "") if sps else ""),
        patient_id=pid, issuer_of_patient_id=issuer)


async def _record(ctx: PassContext, kind: str, found: list[Mismatch],
                  scope: rstore.Scope | None, data: _Data, read: int) -> PassResult:
    routes = [r for r in ctx.routes() if r.effect is None and r.mapping is not None]
    now = time.time()
    wake: list[Callable[[], None]] = []
    warnings: list[str] = []

    def write(conn: sqlite3.Connection) -> tuple[rstore.UpsertSummary, int | None, int]:
        summary = rstore.upsert_mismatches(conn, found, now, scope=scope)
        if not summary.flagged:
            return summary, None, 0
        rows = [r for r in (rstore.get_mismatch(conn, f.id) for f in summary.flagged)
                if r is not None]
        orders, studies = _by_ref(ctx, data, rows)
        mid = _anchor(conn, ctx.channel, kind, summary, now)
        queued = 0
        for f, row in zip(summary.flagged, rows, strict=True):
            rec = notification_record(row, f.change, orders.get(row.get("order_ref") or "", {}),
                                      studies.get(row.get("study_ref") or "", {}))
            if events.emit(conn, _event(ctx.channel, mid, rec), wake=False) is not None \
                    and events.notify not in wake:
                wake.append(events.notify)
            if f.change in ctx.notify_changes:
                queued += _queue(conn, mid, rec, routes, wake, warnings, now)
        return summary, mid, queued

    summary, mid, queued = await ctx.store.write_tx(write)
    for fn in wake:
        fn()
    return PassResult(kind, read, len(data.orders), len(data.studies), summary, mid, queued,
                      tuple(warnings))


def _anchor(conn: sqlite3.Connection, channel: str, kind: str,
            summary: rstore.UpsertSummary, now: float) -> int:
    """A ``messages`` row for the pass: deliveries and events hang off it, and
    ``radbridge messages`` shows what each pass flagged (ids and types only)."""
    raw = json.dumps({"pass": kind, "flagged": [
        {"id": f.id, "change": f.change, "type": f.key.split("|", 1)[0]}
        for f in summary.flagged]}, separators=(",", ":")).encode()
    return outbox.record(conn, channel=channel, message_type="RECONCILE", raw=raw,
                         received_at=now, control_id=f"{kind}-{int(now * 1000)}")


def _queue(conn: sqlite3.Connection, mid: int, rec: Mapping[str, Any], routes: Sequence[Any],
           wake: list[Callable[[], None]], warnings: list[str], now: float) -> int:
    queued = 0
    key = str(rec["mismatch"]["accession_number"])
    for route in routes:
        result = route.mapping.run(dict(rec))
        if result.status == "filtered":
            continue
        if result.status != "ok":
            warnings.append(f"{route.name}: no notification for mismatch "
                            f"{rec['mismatch']['id']}: {result.reason}")
            continue
        outbox.queue_one(conn, mid, route.queue_name, result.encode(route.charset), now, key)
        queued += 1
        if route.notify not in wake:
            wake.append(route.notify)
    return queued
