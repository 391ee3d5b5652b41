"""What a change to the reconciliation rules would do, before it goes live.

``radbridge reconcile --what-if CANDIDATE.yml`` runs the running rules and the candidate on
the same stored data (every worklist step, the PACS snapshot of the last passes, MPPS,
patient merges), queries nothing and writes nothing, and reports the difference: mismatches
the candidate would add, those it would no longer report, and those whose severity would
change, per type and one line each (identifiers and explanations only, no names).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from channels.reconciler.passes import load_all
from transforms.reconcile import reconcile
from transforms.reconcile.mismatch import Mismatch
from transforms.reconcile.rules import ReconcileRules


@dataclass
class RulesDiff:
    added: list[Mismatch] = field(default_factory=list)
    removed: list[Mismatch] = field(default_factory=list)
    severity: list[tuple[Mismatch, Mismatch]] = field(default_factory=list)
    unchanged: int = 0

    def lines(self, limit: int = 50) -> list[str]:
        out = [f"would add {len(self.added)}, no longer report {len(self.removed)}, change "
               f"the severity of {len(self.severity)}; {self.unchanged} unchanged"]
        for label, items in (("+", self.added), ("-", self.removed)):
            by_type = Counter(m.type for m in items)
            for kind, count in sorted(by_type.items()):
                out.append(f"  {label} {kind}: {count}")
        for old, new in self.severity[:limit]:
            out.append(f"  ~ {new.type}: {old.severity} -> {new.severity}: {new.explanation}")
        for label, items in (("+", self.added), ("-", self.removed)):
            out += [f"  {label} {m.type} [{m.severity}]: {m.explanation}" for m in items[:limit]]
            if len(items) > limit:
                out.append(f"  {label} … {len(items) - limit} more")
        return out


def diff(current: list[Mismatch], candidate: list[Mismatch]) -> RulesDiff:
    before = {m.key: m for m in current}
    after = {m.key: m for m in candidate}
    out = RulesDiff()
    out.added = [m for k, m in after.items() if k not in before]
    out.removed = [m for k, m in before.items() if k not in after]
    for k, m in after.items():
        if k in before:
            if before[k].severity != m.severity:
                out.severity.append((before[k], m))
            else:
                out.unchanged += 1
    return out


async def rules_whatif(store: Any, current: ReconcileRules, candidate: ReconcileRules,
                       today: dt.date | None = None) -> RulesDiff:
    data = await store.read_tx(load_all)
    day = (today or dt.date.today()).strftime("%Y%m%d")

    def run(rules: ReconcileRules) -> list[Mismatch]:
        return reconcile(data.orders, data.studies, rules, mpps=data.mpps, today=day,
                         merged=data.merged)

    return diff(run(current), run(candidate))
