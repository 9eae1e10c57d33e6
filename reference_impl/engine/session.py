"""Stage *semantic context*: ``build_semantic_execution_context(manifest, runtime_profile)``.

Creates the DataFusion ``SessionContext`` with the profile's pinned settings, applies the
``datafusion.runtime.*`` cache settings with SQL ``SET``, registers every dataset through
the manifest's resolver, registers the UDFs from their providers (unless the profile
disables UDFs) and registers the views in topological order.

A view that DataFusion cannot plan does not abort the build: it is recorded in
``view_failures`` (an unknown function, a planning error, a failed upstream view, or a
view whose logical planning overran ``runtime.planning_budget_ms``), so that validation
can report it with a code for that view.

View SQL reaches DataFusion only through :func:`query_only` options: DDL, DML and
statements (``CREATE``, ``COPY ... TO``, ``SET``, ``SELECT ... INTO`` ...) are refused by
the engine itself, whatever semantic compile let through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from reference_impl.engine.data_source import (
    DataFileScope,
    DataSourceConfig,
    RegisteredDataset,
    is_engine_panic,
    register_dataset,
)
from reference_impl.engine.failures import ViewFailure
from reference_impl.engine.runtime import DataFusionRuntimeProfile, setting_field
from reference_impl.engine.trusted_import import import_trusted
from reference_impl.engine.udf_source import provider_source_hash
from reference_impl.errors import ErrorCode, ReferenceImplError, check_contract_version
from reference_impl.redaction import redact
from reference_impl.semantics.program import (
    SEMANTIC_CONTRACT_VERSION,
    DatasetBindings,
    SemanticProgramManifest,
)

_UNKNOWN_FUNCTION = re.compile(r"Invalid function '(?P<name>[^']+)'")


@dataclass(frozen=True, slots=True)
class SemanticExecutionContext:
    """Semantic-only context: the manifest, its resolver, the profile and the session.

    ``dataset_resolver`` is the very object ``manifest.dataset_bindings``.
    """

    manifest: SemanticProgramManifest
    dataset_resolver: DatasetBindings
    runtime_profile: DataFusionRuntimeProfile
    session: Any = field(repr=False)
    datasets: Mapping[str, RegisteredDataset]
    registered_udfs: tuple[str, ...]
    view_frames: Mapping[str, Any] = field(repr=False)
    """The never-executed DataFrame each registered view was planned from.  Left out of
    ``repr``: a DataFrame's repr executes it, and an executed DataFrame reports runtime
    filter values in its physical plan (a failing assert would change the plans)."""
    view_failures: Mapping[str, ViewFailure]
    data_source: DataSourceConfig
    """The manifest's data-source mode around ``dataset_resolver`` (the same object):
    every dataset registration and output location goes through it."""
    output_locations: Mapping[str, str]
    """Output name -> the location it is written to (``data_source.resolve_output``)."""
    udf_sources: Mapping[str, str] = field(default_factory=dict)
    """Registered UDF name -> the hash of its provider's code
    (:mod:`reference_impl.engine.udf_source`); a UDF whose code cannot be read is absent."""


def build_semantic_execution_context(
    manifest: SemanticProgramManifest, runtime_profile: DataFusionRuntimeProfile
) -> SemanticExecutionContext:
    """Create the session and register datasets, UDFs and views (see module docs)."""
    check_contract_version(
        "semantic", manifest.semantic_contract_version, SEMANTIC_CONTRACT_VERSION
    )
    try:
        resolver = manifest.dataset_bindings
        ctx = new_session(runtime_profile)
        if manifest.bootstrap is not None:
            _bootstrap(manifest, runtime_profile)
        scope = DataFileScope(
            root=manifest.root, allow_external=manifest.policy.allow_external_locations
        )
        data_source = DataSourceConfig.of(manifest)
        output_locations = {
            output.name: data_source.resolve_output(output) for output in manifest.outputs
        }
        datasets = {
            name: register_dataset(
                ctx,
                resolver,
                name,
                scope=scope,
                mode=data_source.mode,
                fallback_root=data_source.fallback_root,
            )
            for name in resolver.names()
        }
        udfs, udf_sources = _register_udfs(ctx, manifest, runtime_profile)
        frames, failures = _register_views(
            ctx, manifest, budget_ms=runtime_profile.perf.planning_budget_ms
        )
    except ReferenceImplError as err:
        raise err.with_file(manifest.source_path) from None
    return SemanticExecutionContext(
        manifest=manifest,
        dataset_resolver=resolver,
        runtime_profile=runtime_profile,
        session=ctx,
        datasets=datasets,
        registered_udfs=udfs,
        view_frames=frames,
        view_failures=failures,
        data_source=data_source,
        output_locations=output_locations,
        udf_sources=udf_sources,
    )


def new_session(profile: DataFusionRuntimeProfile) -> Any:
    """A ``SessionContext`` with every pinned setting of ``profile`` applied."""
    from datafusion import SessionConfig, SessionContext

    try:
        ctx = SessionContext(SessionConfig(dict(profile.session_settings)))
    except Exception as exc:
        # each value is checked at load; this names the setting if the engine disagrees
        key = next((k for k in sorted(profile.session_settings) if _rejects(k, profile)), "")
        raise _setting_error(key, profile.session_settings.get(key, ""), exc) from None
    for key, value in sorted(profile.runtime_settings.items()):
        quoted = value.replace("'", "''")
        try:
            ctx.sql(f"SET {key} = '{quoted}'").collect()
        except Exception as exc:
            raise _setting_error(key, value, exc) from None
    return ctx


def _rejects(key: str, profile: DataFusionRuntimeProfile) -> bool:
    """Does the engine refuse ``key`` of the profile's session settings on its own?"""
    from datafusion import SessionConfig, SessionContext

    try:
        SessionContext(SessionConfig({key: profile.session_settings[key]}))
    except Exception:
        return True
    return False


def _setting_error(key: str, value: str, exc: Exception) -> ReferenceImplError:
    """The engine refused a setting: a coded error naming the manifest field."""
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    return ReferenceImplError(
        ErrorCode.MANIFEST_INVALID_VALUE,
        f"the engine refused {key or 'a session setting'} = {value!r}: {reason}",
        field_path=setting_field(key) if key else "runtime",
    )


def _bootstrap(manifest: SemanticProgramManifest, profile: DataFusionRuntimeProfile) -> None:
    resolver = manifest.dataset_bindings
    missing = [  # tables on a store are never bootstrapped: the hook writes local data
        name
        for name in resolver.names()
        if resolver.binding(name).store is None
        and not Path(resolver.require_location(name)).exists()
    ]
    if not missing or manifest.bootstrap is None:
        return
    hook = import_trusted(
        manifest.bootstrap,
        root=manifest.root,
        trusted_modules=profile.trusted_modules,
        field_path="project.bootstrap",
    )
    if not callable(hook):
        raise ReferenceImplError(
            ErrorCode.BOOTSTRAP_FAILED,
            f"{manifest.bootstrap!r} is not callable",
            field_path="project.bootstrap",
        )
    try:
        hook(Path(manifest.root))
    except (Exception, SystemExit) as exc:
        raise ReferenceImplError(
            ErrorCode.BOOTSTRAP_FAILED,
            f"{manifest.bootstrap!r} failed: {type(exc).__name__}: {exc}",
            field_path="project.bootstrap",
        ) from None


def _register_udfs(
    ctx: Any, manifest: SemanticProgramManifest, profile: DataFusionRuntimeProfile
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Register the declared UDFs: (their names, name -> the hash of the provider's code)."""
    from datafusion import ScalarUDF

    if not profile.features.enable_udfs:
        return (), {}
    registered: list[str] = []
    sources: dict[str, str] = {}
    for declaration in manifest.udfs:
        path = f"udfs.{declaration.name}.provider"
        provided = import_trusted(
            declaration.provider,
            root=manifest.root,
            trusted_modules=profile.trusted_modules,
            field_path=path,
        )
        udf = provided
        if not isinstance(udf, ScalarUDF) and callable(udf):
            try:
                udf = udf()
            except (Exception, SystemExit) as exc:
                raise ReferenceImplError(
                    ErrorCode.UDF_PROVIDER_INVALID,
                    f"factory {declaration.provider!r} failed: {type(exc).__name__}: {exc}",
                    field_path=path,
                ) from None
        if not isinstance(udf, ScalarUDF):
            raise ReferenceImplError(
                ErrorCode.UDF_PROVIDER_INVALID,
                f"{declaration.provider!r} is a {type(udf).__name__}, not a datafusion ScalarUDF",
                field_path=path,
            )
        if udf.name != declaration.name:
            raise ReferenceImplError(
                ErrorCode.UDF_PROVIDER_INVALID,
                f"{declaration.provider!r} provides a UDF named {udf.name!r}, "
                f"but the manifest declares it as {declaration.name!r}",
                field_path=path,
            )
        ctx.register_udf(udf)
        registered.append(declaration.name)
        source = provider_source_hash(declaration.provider, provided, root=manifest.root)
        if source is not None:
            sources[declaration.name] = source
    return tuple(sorted(registered)), dict(sorted(sources.items()))


def query_only() -> Any:
    """``SQLOptions`` under which DataFusion plans queries only (no DDL, DML, statements)."""
    from datafusion import SQLOptions

    return SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)


def _register_views(
    ctx: Any, manifest: SemanticProgramManifest, *, budget_ms: int | None = None
) -> tuple[dict[str, Any], dict[str, ViewFailure]]:
    """Plan (logically) and register each view; ``budget_ms`` bounds each view's planning."""
    from reference_impl.engine.budget import BudgetExceeded, PlanningWorker

    frames: dict[str, Any] = {}
    failures: dict[str, ViewFailure] = {}
    options = query_only()
    worker = PlanningWorker()
    try:
        for view in manifest.views:
            failed_upstream = next((dep for dep in view.view_dependencies if dep in failures), None)
            if failed_upstream is not None:
                failures[view.name] = ViewFailure(
                    view=view.name,
                    kind="upstream_failed",
                    message=f"upstream view {failed_upstream!r} could not be planned",
                    upstream=failed_upstream,
                )
                continue
            plan = partial(ctx.sql, view.sql, options=options)
            try:
                frame = plan() if budget_ms is None else worker.run(plan, budget_ms / 1000.0)
            except BudgetExceeded:
                failures[view.name] = ViewFailure(
                    view=view.name,
                    kind="budget_exceeded",
                    message=f"logical planning took longer than the budget of {budget_ms} ms",
                )
                continue
            except BaseException as exc:
                if not (isinstance(exc, Exception) or is_engine_panic(exc)):
                    raise
                # a panic (a BaseException) planning a view is that view's failure
                failures[view.name] = view_failure(view.name, exc)
                continue
            ctx.register_view(view.name, frame)
            frames[view.name] = frame
    finally:
        worker.close()
    return frames, failures


def view_failure(view: str, exc: BaseException) -> ViewFailure:
    """Classify a DataFusion planning failure of ``view``."""
    text = redact(str(exc)).strip()
    message = text.splitlines()[0] if text else type(exc).__name__
    unknown = _UNKNOWN_FUNCTION.search(text)
    if unknown is not None:
        return ViewFailure(
            view=view, kind="unknown_function", message=message, function=unknown.group("name")
        )
    return ViewFailure(view=view, kind="planning_error", message=message)
