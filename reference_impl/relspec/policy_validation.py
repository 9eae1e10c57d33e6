"""Stage *policy validation*: ``validate_policy_bundle(plan, *, runtime_profile, udf_snapshot)``.

It checks the execution plan (with the runtime profile and the UDF snapshot), never the
session or the manifest, so that what it checks is what will run: UDF rules from
``view_nodes[*].required_udfs`` (present in the session) and ``called_udfs`` against
``declared_udfs`` (``UDF_UNDECLARED``, ``UDF_DECLARED_UNUSED``), Delta compatibility from
``scan_units[*].protocol_compatibility`` (``compatible`` is True / False / None; None is
handled by mode, never coerced), one finding per dataset however many scan units read it,
size heuristics from ``task_plan_metrics``.  The mode is
a rollout switch: ``error`` keeps each finding's severity, ``warn`` turns errors into
warnings, ``ignore`` records everything as info.
Issues are sorted, so the result's artifact bytes depend only on the plan and runtime.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reference_impl.engine.delta_protocol import DeltaProtocolCompatibility
from reference_impl.engine.runtime import DataFusionRuntimeProfile
from reference_impl.errors import check_contract_version
from reference_impl.relspec.contracts import (
    EXECUTION_PLAN_CONTRACT_VERSION,
    ExecutionPlan,
    PolicyCode,
    PolicyValidationIssue,
    PolicyValidationResult,
    ScanUnit,
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
                field_path="runtime.enable_udfs",
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
                field_path=f"views.{node.name}.sql",
            )
        # what the view calls itself against what it declares (upstream views' calls are
        # theirs to declare): a call without a declaration is a dependency nobody listed
        undeclared = sorted(set(node.called_udfs) - set(node.declared_udfs))
        if undeclared:
            listed = ", ".join(f'"{name}"' for name in (*node.declared_udfs, *undeclared))
            add(
                PolicyCode.UDF_UNDECLARED,
                "error",
                node.name,
                "view",
                f"calls UDFs it does not declare: {', '.join(undeclared)} "
                f"(declare them: udfs = [{listed}] in [views.{node.name}])",
                field_path=f"views.{node.name}.udfs",
            )
        # only a planned view's calls are all known (a failed one stopped at the first)
        unused = sorted(set(node.declared_udfs) - set(node.called_udfs))
        if unused and node.status == "planned":
            add(
                PolicyCode.UDF_DECLARED_UNUSED,
                "warning",
                node.name,
                "view",
                f"declares UDFs its SQL never calls: {', '.join(unused)} "
                "(remove them from udfs, or call them)",
                field_path=f"views.{node.name}.udfs",
            )
        if not node.executor_available:
            add(
                PolicyCode.EXECUTOR_UNAVAILABLE,
                "error",
                node.name,
                "view",
                f"executor {node.executor!r} is not in the executor map",
                field_path=f"views.{node.name}.executor",
            )
        failure = node.failure
        sql = f"views.{node.name}.sql"
        if node.status == "budget_exceeded" and failure is not None:
            add(
                PolicyCode.PLANNING_BUDGET_EXCEEDED,
                "error",
                node.name,
                "view",
                failure.message,
                field_path="runtime.planning_budget_ms",
            )
        elif failure is not None and failure.kind == "upstream_failed":
            add(
                PolicyCode.VIEW_UPSTREAM_FAILED,
                "warning",
                node.name,
                "view",
                failure.message,
                field_path=sql,
            )
        elif failure is not None and failure.kind == "planning_error":
            add(
                PolicyCode.VIEW_PLANNING_FAILED,
                "error",
                node.name,
                "view",
                failure.message,
                field_path=sql,
            )

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
    for code, dataset, message, field_path in _protocol_findings(execution_plan.scan_units):
        add(code, "error", dataset, "dataset", message, field_path=field_path)

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
                field_path="runtime.stats_fallback",
            )
        elif metric.stats_row_count < small:
            add(
                PolicyCode.SMALL_INPUT_SCAN_POLICY,
                "warning",
                task_name,
                "view",
                f"reads {metric.stats_row_count} rows < policy.small_input_rows={small}: "
                "scans use the small-input policy",
                field_path="policy.small_input_rows",
            )

    return PolicyValidationResult.from_issues(
        issues,
        mode=mode,
        runtime_hash=execution_plan.runtime_fingerprint,
        plan_hash=execution_plan.fingerprint,
    )


_SUPPORT = "policy.delta_support"


def _protocol_findings(units: Iterable[ScanUnit]) -> list[tuple[PolicyCode, str, str, str]]:
    """One Delta protocol finding per dataset, however many scan units read it.

    Each is ``(code, dataset, message, field_path)``: the message names the table's
    actual reader/writer versions and features (what ``[policy.delta_support]`` must
    allow), the field path the first setting that falls short (``policy.delta_support``
    itself when the table is absent).
    """
    by_dataset: dict[str, list[ScanUnit]] = {}
    for unit in units:
        if unit.protocol_compatibility is not None:
            by_dataset.setdefault(unit.dataset_name, []).append(unit)
    out: list[tuple[PolicyCode, str, str, str]] = []
    for dataset, group in sorted(by_dataset.items()):
        compats = [u.protocol_compatibility for u in group if u.protocol_compatibility]
        verdicts = {c.compatible for c in compats}
        if verdicts == {True}:
            continue
        reader = max(c.required_reader_version for c in compats)
        writer = max(c.required_writer_version for c in compats)
        reader_features = sorted({f for c in compats for f in c.required_reader_features})
        writer_features = sorted({f for c in compats for f in c.required_writer_features})
        versions = sorted({u.delta_version for u in group if u.delta_version is not None})
        views = sorted({view for u in group for view in u.views})
        features = (
            f"reader features [{', '.join(reader_features)}], "
            f"writer features [{', '.join(writer_features)}]"
            if reader_features or writer_features
            else "no table features"
        )
        table = (
            "the Delta table"
            + (f" (version {', '.join(map(str, versions))})" if versions else "")
            + f" read by views {', '.join(views) or '(none)'} needs reader version {reader} and "
            f"writer version {writer}, {features}"
        )
        needed = (
            f"max_reader_version = {reader}, max_writer_version = {writer}, "
            f"reader_features = {_toml_list(reader_features)}, "
            f"writer_features = {_toml_list(writer_features)}"
        )
        if False in verdicts:
            reasons = sorted({c.reason for c in compats if c.compatible is False})
            field = _short_field(compats)
            out.append(
                (
                    PolicyCode.DELTA_PROTOCOL_INCOMPATIBLE,
                    dataset,
                    f"{table}; [policy.delta_support] falls short: {'; '.join(reasons)} "
                    f"(reading it takes at least {needed}, if the engine supports them)",
                    f"{_SUPPORT}.{field}",
                )
            )
        else:
            out.append(
                (
                    PolicyCode.DELTA_PROTOCOL_SUPPORT_UNCONFIGURED,
                    dataset,
                    f"{table}; [policy.delta_support] is absent, so whether the engine may "
                    f"read it is unknown (this table needs at least {needed})",
                    _SUPPORT,
                )
            )
    return out


def _short_field(compats: Iterable[DeltaProtocolCompatibility]) -> str:
    """The first ``[policy.delta_support]`` key that does not allow the table."""
    listed = list(compats)
    for field, short in (
        (
            "max_reader_version",
            any(
                c.supported_reader_version is not None
                and c.required_reader_version > c.supported_reader_version
                for c in listed
            ),
        ),
        (
            "max_writer_version",
            any(
                c.supported_writer_version is not None
                and c.required_writer_version > c.supported_writer_version
                for c in listed
            ),
        ),
        ("reader_features", any(c.missing_reader_features for c in listed)),
        ("writer_features", any(c.missing_writer_features for c in listed)),
    ):
        if short:
            return field
    return "max_reader_version"


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"
