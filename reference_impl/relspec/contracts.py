"""Execution-planning contracts: the typed records planning produces and everything after it reads.

``ExecutionPlan`` carries ``view_nodes``, ``scan_units``, ``task_plan_metrics`` (keyed by
task name), ``lineage_by_view``, ``plan_signals_by_view``, ``plan_bundles_by_view`` and
``scan_policy_overrides_by_key`` (keyed by scan-unit key).  There is no ``tasks`` and no
``scan_policies``.  Every consumer of plan facts reads :class:`PlanSignals`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Literal

import msgspec

from reference_impl.engine.delta_protocol import DeltaProtocol, DeltaProtocolCompatibility
from reference_impl.engine.failures import ViewFailure
from reference_impl.semantics.model import DeltaSupportSpec

AUTHORITY_CONTRACT_VERSION = "authority/1"
EXECUTION_PLAN_CONTRACT_VERSION = "execution-plan/1"
POLICY_VALIDATION_CONTRACT_VERSION = "policy-validation/1"


class PolicyCode(StrEnum):
    """Stable codes of policy findings (the CLI exits 1 when one is an error)."""

    UDFS_DISABLED = "UDFS_DISABLED"
    UDF_MISSING = "UDF_MISSING"
    UDF_UNDECLARED = "UDF_UNDECLARED"
    UDF_DECLARED_UNUSED = "UDF_DECLARED_UNUSED"
    DELTA_PROTOCOL_INCOMPATIBLE = "DELTA_PROTOCOL_INCOMPATIBLE"
    DELTA_PROTOCOL_SUPPORT_UNCONFIGURED = "DELTA_PROTOCOL_SUPPORT_UNCONFIGURED"
    SMALL_INPUT_SCAN_POLICY = "SMALL_INPUT_SCAN_POLICY"
    SCAN_DATASET_NOT_IN_MANIFEST = "SCAN_DATASET_NOT_IN_MANIFEST"
    EXECUTOR_UNAVAILABLE = "EXECUTOR_UNAVAILABLE"
    STATS_UNAVAILABLE = "STATS_UNAVAILABLE"
    PLANNING_BUDGET_EXCEEDED = "PLANNING_BUDGET_EXCEEDED"
    VIEW_PLANNING_FAILED = "VIEW_PLANNING_FAILED"
    VIEW_UPSTREAM_FAILED = "VIEW_UPSTREAM_FAILED"
    OUTPUT_SCHEMA_MISMATCH = "OUTPUT_SCHEMA_MISMATCH"


Severity = Literal["error", "warning", "info"]
PlanningStatus = Literal["planned", "failed", "budget_exceeded", "skipped"]


class _Contract(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the frozen execution-planning contracts."""


class UdfSignature(_Contract, frozen=True, kw_only=True):
    name: str
    parameter_types: tuple[str, ...]
    return_type: str | None
    deterministic: bool | None
    source_hash: str | None = None
    """sha256 of the provider's code (:mod:`reference_impl.engine.udf_source`): a change of
    the UDF's body changes it, although the plans that call the UDF read the same."""


class CapabilitySnapshot(_Contract, frozen=True, kw_only=True):
    """What this engine build can do, recorded with the plan."""

    datafusion_version: str
    deltalake_version: str
    pyarrow_version: str
    supported_delta_protocol: DeltaSupportSpec | None
    udf_snapshot: Mapping[str, UdfSignature]


class EvidencePlan(_Contract, frozen=True, kw_only=True):
    """Which evidence compile_execution_plan gathers, decided before it runs."""

    views: tuple[str, ...]
    datasets: tuple[str, ...]
    statistics: Literal["scan", "plan"]
    retain_plans: tuple[str, ...]
    planning_budget_ms: int


class ViewNode(_Contract, frozen=True, kw_only=True):
    name: str
    sql: str
    dependencies: tuple[str, ...]
    required_udfs: tuple[str, ...]
    executor: str
    executor_available: bool
    status: PlanningStatus
    failure: ViewFailure | None
    scan_unit_keys: tuple[str, ...]
    consumers: int
    cache: bool
    """Selected for ``DataFrame.cache()`` at execution (read by >= N views, perf policy)."""
    declared_udfs: tuple[str, ...] = ()
    """The UDFs the manifest declares for the view (``udfs = [...]``)."""
    called_udfs: tuple[str, ...] = ()
    """The ``[udfs.*]`` UDFs the view's own SQL calls, read from its logical plan with the
    upstream views it reads left out (their calls are theirs to declare); for a view that
    failed to plan, the UDF whose call failed.  ``required_udfs`` is the union of these,
    the declarations and the upstream views' calls: everything the view needs to run."""


class ScanUnit(_Contract, frozen=True, kw_only=True):
    key: str
    dataset_name: str
    in_manifest: bool
    delta_version: int | None
    delta_protocol: DeltaProtocol | None
    protocol_compatibility: DeltaProtocolCompatibility | None
    projected_columns: tuple[str, ...]
    pushed_filters: tuple[str, ...]
    views: tuple[str, ...]


class PlanStatistics(_Contract, frozen=True, kw_only=True):
    """Normalized statistics with their provenance."""

    row_count: int | None
    total_bytes: int | None
    exact: bool
    provenance: Literal["explain:scan", "unavailable"]
    """``explain:scan``: the sum, over the view's scans, of each dataset's statistics from
    EXPLAIN with ``datafusion.explain.show_statistics``."""


class TaskPlanMetrics(_Contract, frozen=True, kw_only=True):
    task_name: str
    stats_row_count: int | None
    stats_total_bytes: int | None
    stats_exact: bool
    partition_count: int
    repartition_count: int
    operator_counts: Mapping[str, int]
    logical_operator_counts: Mapping[str, int]
    estimated_output_rows: int | None


class LineageRecord(_Contract, frozen=True, kw_only=True):
    view: str
    datasets: tuple[str, ...]
    columns_by_dataset: Mapping[str, tuple[str, ...]]
    filters_by_dataset: Mapping[str, tuple[str, ...]]


class SchemaField(_Contract, frozen=True, kw_only=True):
    name: str
    type: str
    nullable: bool


class ScanProtocolSummary(_Contract, frozen=True, kw_only=True):
    scan_units: int
    compatible: int
    incompatible: int
    unconfigured: int
    not_delta: int
    incompatible_datasets: tuple[str, ...]


class PlanSignals(_Contract, frozen=True, kw_only=True):
    """The one typed record of a view's plan facts that every plan consumer reads
    (validation, the gate's signals, size heuristics), so no consumer parses plan text."""

    view: str
    schema: tuple[SchemaField, ...]
    lineage: LineageRecord
    stats: PlanStatistics
    scan_protocol: ScanProtocolSummary
    operator_counts: Mapping[str, int]
    operator_total: int
    repartition_count: int
    partition_count: int
    estimated_output_rows: int | None
    """The physical plan root's row estimate (``runtime.statistics = "plan"`` only)."""
    plan_fingerprint: str
    runtime_fingerprint: str
    scan_stats: Mapping[str, PlanStatistics] = {}
    """Normalized statistics of each scan unit the view reads (keyed by scan-unit key):
    the scanned dataset's rows and bytes, with provenance.  Scan overrides read these."""


class PlanBundle(_Contract, frozen=True, kw_only=True):
    """P0 / P1 / P2 of one view, from a DataFrame that was never executed."""

    view: str
    p0: str
    p1: str
    p2: str
    schema: tuple[SchemaField, ...]
    required_udfs: tuple[str, ...]
    scan_unit_keys: tuple[str, ...]
    fingerprint: str
    udf_sources: Mapping[str, str] = {}
    """For each UDF the view's plan calls (its own calls and those of the upstream views
    DataFusion inlines into it) whose code could be read: its source hash
    (``UdfSignature.source_hash``).  Part of ``fingerprint`` when not empty."""
    trace: tuple[tuple[str, str | None], ...] = ()
    """The rule trace of the view's one ``EXPLAIN VERBOSE`` (stage name, plan text or None
    where the stage left the plan unchanged; see ``FramePlan.trace`` in
    :mod:`reference_impl.relspec.frame_plan`).  Not part of ``fingerprint``: it explains
    the plans, it is not one of them."""


class OutputColumn(_Contract, frozen=True, kw_only=True):
    """One column of an output, as a Delta type (``long``, ``string``, or the JSON of a
    nested type)."""

    name: str
    type: str
    nullable: bool


class OutputTarget(_Contract, frozen=True, kw_only=True):
    """A declared output and the Delta table at its location, compared before any write.

    ``schema_problems`` lists, in words, why writing the view with the output's
    ``schema_mode`` would fail or change data silently (empty: the write can go ahead).
    Not part of the plan fingerprint: the table at an output location changes with every
    run, the plan does not.
    """

    name: str
    view: str
    location: str
    mode: Literal["overwrite", "append"]
    schema_mode: Literal["strict", "overwrite", "merge"]
    table_exists: bool
    table_version: int | None
    view_columns: tuple[OutputColumn, ...]
    table_columns: tuple[OutputColumn, ...]
    schema_problems: tuple[str, ...]


class ScanPolicyOverride(_Contract, frozen=True, kw_only=True):
    """How execution registers the dataset of one scan unit (keyed by scan-unit key).

    ``pinned_version``: the Delta provider, pinned at the version the plan was built
    against.  ``small_input`` (the unit's statistics say fewer rows than
    ``policy.small_input_rows``): the dataset, read once at the planned version, is
    registered as a one-partition in-memory table: no file listing or file statistics at
    execution, and a physical plan scanning ``partitions=1`` memory instead of files.
    """

    scan_unit_key: str
    dataset_name: str
    policy: Literal["small_input", "pinned_version"]
    delta_version: int | None
    reason: str


class ExecutionPlan(_Contract, frozen=True, kw_only=True):
    contract_version: str
    manifest_fingerprint: str
    runtime_fingerprint: str
    fingerprint: str
    view_nodes: tuple[ViewNode, ...]
    scan_units: tuple[ScanUnit, ...]
    task_plan_metrics: Mapping[str, TaskPlanMetrics]
    lineage_by_view: Mapping[str, LineageRecord]
    plan_signals_by_view: Mapping[str, PlanSignals]
    plan_bundles_by_view: Mapping[str, PlanBundle]
    scan_policy_overrides_by_key: Mapping[str, ScanPolicyOverride]
    output_targets: tuple[OutputTarget, ...] = ()


class PolicyValidationIssue(_Contract, frozen=True, kw_only=True, omit_defaults=True):
    code: PolicyCode
    severity: Severity
    subject: str
    subject_kind: Literal["view", "dataset", "scan_unit", "output"]
    message: str
    field_path: str | None = None
    """The manifest field to change (``outputs.x.schema_mode``), when one is known."""


class PolicyValidationArtifact(_Contract, frozen=True, kw_only=True):
    """The structured, byte-stable record of one validation."""

    contract_version: str
    mode: Literal["error", "warn", "ignore"]
    issue_count: int
    error_count: int
    codes: tuple[str, ...]
    runtime_hash: str
    plan_hash: str
    is_deterministic: bool
    issues: tuple[PolicyValidationIssue, ...]

    def to_bytes(self) -> bytes:
        return msgspec.json.encode(self, order="sorted")


class PolicyValidationResult(_Contract, frozen=True, kw_only=True):
    mode: Literal["error", "warn", "ignore"]
    issues: tuple[PolicyValidationIssue, ...]
    runtime_hash: str
    plan_hash: str
    is_deterministic: bool

    @classmethod
    def from_issues(
        cls,
        issues: Iterable[PolicyValidationIssue],
        *,
        mode: Literal["error", "warn", "ignore"] = "error",
        runtime_hash: str = "",
        plan_hash: str = "",
    ) -> PolicyValidationResult:
        """The result of ``issues`` in any order: sorted (code, subject, severity, message),
        so the artifact bytes depend only on the issues; not deterministic when planning
        was cut by the budget (``PLANNING_BUDGET_EXCEEDED``: what was planned depends on
        the machine's speed)."""
        ordered = tuple(sorted(issues, key=lambda i: (i.code, i.subject, i.severity, i.message)))
        return cls(
            mode=mode,
            issues=ordered,
            runtime_hash=runtime_hash,
            plan_hash=plan_hash,
            is_deterministic=not any(
                issue.code == PolicyCode.PLANNING_BUDGET_EXCEEDED for issue in ordered
            ),
        )

    @property
    def errors(self) -> tuple[PolicyValidationIssue, ...]:
        return tuple(issue for issue in self.issues if issue.severity == "error")

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> tuple[str, ...]:
        return tuple(sorted({str(issue.code) for issue in self.issues}))

    def artifact(self) -> PolicyValidationArtifact:
        return PolicyValidationArtifact(
            contract_version=POLICY_VALIDATION_CONTRACT_VERSION,
            mode=self.mode,
            issue_count=len(self.issues),
            error_count=len(self.errors),
            codes=self.codes(),
            runtime_hash=self.runtime_hash,
            plan_hash=self.plan_hash,
            is_deterministic=self.is_deterministic,
            issues=self.issues,
        )
