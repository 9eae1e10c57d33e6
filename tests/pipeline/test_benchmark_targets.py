"""The benchmark's bars are issue 15's: ``tpch`` within 1.25 of bare DataFusion,
``dag_1000`` within 1.3.  No timing is measured here: the targets are computed from
made-up results."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def _run_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("planguard_bench_run", RUN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _met(targets: list[dict[str, Any]], name: str) -> tuple[float, bool]:
    (found,) = [t for t in targets if t["target"] == f"planguard / bare, {name}"]
    return found["limit"], found["met"]


def test_tpch_has_its_own_bar_and_dag_1000_keeps_its_own() -> None:
    run = _run_module()
    results = [
        {"name": name, "ratio": 1.27, "cpu_ratio": 1.27, "views": 1}
        for name in ("tpch", "dag_1000")
    ]
    targets = run._targets(results)
    assert _met(targets, "tpch") == (1.25, False)
    assert _met(targets, "dag_1000") == (1.3, True)
    within = run._targets([{**results[0], "ratio": 1.24}])
    assert _met(within, "tpch") == (1.25, True)
