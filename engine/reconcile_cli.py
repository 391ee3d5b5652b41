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

import os
from pathlib import Path
from typing import Any


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
