"""The one stage chain: ``plan_pipeline(path) -> PlannedPipeline``; ``run_pipeline`` executes it.

The chain is declared once, as the ordered :data:`STAGES` (load -> compile -> runtime
profile -> context -> authority -> execution plan -> validate), and every caller loops
over it: :func:`plan_pipeline` runs all of it, :func:`run_pipeline` is ``plan_pipeline``
plus :func:`execute_pipeline`, and callers that must stop between stages (the pytest
adapter compiles at collection and plans later; ``planguard compile`` stops after
compile, or after the execution plan with ``--plan``) run a slice of it with
:func:`run_stages`.  Nobody else strings the stage functions together.

A run compiles exactly once: the compile stage is the only caller of
``compile_semantic_program``, and a chain that starts from an already compiled program
(``plan_pipeline(path, program=...)``) skips load and compile.  The dataset resolver is
the program's own ``dataset_bindings``; every later stage reaches it through the
authority object, so registration, scan overrides and execution see one object.

Each stage calls its stage function through this module's globals at call time, so that
the invariant spies (which rebind a function wherever it is bound by name) see every call.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from reference_impl.engine.runtime import DataFusionRuntimeProfile, build_runtime_profile
from reference_impl.engine.session import (
    SemanticExecutionContext,
    build_semantic_execution_context,
)
from reference_impl.execution import ExecutionReport, execute_plan
from reference_impl.relspec.authority import (
    ExecutionAuthorityContext,
    ExecutorFunction,
    build_execution_authority,
)
from reference_impl.relspec.contracts import ExecutionPlan, PolicyValidationResult
from reference_impl.relspec.execution_plan import compile_execution_plan
from reference_impl.relspec.plan_cache import PlanCache
from reference_impl.relspec.policy_validation import validate_policy_bundle
from reference_impl.relspec.scan_overrides import apply_scan_unit_overrides
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
from reference_impl.semantics.model import SemanticModel
from reference_impl.semantics.program import SemanticProgramManifest

Mode = Literal["error", "warn", "ignore"]
StageName = Literal[
    "load", "compile", "runtime_profile", "context", "authority", "execution_plan", "validate"
]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """What the caller decides about a run (the manifest cannot)."""

    mode: Mode | None = None
    """Overrides ``policy.mode`` (the rollout switch); None keeps the manifest's."""
    executors: Mapping[str, str | ExecutorFunction] | None = None
    """The executors that exist (see ``build_execution_authority``)."""
    trusted_modules: tuple[str, ...] = ()
    """Packages UDF providers and the bootstrap hook may be imported from besides the
    manifest's directory and ``reference_impl``."""
    trace: bool = False
    """Give every plan bundle its rule trace (``EXPLAIN VERBOSE`` instead of ``EXPLAIN``:
    the same plans, with the plan after every optimizer rule; what a plan gate records).
    A run that only executes the views needs none."""
    plan_cache: PlanCache | None = None
    """Where the execution-plan stage may reuse view plans (:mod:`.relspec.plan_cache`)."""
    views: frozenset[str] | None = None
    """Plan only these views (each with the views it reads), for a caller that reads no
    other, such as one shard of a plan gate; None plans every view.  Such a plan covers
    part of the program: it is not one to validate or execute as the program's."""


@dataclass(frozen=True, slots=True)
class PipelineState:
    """What the chain has built so far: each stage fills in one more field."""

    source: str | os.PathLike[str]
    options: PipelineOptions = PipelineOptions()
    model: SemanticModel | None = None
    program: SemanticProgramManifest | None = None
    runtime_profile: DataFusionRuntimeProfile | None = None
    semantic_context: SemanticExecutionContext | None = None
    authority: ExecutionAuthorityContext | None = None
    plan: ExecutionPlan | None = None
    validation: PolicyValidationResult | None = None


def _need(value: _T | None, stage: StageName) -> _T:
    if value is None:
        raise ValueError(f"the pipeline state lacks what stage {stage!r} produces")
    return value


# ------------------------------------------------------------------------ the stages


def _load(state: PipelineState) -> PipelineState:
    return dataclasses.replace(state, model=load_manifest(state.source))


def _compile(state: PipelineState) -> PipelineState:
    program = compile_semantic_program(
        _need(state.model, "load"), analyses=state.options.plan_cache
    )
    return dataclasses.replace(state, program=program)


def _runtime_profile(state: PipelineState) -> PipelineState:
    program = _need(state.program, "compile")
    profile = build_runtime_profile(program, trusted_modules=state.options.trusted_modules)
    if state.options.mode is not None:
        profile = profile.with_mode(state.options.mode)
    return dataclasses.replace(state, runtime_profile=profile)


def _context(state: PipelineState) -> PipelineState:
    semantic = build_semantic_execution_context(
        _need(state.program, "compile"), _need(state.runtime_profile, "runtime_profile")
    )
    return dataclasses.replace(state, semantic_context=semantic)


def _authority(state: PipelineState) -> PipelineState:
    authority = build_execution_authority(
        _need(state.semantic_context, "context"), executors=state.options.executors
    )
    return dataclasses.replace(state, authority=authority)


def _execution_plan(state: PipelineState) -> PipelineState:
    plan = compile_execution_plan(
        _need(state.authority, "authority"),
        cache=state.options.plan_cache,
        trace=state.options.trace,
        views=state.options.views,
    )
    return dataclasses.replace(state, plan=plan)


def _validate(state: PipelineState) -> PipelineState:
    authority = _need(state.authority, "authority")
    validation = validate_policy_bundle(
        _need(state.plan, "execution_plan"),
        runtime_profile=authority.semantic_context.runtime_profile,
        udf_snapshot=authority.capabilities.udf_snapshot,
    )
    return dataclasses.replace(state, validation=validation)


@dataclass(frozen=True, slots=True)
class Stage:
    name: StageName
    run: Callable[[PipelineState], PipelineState]


STAGES: tuple[Stage, ...] = (
    Stage("load", _load),
    Stage("compile", _compile),
    Stage("runtime_profile", _runtime_profile),
    Stage("context", _context),
    Stage("authority", _authority),
    Stage("execution_plan", _execution_plan),
    Stage("validate", _validate),
)
"""The stage chain, in order.  Declared here once; every caller loops over it."""

assert tuple(stage.name for stage in STAGES) == get_args(StageName)


def run_stages(
    state: PipelineState, *, first: StageName = "load", last: StageName = "validate"
) -> PipelineState:
    """Run the stages from ``first`` to ``last`` (both included), in chain order."""
    names = [stage.name for stage in STAGES]
    start, stop = names.index(first), names.index(last)
    if start > stop:
        raise ValueError(f"stage {first!r} comes after {last!r}")
    for stage in STAGES[start : stop + 1]:
        state = stage.run(state)
    return state


# ------------------------------------------------------------------ the typed results


@dataclass(frozen=True, slots=True)
class PlannedPipeline:
    """A compiled, planned and validated pipeline: everything before execution."""

    program: SemanticProgramManifest
    runtime_profile: DataFusionRuntimeProfile
    semantic_context: SemanticExecutionContext
    authority: ExecutionAuthorityContext
    plan: ExecutionPlan
    validation: PolicyValidationResult
    options: PipelineOptions

    @classmethod
    def from_state(cls, state: PipelineState) -> PlannedPipeline:
        """The complete result of a chain that ran to ``validate``."""
        return cls(
            program=_need(state.program, "compile"),
            runtime_profile=_need(state.runtime_profile, "runtime_profile"),
            semantic_context=_need(state.semantic_context, "context"),
            authority=_need(state.authority, "authority"),
            plan=_need(state.plan, "execution_plan"),
            validation=_need(state.validation, "validate"),
            options=state.options,
        )


@dataclass(frozen=True, slots=True)
class PipelineRun:
    authority: ExecutionAuthorityContext
    plan: ExecutionPlan
    validation: PolicyValidationResult
    execution: ExecutionReport | None
    """None when the run stopped after validation (``execute=False`` or policy errors)."""
    planned: PlannedPipeline
    """Everything the run built before execution."""


def pipeline_options(
    *,
    mode: Mode | None = None,
    executors: Mapping[str, str | ExecutorFunction] | None = None,
    trusted_modules: Sequence[str] = (),
) -> PipelineOptions:
    return PipelineOptions(mode=mode, executors=executors, trusted_modules=tuple(trusted_modules))


def compile_program(
    path: str | os.PathLike[str], options: PipelineOptions | None = None
) -> SemanticProgramManifest:
    """The load and compile stages alone (engine-free): the program ``plan_pipeline``
    can start from (``options.plan_cache`` keeps the views' SQL analyses too)."""
    state = PipelineState(path, options or PipelineOptions())
    return _need(run_stages(state, last="compile").program, "compile")


def plan_pipeline(
    path: str | os.PathLike[str],
    *,
    program: SemanticProgramManifest | None = None,
    mode: Mode | None = None,
    executors: Mapping[str, str | ExecutorFunction] | None = None,
    trusted_modules: Sequence[str] = (),
) -> PlannedPipeline:
    """Compile once, build the context and the authority, plan and validate; never execute.

    ``program``: the program already compiled from ``path`` (``compile_program(path)``);
    the chain then starts after compile, so the run still compiles once.
    ``trusted_modules``: packages UDF providers and the bootstrap hook may be imported
    from besides the manifest's directory and ``reference_impl``; the caller grants them
    (the manifest cannot).  ``executors`` replaces the built-in set (``datafusion``
    alone); the manifest's ``[executors.*]`` are added to it."""
    options = pipeline_options(mode=mode, executors=executors, trusted_modules=trusted_modules)
    state = PipelineState(path, options, program=program)
    return PlannedPipeline.from_state(
        run_stages(state, first="load" if program is None else "runtime_profile")
    )


def execute_pipeline(
    plan: ExecutionPlan, authority: ExecutionAuthorityContext, *, dry_run: bool = False
) -> ExecutionReport:
    """Apply the plan's scan overrides through the run's resolver, then execute the plan."""
    semantic = authority.semantic_context
    apply_scan_unit_overrides(
        semantic.session,
        semantic.dataset_resolver,
        plan.scan_policy_overrides_by_key,
        data_source=semantic.data_source,
    )
    return execute_plan(plan, authority, dry_run=dry_run)


def run_pipeline(
    manifest_path: str | os.PathLike[str],
    *,
    execute: bool = True,
    mode: Mode | None = None,
    executors: Mapping[str, str | ExecutorFunction] | None = None,
    trusted_modules: Sequence[str] = (),
) -> PipelineRun:
    """``plan_pipeline``, then (unless told not to, or policy fails) execute.

    A run whose execution skipped outputs says so in ``execution.findings``
    (``execution.ok``).  See :func:`plan_pipeline` for the arguments."""
    planned = plan_pipeline(
        manifest_path, mode=mode, executors=executors, trusted_modules=trusted_modules
    )
    report = None
    if execute and planned.validation.ok:
        report = execute_pipeline(planned.plan, planned.authority)
    return PipelineRun(
        authority=planned.authority,
        plan=planned.plan,
        validation=planned.validation,
        execution=report,
        planned=planned,
    )
