"""A windowed pass (recorded PACS answers, real SQLite store) judges order-only flags only
for orders scheduled inside its window: an order from the tolerance margin, whose study the
pass did not read, is not reported as an order without study."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from channels.pacs.find import PACSFindConfig
from channels.reconciler.passes import PassContext, apply_window
from engine.store import reconcile as rstore
from engine.store import worklist
from engine.store.sqlite import SQLiteStore
from transforms.reconcile.rules import load_rules

RULES = load_rules(Path(__file__).resolve().parents[3] / "mappings" / "reconcile.yml")


def order(n: int, day: str) -> dict[str, Any]:
    return {"PatientName": f"TEST^P{n}", "PatientID": f"P{n}", "AccessionNumber": f"A{n}",
            "StudyInstanceUID": f"2.25.{n}",
            "ScheduledProcedureStepSequence": [{
                "ScheduledProcedureStepID": f"S{n}", "Modality": "CT",
                "ScheduledProcedureStepStartDate": day}]}


async def test_margin_orders_are_not_judged_for_order_only_flags(store: SQLiteStore) -> None:
    def write(conn: Any) -> None:
        worklist.upsert_step(conn, order(1, "20240117"), now=1.0)  # in the window, no study
        worklist.upsert_step(conn, order(2, "20240116"), now=1.0)  # margin (tolerance 1 day)

    await store.write_tx(write)
    ctx = PassContext(store, RULES, PACSFindConfig(host="h", port=1, called_ae="REC"), "rec")
    today = dt.date(2024, 1, 20)
    result = await apply_window(ctx, [], today - dt.timedelta(days=3), today)
    flags = await store.read_tx(lambda c: rstore.list_mismatches(c, status=None))
    assert [(m["type"], m["order_ref"]) for m in flags] == [
        ("order_without_study", "2.25.1/S1")]
    assert result.orders == 2  # the margin order was loaded (for pairing) all the same
    # a full pass judges every order
    await apply_window(ctx, [], today - dt.timedelta(days=3), today, full=True)
    flags = await store.read_tx(lambda c: rstore.list_mismatches(c, status="open"))
    assert sorted(m["order_ref"] for m in flags) == ["2.25.1/S1", "2.25.2/S2"]
    # and the next windowed pass leaves the margin order's flag alone (not resolved)
    again = await apply_window(ctx, [], today - dt.timedelta(days=3), today)
    assert again.summary.resolved == 0
