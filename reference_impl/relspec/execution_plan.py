"""Stage *execution plan*: ``compile_execution_plan(authority) -> ExecutionPlan``.

For every view, in topological order, from the never-executed DataFrame it was registered
with: P0 (unoptimized logical plan with schema), P1 (optimized logical plan), P2 (physical
plan), the output schema, the UDFs it calls, its scans (lineage and scan units), plan
metrics and the PlanSignals every consumer reads.  Planning of each view is bounded by
``runtime.planning_budget_ms``; a view over budget is reported and its dependents skipped.
Executor availability is checked here, never in semantic compile.

Each view is planned once (:func:`~reference_impl.relspec.frame_plan.plan_frame`: one
``EXPLAIN`` gives its plans; ``EXPLAIN VERBOSE`` when the caller asks for the rule
trace).  Statistics come from ``EXPLAIN`` with ``datafusion.explain.show_statistics``: per
scanned dataset (``runtime.statistics = "scan"``, the default), or per view (``"plan"``)
read off the view's own ``EXPLAIN VERBOSE`` (``physical_plan_with_stats``), with no call
of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from functools import partial
from typing import Any

import msgspec

from reference_impl.engine.budget import BudgetExceeded, PlanningWorker
from reference_impl.engine.data_source import RegisteredDataset
from reference_impl.engine.delta_protocol import delta_protocol_compatibility
from reference_impl.engine.failures import ViewFailure
from reference_impl.errors import check_contract_version
from reference_impl.relspec.authority import ExecutionAuthorityContext
from reference_impl.relspec.contracts import (
    AUTHORITY_CONTRACT_VERSION,
    EXECUTION_PLAN_CONTRACT_VERSION,
    ExecutionPlan,
    LineageRecord,
    PlanBundle,
    PlanningStatus,
    PlanSignals,
    PlanStatistics,
    ScanProtocolSummary,
    ScanUnit,
    TaskPlanMetrics,
    ViewNode,
)
from reference_impl.relspec.frame_plan import (
    FramePlan,
    dataset_statistics,
    engine_versions,
    plan_frame,
    session_settings,
)
from reference_impl.relspec.output_targets import output_targets
from reference_impl.relspec.plan_cache import (
    PlanCache,
    cached,
    context_key,
    dataset_key,
    share_order,
    view_key,
)
from reference_impl.relspec.plan_facts import (
    ExplainStatistics,
    TableScanFact,
    mentions_call,
    operator_counts,
    own_udf_calls,
    udf_calls,
)
from reference_impl.relspec.scan_overrides import scan_policy_overrides
from reference_impl.semantics.program import SEMANTIC_CONTRACT_VERSION, SemanticView

_SHOW_STATISTICS = "datafusion.explain.show_statistics"


class _Planned(msgspec.Struct, frozen=True, kw_only=True):
    frame: FramePlan
    view_stats: ExplainStatistics | None

    @property
    def p1_text(self) -> str:
        return self.frame.p1

    @property
    def p2_text(self) -> str:
        return self.frame.p2

    @property
    def partition_count(self) -> int:
        return self.frame.partition_count

    @property
    def scans(self) -> list[TableScanFact]:
        return list(self.frame.scans)


def compile_execution_plan(
    authority: ExecutionAuthorityContext,
    *,
    cache: PlanCache | None = None,
    trace: bool = False,
    views: Collection[str] | None = None,
) -> ExecutionPlan:
    """Plan every view of the authority's program (see module docs).

    With ``cache``, a view whose key (:mod:`reference_impl.relspec.plan_cache`) is
    unchanged reuses its cached plan and statistics instead of planning again.
    ``trace``: give each bundle its rule trace (:attr:`PlanBundle.trace`).
    ``views``: plan only these (the caller includes the views they read); the plan then
    holds nodes and bundles for them alone."""
    check_contract_version("authority", authority.contract_version, AUTHORITY_CONTRACT_VERSION)
    semantic = authority.semantic_context
    check_contract_version(
        "semantic", semantic.manifest.semantic_contract_version, SEMANTIC_CONTRACT_VERSION
    )
    ctx = semantic.session
    evidence = authority.evidence_plan
    manifest = semantic.manifest
    udf_names = {udf.name for udf in manifest.udfs}
    consumers = _consumer_counts(manifest.views)
    cache_min = semantic.runtime_profile.perf.cache_min_consumers
    timeout_s = evidence.planning_budget_ms / 1000.0

    nodes: list[ViewNode] = []
    bundles: dict[str, PlanBundle] = {}
    scans_by_view: dict[str, list[TableScanFact]] = {}
    planned: dict[str, _Planned] = {}
    unplanned: set[str] = set()
    worker = PlanningWorker()
    keys = _CacheKeys.of(authority) if cache is not None else None
    plan_view = partial(
        _plan_view,
        frames=semantic.view_frames,
        session=ctx,
        failures=semantic.view_failures,
        worker=worker,
        timeout_s=timeout_s,
        view_stats=evidence.statistics == "plan",
        trace=trace,
        cache=cache,
        keys=keys,
    )
    try:
        # a process of several sharing the cache plans ahead from its own slice (see
        # share_order); the loop below then reads what it planned or found
        chosen = [v for v in manifest.views if views is None or v.name in views]
        by_name = {view.name: view for view in chosen}
        ahead: dict[str, _Outcome] = {}
        missed: set[str] = set()
        for name in share_order(cache, tuple(by_name)):
            ahead[name] = plan_view(by_name[name], unplanned=missed)
            if ahead[name][2] is None:
                missed.add(name)
        for view in chosen:
            status, failure, result = plan_view(
                view, unplanned=unplanned, ahead=ahead.pop(view.name, None)
            )
            frame = semantic.view_frames.get(view.name)
            # a planned view's P0 is its bundle's (displayed once); a cached one's is
            # the same text, which its cache key covers
            p0 = (
                result.frame.p0
                if result is not None
                else frame.logical_plan().display_indent_schema()
                if frame is not None
                else ""
            )
            # what the view calls itself (upstream views left out) is checked against
            # what it declares; what it needs to run includes its upstream views' calls
            called = tuple(
                sorted(
                    {
                        *(
                            own_udf_calls(
                                frame.logical_plan().display_indent(),
                                udf_names,
                                view.view_dependencies,
                            )
                            # no call in P0 (the same plan with schemas): none to find
                            if frame is not None and mentions_call(p0, udf_names)
                            else ()
                        ),
                        *({failure.function} & udf_names if failure and failure.function else ()),
                    }
                )
            )
            required = tuple(
                sorted(
                    {*view.declared_udfs, *called, *udf_calls(p0, udf_names)}
                    | ({failure.function} if failure and failure.function else set())
                )
            )
            if result is None:
                unplanned.add(view.name)
            else:
                assert frame is not None  # planned views have a registered frame
                planned[view.name] = result
                scans_by_view[view.name] = result.scans
                schema = result.frame.schema
                retained = evidence.retain_plans
                texts = {
                    "P0": result.frame.p0 if "P0" in retained else "",
                    "P1": result.p1_text if "P1" in retained else "",
                    "P2": result.p2_text if "P2" in retained else "",
                }
                # every UDF the plan executes, those of the upstream views it inlines too
                udf_sources = _udf_sources(authority, (*required, *udf_calls(p0, udf_names)))
                bundles[view.name] = PlanBundle(
                    view=view.name,
                    p0=texts["P0"],
                    p1=texts["P1"],
                    p2=texts["P2"],
                    schema=schema,
                    required_udfs=required,
                    scan_unit_keys=(),
                    fingerprint=_digest(
                        {"texts": texts, "schema": schema, "required_udfs": required}
                        | ({"udf_sources": udf_sources} if udf_sources else {})
                    ),
                    udf_sources=udf_sources,
                    trace=result.frame.trace,
                )
            nodes.append(
                ViewNode(
                    name=view.name,
                    sql=view.sql,
                    dependencies=view.depends_on,
                    required_udfs=required,
                    declared_udfs=view.declared_udfs,
                    called_udfs=called,
                    executor=view.executor,
                    executor_available=view.executor in authority.executor_map,
                    status=status,
                    failure=failure,
                    scan_unit_keys=(),
                    consumers=consumers[view.name],
                    cache=cache_min > 0 and consumers[view.name] >= cache_min,
                )
            )
    finally:
        worker.close()
    ctx.sql(f"SET {_SHOW_STATISTICS} = true").collect()
    try:
        dataset_stats = _dataset_statistics(
            ctx, {scan.dataset for scans in scans_by_view.values() for scan in scans}, cache, keys
        )
    finally:
        ctx.sql(f"SET {_SHOW_STATISTICS} = false").collect()

    return _assemble(
        authority,
        nodes=nodes,
        bundles=bundles,
        planned=planned,
        scans_by_view=scans_by_view,
        dataset_stats=dataset_stats,
    )


def _dataset_statistics(
    ctx: Any, names: set[str], cache: PlanCache | None, keys: _CacheKeys | None
) -> dict[str, ExplainStatistics]:
    """One ``EXPLAIN`` per scanned dataset, or its cached result for the same identity."""
    if cache is None or keys is None:
        return dataset_statistics(ctx, names)
    out: dict[str, ExplainStatistics] = {}
    for name in sorted(names):
        identity = keys.datasets.get(name)
        if identity is None:
            out |= dataset_statistics(ctx, {name})
            continue
        out[name] = cached(
            cache,
            dataset_key(keys.context, name, identity),
            partial(lambda one: dataset_statistics(ctx, {one})[one], name),
            ExplainStatistics,
            label=f"statistics of {name}",
        )
    return out


class _CacheKeys(msgspec.Struct, frozen=True, kw_only=True):
    """What the plan cache keys a view on, besides its P0 (computed once per plan)."""

    context: str
    datasets: dict[str, str]

    @classmethod
    def of(cls, authority: ExecutionAuthorityContext) -> _CacheKeys:
        semantic = authority.semantic_context
        return cls(
            context=context_key(
                versions=engine_versions(),
                settings=session_settings(semantic.session),
                udfs=msgspec.to_builtins(authority.capabilities.udf_snapshot),
                extra={
                    "runtime": authority.runtime_fingerprint,
                    "statistics": authority.evidence_plan.statistics,
                },
            ),
            datasets={name: d.identity for name, d in semantic.datasets.items()},
        )


_Outcome = tuple[PlanningStatus, ViewFailure | None, _Planned | None]


def _plan_view(
    view: SemanticView,
    *,
    frames: Mapping[str, Any],
    session: Any,
    failures: Mapping[str, ViewFailure],
    unplanned: set[str],
    worker: PlanningWorker,
    timeout_s: float,
    view_stats: bool,
    trace: bool,
    cache: PlanCache | None = None,
    keys: _CacheKeys | None = None,
    ahead: _Outcome | None = None,
) -> _Outcome:
    """How planning ``view`` ended; ``ahead``: the outcome of planning it ahead, which
    stands unless an upstream view is found unplanned now."""
    failure = failures.get(view.name)
    if failure is not None:
        if failure.kind == "upstream_failed":
            return "skipped", failure, None
        if failure.kind == "budget_exceeded":
            return "budget_exceeded", failure, None
        return "failed", failure, None
    blocked = next((dep for dep in view.view_dependencies if dep in unplanned), None)
    if blocked is not None:
        return (
            "skipped",
            ViewFailure(
                view=view.name,
                kind="upstream_failed",
                message=f"upstream view {blocked!r} was not planned",
                upstream=blocked,
            ),
            None,
        )
    if ahead is not None and ahead[0] != "skipped":
        return ahead
    frame = frames[view.name]

    def planned() -> _Planned:
        if keys is None:
            return plan_fresh()
        key = view_key(keys.context, frame.logical_plan().display_indent_schema(), keys.datasets)
        hit = cached(cache, key, plan_fresh, _Planned, label=view.name)
        # one entry serves traced and untraced runs alike (same plans, same fingerprints;
        # the untraced ones, the determinism check's, write none): a traced run never
        # takes an entry without its trace
        return plan_fresh() if trace and not hit.frame.trace else hit

    def plan_fresh() -> _Planned:
        plans = plan_frame(frame, trace=trace, statistics=view_stats, session=session)
        return _Planned(frame=plans, view_stats=plans.statistics if view_stats else None)

    try:
        return "planned", None, worker.run(planned, timeout_s)
    except BudgetExceeded:
        return (
            "budget_exceeded",
            ViewFailure(
                view=view.name,
                kind="budget_exceeded",
                message=f"planning took longer than the budget of {int(timeout_s * 1000)} ms",
            ),
            None,
        )
    except Exception as exc:
        from reference_impl.engine.session import view_failure

        return "failed", view_failure(view.name, exc), None


def _assemble(
    authority: ExecutionAuthorityContext,
    *,
    nodes: list[ViewNode],
    bundles: dict[str, PlanBundle],
    planned: Mapping[str, _Planned],
    scans_by_view: Mapping[str, list[TableScanFact]],
    dataset_stats: Mapping[str, ExplainStatistics],
) -> ExecutionPlan:
    semantic = authority.semantic_context
    resolver = semantic.dataset_resolver
    support = semantic.runtime_profile.policy.delta_support
    runtime_hash = authority.runtime_fingerprint

    units: dict[str, ScanUnit] = {}
    # The views reading each unit, gathered first and set once: growing the unit's tuple
    # for each view would be quadratic in the number of views sharing a scan.
    unit_views: dict[str, dict[str, None]] = {}
    unit_keys_by_view: dict[str, tuple[str, ...]] = {}
    key_of: dict[TableScanFact, str] = {}
    for view, scans in scans_by_view.items():
        keys: list[str] = []
        for scan in scans:
            registered = semantic.datasets.get(scan.dataset)
            key = key_of.get(scan)
            if key is None:
                key = key_of[scan] = scan_unit_key(scan, registered)
            keys.append(key)
            if key in units:
                unit_views[key].setdefault(view)
                continue
            unit_views[key] = {view: None}
            protocol = registered.delta_protocol if registered else None
            units[key] = ScanUnit(
                key=key,
                dataset_name=scan.dataset,
                in_manifest=scan.dataset in resolver.bindings,
                delta_version=registered.delta_version if registered else None,
                delta_protocol=protocol,
                protocol_compatibility=(
                    delta_protocol_compatibility(protocol, support) if protocol else None
                ),
                projected_columns=scan.columns,
                pushed_filters=scan.filters,
                views=(view,),
            )
        unit_keys_by_view[view] = tuple(sorted(set(keys)))
    for key, readers in unit_views.items():
        if len(readers) > 1:
            units[key] = msgspec.structs.replace(units[key], views=tuple(readers))

    metrics, lineage, signals = _plan_signals(
        planned=planned,
        bundles=bundles,
        units=units,
        unit_keys_by_view=unit_keys_by_view,
        scans_by_view=scans_by_view,
        dataset_stats=dataset_stats,
        runtime_hash=runtime_hash,
    )
    # From here on, raw engine output (EXPLAIN statistics, plan text) is not read again:
    # every decision below reads the signals and the scan units.

    final_nodes = tuple(
        msgspec.structs.replace(node, scan_unit_keys=unit_keys_by_view.get(node.name, ()))
        for node in nodes
    )
    overrides = scan_policy_overrides(
        units.values(), signals, small_input_rows=semantic.runtime_profile.policy.small_input_rows
    )
    scan_units = tuple(sorted(units.values(), key=lambda unit: unit.key))
    hashed = {
        "view_nodes": final_nodes,
        "scan_units": scan_units,
        "task_plan_metrics": metrics,
        "lineage_by_view": lineage,
        # the rule trace explains the plans and is none of them: a traced and an untraced
        # planning of the same program have the same fingerprint
        "plan_bundles_by_view": {
            view: msgspec.structs.replace(bundle, trace=()) for view, bundle in bundles.items()
        },
        "scan_policy_overrides_by_key": overrides,
        "runtime": runtime_hash,
    }
    return ExecutionPlan(
        contract_version=EXECUTION_PLAN_CONTRACT_VERSION,
        manifest_fingerprint=semantic.manifest.fingerprint,
        runtime_fingerprint=runtime_hash,
        fingerprint=_digest(hashed),
        view_nodes=final_nodes,
        scan_units=scan_units,
        task_plan_metrics=dict(sorted(metrics.items())),
        lineage_by_view=dict(sorted(lineage.items())),
        plan_signals_by_view=dict(sorted(signals.items())),
        plan_bundles_by_view=dict(sorted(bundles.items())),
        scan_policy_overrides_by_key=dict(sorted(overrides.items())),
        output_targets=output_targets(
            semantic.manifest.outputs,
            {view: semantic.view_frames[view].schema() for view in planned},
            semantic.output_locations,
            semantic.dataset_resolver.stores,
        ),
    )


def _plan_signals(
    *,
    planned: Mapping[str, _Planned],
    bundles: dict[str, PlanBundle],
    units: Mapping[str, ScanUnit],
    unit_keys_by_view: Mapping[str, tuple[str, ...]],
    scans_by_view: Mapping[str, list[TableScanFact]],
    dataset_stats: Mapping[str, ExplainStatistics],
    runtime_hash: str,
) -> tuple[dict[str, TaskPlanMetrics], dict[str, LineageRecord], dict[str, PlanSignals]]:
    """Metrics, lineage and the PlanSignals of every planned view: the one place raw
    engine output (EXPLAIN statistics, plan text) becomes typed plan facts."""
    metrics: dict[str, TaskPlanMetrics] = {}
    lineage: dict[str, LineageRecord] = {}
    signals: dict[str, PlanSignals] = {}
    for view, result in planned.items():
        scans = scans_by_view[view]
        bundle = msgspec.structs.replace(bundles[view], scan_unit_keys=unit_keys_by_view[view])
        bundles[view] = bundle
        stats = _scan_statistics(scans, dataset_stats)
        ops = operator_counts(result.p2_text)
        metrics[view] = TaskPlanMetrics(
            task_name=view,
            stats_row_count=stats.row_count,
            stats_total_bytes=stats.total_bytes,
            stats_exact=stats.exact,
            partition_count=result.partition_count,
            repartition_count=ops.get("RepartitionExec", 0),
            operator_counts=ops,
            logical_operator_counts=operator_counts(result.p1_text),
            estimated_output_rows=result.view_stats.rows if result.view_stats else None,
        )
        lineage[view] = _lineage(view, scans)
        view_units = [units[key] for key in unit_keys_by_view[view]]
        signals[view] = PlanSignals(
            view=view,
            schema=bundle.schema,
            lineage=lineage[view],
            stats=stats,
            scan_protocol=_protocol_summary(view_units),
            operator_counts=ops,
            operator_total=sum(ops.values()),
            repartition_count=ops.get("RepartitionExec", 0),
            partition_count=result.partition_count,
            estimated_output_rows=metrics[view].estimated_output_rows,
            plan_fingerprint=bundle.fingerprint,
            runtime_fingerprint=runtime_hash,
            scan_stats={
                unit.key: _unit_statistics(dataset_stats.get(unit.dataset_name))
                for unit in view_units
            },
        )
    return metrics, lineage, signals


def _unit_statistics(stat: ExplainStatistics | None) -> PlanStatistics:
    if stat is None or stat.rows is None:
        return PlanStatistics(
            row_count=None, total_bytes=None, exact=False, provenance="unavailable"
        )
    return PlanStatistics(
        row_count=stat.rows, total_bytes=stat.bytes, exact=stat.exact, provenance="explain:scan"
    )


def scan_unit_key(scan: TableScanFact, registered: RegisteredDataset | None) -> str:
    """``scan::{dataset}::{delta version or 'latest'}::{16-hex digest of projection+filters}``."""
    version = (
        "latest"
        if registered is None or registered.delta_version is None
        else str(registered.delta_version)
    )
    digest = _digest({"projection": sorted(scan.columns), "filters": sorted(scan.filters)})[:16]
    return f"scan::{scan.dataset}::{version}::{digest}"


def _scan_statistics(
    scans: list[TableScanFact], dataset_stats: Mapping[str, ExplainStatistics]
) -> PlanStatistics:
    """Rows and bytes a view reads: the sum over its scans of each dataset's statistics."""
    rows = total = 0
    exact = True
    for scan in scans:
        stat = dataset_stats.get(scan.dataset)
        if stat is None or stat.rows is None:
            return PlanStatistics(
                row_count=None, total_bytes=None, exact=False, provenance="unavailable"
            )
        rows += stat.rows
        total += stat.bytes or 0
        exact = exact and stat.exact
    return PlanStatistics(row_count=rows, total_bytes=total, exact=exact, provenance="explain:scan")


def _lineage(view: str, scans: list[TableScanFact]) -> LineageRecord:
    columns: dict[str, set[str]] = {}
    filters: dict[str, set[str]] = {}
    for scan in scans:
        columns.setdefault(scan.dataset, set()).update(scan.columns)
        filters.setdefault(scan.dataset, set()).update(scan.filters)
    return LineageRecord(
        view=view,
        datasets=tuple(sorted(columns)),
        columns_by_dataset={name: tuple(sorted(cols)) for name, cols in sorted(columns.items())},
        filters_by_dataset={name: tuple(sorted(f)) for name, f in sorted(filters.items())},
    )


def _protocol_summary(units: list[ScanUnit]) -> ScanProtocolSummary:
    compat = [unit.protocol_compatibility for unit in units]
    return ScanProtocolSummary(
        scan_units=len(units),
        compatible=sum(1 for c in compat if c is not None and c.compatible is True),
        incompatible=sum(1 for c in compat if c is not None and c.compatible is False),
        unconfigured=sum(1 for c in compat if c is not None and c.compatible is None),
        not_delta=sum(1 for c in compat if c is None),
        incompatible_datasets=tuple(
            sorted(
                {
                    unit.dataset_name
                    for unit in units
                    if unit.protocol_compatibility is not None
                    and unit.protocol_compatibility.compatible is False
                }
            )
        ),
    )


def _consumer_counts(views: tuple[SemanticView, ...]) -> dict[str, int]:
    counts = {view.name: 0 for view in views}
    for view in views:
        for dep in view.view_dependencies:
            counts[dep] += 1
    return counts


def _digest(payload: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(payload, order="sorted")).hexdigest()


def _udf_sources(authority: ExecutionAuthorityContext, names: Iterable[str]) -> dict[str, str]:
    """Name -> source hash of each UDF of ``names`` whose provider's code was read."""
    snapshot = authority.capabilities.udf_snapshot
    return {
        name: source
        for name in sorted(set(names))
        if name in snapshot and (source := snapshot[name].source_hash) is not None
    }
