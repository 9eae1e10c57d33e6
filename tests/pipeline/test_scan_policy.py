"""The small-input scan policy is real, and PlanSignals is the one control plane (issue 17.2, 17.3).

A scan unit whose statistics say fewer rows than ``policy.small_input_rows`` is executed
from a one-partition in-memory table (``DataSourceExec: partitions=1``) instead of the
Delta provider (``DeltaScanExec``); overrides are decided from ``ScanUnit`` and
``PlanSignals`` fields only and applied per scan-unit key.  Real DataFusion, real Delta.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import deltalake
import msgspec
import pyarrow as pa
import pytest

import reference_impl.relspec.execution_plan as execution_plan_module
from reference_impl.pipeline import PlannedPipeline, execute_pipeline, plan_pipeline
from reference_impl.relspec import policy_validation, scan_overrides
from reference_impl.relspec.contracts import PlanStatistics, PolicyCode
from reference_impl.relspec.plan_facts import ExplainStatistics
from reference_impl.relspec.policy_validation import validate_policy_bundle
from reference_impl.relspec.scan_overrides import (
    apply_scan_unit_overrides,
    scan_policy_overrides,
)

WriteManifest = Callable[..., Path]

MANIFEST = """
[datasets.small]
format = "delta"
location = "small"

[datasets.big]
format = "delta"
location = "big"

[views.joined]
sql = "SELECT s.k, count(*) AS n FROM small s JOIN big b ON s.k = b.k GROUP BY s.k"

[outputs.joined]
view = "joined"
location = "out/joined"

[policy]
small_input_rows = {threshold}

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    deltalake.write_deltalake(str(tmp_path / "small"), pa.table({"k": list(range(10))}))
    deltalake.write_deltalake(str(tmp_path / "big"), pa.table({"k": [i % 10 for i in range(200)]}))
    return tmp_path


def planned(write_manifest: WriteManifest, threshold: int) -> PlannedPipeline:
    return plan_pipeline(write_manifest(MANIFEST.format(threshold=threshold)))


def scan_of(run: PlannedPipeline, dataset: str) -> str:
    ctx = run.semantic_context.session
    return str(ctx.sql(f"SELECT * FROM {dataset}").execution_plan().display_indent())


def policies(run: PlannedPipeline) -> dict[str, str]:
    return {
        override.dataset_name: override.policy
        for override in run.plan.scan_policy_overrides_by_key.values()
    }


def test_a_small_input_scan_unit_executes_from_one_in_memory_partition(
    tables: Path, write_manifest: WriteManifest
) -> None:
    run = planned(write_manifest, threshold=50)  # small: 10 rows, big: 200
    assert policies(run) == {"small": "small_input", "big": "pinned_version"}
    assert "DeltaScanExec" in scan_of(run, "small")  # as planned: the Delta provider
    report = execute_pipeline(run.plan, run.authority)
    small, big = scan_of(run, "small"), scan_of(run, "big")
    assert "DataSourceExec: partitions=1" in small
    assert "DeltaScanExec" not in small
    assert "DeltaScanExec" in big
    assert [(out.name, out.rows) for out in report.outputs] == [("joined", 10)]


def test_twin_no_small_input_keeps_every_scan_on_the_delta_provider(
    tables: Path, write_manifest: WriteManifest
) -> None:
    run = planned(write_manifest, threshold=0)
    assert policies(run) == {"small": "pinned_version", "big": "pinned_version"}
    report = execute_pipeline(run.plan, run.authority)
    assert "DeltaScanExec" in scan_of(run, "small")
    assert "partitions=1" not in scan_of(run, "small")
    assert [(out.name, out.rows) for out in report.outputs] == [("joined", 10)]


def test_overrides_apply_per_scan_unit_key(tables: Path, write_manifest: WriteManifest) -> None:
    """Only the units given are applied, and a dataset is read from memory only when every
    override of its units says small_input."""
    run = planned(write_manifest, threshold=50)
    overrides = run.plan.scan_policy_overrides_by_key
    semantic = run.semantic_context
    big_only = {k: o for k, o in overrides.items() if o.dataset_name == "big"}
    assert apply_scan_unit_overrides(semantic.session, semantic.dataset_resolver, big_only) == (
        "big",
    )
    assert "DeltaScanExec" in scan_of(run, "small")  # its unit was not applied

    (key,) = (k for k, o in overrides.items() if o.dataset_name == "small")
    pinned_twin = msgspec.structs.replace(
        overrides[key], scan_unit_key=key + "-other", policy="pinned_version"
    )
    mixed = {key: overrides[key], pinned_twin.scan_unit_key: pinned_twin}
    apply_scan_unit_overrides(semantic.session, semantic.dataset_resolver, mixed)
    assert "DeltaScanExec" in scan_of(run, "small")
    apply_scan_unit_overrides(semantic.session, semantic.dataset_resolver, {key: overrides[key]})
    assert "DataSourceExec: partitions=1" in scan_of(run, "small")


# -- PlanSignals, the one control plane ------------------------------------------------


class PoisonableStats(dict[str, ExplainStatistics]):
    """Raw EXPLAIN statistics that turn to 0 rows once poisoned."""

    poisoned = False

    def _poison(self, value: ExplainStatistics | None) -> ExplainStatistics | None:
        if self.poisoned and value is not None:
            return ExplainStatistics(rows=0, bytes=0, exact=True)
        return value

    def __getitem__(self, key: str) -> ExplainStatistics:
        value = self._poison(super().__getitem__(key))
        assert value is not None
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return self._poison(super().get(key, default))


def decisions(run: PlannedPipeline) -> tuple[Mapping[str, Any], tuple[str, ...]]:
    return dict(run.plan.scan_policy_overrides_by_key), run.validation.codes()


def test_poisoning_raw_statistics_after_the_signals_changes_no_decision(
    tables: Path, write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_manifest(MANIFEST.format(threshold=50))
    clean = decisions(plan_pipeline(path))
    raw: list[PoisonableStats] = []
    real_stats = execution_plan_module.dataset_statistics
    real_signals = execution_plan_module._plan_signals

    def stats(ctx: Any, datasets: set[str]) -> PoisonableStats:
        raw.append(PoisonableStats(real_stats(ctx, datasets)))
        return raw[-1]

    def signals(**kwargs: Any) -> Any:
        built = real_signals(**kwargs)
        raw[-1].poisoned = True  # from here on, raw statistics lie
        return built

    monkeypatch.setattr(execution_plan_module, "dataset_statistics", stats)
    monkeypatch.setattr(execution_plan_module, "_plan_signals", signals)
    poisoned = plan_pipeline(path)
    assert raw
    assert raw[-1].poisoned
    assert decisions(poisoned) == clean
    assert policies(poisoned) == {"small": "small_input", "big": "pinned_version"}


def test_twin_changing_the_signals_changes_the_decisions(
    tables: Path, write_manifest: WriteManifest
) -> None:
    run = planned(write_manifest, threshold=50)
    zero = PlanStatistics(row_count=0, total_bytes=0, exact=True, provenance="explain:scan")
    lying = {
        view: msgspec.structs.replace(s, scan_stats=dict.fromkeys(s.scan_stats, zero))
        for view, s in run.plan.plan_signals_by_view.items()
    }
    overrides = scan_policy_overrides(run.plan.scan_units, lying, small_input_rows=50)
    assert {o.dataset_name: o.policy for o in overrides.values()} == {
        "small": "small_input",
        "big": "small_input",
    }
    metrics = {
        name: msgspec.structs.replace(m, stats_row_count=0)
        for name, m in run.plan.task_plan_metrics.items()
    }
    small_plan = msgspec.structs.replace(run.plan, task_plan_metrics=metrics)
    result = validate_policy_bundle(
        small_plan,
        runtime_profile=run.runtime_profile,
        udf_snapshot=run.authority.capabilities.udf_snapshot,
    )
    assert PolicyCode.SMALL_INPUT_SCAN_POLICY in result.codes()
    assert PolicyCode.SMALL_INPUT_SCAN_POLICY not in run.validation.codes()


@pytest.mark.parametrize("module", [policy_validation, scan_overrides], ids=lambda m: m.__name__)
def test_validation_and_overrides_import_no_raw_plan_reader(module: Any) -> None:
    """They read contracts; nothing that parses engine output (plan_facts, EXPLAIN)."""
    tree = ast.parse(inspect.getsource(module))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "reference_impl.relspec.plan_facts" not in imported
    assert "EXPLAIN" not in inspect.getsource(module).replace("EXPLAIN statistics", "")
