"""Stage *execution plan* on the bundled TPC-H example (one plan per module) and on small
hand-made tables for the options the example does not exercise."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from reference_impl.engine.data_source import RegisteredDataset
from reference_impl.pipeline import PipelineRun, run_pipeline
from reference_impl.relspec.contracts import (
    AUTHORITY_CONTRACT_VERSION,
    EXECUTION_PLAN_CONTRACT_VERSION,
    ExecutionPlan,
)
from reference_impl.relspec.execution_plan import scan_unit_key
from reference_impl.relspec.plan_facts import TableScanFact
from reference_impl.semantics.program import SEMANTIC_CONTRACT_VERSION

WriteManifest = Callable[..., Path]
DeltaTableFactory = Callable[..., Path]

TPCH_TABLES = {"customer", "lineitem", "nation", "orders", "part", "partsupp", "region"}
TPCH_TABLES |= {"supplier"}
KEY_RE = re.compile(
    r"^scan::(?P<dataset>[a-z_]+)::(?P<version>\d+|latest)::(?P<digest>[0-9a-f]{16})$"
)


@pytest.fixture(scope="module")
def tpch_run(tpch_module_manifest: Path) -> PipelineRun:
    return run_pipeline(tpch_module_manifest, execute=False)


@pytest.fixture(scope="module")
def plan(tpch_run: PipelineRun) -> ExecutionPlan:
    return tpch_run.plan


# -- shape of the contract -----------------------------------------------------------------


def test_the_plan_has_the_corrected_contract_fields_only(plan: ExecutionPlan) -> None:
    fields = set(ExecutionPlan.__struct_fields__)
    assert {
        "view_nodes",
        "scan_units",
        "task_plan_metrics",
        "lineage_by_view",
        "plan_signals_by_view",
        "plan_bundles_by_view",
        "scan_policy_overrides_by_key",
    } <= fields
    assert not fields & {"tasks", "scan_policies"}
    assert plan.contract_version == EXECUTION_PLAN_CONTRACT_VERSION


def test_contract_versions_are_independent(tpch_run: PipelineRun) -> None:
    authority = tpch_run.authority
    assert authority.contract_version == AUTHORITY_CONTRACT_VERSION
    assert authority.semantic_context.manifest.semantic_contract_version == (
        SEMANTIC_CONTRACT_VERSION
    )
    assert AUTHORITY_CONTRACT_VERSION != SEMANTIC_CONTRACT_VERSION


def test_every_view_is_planned_in_topological_order(tpch_run: PipelineRun) -> None:
    plan = tpch_run.plan
    names = [node.name for node in plan.view_nodes]
    assert len(names) >= 22
    assert {f"q{i:02d}" for i in range(1, 23)} <= set(names)
    assert tuple(names) == tpch_run.authority.semantic_context.manifest.view_names()
    assert all(node.status == "planned" and node.failure is None for node in plan.view_nodes)
    assert all(node.executor_available for node in plan.view_nodes)
    position = {name: i for i, name in enumerate(names)}
    for node in plan.view_nodes:
        assert all(position.get(dep, -1) < position[node.name] for dep in node.dependencies)


def test_required_udfs_come_from_declarations_and_plan_calls(plan: ExecutionPlan) -> None:
    nodes = {node.name: node for node in plan.view_nodes}
    assert nodes["order_net_value"].required_udfs == ("net_price",)
    assert nodes["net_value_by_band"].required_udfs == ("net_price", "price_band")
    assert nodes["shipping_priority_bands"].required_udfs == ("price_band",)
    # not declared on the view, but its plan inlines order_net_value's call
    assert nodes["top_net_orders"].required_udfs == ("net_price",)
    assert nodes["q01"].required_udfs == ()
    for name, node in nodes.items():
        assert plan.plan_bundles_by_view[name].required_udfs == node.required_udfs


def test_fan_out_views_are_selected_for_caching(plan: ExecutionPlan) -> None:
    nodes = {node.name: node for node in plan.view_nodes}
    assert (nodes["order_net_value"].consumers, nodes["order_net_value"].cache) == (2, True)
    assert (nodes["q03"].consumers, nodes["q03"].cache) == (1, False)
    assert (nodes["q01"].consumers, nodes["q01"].cache) == (0, False)


# -- scan units ----------------------------------------------------------------------------


def test_scan_units_cover_every_dataset_with_protocol_compatibility(plan: ExecutionPlan) -> None:
    assert len(plan.scan_units) >= 8
    assert {unit.dataset_name for unit in plan.scan_units} == TPCH_TABLES
    for unit in plan.scan_units:
        assert unit.in_manifest
        assert unit.delta_version == 0
        assert unit.delta_protocol is not None
        assert unit.protocol_compatibility is not None
        assert unit.protocol_compatibility.compatible is True, unit.protocol_compatibility
        assert unit.projected_columns
        assert unit.views


def test_scan_unit_keys_follow_the_documented_format(plan: ExecutionPlan) -> None:
    keys = [unit.key for unit in plan.scan_units]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    for unit in plan.scan_units:
        match = KEY_RE.match(unit.key)
        assert match is not None, unit.key
        assert match["dataset"] == unit.dataset_name
        assert match["version"] == str(unit.delta_version)
        fact = TableScanFact(
            dataset=unit.dataset_name,
            columns=unit.projected_columns,
            filters=unit.pushed_filters,
        )
        registered = RegisteredDataset(
            name=unit.dataset_name,
            format="delta",
            location="ignored",
            delta_version=unit.delta_version,
            delta_protocol=None,
        )
        assert scan_unit_key(fact, registered) == unit.key


def test_view_nodes_bundles_and_units_reference_each_other(plan: ExecutionPlan) -> None:
    units = {unit.key: unit for unit in plan.scan_units}
    referenced: set[str] = set()
    for node in plan.view_nodes:
        assert node.scan_unit_keys, node.name
        assert node.scan_unit_keys == plan.plan_bundles_by_view[node.name].scan_unit_keys
        for key in node.scan_unit_keys:
            assert node.name in units[key].views
        referenced.update(node.scan_unit_keys)
    assert referenced == set(units)


def test_scan_policy_overrides_are_keyed_by_scan_unit_key(plan: ExecutionPlan) -> None:
    overrides = plan.scan_policy_overrides_by_key
    units = {unit.key: unit for unit in plan.scan_units}
    assert set(overrides) == set(units)
    for key, override in overrides.items():
        assert override.scan_unit_key == key
        assert override.dataset_name == units[key].dataset_name
        assert override.delta_version == units[key].delta_version
    small = {o.dataset_name for o in overrides.values() if o.policy == "small_input"}
    assert small == {"nation", "region", "supplier"}  # 25, 5 and 100 rows at SF 0.01


def test_lineage_records_columns_and_filters_per_dataset(plan: ExecutionPlan) -> None:
    q06 = plan.lineage_by_view["q06"]
    assert q06.datasets == ("lineitem",)
    assert q06.columns_by_dataset["lineitem"] == (
        "l_discount",
        "l_extendedprice",
        "l_quantity",
        "l_shipdate",
    )
    (predicate,) = q06.filters_by_dataset["lineitem"]
    assert "l_shipdate" in predicate
    assert "l_quantity" in predicate
    q05 = plan.lineage_by_view["q05"]
    assert q05.datasets == ("customer", "lineitem", "nation", "orders", "region", "supplier")


# -- metrics, statistics, signals, bundles ------------------------------------------------


def test_task_plan_metrics_are_keyed_by_view_with_exact_statistics(
    tpch_run: PipelineRun,
) -> None:
    plan = tpch_run.plan
    ctx = tpch_run.authority.semantic_context.session
    assert set(plan.task_plan_metrics) == {node.name for node in plan.view_nodes}
    lineitem_rows = ctx.sql("SELECT count(*) AS n FROM lineitem").to_pydict()["n"][0]
    for view in ("q01", "q06"):  # single-dataset views read exactly lineitem
        metrics = plan.task_plan_metrics[view]
        assert metrics.task_name == view
        assert metrics.stats_row_count == lineitem_rows
        assert metrics.stats_exact is True
        assert metrics.stats_total_bytes is not None
        assert metrics.stats_total_bytes > 0
    for metrics in plan.task_plan_metrics.values():
        assert metrics.repartition_count == metrics.operator_counts.get("RepartitionExec", 0)
        assert metrics.partition_count >= 1
        assert metrics.logical_operator_counts.get("TableScan", 0) >= 1


def test_plan_signals_agree_with_the_plan(plan: ExecutionPlan) -> None:
    assert set(plan.plan_signals_by_view) == set(plan.plan_bundles_by_view)
    for view, signals in plan.plan_signals_by_view.items():
        bundle = plan.plan_bundles_by_view[view]
        metrics = plan.task_plan_metrics[view]
        assert signals.schema == bundle.schema
        assert signals.lineage == plan.lineage_by_view[view]
        assert signals.stats.row_count == metrics.stats_row_count
        assert signals.stats.provenance == "explain:scan"
        assert signals.operator_counts == metrics.operator_counts
        assert signals.operator_total == sum(metrics.operator_counts.values())
        assert signals.plan_fingerprint == bundle.fingerprint
        assert signals.runtime_fingerprint == plan.runtime_fingerprint
        summary = signals.scan_protocol
        assert summary.scan_units == len(bundle.scan_unit_keys) == summary.compatible
        assert summary.incompatible == summary.unconfigured == summary.not_delta == 0


def test_bundles_hold_three_plan_layers_and_the_view_schema(tpch_run: PipelineRun) -> None:
    plan = tpch_run.plan
    frames = tpch_run.authority.semantic_context.view_frames
    for view, bundle in plan.plan_bundles_by_view.items():
        assert all((bundle.p0, bundle.p1, bundle.p2)), view
        assert [f.name for f in bundle.schema] == frames[view].schema().names
    q03 = plan.plan_bundles_by_view["q03"]
    assert q03.p0.startswith("Limit: skip=0, fetch=10 [")  # display_indent_schema
    assert q03.p1.startswith("Sort: ")
    assert q03.p2.startswith("SortPreservingMergeExec")


def test_physical_plans_use_the_pinned_partition_count(plan: ExecutionPlan) -> None:
    counts: set[str] = set()
    for bundle in plan.plan_bundles_by_view.values():
        counts.update(re.findall(r"RoundRobinBatch\((\d+)\)", bundle.p2))
        counts.update(re.findall(r"Hash\(\[[^\]]*\], (\d+)\)", bundle.p2))
    assert counts == {"4"}  # runtime.target_partitions = 4, whatever the machine


def test_bundles_come_from_never_executed_frames(tpch_run: PipelineRun) -> None:
    """P2 equals a fresh frame's, and differs from an executed one's (runtime filters)."""
    ctx = tpch_run.authority.semantic_context.session
    sql = tpch_run.authority.semantic_context.manifest.view("q03").sql
    bundle = tpch_run.plan.plan_bundles_by_view["q03"]
    assert ctx.sql(sql).execution_plan().display_indent() == bundle.p2
    executed = ctx.sql(sql)
    executed.collect()
    assert executed.execution_plan().display_indent() != bundle.p2


def test_the_plan_fingerprint_covers_the_plan(plan: ExecutionPlan) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", plan.fingerprint)
    assert re.fullmatch(r"[0-9a-f]{64}", plan.runtime_fingerprint)
    fingerprints = {b.fingerprint for b in plan.plan_bundles_by_view.values()}
    assert len(fingerprints) == len(plan.plan_bundles_by_view)


def test_statistics_setting_is_restored_after_planning(tpch_run: PipelineRun) -> None:
    ctx = tpch_run.authority.semantic_context.session
    rows = ctx.sql(
        "SELECT value FROM information_schema.df_settings "
        "WHERE name = 'datafusion.explain.show_statistics'"
    ).to_pydict()
    assert rows["value"] == ["false"]


# -- options on small tables ------------------------------------------------------------------

SMALL = """
[datasets.t]
format = "delta"
location = "t"

[views.v]
sql = "SELECT a, count(*) AS n FROM t WHERE a > 1 GROUP BY a"

[views.w]
sql = "SELECT * FROM v"

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""


def small_run(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory, extra: str
) -> PipelineRun:
    delta_table("t", {"a": [1, 2, 2, 3]})
    return run_pipeline(write_manifest(SMALL + extra), execute=False)


def test_retain_plans_keeps_only_the_chosen_layers(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    run = small_run(write_manifest, delta_table, '[runtime]\nretain_plans = ["P1"]\n')
    bundle = run.plan.plan_bundles_by_view["v"]
    assert (bundle.p0, bundle.p2) == ("", "")
    assert bundle.p1.startswith("Projection:")


def test_plan_statistics_estimate_each_views_output(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    scan = small_run(write_manifest, delta_table, "")
    assert scan.plan.task_plan_metrics["v"].estimated_output_rows is None
    per_plan = small_run(write_manifest, delta_table, '[runtime]\nstatistics = "plan"\n')
    metrics = per_plan.plan.task_plan_metrics["v"]
    assert metrics.stats_row_count == 4
    assert metrics.estimated_output_rows is not None
    assert per_plan.plan.plan_signals_by_view["v"].estimated_output_rows == (
        metrics.estimated_output_rows
    )


def test_a_view_over_a_view_scans_the_underlying_dataset(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    run = small_run(write_manifest, delta_table, "")
    (unit,) = run.plan.scan_units
    assert unit.dataset_name == "t"
    assert unit.views == ("v", "w")
    assert unit.pushed_filters == ("t.a > Int64(1)",)
    assert run.plan.lineage_by_view["w"].datasets == ("t",)


def test_plan_statistics_work_for_any_sql_compile_accepts(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    """Stray semicolons and comments are fine for compile and DataFusion; the per-view
    EXPLAIN must not trip over them either."""
    delta_table("t", {"a": [1, 2, 2, 3]})
    text = SMALL.replace(
        'sql = "SELECT a, count(*) AS n FROM t WHERE a > 1 GROUP BY a"',
        'sql = "; SELECT a, count(*) AS n FROM t WHERE a > 1 GROUP BY a; -- done"',
    )
    run = run_pipeline(write_manifest(text + '[runtime]\nstatistics = "plan"\n'), execute=False)
    assert run.validation.errors == (), run.validation.issues
    assert all(node.status == "planned" for node in run.plan.view_nodes)
    assert run.plan.task_plan_metrics["v"].estimated_output_rows is not None
