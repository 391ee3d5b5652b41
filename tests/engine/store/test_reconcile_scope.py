"""Scoped auto-resolution: a partial pass (a date window, one MPPS's study) resolves only the
mismatches whose every side it compared, so a flag does not flap (resolved by a narrow pass
that did not look at its study, re-opened and re-notified by the next wide one)."""

from __future__ import annotations

import sqlite3

from engine.store import reconcile as rstore
from transforms.reconcile.mismatch import Mismatch


def flag(kind: str, order_ref: str | None, study_ref: str | None) -> Mismatch:
    return Mismatch(type=kind, severity="high", key=f"{kind}|{study_ref or ''}|{order_ref or ''}",
                    order_ref=order_ref, study_ref=study_ref, order_value="A1",
                    study_value="A1X", explanation=f"{kind} (synthetic)")


PAIR = flag("accession_mismatch", "2.25.1/S1", "2.25.9")   # order 1 vs a typo'd study
ORPHAN = flag("orphan_study", None, "2.25.7")
NO_STUDY = flag("order_without_study", "2.25.3/S3", None)


def status(conn: sqlite3.Connection) -> dict[str, str]:
    return {r["type"]: r["status"] for r in rstore.list_mismatches(conn, status=None)}


def test_a_pass_that_compared_one_side_does_not_resolve_a_two_sided_flag(
        conn: sqlite3.Connection) -> None:
    rstore.upsert_mismatches(conn, [PAIR, ORPHAN, NO_STUDY], 1.0)
    # an MPPS pass for order 1: it compared the order with its own study only
    narrow = rstore.Scope(orders=frozenset({"2.25.1/S1"}), studies=frozenset({"2.25.1"}))
    summary = rstore.upsert_mismatches(conn, [], 2.0, scope=narrow)
    assert summary.resolved == 0
    assert status(conn) == {"accession_mismatch": "open", "orphan_study": "open",
                            "order_without_study": "open"}
    # a pass that compared both sides (and the one-sided flags' side) resolves them
    wide = rstore.Scope(orders=frozenset({"2.25.1/S1", "2.25.3/S3"}),
                        studies=frozenset({"2.25.9", "2.25.7"}))
    summary = rstore.upsert_mismatches(conn, [], 3.0, scope=wide)
    assert summary.resolved == 3
    assert set(status(conn).values()) == {"resolved"}


def test_one_sided_flags_resolve_with_their_side_in_scope(conn: sqlite3.Connection) -> None:
    rstore.upsert_mismatches(conn, [ORPHAN, NO_STUDY], 1.0)
    only_study = rstore.Scope(studies=frozenset({"2.25.7"}))
    assert rstore.upsert_mismatches(conn, [], 2.0, scope=only_study).resolved == 1
    assert status(conn) == {"orphan_study": "resolved", "order_without_study": "open"}


def test_order_only_flags_resolve_only_for_orders_the_pass_could_judge(
        conn: sqlite3.Connection) -> None:
    rstore.upsert_mismatches(conn, [NO_STUDY], 1.0)
    # the order was loaded (a margin order that only helped pair) but not judged
    margin = rstore.Scope(orders=frozenset({"2.25.3/S3"}), lone_orders=frozenset())
    assert rstore.upsert_mismatches(conn, [], 2.0, scope=margin).resolved == 0
    judged = rstore.Scope(orders=frozenset({"2.25.3/S3"}))
    assert rstore.upsert_mismatches(conn, [], 3.0, scope=judged).resolved == 1
