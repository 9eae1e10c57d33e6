"""``apply_scan_unit_overrides``: re-register scan providers per the perf policy.

Each override is keyed by scan-unit key.  Delta providers are re-registered *through the
run's resolver object* at the version the plan was built against, so execution reads
exactly what was planned and validated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reference_impl.engine.data_source import register_dataset
from reference_impl.relspec.contracts import ScanPolicyOverride
from reference_impl.semantics.program import DatasetBindings


def apply_scan_unit_overrides(
    ctx: Any, resolver: DatasetBindings, overrides: Mapping[str, ScanPolicyOverride]
) -> tuple[str, ...]:
    """Re-register every overridden dataset once; returns the dataset names, sorted."""
    versions: dict[str, int | None] = {}
    for key in sorted(overrides):
        override = overrides[key]
        if override.dataset_name in resolver.bindings:
            versions.setdefault(override.dataset_name, override.delta_version)
    for name, version in sorted(versions.items()):
        register_dataset(ctx, resolver, name, version=version)
    return tuple(sorted(versions))
