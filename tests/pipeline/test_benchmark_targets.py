"""The benchmark's bars are issue 15's: ``tpch`` within 1.25 of bare DataFusion,
``dag_1000`` within 1.3.  No timing is measured here: the targets are computed from
made-up results."""

from __future__ import annotations

from typing import Any

from tests.support.benchmarks import benchmark_module


def _met(targets: list[dict[str, Any]], name: str) -> tuple[float, bool]:
    (found,) = [t for t in targets if t["target"] == f"planguard / bare, {name}"]
    return found["limit"], found["met"]


def test_tpch_has_its_own_bar_and_dag_1000_keeps_its_own() -> None:
    run = benchmark_module("run")
    results = [
        {"name": name, "ratio": 1.27, "cpu_ratio": 1.27, "views": 1}
        for name in ("tpch", "dag_1000")
    ]
    targets = run._targets(results)
    assert _met(targets, "tpch") == (1.25, False)
    assert _met(targets, "dag_1000") == (1.3, True)
    within = run._targets([{**results[0], "ratio": 1.24}])
    assert _met(within, "tpch") == (1.25, True)
