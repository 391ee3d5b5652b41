"""The benchmark's synthetic orders stay valid input for the shipped mapping, so its
figures measure the whole mapping rather than an early rejection."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType

from transforms import load_mapping

REPO = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("transform_bench",
                                                  REPO / "benchmarks" / "transform_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_inputs_map_cleanly_to_full_worklist_records() -> None:
    bench = _bench()
    mapping = load_mapping(REPO / "mappings" / "order_to_worklist.yaml")
    rng = random.Random(7)
    for text, steps in [(bench.orm(rng, i), 1) for i in range(20)] + \
            [(bench.omi(rng, i), 1) for i in range(20)] + \
            [(bench.orm(rng, i, 3), 3) for i in range(5)]:
        result = mapping.run(text)
        assert result.ok, result.reason
        sps = result.record["ScheduledProcedureStepSequence"]
        assert len(sps) == steps
        assert all(item["ScheduledProcedureStepStartDate"] and item["Modality"] for item in sps)
