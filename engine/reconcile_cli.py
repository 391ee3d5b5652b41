"""``radbridge reconcile`` (a pass now) and ``radbridge mismatches`` (list, show, status).

A pass: C-FIND the PACS at study level over a date window, snapshot the answers, compare
them with the worklist and MPPS using ``mappings/reconcile.yml``, and store the mismatches
(new ones flagged, ones found again updated, ones no longer found resolved).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from engine.store import reconcile as rstore


def pacs_config(args: Any) -> Any:
    from channels.pacs.find import PACSFindConfig

    return PACSFindConfig(
        host=args.pacs_host or os.environ.get("RADBRIDGE_PACS_HOST", "127.0.0.1"),
        port=int(args.pacs_port or os.environ.get("RADBRIDGE_PACS_PORT", "4242")),
        called_ae=args.pacs_aet or os.environ.get("RADBRIDGE_PACS_AET", "ORTHANC"),
        calling_ae=os.environ.get("RADBRIDGE_PACS_CALLING_AET", "RADBRIDGE"),
    )


async def run_pass(store: Any, base: Path, args: Any) -> tuple[Any, int]:
    """One reconciliation pass; returns (upsert summary, studies read)."""
    from channels.pacs.find import afind_studies
    from transforms.reconcile import reconcile
    from transforms.reconcile.rules import load_rules

    rules = load_rules(base / args.rules)
    today = dt.date.today()
    studies = await afind_studies(pacs_config(args), today - dt.timedelta(days=args.days), today)
    source = f"{args.pacs_aet or os.environ.get('RADBRIDGE_PACS_AET', 'ORTHANC')}"
    await store.write_tx(lambda c: rstore.replace_studies(c, studies, source))
    orders = await store.read_tx(rstore.load_orders)
    snapshot = await store.read_tx(rstore.load_studies)
    mpps = await store.read_tx(rstore.load_mpps)
    found = reconcile(orders, snapshot, rules, mpps=mpps, today=today.strftime("%Y%m%d"))
    summary = await store.write_tx(lambda c: rstore.upsert_mismatches(c, found))
    return summary, len(studies)


def format_row(m: dict[str, Any]) -> str:
    return (f"{m['id']:>6}  {m['severity']:8} {m['type']:28} {m['status']:12} "
            f"{m.get('explanation', '')}")
