"""Order <-> PACS study reconciliation: a sans-I/O core driven by ``mappings/reconcile.yml``.

``reconcile(orders, studies, rules, mpps=..., today=...)`` returns ``Mismatch`` objects;
``load_rules(path)`` validates the rules file; ``run_rule_tests(path)`` runs the YAML cases
beside it. Storage lives in ``engine.store.reconcile``, the PACS query in ``channels.pacs``.
"""

from transforms.reconcile.core import reconcile
from transforms.reconcile.mismatch import Mismatch
from transforms.reconcile.rules import (
    MISMATCH_TYPES,
    ReconcileRules,
    ReconcileRulesError,
    load_rules,
    parse_rules,
)

__all__ = [
    "MISMATCH_TYPES",
    "Mismatch",
    "ReconcileRules",
    "ReconcileRulesError",
    "load_rules",
    "parse_rules",
    "reconcile",
]
