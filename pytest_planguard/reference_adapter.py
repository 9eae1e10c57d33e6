"""The default adapter: the reference pipeline of ``reference_impl``.

Imported only when planguard actually drives a pipeline, never at pytest start-up.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pytest_planguard.adapter import (
    BundleView,
    EngineInfo,
    Finding,
    PipelineFingerprints,
    ResolverStage,
    ValidationOutcome,
    copy_with,
)

REFERENCE_COMPILE_ENTRYPOINTS = ("reference_impl.semantics.compile:compile_semantic_program",)
REFERENCE_RESOLVER_STAGES = (
    ResolverStage("registration", "reference_impl.engine.data_source:register_dataset", "resolver"),
    ResolverStage(
        "scan_override",
        "reference_impl.relspec.scan_overrides:apply_scan_unit_overrides",
        "resolver",
    ),
    ResolverStage(
        "execution",
        "reference_impl.execution:execute_plan",
        "authority.semantic_context.dataset_resolver",
    ),
)


@dataclass(frozen=True, slots=True)
class ReferenceContext:
    state: Any
    """reference_impl.pipeline.PipelineState, run through the ``authority`` stage"""

    @property
    def authority(self) -> Any:
        """reference_impl.relspec.authority.ExecutionAuthorityContext"""
        return self.state.authority


class ReferenceAdapter:
    """Drives ``reference_impl`` through slices of its one stage chain
    (``reference_impl.pipeline.STAGES``): compile at collection, the rest later."""

    compile_entrypoints: Sequence[str] = REFERENCE_COMPILE_ENTRYPOINTS
    resolver_stages: Sequence[ResolverStage] = REFERENCE_RESOLVER_STAGES

    def __init__(
        self,
        *,
        trusted_modules: Sequence[str] = (),
        executors: Mapping[str, Any] | None = None,
        plan_cache: Any = None,
        trace: bool = True,
    ) -> None:
        self.trace = trace
        """Give each bundle its rule trace (``EXPLAIN VERBOSE``; the same plans either
        way)."""
        self.trusted_modules = tuple(trusted_modules)
        """Packages providers may be imported from besides the manifest's directory and
        ``reference_impl``: granted by whoever runs pytest, never by the manifest."""
        self.executors = executors
        """The executors that exist (name -> callable or ``module:callable``), as for
        ``run_pipeline(executors=...)``; None: ``datafusion`` plus ``[executors.*]``."""
        self.plan_cache = plan_cache
        """Where the execution-plan stage may reuse view plans
        (:class:`reference_impl.relspec.plan_cache.PlanCache`); None plans afresh."""
        self.views: frozenset[str] | None = None
        """Plan only these views (:meth:`with_views`); None plans every view."""

    def with_views(self, views: Collection[str]) -> Self:
        """A copy of this adapter planning only ``views`` (which include the views they
        read): for a run whose items read no other bundle, such as one shard's."""
        return copy_with(self, views=frozenset(views))

    def with_plan_cache(self, cache: Any) -> Self:
        """A copy of this adapter (of a subclass too) planning through ``cache``."""
        return copy_with(self, plan_cache=cache)

    def for_fingerprints(self) -> Self:
        """A copy of this adapter without the rule trace, for runs that only compare
        fingerprints (the determinism check): no fingerprint covers the trace, and
        untraced planning gives the same plans for less (``EXPLAIN``, not ``VERBOSE``)."""
        return copy_with(self, trace=False)

    def compile(self, manifest: Path) -> Any:
        from reference_impl.pipeline import PipelineOptions, compile_program

        return compile_program(manifest, PipelineOptions(plan_cache=self.plan_cache))

    def view_names(self, compiled: Any) -> Sequence[str]:
        return tuple(compiled.view_names())

    def view_dependencies(self, compiled: Any) -> Mapping[str, tuple[str, ...]]:
        """View -> the views its SQL reads (the compiled view DAG)."""
        return {view.name: tuple(view.view_dependencies) for view in compiled.views}

    def build_context(self, compiled: Any) -> ReferenceContext:
        from reference_impl.pipeline import PipelineOptions, PipelineState, run_stages

        options = PipelineOptions(
            executors=self.executors,
            trusted_modules=self.trusted_modules,
            plan_cache=self.plan_cache,
            trace=self.trace,
            views=self.views,
        )
        start = PipelineState(compiled.source_path, options, program=compiled)
        return ReferenceContext(run_stages(start, first="runtime_profile", last="authority"))

    def plan(self, context: ReferenceContext) -> Any:
        from reference_impl.pipeline import run_stages

        return run_stages(context.state, first="execution_plan", last="execution_plan").plan

    def validate(self, plan: Any, context: ReferenceContext) -> ValidationOutcome:
        import dataclasses

        from reference_impl.pipeline import run_stages

        planned = dataclasses.replace(context.state, plan=plan)
        result = run_stages(planned, first="validate", last="validate").validation
        assert result is not None  # the validate stage fills it in
        return ValidationOutcome(
            ok=result.ok,
            findings=tuple(
                Finding(
                    code=str(issue.code),
                    severity=issue.severity,
                    subject=issue.subject,
                    message=issue.message,
                    subject_kind=issue.subject_kind,
                )
                for issue in result.issues
            ),
            artifact=result.artifact().to_bytes(),
        )

    def execute(self, plan: Any, context: ReferenceContext, *, dry_run: bool) -> Any:
        from reference_impl.pipeline import execute_pipeline

        report = execute_pipeline(plan, context.authority, dry_run=dry_run)
        if not dry_run and not report.ok:  # outputs skipped: a failure in every mode
            from pytest_planguard.errors import PlanguardCode, PlanguardError

            raise PlanguardError(
                PlanguardCode.POLICY_FAILED,
                "outputs not written: "
                + "; ".join(f"{f.code} {f.subject}: {f.message}" for f in report.findings),
                file=context.authority.semantic_context.manifest.source_path,
            )
        return report

    def fingerprints(
        self, compiled: Any, context: ReferenceContext, plan: Any, validation: ValidationOutcome
    ) -> PipelineFingerprints:
        return PipelineFingerprints(
            manifest=compiled.fingerprint,
            plans={view: bundle.fingerprint for view, bundle in plan.plan_bundles_by_view.items()},
            runtime=context.authority.runtime_fingerprint,
            validation_artifact=validation.artifact,
        )

    def bundles(self, plan: Any) -> Mapping[str, BundleView]:
        out: dict[str, BundleView] = {}
        for node in plan.view_nodes:
            bundle = plan.plan_bundles_by_view.get(node.name)
            if bundle is None:
                failure = node.failure
                out[node.name] = BundleView(
                    view=node.name,
                    p0="",
                    p1="",
                    p2="",
                    schema=(),
                    status=node.status,
                    message=failure.message if failure is not None else node.status,
                )
                continue
            signals = plan.plan_signals_by_view[node.name]
            out[node.name] = BundleView(
                view=node.name,
                p0=bundle.p0,
                p1=bundle.p1,
                p2=bundle.p2,
                schema=tuple((f.name, f.type, f.nullable) for f in bundle.schema),
                signals={
                    "operator_counts": dict(signals.operator_counts),
                    "operator_total": signals.operator_total,
                    "repartition_count": signals.repartition_count,
                    "estimated_rows": signals.stats.row_count,
                    "estimated_rows_source": signals.stats.provenance,
                    "estimated_output_rows": signals.estimated_output_rows,
                    "required_udfs": list(bundle.required_udfs),
                    "scan_datasets": list(signals.lineage.datasets),
                },
                udfs=dict(bundle.udf_sources),
                trace=bundle.trace,
            )
        return out

    def project_view(
        self, context: ReferenceContext, view: str, columns: Sequence[str]
    ) -> BundleView:
        """``view``'s bundle with only ``columns`` selected, planned in the run's session
        (the gate's proof that added columns left the others alone)."""
        from pytest_planguard.session_adapter import projected_bundle

        return projected_bundle(context.authority.semantic_context.session, view, columns)

    def engine_info(self, context: ReferenceContext) -> EngineInfo:
        from reference_impl.relspec.frame_plan import session_settings

        caps = context.authority.capabilities
        semantic = context.authority.semantic_context
        return EngineInfo(
            versions={
                "datafusion": caps.datafusion_version,
                "deltalake": caps.deltalake_version,
                "pyarrow": caps.pyarrow_version,
            },
            settings=session_settings(context.authority.semantic_context.session),
            locations={name: dataset.location for name, dataset in semantic.datasets.items()},
            stores={name: store.url for name, store in semantic.dataset_resolver.stores.items()},
        )
