"""Scan-unit overrides: derived from the plan's signals, applied per scan-unit key.

``scan_policy_overrides`` decides, for every scan unit, how execution registers the
dataset it reads, from ``ScanUnit`` fields and ``PlanSignals.scan_stats`` only (never
raw engine output: PlanSignals is the one control plane):

* ``small_input`` — the unit's statistics say fewer rows than ``policy.small_input_rows``:
  the dataset is read once, at the planned version, into a one-partition in-memory table
  (``register_in_memory``): execution lists no files and fetches no file statistics, and
  the physical plan scans ``DataSourceExec: partitions=1, partition_sizes=[...]`` instead
  of Parquet ``file_groups``;
* ``pinned_version`` — any other Delta unit: the Delta provider is re-registered at the
  version the plan was built against, so execution reads exactly what was planned.

``apply_scan_unit_overrides`` applies them unit by unit, *through the run's resolver
object*.  A table is registered under its dataset name, so the units of one dataset share
one registration: it is in memory only when every override of the dataset says
``small_input`` (a unit the policy does not call small is never read from memory).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from reference_impl.engine.data_source import (
    DataSourceConfig,
    register_dataset,
    register_in_memory,
)
from reference_impl.relspec.contracts import (
    PlanSignals,
    PlanStatistics,
    ScanPolicyOverride,
    ScanUnit,
)
from reference_impl.semantics.program import DatasetBindings


def scan_policy_overrides(
    scan_units: Iterable[ScanUnit],
    plan_signals_by_view: Mapping[str, PlanSignals],
    *,
    small_input_rows: int,
) -> dict[str, ScanPolicyOverride]:
    """The override of each scan unit that needs one, keyed by scan-unit key, sorted."""
    stats: dict[str, PlanStatistics] = {}
    for signals in plan_signals_by_view.values():
        stats.update(signals.scan_stats)
    out: dict[str, ScanPolicyOverride] = {}
    for unit in sorted(scan_units, key=lambda u: u.key):
        stat = stats.get(unit.key)
        rows = stat.row_count if stat is not None else None
        small = rows is not None and rows < small_input_rows
        if not small and unit.delta_version is None:
            continue
        out[unit.key] = ScanPolicyOverride(
            scan_unit_key=unit.key,
            dataset_name=unit.dataset_name,
            policy="small_input" if small else "pinned_version",
            delta_version=unit.delta_version,
            reason=(
                f"{rows} rows < small_input_rows={small_input_rows}: read into one "
                "in-memory partition"
                if small
                else f"execution reads the planned Delta version {unit.delta_version}"
            ),
        )
    return out


def apply_scan_unit_overrides(
    ctx: Any,
    resolver: DatasetBindings,
    overrides: Mapping[str, ScanPolicyOverride],
    *,
    data_source: DataSourceConfig | None = None,
) -> tuple[str, ...]:
    """Register the dataset of every overridden scan unit per its policy (see module
    docs); returns the re-registered dataset names, sorted.  ``data_source``: the run's
    data-source mode (default: semantic-authority), applied around ``resolver``."""
    mode: Literal["semantic-authority", "runtime-bootstrap"] = "semantic-authority"
    fallback_root = None
    if data_source is not None:
        mode, fallback_root = data_source.mode, data_source.fallback_root
    by_dataset: dict[str, list[ScanPolicyOverride]] = {}
    for key in sorted(overrides):
        override = overrides[key]
        if override.dataset_name in resolver.bindings:
            by_dataset.setdefault(override.dataset_name, []).append(override)
    for name, units in sorted(by_dataset.items()):
        version = units[0].delta_version
        if all(unit.policy == "small_input" for unit in units):
            register_in_memory(
                ctx, resolver, name, version=version, mode=mode, fallback_root=fallback_root
            )
        else:
            register_dataset(
                ctx,
                resolver,
                name,
                version=version,
                mode=mode,
                fallback_root=fallback_root,
                for_execution=True,
            )
    return tuple(sorted(by_dataset))
