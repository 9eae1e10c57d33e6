"""Stage *authority*: ``build_execution_authority(semantic_context) -> ExecutionAuthorityContext``.

The orchestration authority (review 8.7 / 3.A) wraps the semantic-only context with what
execution planning needs: an evidence plan, the executor map, a capability snapshot
(engine versions, supported Delta protocol, the UDF snapshot read from the session's real
function registry) and the session runtime fingerprint.  It is versioned by
``AUTHORITY_CONTRACT_VERSION``, independently of ``SEMANTIC_CONTRACT_VERSION``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import msgspec

from reference_impl.engine.session import SemanticExecutionContext
from reference_impl.relspec.contracts import (
    AUTHORITY_CONTRACT_VERSION,
    CapabilitySnapshot,
    EvidencePlan,
    UdfSignature,
)

DEFAULT_EXECUTORS: Mapping[str, str] = MappingProxyType({"datafusion": "datafusion-python"})
"""Executor kind -> what runs it.  The reference pipeline executes with DataFusion only."""

_EXCLUDED_SETTINGS = frozenset({"datafusion.execution.session_id"})


@dataclass(frozen=True, slots=True)
class ExecutionAuthorityContext:
    semantic_context: SemanticExecutionContext
    evidence_plan: EvidencePlan
    executor_map: Mapping[str, str]
    capabilities: CapabilitySnapshot
    runtime_fingerprint: str
    contract_version: str = AUTHORITY_CONTRACT_VERSION


def build_execution_authority(
    semantic_context: SemanticExecutionContext,
    *,
    executors: Mapping[str, str] | None = None,
) -> ExecutionAuthorityContext:
    """Wrap ``semantic_context`` with the evidence plan, executors and capabilities."""
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
    return ExecutionAuthorityContext(
        semantic_context=semantic_context,
        evidence_plan=evidence,
        executor_map=MappingProxyType(dict(DEFAULT_EXECUTORS if executors is None else executors)),
        capabilities=capability_snapshot(ctx, profile.policy.delta_support, semantic_context),
        runtime_fingerprint=runtime_fingerprint(ctx, profile),
    )


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
        udf_snapshot=udf_snapshot(ctx, semantic_context.registered_udfs),
    )


def udf_snapshot(ctx: Any, names: tuple[str, ...]) -> Mapping[str, UdfSignature]:
    """Signatures of ``names`` as the session's function registry reports them."""
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


def runtime_fingerprint(ctx: Any, profile: Any) -> str:
    """sha256 of the sorted ``information_schema.df_settings`` rows plus the perf policy."""
    rows = ctx.sql("SELECT name, value FROM information_schema.df_settings").to_pydict()
    settings = sorted(
        (name, value)
        for name, value in zip(rows["name"], rows["value"], strict=True)
        if name not in _EXCLUDED_SETTINGS
    )
    payload = {"settings": settings, "perf_policy": profile.perf}
    return hashlib.sha256(msgspec.json.encode(payload, order="sorted")).hexdigest()
