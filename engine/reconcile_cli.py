"""``radbridge reconcile`` (a pass now) and ``radbridge mismatches`` (list, show, status).

A pass runs exactly what the engine's ``pacs_reconciler`` channel runs on its schedule
(``channels.reconciler.passes``): C-FIND the PACS at study level over a date window,
replace that window of the snapshot, compare with the worklist and MPPS using the rules,
and record the mismatches (new ones flagged, ones found again updated, ones no longer found
resolved). The PACS, the rules and the HL7 notification destinations come from the
reconciler channel of channels.yaml (``--channel``, or the only one); flags and the
``RADBRIDGE_PACS_*`` variables are used when there is none. Notifications are queued in
the channel's durable queues (a running engine delivers them), and ``mismatch_flagged``
events in the events queue when events are configured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from engine.cli_common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    parse_since,
    with_config,
)
from engine.cli_common import store_for as _store_for


def _channel(cfg: Any, name: str | None) -> tuple[str, Any] | None:
    found = [(n, ch) for n, ch in cfg.channels.items()
             if getattr(ch.source, "type", "") == "pacs_reconciler"]
    if name:
        found = [(n, ch) for n, ch in found if n == name]
        if not found:
            raise ValueError(f"no pacs_reconciler channel named {name!r} in the configuration")
    if len(found) > 1:
        names = ", ".join(n for n, _ in found)
        raise ValueError(f"several reconciler channels ({names}): choose one with --channel")
    return found[0] if found else None


def pacs_config(args: Any, base: Any = None) -> Any:
    """The channel's PACS settings (or the ``RADBRIDGE_PACS_*`` defaults), flags on top."""
    from channels.pacs.find import PACSFindConfig

    data = base.model_dump() if base is not None else {
        "host": os.environ.get("RADBRIDGE_PACS_HOST", "127.0.0.1"),
        "port": int(os.environ.get("RADBRIDGE_PACS_PORT", "4242")),
        "called_ae": os.environ.get("RADBRIDGE_PACS_AET", "ORTHANC"),
        "calling_ae": os.environ.get("RADBRIDGE_PACS_CALLING_AET", "RADBRIDGE"),
    }
    for flag, key in (("pacs_host", "host"), ("pacs_port", "port"), ("pacs_aet", "called_ae")):
        value = getattr(args, flag, None)
        if value:
            data[key] = int(value) if key == "port" else value
    return PACSFindConfig(**data)


def _routes(cname: str, ch: Any, base: Path) -> list[Any]:
    from types import SimpleNamespace

    from transforms import load_mapping

    return [SimpleNamespace(queue_name=f"{cname}/{d.name}", name=d.name, effect=None,
                            mapping=load_mapping(base / d.mapping, params=d.params or None),
                            charset=d.charset, notify=lambda: None)
            for d in ch.destinations if d.mapping]


async def run_pass(store: Any, base: Path, args: Any, cfg: Any = None) -> Any:
    """One reconciliation pass; returns its ``channels.reconciler.passes.PassResult``."""
    from channels.reconciler.passes import PassContext, window_pass
    from engine import events
    from transforms.reconcile.rules import load_rules

    chosen = _channel(cfg, getattr(args, "channel", None)) if cfg is not None else None
    src = chosen[1].source if chosen else None
    rules = load_rules(base / (args.rules or (src.rules if src else "mappings/reconcile.yml")))
    ctx = PassContext(store, rules, pacs_config(args, src.pacs if src else None),
                      chosen[0] if chosen else "reconcile")
    if chosen is not None and src is not None:
        routes = _routes(chosen[0], chosen[1], base)
        ctx.routes = lambda: routes
        ctx.notify_changes = frozenset(src.notify)
    if cfg is not None and (cfg.engine.events.mqtt_url or os.environ.get("RADBRIDGE_MQTT_URL")):
        events.configure(events.DEFAULT_QUEUE, phi_fields=cfg.engine.events.phi_fields)
    days = args.days if args.days is not None else (src.schedule.days if src else 7)
    return await window_pass(ctx, days=days, full=bool(getattr(args, "full", False)))


async def what_if(store: Any, base: Path, args: Any, cfg: Any = None) -> list[str]:
    """``--what-if CANDIDATE``: the running rules vs the candidate on the stored data."""
    from channels.reconciler.whatif import rules_whatif
    from transforms.reconcile.rules import load_rules

    chosen = _channel(cfg, getattr(args, "channel", None)) if cfg is not None else None
    current = args.rules or (chosen[1].source.rules if chosen else "mappings/reconcile.yml")
    result = await rules_whatif(store, load_rules(base / current),
                                load_rules(Path(args.what_if)))
    return [f"{args.what_if} vs {current} on the stored orders and PACS snapshot:",
            *result.lines()]


def format_row(m: dict[str, Any]) -> str:
    return (f"{m['id']:>6}  {m['severity']:8} {m['type']:28} {m['status']:12} "
            f"{m.get('explanation', '')}")


# -- the commands (engine/cli.py registers them) -----------------------------------
async def _reconcile(args: argparse.Namespace, cfg: Any) -> int:
    from engine.reconcile_cli import run_pass

    store = _store_for(cfg, args.config)
    await store.open()
    try:
        if args.what_if:
            for line in await what_if(store, Path(args.config).resolve().parent, args, cfg):
                print(line)
            return EXIT_OK
        result = await run_pass(store, Path(args.config).resolve().parent, args, cfg)
    except Exception as exc:
        print(f"radbridge reconcile: {exc}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        await store.aclose()
    s = result.summary
    print(f"{result.studies_read} studies read; {result.orders} orders and {result.studies}"
          f" studies compared ({result.kind} pass); mismatches: {s.new} new,"
          f" {s.seen_again} seen again, {s.reopened} reopened, {s.resolved} resolved;"
          f" {result.notifications} notifications queued")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    return with_config(args, _reconcile)


async def _mismatches(args: argparse.Namespace, cfg: Any) -> int:
    from engine.store import reconcile as rstore

    store = _store_for(cfg, args.config)
    await store.open()
    try:
        if args.action == "export":
            from engine.reconcile_report import export

            return await export(store, args)
        if args.action in ("acknowledge", "resolve", "ignore"):
            return await _decide(store, args)
        if args.action in ("decisions", "forget"):
            return await _decisions(store, args)
        if args.action == "show":
            row = await store.read_tx(lambda c: rstore.get_mismatch(c, args.id))
            if row is None:
                print(f"no mismatch {args.id}", file=sys.stderr)
                return EXIT_FAIL
            print(json.dumps(row, indent=1, ensure_ascii=False, default=str))
            return EXIT_OK
        status_filter = None if args.status == "all" else args.status
        rows = await store.read_tx(lambda c: rstore.list_mismatches(
            c, status=status_filter, limit=args.limit, type=args.type,
            severity=args.severity, since=args.since))
    finally:
        await store.aclose()
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False, default=str))
        return EXIT_OK
    for m in rows:
        print(format_row(m))
    print(f"({len(rows)} mismatches)", file=sys.stderr)
    return EXIT_OK


async def _decide(store: Any, args: argparse.Namespace) -> int:
    """acknowledge / resolve / ignore one mismatch (``--remember``: also later ones)."""
    from engine.store import reconcile as rstore
    from engine.store import reconcile_decisions as decisions

    status = {"acknowledge": "acknowledged", "resolve": "resolved",
              "ignore": "ignored"}[args.action]
    if args.remember and status not in decisions.REMEMBERABLE:
        print("only ignore and acknowledge decisions can be remembered", file=sys.stderr)
        return EXIT_USAGE

    def write(conn: Any) -> tuple[bool, int | None]:
        ok = rstore.set_status(conn, args.id, status, args.who, args.why)
        remembered = (decisions.remember(conn, args.id, status, args.who, args.why)
                      if ok and args.remember else None)
        return ok, remembered

    ok, remembered = await store.write_tx(write)
    if not ok:
        print(f"no mismatch {args.id}", file=sys.stderr)
        return EXIT_FAIL
    print(f"mismatch {args.id}: {status}")
    if remembered is not None:
        print(f"decision {remembered} remembered: later mismatches of the same type with the"
              f" same values are {status} at once (radbridge mismatches forget {remembered})")
    return EXIT_OK


async def _decisions(store: Any, args: argparse.Namespace) -> int:
    """List remembered decisions, or forget one."""
    from engine.store import reconcile_decisions as decisions

    if args.action == "forget":
        ok = await store.write_tx(lambda c: decisions.forget(c, args.id))
        print(f"decision {args.id} forgotten" if ok else f"no decision {args.id}",
              file=sys.stdout if ok else sys.stderr)
        return EXIT_OK if ok else EXIT_FAIL
    rows = await store.read_tx(decisions.decisions)
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False, default=str))
        return EXIT_OK
    for d in rows:
        print(f"{d['id']:>5}  {d['status']:12} {d['type']:28} applied {d['applied']:>5}  "
              f"by {d['who']}: {d['why']}")
    print(f"({len(rows)} decisions)", file=sys.stderr)
    return EXIT_OK


def cmd_mismatches(args: argparse.Namespace) -> int:
    return with_config(args, _mismatches)


def add_parsers(sub: Any) -> None:
    """The ``reconcile`` and ``mismatches`` commands of ``radbridge``."""
    p = sub.add_parser("reconcile", help="run a reconciliation pass against the PACS now")
    p.add_argument("--days", type=int, default=None,
                   help="study dates to read, back from today (default: the channel's"
                        " schedule.days, else 7)")
    p.add_argument("--full", action="store_true",
                   help="compare every stored order and study, not only the window")
    p.add_argument("--channel", help="the pacs_reconciler channel to use (default: the only one)")
    p.add_argument("--what-if", metavar="RULES",
                   help="compare a candidate rules file with the running one on the stored"
                        " data: what it would add, drop or re-grade (no PACS query, no write)")
    p.add_argument("--rules", default=None,
                   help="rules file (default: the channel's, else mappings/reconcile.yml)")
    p.add_argument("--pacs-host")
    p.add_argument("--pacs-port")
    p.add_argument("--pacs-aet")
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("mismatches", help="list, show, acknowledge, resolve or ignore mismatches")
    msub2 = p.add_subparsers(dest="action")
    for name in ("show", "acknowledge", "resolve", "ignore"):
        q = msub2.add_parser(name)
        q.add_argument("id", type=int)
        q.add_argument("--who", default=os.environ.get("USER", "operator"))
        q.add_argument("--why", default="")
        q.add_argument("--remember", action="store_true",
                       help="apply this decision to later mismatches of the same type with"
                            " the same values (ignore, acknowledge)")
        q.set_defaults(func=cmd_mismatches, action=name, status="all", limit=100000, json=False)
    q = msub2.add_parser("decisions", help="remembered decisions")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_mismatches, action="decisions")
    q = msub2.add_parser("forget", help="forget a remembered decision")
    q.add_argument("id", type=int)
    q.set_defaults(func=cmd_mismatches, action="forget", json=False)
    ml = msub2.add_parser("list")
    for q in (p, ml):
        q.add_argument("--status", default="open",
                       help="open, acknowledged, resolved, ignored, all")
        q.add_argument("--limit", type=int, default=1000)
        q.add_argument("--type", help="mismatch type, e.g. accession_mismatch")
        q.add_argument("--severity", help="critical, high, medium, low")
        q.add_argument("--since", type=parse_since, help="last seen since: 24h, 7d or ISO time")
        q.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_mismatches, action="list")
    ml.set_defaults(func=cmd_mismatches, action="list")
    mx = msub2.add_parser("export", help="write mismatches as CSV or one HTML file (PHI)")
    mx.add_argument("--format", choices=("csv", "html"), required=True)
    mx.add_argument("--status", default="open",
                    choices=("open", "acknowledged", "resolved", "ignored", "all"))
    mx.add_argument("--type", help="mismatch type, e.g. sex_mismatch")
    mx.add_argument("--severity", help="critical, high, medium, low, info")
    mx.add_argument("--since", type=parse_since, help="last seen since: 24h, 7d or ISO time")
    mx.add_argument("-o", "--output", required=True, help="file (written 0600), - for stdout")
    mx.set_defaults(func=cmd_mismatches, action="export")
