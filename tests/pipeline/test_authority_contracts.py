"""Pins of the authority layers (issue 17.5, 17.6).

The shape of ``SemanticExecutionContext`` and ``ExecutionAuthorityContext`` (field names
and types) and their contents (evidence plan, executor map, capability snapshot); each
layer's own contract version, checked by the stage that reads it;
``PolicyValidationResult.from_issues``; ``UDF_MISSING`` beside ``UDFS_DISABLED``; and a
performance-only change moving the runtime hash.  Each with a twin.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import datafusion
import deltalake
import msgspec
import pyarrow
import pytest

import reference_impl.relspec.authority as authority_module
from reference_impl.engine.runtime import DataFusionRuntimeProfile
from reference_impl.engine.session import (
    SemanticExecutionContext,
    build_semantic_execution_context,
)
from reference_impl.errors import ContractVersionError
from reference_impl.execution import execute_plan
from reference_impl.pipeline import PlannedPipeline, plan_pipeline
from reference_impl.relspec.authority import ExecutionAuthorityContext, build_execution_authority
from reference_impl.relspec.contracts import (
    AUTHORITY_CONTRACT_VERSION,
    EXECUTION_PLAN_CONTRACT_VERSION,
    CapabilitySnapshot,
    EvidencePlan,
    PolicyCode,
    PolicyValidationIssue,
    PolicyValidationResult,
)
from reference_impl.relspec.execution_plan import compile_execution_plan
from reference_impl.relspec.policy_validation import validate_policy_bundle
from reference_impl.semantics.program import (
    SEMANTIC_CONTRACT_VERSION,
    DatasetBindings,
    SemanticProgramManifest,
)

WriteManifest = Callable[..., Path]
DeltaTableFactory = Callable[..., Path]

MANIFEST = """
[datasets.t]
format = "delta"
location = "t"

[views.v]
sql = "SELECT a FROM t"

[views.w]
sql = "SELECT a FROM v"

[outputs.w]
view = "w"
location = "out/w"

[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""


@pytest.fixture
def run(write_manifest: WriteManifest, delta_table: DeltaTableFactory) -> PlannedPipeline:
    delta_table("t", {"a": [1, 2, 3]})
    return plan_pipeline(write_manifest(MANIFEST))


def shape(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


# -- the shape of the two contexts ----------------------------------------------------


def test_the_semantic_context_has_semantic_fields_only() -> None:
    from reference_impl.engine.data_source import DataSourceConfig, RegisteredDataset
    from reference_impl.engine.failures import ViewFailure

    assert shape(SemanticExecutionContext) == {
        "manifest": SemanticProgramManifest,
        "dataset_resolver": DatasetBindings,
        "runtime_profile": DataFusionRuntimeProfile,
        "session": Any,
        "datasets": Mapping[str, RegisteredDataset],
        "registered_udfs": tuple[str, ...],
        "view_frames": Mapping[str, Any],
        "view_failures": Mapping[str, ViewFailure],
        "data_source": DataSourceConfig,
        "output_locations": Mapping[str, str],
        "udf_sources": Mapping[str, str],
    }
    # no orchestration state in the semantic kernel (the review's 8.7)
    assert not {"evidence_plan", "executor_map", "capabilities"} & set(
        shape(SemanticExecutionContext)
    )


def test_the_authority_context_wraps_the_semantic_one_with_orchestration_fields() -> None:
    assert shape(ExecutionAuthorityContext) == {
        "semantic_context": SemanticExecutionContext,
        "evidence_plan": EvidencePlan,
        "executor_map": Mapping[str, str],
        "capabilities": CapabilitySnapshot,
        "runtime_fingerprint": str,
        "executor_functions": Mapping[str, authority_module.ExecutorFunction],
        "contract_version": str,
    }


def test_twin_the_built_authority_holds_what_its_fields_say(run: PlannedPipeline) -> None:
    authority = run.authority
    semantic = authority.semantic_context
    assert semantic.dataset_resolver is semantic.manifest.dataset_bindings
    assert semantic.data_source.resolver is semantic.dataset_resolver
    assert semantic.data_source.mode == "semantic-authority"
    assert dict(semantic.output_locations) == {"w": str(Path(run.program.root) / "out" / "w")}
    evidence = authority.evidence_plan
    assert evidence.views == ("v", "w")  # topological order
    assert evidence.datasets == ("t",)
    assert evidence.statistics == "scan"
    assert evidence.retain_plans == ("P0", "P1", "P2")
    assert evidence.planning_budget_ms == run.runtime_profile.perf.planning_budget_ms
    assert dict(authority.executor_map) == {"datafusion": "datafusion-python"}
    assert dict(authority.executor_functions) == {}
    caps = authority.capabilities
    assert (caps.datafusion_version, caps.deltalake_version, caps.pyarrow_version) == (
        datafusion.__version__,
        deltalake.__version__,
        pyarrow.__version__,
    )
    assert caps.supported_delta_protocol == run.program.policy.delta_support
    assert dict(caps.udf_snapshot) == {}
    assert authority.contract_version == AUTHORITY_CONTRACT_VERSION
    assert run.plan.runtime_fingerprint == authority.runtime_fingerprint


# -- each layer carries and checks its own version ------------------------------------


def test_each_stage_refuses_a_contract_of_another_version(run: PlannedPipeline) -> None:
    semantic = run.semantic_context
    old_program = msgspec.structs.replace(run.program, semantic_contract_version="semantic/0")
    with pytest.raises(ContractVersionError, match="semantic contract"):
        build_semantic_execution_context(old_program, run.runtime_profile)
    old_authority = dataclasses.replace(run.authority, contract_version="authority/0")
    with pytest.raises(ContractVersionError, match="authority contract"):
        compile_execution_plan(old_authority)
    with pytest.raises(ContractVersionError, match="authority contract"):
        execute_plan(run.plan, old_authority, dry_run=True)
    old_plan = msgspec.structs.replace(run.plan, contract_version="execution-plan/0")
    with pytest.raises(ContractVersionError, match="execution plan contract"):
        validate_policy_bundle(
            old_plan,
            runtime_profile=run.runtime_profile,
            udf_snapshot=run.authority.capabilities.udf_snapshot,
        )
    with pytest.raises(ContractVersionError, match="execution plan contract"):
        execute_plan(old_plan, run.authority, dry_run=True)
    assert semantic.manifest.semantic_contract_version == SEMANTIC_CONTRACT_VERSION


def test_twin_the_versions_move_independently(
    run: PlannedPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new authority version changes the authority alone: the semantic program and the
    execution plan keep theirs, and the current versions are accepted everywhere."""
    monkeypatch.setattr(
        "reference_impl.relspec.execution_plan.AUTHORITY_CONTRACT_VERSION", "authority/2"
    )
    with pytest.raises(ContractVersionError, match="'authority/1'; this stage reads"):
        compile_execution_plan(run.authority)
    authority = dataclasses.replace(
        build_execution_authority(run.semantic_context), contract_version="authority/2"
    )
    plan = compile_execution_plan(authority)
    assert plan.contract_version == EXECUTION_PLAN_CONTRACT_VERSION
    assert authority.semantic_context.manifest.semantic_contract_version == (
        SEMANTIC_CONTRACT_VERSION
    )


# -- PolicyValidationResult.from_issues -------------------------------------------------


def issue(code: PolicyCode, subject: str, severity: Any = "error") -> PolicyValidationIssue:
    return PolicyValidationIssue(
        code=code, severity=severity, subject=subject, subject_kind="view", message=subject
    )


def test_from_issues_sorts_so_the_artifact_ignores_the_order_found() -> None:
    found = [
        issue(PolicyCode.UDF_MISSING, "b"),
        issue(PolicyCode.UDFS_DISABLED, "a"),
        issue(PolicyCode.UDF_MISSING, "a", "warning"),
    ]
    forward = PolicyValidationResult.from_issues(found, runtime_hash="r", plan_hash="p")
    backward = PolicyValidationResult.from_issues(reversed(found), runtime_hash="r", plan_hash="p")
    assert forward.artifact().to_bytes() == backward.artifact().to_bytes()
    assert [(i.code, i.subject) for i in forward.issues] == [
        ("UDFS_DISABLED", "a"),
        ("UDF_MISSING", "a"),
        ("UDF_MISSING", "b"),
    ]
    assert forward.is_deterministic
    assert not forward.ok
    assert forward.mode == "error"


def test_twin_from_issues_of_a_budget_cut_plan_is_not_deterministic() -> None:
    cut = PolicyValidationResult.from_issues(
        [issue(PolicyCode.PLANNING_BUDGET_EXCEEDED, "v")], mode="warn"
    )
    assert not cut.is_deterministic
    assert cut.mode == "warn"
    assert PolicyValidationResult.from_issues([], mode="ignore").ok


# -- UDF_MISSING beside UDFS_DISABLED -----------------------------------------------------

# declared and provided for, but UDFs are disabled: the provider is never imported
UDF_VIEW = '[views.u]\nsql = "SELECT a FROM t"\nudfs = ["f"]\n[udfs.f]\nprovider = "nowhere:f"\n'


def test_disabled_udfs_report_the_missing_udf_too(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    """The review's skeleton emits both: disabling UDFs does not hide that ``f`` is not
    in the session."""
    delta_table("t", {"a": [1]})
    run = plan_pipeline(write_manifest(MANIFEST + UDF_VIEW + "[runtime]\nenable_udfs = false\n"))
    by_code = {(i.code, i.subject) for i in run.validation.issues}
    assert (PolicyCode.UDFS_DISABLED, "u") in by_code
    assert (PolicyCode.UDF_MISSING, "u") in by_code


def test_twin_disabled_udfs_whose_udf_the_snapshot_has_report_only_disabled(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("t", {"a": [1]})
    run = plan_pipeline(write_manifest(MANIFEST + UDF_VIEW + "[runtime]\nenable_udfs = false\n"))
    result = validate_policy_bundle(
        run.plan, runtime_profile=run.runtime_profile, udf_snapshot={"f": object()}
    )
    errors = [i.code for i in result.issues if i.subject == "u" and i.severity == "error"]
    assert errors == [PolicyCode.UDFS_DISABLED]


# -- a performance-only change moves the runtime hash ------------------------------------

PERF_EDITS = {
    "cache-tier": 'list_files_cache_limit = "2M"',
    "metadata-cache": 'metadata_cache_limit = "64M"',
    "plan-retention": 'retain_plans = ["P2"]',
    "stats-fallback": 'stats_fallback = "error"',
    "selective-cache": "cache_min_consumers = 0",
    "statistics": 'statistics = "plan"',
}


def planned_with(write_manifest: WriteManifest, runtime: str, name: str) -> PlannedPipeline:
    return plan_pipeline(write_manifest(MANIFEST + f"[runtime]\n{runtime}\n", name=name))


@pytest.mark.parametrize("edit", PERF_EDITS.values(), ids=list(PERF_EDITS))
def test_a_performance_only_change_moves_the_runtime_hash(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory, edit: str
) -> None:
    delta_table("t", {"a": [1, 2, 3]})
    base = plan_pipeline(write_manifest(MANIFEST))
    changed = planned_with(write_manifest, edit, "perf.toml")
    assert changed.plan.runtime_fingerprint != base.plan.runtime_fingerprint
    assert changed.validation.runtime_hash != base.validation.runtime_hash
    assert changed.program.fingerprint == base.program.fingerprint  # semantics untouched


def test_twin_restating_a_default_leaves_the_runtime_hash(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("t", {"a": [1, 2, 3]})
    base = plan_pipeline(write_manifest(MANIFEST))
    same = planned_with(
        write_manifest, 'list_files_cache_limit = "1M"\nstats_fallback = "warn"', "same.toml"
    )
    assert same.plan.runtime_fingerprint == base.plan.runtime_fingerprint


def test_the_runtime_hash_covers_policy_but_not_the_rollout_mode(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("t", {"a": [1, 2, 3]})
    path = write_manifest(MANIFEST)
    base = plan_pipeline(path)
    stricter = plan_pipeline(
        write_manifest(MANIFEST.replace("small_input_rows = 0", "small_input_rows = 7"), "p.toml")
    )
    assert stricter.plan.runtime_fingerprint != base.plan.runtime_fingerprint
    assert stricter.program.fingerprint == base.program.fingerprint
    warned = plan_pipeline(path, mode="warn")
    assert warned.plan.runtime_fingerprint == base.plan.runtime_fingerprint
