"""Stage *policy validation*: ``validate_policy_bundle(plan, *, runtime_profile, udf_snapshot)``.

It checks the execution plan (with the runtime profile and the UDF snapshot), never the
session or the manifest, so that what it checks is what will run: UDF rules from
``view_nodes[*].required_udfs``, Delta compatibility from
``scan_units[*].protocol_compatibility`` (``compatible`` is True / False / None; None is
handled by mode, never coerced), size heuristics from ``task_plan_metrics``.  The mode is
a rollout switch: ``error`` keeps each finding's severity, ``warn`` turns errors into
warnings, ``ignore`` records everything as info.
Issues are sorted, so the result's artifact bytes depend only on the plan and runtime.
"""

from __future__ import annotations

from collections.abc import Mapping

from reference_impl.engine.runtime import DataFusionRuntimeProfile
from reference_impl.errors import check_contract_version
from reference_impl.relspec.contracts import (
    EXECUTION_PLAN_CONTRACT_VERSION,
    ExecutionPlan,
    PolicyCode,
    PolicyValidationIssue,
    PolicyValidationResult,
    Severity,
)
from reference_impl.relspec.output_targets import SCHEMA_MODE_HINT

_DOWNGRADE: Mapping[str, Mapping[Severity, Severity]] = {
    "error": {"error": "error", "warning": "warning", "info": "info"},
    "warn": {"error": "warning", "warning": "warning", "info": "info"},
    "ignore": {"error": "info", "warning": "info", "info": "info"},
}
_STATS_SEVERITY: Mapping[str, Severity] = {"error": "error", "warn": "warning", "ignore": "info"}


def validate_policy_bundle(
    execution_plan: ExecutionPlan,
    *,
    runtime_profile: DataFusionRuntimeProfile,
    udf_snapshot: Mapping[str, object],
) -> PolicyValidationResult:
    """Check the plan against the profile's policies (see module docs)."""
    check_contract_version(
        "execution plan", execution_plan.contract_version, EXECUTION_PLAN_CONTRACT_VERSION
    )
    issues: list[PolicyValidationIssue] = []
    mode = runtime_profile.policy.mode

    def add(
        code: PolicyCode,
        severity: Severity,
        subject: str,
        kind: str,
        message: str,
        *,
        field_path: str | None = None,
    ) -> None:
        issues.append(
            PolicyValidationIssue(
                code=code,
                severity=_DOWNGRADE[mode][severity],
                subject=subject,
                subject_kind=kind,  # type: ignore[arg-type]
                message=message,
                field_path=field_path,
            )
        )

    for node in execution_plan.view_nodes:
        required = node.required_udfs
        if required and not runtime_profile.features.enable_udfs:
            add(
                PolicyCode.UDFS_DISABLED,
                "error",
                node.name,
                "view",
                f"needs UDFs {', '.join(required)} but runtime.enable_udfs is false",
            )
        # both, like the review's skeleton: a disabled UDF set and a missing UDF are two
        # faults (enabling UDFs does not provide a missing one)
        missing = sorted(name for name in required if name not in udf_snapshot)
        if missing:
            add(
                PolicyCode.UDF_MISSING,
                "error",
                node.name,
                "view",
                f"needs UDFs the session does not have: {', '.join(missing)}",
            )
        if not node.executor_available:
            add(
                PolicyCode.EXECUTOR_UNAVAILABLE,
                "error",
                node.name,
                "view",
                f"executor {node.executor!r} is not in the executor map",
            )
        failure = node.failure
        if node.status == "budget_exceeded" and failure is not None:
            add(PolicyCode.PLANNING_BUDGET_EXCEEDED, "error", node.name, "view", failure.message)
        elif failure is not None and failure.kind == "upstream_failed":
            add(PolicyCode.VIEW_UPSTREAM_FAILED, "warning", node.name, "view", failure.message)
        elif failure is not None and failure.kind == "planning_error":
            add(PolicyCode.VIEW_PLANNING_FAILED, "error", node.name, "view", failure.message)

    for unit in execution_plan.scan_units:
        if not unit.in_manifest:
            add(
                PolicyCode.SCAN_DATASET_NOT_IN_MANIFEST,
                "error",
                unit.key,
                "scan_unit",
                f"views {', '.join(unit.views)} scan {unit.dataset_name!r}, "
                "which the manifest does not declare",
            )
        compat = unit.protocol_compatibility
        if compat is None:
            continue
        if compat.compatible is False:
            add(
                PolicyCode.DELTA_PROTOCOL_INCOMPATIBLE,
                "error",
                unit.key,
                "scan_unit",
                f"{unit.dataset_name}: {compat.reason}",
            )
        elif compat.compatible is None:
            add(
                PolicyCode.DELTA_PROTOCOL_SUPPORT_UNCONFIGURED,
                "error",
                unit.key,
                "scan_unit",
                f"{unit.dataset_name}: {compat.reason}",
            )

    for target in execution_plan.output_targets:
        if target.schema_problems:
            add(
                PolicyCode.OUTPUT_SCHEMA_MISMATCH,
                "error",
                target.name,
                "output",
                f"writing view {target.view!r} to the Delta table at {target.location} "
                f"(version {target.table_version}) with schema_mode = {target.schema_mode!r} "
                f"would fail: {'; '.join(target.schema_problems)} ({SCHEMA_MODE_HINT})",
                field_path=f"outputs.{target.name}.schema_mode",
            )

    small = runtime_profile.policy.small_input_rows
    fallback = runtime_profile.perf.stats_fallback
    # size heuristics concern scans: a view reading no dataset (constants, table
    # functions) has no input to be small or to lack statistics
    scanning = {node.name for node in execution_plan.view_nodes if node.scan_unit_keys}
    for task_name, metric in execution_plan.task_plan_metrics.items():
        if task_name not in scanning:
            continue
        if metric.stats_row_count is None:
            add(
                PolicyCode.STATS_UNAVAILABLE,
                _STATS_SEVERITY[fallback],
                task_name,
                "view",
                "no row statistics for the datasets this view scans "
                f"(runtime.stats_fallback = {fallback!r})",
            )
        elif metric.stats_row_count < small:
            add(
                PolicyCode.SMALL_INPUT_SCAN_POLICY,
                "warning",
                task_name,
                "view",
                f"reads {metric.stats_row_count} rows < policy.small_input_rows={small}: "
                "scans use the small-input policy",
            )

    return PolicyValidationResult.from_issues(
        issues,
        mode=mode,
        runtime_hash=execution_plan.runtime_fingerprint,
        plan_hash=execution_plan.fingerprint,
    )
