"""Order <-> PACS study reconciliation: a sans-I/O core driven by ``mappings/reconcile.yml``.

``reconcile(orders, studies, rules, mpps=..., today=..., merged=...)`` returns ``Mismatch``
objects; ``load_rules(path)`` validates the rules file; ``run_rule_tests(path)`` runs the
YAML cases beside it. Storage lives in ``engine.store.reconcile`` (patient merges for
``merged=`` in ``engine.store.reconcile_merges``), the PACS query in ``channels.pacs``.

Modules: ``rules`` (the YAML model), ``records`` (normalised order/study views),
``normalise``, ``pairing``, ``compare`` (one pair), ``encoding`` (charset damage and
truncation), ``grouping`` (split and grouped studies), ``core`` (the pass), ``mismatch``
(the result type), ``testcases`` (rule cases). The 21 types of ``MISMATCH_TYPES`` cover
all 18 entries of the mismatch catalogue (§6 of the radiology workflow reference), plus
``unscheduled_mpps``.
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
