"""The DataFusion runtime profile: pinned session settings, features, policies, perf policy.

Everything here is plain data derived from the manifest's ``[runtime]`` and ``[policy]``
tables.  ``target_partitions`` and ``planning_concurrency`` are always pinned (DataFusion
defaults them to the CPU count, which would make physical plans depend on the machine).
``datafusion.runtime.*`` keys are applied with SQL ``SET``, the only way datafusion 55
accepts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import msgspec

from reference_impl.semantics.model import DeltaSupportSpec, PolicySpec, RuntimeSpec
from reference_impl.semantics.program import SemanticProgramManifest


class RuntimeFeatures(msgspec.Struct, frozen=True, kw_only=True):
    enable_udfs: bool


class PerfPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How much the engine may cache and how statistics are collected: cache tiers, the
    statistics policy, selective caching of shared views, retention.  Part of the runtime
    fingerprint, since each setting can change a plan."""

    list_files_cache_limit: str
    list_files_cache_ttl: str | None
    metadata_cache_limit: str
    collect_statistics: bool
    meta_fetch_concurrency: int
    statistics: Literal["scan", "plan"]
    stats_fallback: Literal["warn", "error", "ignore"]
    cache_min_consumers: int
    retain_plans: tuple[str, ...]
    planning_budget_ms: int


class PolicySettings(msgspec.Struct, frozen=True, kw_only=True):
    mode: Literal["error", "warn", "ignore"]
    small_input_rows: int
    delta_support: DeltaSupportSpec | None


class DataFusionRuntimeProfile(msgspec.Struct, frozen=True, kw_only=True):
    """Pinned session settings plus the features and policies a run is held to."""

    session_settings: Mapping[str, str]
    """``SessionConfig`` keys set when the session is created."""
    runtime_settings: Mapping[str, str]
    """``datafusion.runtime.*`` keys applied with ``SET`` after creation."""
    features: RuntimeFeatures
    perf: PerfPolicy
    policy: PolicySettings
    trusted_modules: tuple[str, ...]
    """Packages providers may be imported from, granted by the caller (not the manifest);
    not part of the runtime fingerprint: trust changes no plan."""

    def with_mode(self, mode: Literal["error", "warn", "ignore"]) -> DataFusionRuntimeProfile:
        """The same profile under another validation mode (the rollout switch)."""
        return msgspec.structs.replace(self, policy=msgspec.structs.replace(self.policy, mode=mode))


SETTING_FIELDS: Mapping[str, str] = {
    "datafusion.execution.target_partitions": "runtime.target_partitions",
    "datafusion.execution.planning_concurrency": "runtime.planning_concurrency",
    "datafusion.execution.batch_size": "runtime.batch_size",
    "datafusion.execution.collect_statistics": "runtime.collect_statistics",
    "datafusion.execution.meta_fetch_concurrency": "runtime.meta_fetch_concurrency",
    "datafusion.runtime.list_files_cache_limit": "runtime.list_files_cache_limit",
    "datafusion.runtime.list_files_cache_ttl": "runtime.list_files_cache_ttl",
    "datafusion.runtime.metadata_cache_limit": "runtime.metadata_cache_limit",
}
"""The manifest field each engine setting comes from (errors name the field)."""


def setting_field(key: str) -> str:
    """The manifest field behind engine setting ``key`` (``runtime`` when none is)."""
    return SETTING_FIELDS.get(key, "runtime")


def build_runtime_profile(
    manifest: SemanticProgramManifest, *, trusted_modules: Sequence[str] = ()
) -> DataFusionRuntimeProfile:
    """The runtime profile a manifest declares (defaults documented in the model).

    ``trusted_modules``: packages UDF providers and the bootstrap hook may be imported
    from, granted by whoever runs the pipeline (never by the manifest itself)."""
    return runtime_profile_from_specs(
        manifest.runtime, manifest.policy, trusted_modules=trusted_modules
    )


def runtime_profile_from_specs(
    runtime: RuntimeSpec, policy: PolicySpec, *, trusted_modules: Sequence[str] = ()
) -> DataFusionRuntimeProfile:
    partitions = runtime.target_partitions
    session_settings = {
        "datafusion.catalog.information_schema": "true",
        "datafusion.execution.target_partitions": str(partitions),
        "datafusion.execution.planning_concurrency": str(
            runtime.planning_concurrency or partitions
        ),
        "datafusion.execution.batch_size": str(runtime.batch_size),
        "datafusion.execution.collect_statistics": _bool(runtime.collect_statistics),
        "datafusion.execution.meta_fetch_concurrency": str(runtime.meta_fetch_concurrency),
        "datafusion.explain.show_statistics": "false",
    }
    runtime_settings = {
        "datafusion.runtime.list_files_cache_limit": runtime.list_files_cache_limit,
        "datafusion.runtime.metadata_cache_limit": runtime.metadata_cache_limit,
    }
    if runtime.list_files_cache_ttl is not None:
        runtime_settings["datafusion.runtime.list_files_cache_ttl"] = runtime.list_files_cache_ttl
    return DataFusionRuntimeProfile(
        session_settings=session_settings,
        runtime_settings=runtime_settings,
        features=RuntimeFeatures(enable_udfs=runtime.enable_udfs),
        perf=PerfPolicy(
            list_files_cache_limit=runtime.list_files_cache_limit,
            list_files_cache_ttl=runtime.list_files_cache_ttl,
            metadata_cache_limit=runtime.metadata_cache_limit,
            collect_statistics=runtime.collect_statistics,
            meta_fetch_concurrency=runtime.meta_fetch_concurrency,
            statistics=runtime.statistics,
            stats_fallback=runtime.stats_fallback,
            cache_min_consumers=runtime.cache_min_consumers,
            retain_plans=tuple(sorted(set(runtime.retain_plans))),
            planning_budget_ms=runtime.planning_budget_ms,
        ),
        policy=PolicySettings(
            mode=policy.mode,
            small_input_rows=policy.small_input_rows,
            delta_support=policy.delta_support,
        ),
        trusted_modules=tuple(
            sorted({trusted_modules} if isinstance(trusted_modules, str) else set(trusted_modules))
        ),
    )


def _bool(value: bool) -> str:
    return "true" if value else "false"
