"""Stage *authority*: ``build_execution_authority(semantic_context) -> ExecutionAuthorityContext``.

The orchestration authority wraps the semantic-only context with what execution planning
needs, so that planning and execution take one object whose resolver is the program's
own (and the engine stays free of orchestration concerns): an evidence plan, the executor
map, a capability snapshot (engine versions, supported Delta protocol, the UDF snapshot
read from the session's real function registry) and the session runtime fingerprint.  It
is versioned by ``AUTHORITY_CONTRACT_VERSION``, independently of
``SEMANTIC_CONTRACT_VERSION``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgspec

from reference_impl.engine.session import SemanticExecutionContext
from reference_impl.engine.trusted_import import import_trusted
from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.relspec.contracts import (
    AUTHORITY_CONTRACT_VERSION,
    CapabilitySnapshot,
    EvidencePlan,
    UdfSignature,
)

DATAFUSION_EXECUTOR = "datafusion"
DEFAULT_EXECUTORS: Mapping[str, str] = MappingProxyType({DATAFUSION_EXECUTOR: "datafusion-python"})
"""Executor kind -> what runs it.  ``datafusion`` is built in; ``[executors.*]`` in the
manifest and ``run_pipeline(executors=...)`` add Python executors."""

ExecutorFunction = Callable[[Mapping[str, Any]], Any]
"""A non-DataFusion executor: called with the view's inputs (every dataset and view its
SQL reads, by name, as ``pyarrow.Table``); returns the view's result as a
``pyarrow.Table`` (or anything ``pyarrow.table()`` accepts)."""

_EXCLUDED_SETTINGS = frozenset({"datafusion.execution.session_id"})


@dataclass(frozen=True, slots=True)
class ExecutionAuthorityContext:
    semantic_context: SemanticExecutionContext
    evidence_plan: EvidencePlan
    executor_map: Mapping[str, str]
    capabilities: CapabilitySnapshot
    runtime_fingerprint: str
    executor_functions: Mapping[str, ExecutorFunction] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """The callables of the executors other than ``datafusion`` (same keys as
    ``executor_map`` minus ``datafusion``)."""
    contract_version: str = AUTHORITY_CONTRACT_VERSION


def build_execution_authority(
    semantic_context: SemanticExecutionContext,
    *,
    executors: Mapping[str, str | ExecutorFunction] | None = None,
) -> ExecutionAuthorityContext:
    """Wrap ``semantic_context`` with the evidence plan, executors and capabilities.

    The executors that exist are ``executors`` (default: ``datafusion`` alone) plus the
    manifest's ``[executors.*]``; an ``executors`` entry wins over a manifest one of the
    same name.  A value is a callable or a ``module:callable`` provider, imported under
    the trusted-module rule of UDF providers; the ``datafusion`` entry is the built-in
    engine whatever its value.
    """
    profile = semantic_context.runtime_profile
    manifest = semantic_context.manifest
    ctx = semantic_context.session
    evidence = EvidencePlan(
        views=manifest.view_names(),
        datasets=semantic_context.dataset_resolver.names(),
        statistics=profile.perf.statistics,
        retain_plans=profile.perf.retain_plans,
        planning_budget_ms=profile.perf.planning_budget_ms,
    )
    declared: dict[str, str | ExecutorFunction] = {
        executor.name: executor.provider for executor in manifest.executors
    }
    given = DEFAULT_EXECUTORS if executors is None else executors
    try:
        names, functions = _resolve_executors(
            {**declared, **given},
            root=manifest.root,
            trusted_modules=profile.trusted_modules,
            from_manifest=set(declared) - set(given),
        )
    except ReferenceImplError as err:
        raise err.with_file(manifest.source_path) from None
    return ExecutionAuthorityContext(
        semantic_context=semantic_context,
        evidence_plan=evidence,
        executor_map=MappingProxyType(names),
        capabilities=capability_snapshot(ctx, profile.policy.delta_support, semantic_context),
        runtime_fingerprint=runtime_fingerprint(
            ctx, profile, udf_sources=semantic_context.udf_sources
        ),
        executor_functions=MappingProxyType(functions),
    )


def _resolve_executors(
    entries: Mapping[str, str | ExecutorFunction],
    *,
    root: str,
    trusted_modules: tuple[str, ...],
    from_manifest: set[str],
) -> tuple[dict[str, str], dict[str, ExecutorFunction]]:
    """(name -> what runs it, name -> callable) for every executor but ``datafusion``."""
    names: dict[str, str] = {}
    functions: dict[str, ExecutorFunction] = {}
    for name, value in sorted(entries.items()):
        if name == DATAFUSION_EXECUTOR:
            names[name] = DEFAULT_EXECUTORS[DATAFUSION_EXECUTOR]
            continue
        field_path = f"executors.{name}.provider" if name in from_manifest else None
        if isinstance(value, str):
            provided = import_trusted(
                value, root=root, trusted_modules=trusted_modules, field_path=field_path or ""
            )
            described = value
        else:
            provided = value
            described = f"python:{getattr(value, '__qualname__', type(value).__name__)}"
        if not callable(provided):
            raise ReferenceImplError(
                ErrorCode.UDF_PROVIDER_INVALID,
                f"executor {name!r}: {described!r} is a {type(provided).__name__}, not a "
                "callable taking the view's input tables",
                field_path=field_path,
                subjects=(name,),
            )
        names[name] = described
        functions[name] = provided
    return names, functions


def capability_snapshot(
    ctx: Any, support: Any, semantic_context: SemanticExecutionContext
) -> CapabilitySnapshot:
    import datafusion
    import deltalake
    import pyarrow

    return CapabilitySnapshot(
        datafusion_version=datafusion.__version__,
        deltalake_version=deltalake.__version__,
        pyarrow_version=pyarrow.__version__,
        supported_delta_protocol=support,
        udf_snapshot=udf_snapshot(
            ctx, semantic_context.registered_udfs, sources=semantic_context.udf_sources
        ),
    )


def udf_snapshot(
    ctx: Any, names: tuple[str, ...], *, sources: Mapping[str, str] | None = None
) -> Mapping[str, UdfSignature]:
    """Signatures of ``names`` as the session's function registry reports them, each with
    the source hash of its provider (``sources``, name -> hash)."""
    sources = sources or {}
    if not names:
        return {}
    listed = ", ".join(f"'{name}'" for name in names)
    routines = ctx.sql(
        "SELECT specific_name, data_type, is_deterministic FROM information_schema.routines "
        f"WHERE specific_name IN ({listed})"
    ).to_pydict()
    params = ctx.sql(
        "SELECT specific_name, ordinal_position, parameter_mode, data_type "
        f"FROM information_schema.parameters WHERE specific_name IN ({listed}) "
        "ORDER BY specific_name, parameter_mode, ordinal_position"
    ).to_pydict()
    inputs: dict[str, list[str]] = {}
    outputs: dict[str, str] = {}
    for name, mode, dtype in zip(
        params["specific_name"], params["parameter_mode"], params["data_type"], strict=True
    ):
        if mode == "IN":
            inputs.setdefault(name, []).append(str(dtype))
        else:
            outputs[name] = str(dtype)
    snapshot = {
        name: UdfSignature(
            name=name,
            parameter_types=tuple(inputs.get(name, ())),
            return_type=outputs.get(name, None if dtype is None else str(dtype)),
            deterministic=deterministic,
            source_hash=sources.get(name),
        )
        for name, dtype, deterministic in zip(
            routines["specific_name"],
            routines["data_type"],
            routines["is_deterministic"],
            strict=True,
        )
    }
    # A plain dict, like the plan's mappings: msgspec cannot encode a mappingproxy, and
    # the snapshot is serialized (``planguard compile --plan --json``).
    return dict(sorted(snapshot.items()))


def runtime_fingerprint(
    ctx: Any, profile: Any, *, udf_sources: Mapping[str, str] | None = None
) -> str:
    """The runtime/policy fingerprint: sha256 of the sorted
    ``information_schema.df_settings`` rows, the perf policy, the features, the policy
    thresholds and Delta support, and the source hash of each registered UDF's provider
    (``udf_sources``; left out when there are none): everything but the semantics that
    decides what a run plans, validates and executes.  The semantic fingerprint covers the
    rest.  The policy *mode* is left out: it is the rollout switch (``--mode``) that
    re-grades findings and never changes a plan; the validation artifact records it beside
    this hash."""
    rows = ctx.sql("SELECT name, value FROM information_schema.df_settings").to_pydict()
    settings = sorted(
        (name, value)
        for name, value in zip(rows["name"], rows["value"], strict=True)
        if name not in _EXCLUDED_SETTINGS
    )
    payload = {
        "settings": settings,
        "perf_policy": profile.perf,
        "features": profile.features,
        "policy": {
            "small_input_rows": profile.policy.small_input_rows,
            "delta_support": (
                profile.policy.delta_support.canonical()
                if profile.policy.delta_support is not None
                else None
            ),
        },
    }
    if udf_sources:
        payload["udf_sources"] = dict(sorted(udf_sources.items()))
    return hashlib.sha256(msgspec.json.encode(payload, order="sorted")).hexdigest()
