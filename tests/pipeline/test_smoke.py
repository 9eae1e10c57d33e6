"""End-to-end smoke test of the reference pipeline on the bundled TPC-H example."""

from __future__ import annotations

from pathlib import Path

from reference_impl import run_pipeline


def test_tpch_example_plans_validates_and_runs(tpch_manifest: Path) -> None:
    run = run_pipeline(tpch_manifest)
    plan = run.plan
    assert len(plan.view_nodes) >= 22
    assert {unit.dataset_name for unit in plan.scan_units} == {
        "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
    }  # fmt: skip
    assert all(node.status == "planned" for node in plan.view_nodes)
    assert run.validation.ok, run.validation.issues
    assert run.execution is not None
    (written,) = run.execution.outputs
    assert written.rows > 0
    assert Path(written.location, "_delta_log").is_dir()
