"""Stage *run*: ``run_pipeline(manifest_path) -> PipelineRun``.

THE one compile entrypoint of a run: it loads and compiles the manifest exactly once,
builds the semantic context and the execution authority, and passes the authority object
downstream (plan, validation, scan overrides, execution); nothing downstream recompiles.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from reference_impl.engine.runtime import build_runtime_profile
from reference_impl.engine.session import build_semantic_execution_context
from reference_impl.execution import ExecutionReport, execute_plan
from reference_impl.relspec.authority import (
    ExecutionAuthorityContext,
    ExecutorFunction,
    build_execution_authority,
)
from reference_impl.relspec.contracts import ExecutionPlan, PolicyValidationResult
from reference_impl.relspec.execution_plan import compile_execution_plan
from reference_impl.relspec.policy_validation import validate_policy_bundle
from reference_impl.relspec.scan_overrides import apply_scan_unit_overrides
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest


@dataclass(frozen=True, slots=True)
class PipelineRun:
    authority: ExecutionAuthorityContext
    plan: ExecutionPlan
    validation: PolicyValidationResult
    execution: ExecutionReport | None
    """None when the run stopped after validation (``execute=False`` or policy errors)."""


def run_pipeline(
    manifest_path: str | os.PathLike[str],
    *,
    execute: bool = True,
    mode: Literal["error", "warn", "ignore"] | None = None,
    executors: Mapping[str, str | ExecutorFunction] | None = None,
    trusted_modules: Sequence[str] = (),
) -> PipelineRun:
    """Compile once, plan, validate, and (unless told not to, or policy fails) execute.

    ``trusted_modules``: packages UDF providers and the bootstrap hook may be imported
    from besides the manifest's directory and ``reference_impl``; the caller grants them
    (the manifest cannot).

    ``executors`` replaces the built-in set (``datafusion`` alone); the manifest's
    ``[executors.*]`` are added to it (see ``build_execution_authority``).  A run whose
    execution skipped outputs says so in ``execution.findings`` (``execution.ok``)."""
    manifest = compile_semantic_program(load_manifest(manifest_path))
    profile = build_runtime_profile(manifest, trusted_modules=trusted_modules)
    if mode is not None:
        profile = profile.with_mode(mode)
    authority = build_execution_authority(
        build_semantic_execution_context(manifest, profile), executors=executors
    )
    plan = compile_execution_plan(authority)
    validation = validate_policy_bundle(
        plan,
        runtime_profile=profile,
        udf_snapshot=authority.capabilities.udf_snapshot,
    )
    report = None
    if execute and validation.ok:
        apply_scan_unit_overrides(
            authority.semantic_context.session,
            authority.semantic_context.dataset_resolver,
            plan.scan_policy_overrides_by_key,
        )
        report = execute_plan(plan, authority)
    return PipelineRun(authority=authority, plan=plan, validation=validation, execution=report)
