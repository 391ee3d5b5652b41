"""What-if replay (shadow run): stored messages through two configurations, compared.

``radbridge replay --dry-run --config NEW.yaml --since 24h`` evaluates each stored
message under the running configuration and under NEW with no side effects (nothing is
stored, queued or sent) and reports, per message and in total, which outputs would
change and how, field by field. An analyst sees the blast radius before deploying.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import registry
from engine.channel import InternalDestination
from engine.diff import output_diff
from engine.metrics import Metrics
from engine.router import ChannelPipeline, Evaluation, PipelineSettings, Route
from engine.store.base import MessageFilter


def _noop() -> None:
    return None


def build_pipelines(config: Any, base_dir: Path) -> dict[str, ChannelPipeline]:
    """Store-less pipelines of every enabled channel, for evaluation only."""
    from transforms import load_mapping

    def mapping(rel: str | None, params: dict[str, Any]) -> Any:
        return load_mapping(base_dir / rel, params=params or None) if rel else None

    dsts = registry.destinations()
    metrics = Metrics()
    out: dict[str, ChannelPipeline] = {}
    for cname, ch in config.channels.items():
        if not ch.enabled:
            continue
        routes = []
        for d in ch.destinations:
            dest = dsts[d.type](f"{cname}/{d.name}", d)
            effect = dest if isinstance(dest, InternalDestination) else None
            if effect is not None:
                effect.bind(base_dir)
            routes.append(Route(f"{cname}/{d.name}", d.message_types, d.ordering, d.order_key,
                                _noop, name=d.name, mapping=mapping(d.mapping, d.params),
                                charset=d.charset, effect=effect))
        settings = PipelineSettings(
            accept_message_types=ch.accept_message_types, charset_fallback=ch.charset_fallback,
            validation="off", filtered_ack=ch.filtered_ack,
            mapping=mapping(ch.mapping, ch.params),
        )
        out[cname] = ChannelPipeline(cname, settings, routes, None, metrics)
    return out


@dataclass
class MessageChange:
    message_id: int
    control_id: str
    channel: str
    changes: list[str] = field(default_factory=list)


@dataclass
class WhatIfReport:
    examined: int = 0
    changed: list[MessageChange] = field(default_factory=list)
    by_destination: Counter[str] = field(default_factory=Counter)

    def format(self, limit: int = 200) -> str:
        lines = []
        for mc in self.changed[:limit]:
            lines.append(f"message {mc.message_id} ({mc.channel}, control id {mc.control_id}):")
            lines += [f"  {c}" for c in mc.changes]
        if len(self.changed) > limit:
            lines.append(f"... and {len(self.changed) - limit} more changed messages")
        per = ", ".join(f"{d}: {n}" for d, n in sorted(self.by_destination.items()))
        lines.append(f"{len(self.changed)} of {self.examined} messages would change"
                     + (f" ({per})" if per else ""))
        return "\n".join(lines)


def compare(old: Evaluation, new: Evaluation) -> tuple[list[str], set[str]]:
    """Human-readable differences and the destinations they touch."""
    changes: list[str] = []
    touched: set[str] = set()
    if (old.status, old.code) != (new.status, new.code):
        changes.append(f"outcome: {old.status} {old.code} → {new.status} {new.code}"
                       + (f" ({new.reason})" if new.reason else ""))
    elif old.reason != new.reason:
        changes.append(f'reason: "{old.reason}" → "{new.reason}"')
    for dest in list(old.outputs) + [d for d in new.outputs if d not in old.outputs]:
        if dest not in new.outputs:
            changes.append(f"{dest}: no longer sent")
            touched.add(dest)
        elif dest not in old.outputs:
            changes.append(f"{dest}: newly sent")
            touched.add(dest)
        else:
            diff = output_diff(old.outputs[dest], new.outputs[dest])
            if diff:
                touched.add(dest)
                changes += [f"{dest}: {d}" for d in diff]
    return changes, touched


async def what_if(
    store: Any, old: dict[str, ChannelPipeline], new: dict[str, ChannelPipeline],
    flt: MessageFilter, progress: Callable[[int, int], None] | None = None,
) -> WhatIfReport:
    report = WhatIfReport()
    rows = await store.search_messages(flt)
    for n, row in enumerate(reversed(rows), 1):
        detail = await store.get_message(row.id)
        if detail is None:
            continue
        report.examined += 1
        p_old, p_new = old.get(row.channel), new.get(row.channel)
        if p_old is None and p_new is None:
            continue
        if p_old is None or p_new is None:
            what = "channel added" if p_old is None else "channel removed"
            report.changed.append(MessageChange(row.id, row.control_id, row.channel, [what]))
            continue
        changes, touched = compare(await p_old.evaluate(detail.raw),
                                   await p_new.evaluate(detail.raw))
        if changes:
            report.changed.append(MessageChange(row.id, row.control_id, row.channel, changes))
            report.by_destination.update(touched)
        if progress is not None:
            progress(n, len(rows))
    return report
