"""Stages *execution* and *run*: outputs written to Delta, the planned versions read, one
compile and one resolver per run, and atomic outputs when a run fails midway."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import deltalake
import pyarrow as pa
import pytest

import reference_impl.engine.session as session_module
import reference_impl.pipeline as pipeline_module
import reference_impl.relspec.scan_overrides as overrides_module
from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.execution import execute_plan
from reference_impl.pipeline import run_pipeline
from reference_impl.relspec.scan_overrides import apply_scan_unit_overrides

WriteManifest = Callable[..., Path]
DeltaTableFactory = Callable[..., Path]

MANIFEST = """
[datasets.sales]
format = "delta"
location = "sales"

[views.by_region]
sql = "SELECT region, sum(amount) AS total, count(*) AS n FROM sales GROUP BY region"

[views.big_regions]
sql = "SELECT region FROM by_region WHERE total > 10"

[views.small_regions]
sql = "SELECT region FROM by_region WHERE total <= 10"

[outputs.totals]
view = "by_region"
location = "out/totals"
mode = "{mode}"

[outputs.big]
view = "big_regions"
location = "out/big"

[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""

SALES = {"region": ["n", "s", "n", "e"], "amount": [10, 3, 5, 2]}


@pytest.fixture
def sales_manifest(write_manifest: WriteManifest, delta_table: DeltaTableFactory) -> Path:
    delta_table("sales", SALES)
    return write_manifest(MANIFEST.format(mode="overwrite"))


def read(location: Path | str, version: int | None = None) -> dict[str, list[Any]]:
    table = deltalake.DeltaTable(str(location), version=version).to_pyarrow_table()
    return table.sort_by([(name, "ascending") for name in table.column_names]).to_pydict()


def test_a_run_writes_every_declared_output(sales_manifest: Path) -> None:
    run = run_pipeline(sales_manifest)
    assert run.validation.ok, run.validation.issues
    assert run.execution is not None
    written = {out.name: out for out in run.execution.outputs}
    assert set(written) == {"big", "totals"}
    root = sales_manifest.parent
    assert written["totals"].location == str(root / "out" / "totals")
    assert (written["totals"].rows, written["totals"].delta_version) == (3, 0)
    assert read(root / "out" / "totals") == {
        "region": ["e", "n", "s"],
        "total": [2, 15, 3],
        "n": [1, 2, 1],
    }
    assert read(root / "out" / "big") == {"region": ["n"]}


def test_fan_out_views_are_cached_during_execution(sales_manifest: Path) -> None:
    run = run_pipeline(sales_manifest)
    assert run.execution is not None
    assert run.execution.cached_views == ("by_region",)  # read by two views


def test_append_mode_adds_a_version(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("sales", SALES)
    path = write_manifest(MANIFEST.format(mode="append"))
    run_pipeline(path)
    second = run_pipeline(path)
    assert second.execution is not None
    totals = {out.name: out for out in second.execution.outputs}["totals"]
    assert (totals.delta_version, totals.rows) == (1, 6)


def test_nothing_is_executed_when_validation_fails(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("sales", SALES)
    text = MANIFEST.format(mode="overwrite").replace("max_writer_version = 2", "")
    text = text.replace("max_reader_version = 1", "max_reader_version = 1\nmax_writer_version = 1")
    path = write_manifest(text)
    run = run_pipeline(path)
    assert not run.validation.ok
    assert run.execution is None
    assert not (path.parent / "out").exists()


def test_execution_reads_the_planned_delta_version(sales_manifest: Path) -> None:
    """A commit landing between planning and execution is not read: the scan overrides
    re-register each input at the version the plan was validated against."""
    run = run_pipeline(sales_manifest, execute=False)
    sales = sales_manifest.parent / "sales"
    deltalake.write_deltalake(
        str(sales), pa.table({"region": ["w"], "amount": [100]}), mode="append"
    )
    semantic = run.authority.semantic_context
    pinned = apply_scan_unit_overrides(
        semantic.session, semantic.dataset_resolver, run.plan.scan_policy_overrides_by_key
    )
    assert pinned == ("sales",)
    report = execute_plan(run.plan, run.authority)
    assert {out.name: out.rows for out in report.outputs}["totals"] == 3
    assert "w" not in read(sales_manifest.parent / "out" / "totals")["region"]


def test_one_compile_and_one_resolver_object_per_run(
    sales_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles: list[object] = []
    resolvers: list[tuple[str, object]] = []
    real_compile = pipeline_module.compile_semantic_program

    def counting_compile(model: Any, **options: Any) -> Any:
        manifest = real_compile(model, **options)
        compiles.append(manifest)
        return manifest

    def spy(stage: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def register(ctx: Any, resolver: Any, name: str, **kwargs: Any) -> Any:
            resolvers.append((stage, resolver))
            return real(ctx, resolver, name, **kwargs)

        return register

    monkeypatch.setattr(pipeline_module, "compile_semantic_program", counting_compile)
    monkeypatch.setattr(
        session_module, "register_dataset", spy("register", session_module.register_dataset)
    )
    monkeypatch.setattr(
        overrides_module, "register_dataset", spy("override", overrides_module.register_dataset)
    )
    run = run_pipeline(sales_manifest)

    (manifest,) = compiles
    assert run.authority.semantic_context.manifest is manifest
    assert [stage for stage, _ in resolvers] == ["register", "override"]
    assert all(resolver is manifest.dataset_bindings for _, resolver in resolvers)
    assert run.authority.semantic_context.dataset_resolver is manifest.dataset_bindings


# -- a run interrupted by an injected failure ----------------------------------------------

FLAKY_UDFS = """
from pathlib import Path

import pyarrow as pa
from datafusion import udf

FAIL_MARKER = Path(__file__).with_name("FAIL")
calls = 0


def _checked(values: pa.Array) -> pa.Array:
    global calls
    if not FAIL_MARKER.exists():
        calls = 0
        return values
    calls += 1
    if calls >= 3:  # let two batches through, then fail midway through the stream
        raise RuntimeError("injected failure")
    return values


checked = udf(_checked, [pa.int64()], pa.int64(), "volatile", name="checked")
"""

FLAKY_MANIFEST = """
[datasets.numbers]
format = "delta"
location = "numbers"

[views.first]
sql = "SELECT n FROM numbers"

[views.second]
sql = "SELECT checked(n) AS n FROM numbers"
udfs = ["checked"]

[outputs.first]
view = "first"
location = "out/first"

[outputs.second]
view = "second"
location = "out/second"

[udfs.checked]
provider = "flaky_udfs:checked"

[runtime]
batch_size = 256
cache_min_consumers = 0

[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""


@pytest.fixture
def flaky_manifest(write_manifest: WriteManifest, delta_table: DeltaTableFactory) -> Path:
    delta_table("numbers", {"n": list(range(5000))})
    path = write_manifest(FLAKY_MANIFEST)
    (path.parent / "flaky_udfs.py").write_text(textwrap.dedent(FLAKY_UDFS), encoding="utf-8")
    return path


def test_an_interrupted_run_leaves_the_previous_output_version_readable(
    flaky_manifest: Path,
) -> None:
    """A view failing while the outputs are collected (preflight) commits no output: the
    output whose own view ran fine keeps its previous version too (issue 19.3)."""
    root = flaky_manifest.parent
    first = run_pipeline(flaky_manifest)
    assert first.execution is not None
    before = read(root / "out" / "second")
    before_first = read(root / "out" / "first")
    assert len(before["n"]) == 5000

    deltalake.write_deltalake(
        str(root / "numbers"), pa.table({"n": list(range(5000, 6000))}), mode="append"
    )
    (root / "FAIL").touch()
    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(flaky_manifest)
    err = info.value
    assert err.code == ErrorCode.EXECUTION_FAILED
    assert err.subjects == ("second",)
    assert err.field_path == "views.second"
    assert "injected failure" in err.message
    assert "Traceback" not in err.render()

    # the failed output still reads as before, at its previous version
    assert deltalake.DeltaTable(str(root / "out" / "second")).version() == 0
    assert read(root / "out" / "second") == before
    # and so does the output before it: nothing is committed before every view ran
    assert deltalake.DeltaTable(str(root / "out" / "first")).version() == 0
    assert read(root / "out" / "first") == before_first

    # and the next run, once the failure is gone, commits normally
    (root / "FAIL").unlink()
    again = run_pipeline(flaky_manifest)
    assert again.execution is not None
    assert {out.name: out.delta_version for out in again.execution.outputs} == {
        "first": 1,
        "second": 1,
    }
    assert len(read(root / "out" / "first")["n"]) == 6000


def test_the_injected_failure_is_really_injected(flaky_manifest: Path) -> None:
    """Twin: without the marker the same pipeline writes both outputs, twice."""
    for version in (0, 1):
        run = run_pipeline(flaky_manifest)
        assert run.execution is not None
        assert {out.delta_version for out in run.execution.outputs} == {version}


def test_execution_fails_closed_on_a_scan_the_manifest_does_not_resolve(
    sales_manifest: Path, delta_table: DeltaTableFactory
) -> None:
    """A drifted session (a view reading a table registered behind the resolver's back)
    passes warn-mode validation, but execution refuses before writing anything."""
    import dataclasses

    from reference_impl.relspec.authority import build_execution_authority
    from reference_impl.relspec.execution_plan import compile_execution_plan

    rogue = delta_table("rogue", {"region": ["x"], "amount": [1]})
    run = run_pipeline(sales_manifest, execute=False, mode="warn")
    semantic = run.authority.semantic_context
    semantic.session.register_table("rogue", deltalake.DeltaTable(str(rogue)))
    frame = semantic.session.sql(
        "SELECT region, sum(amount) AS total, count(*) AS n FROM rogue GROUP BY region"
    )
    drifted = dataclasses.replace(
        semantic, view_frames={**semantic.view_frames, "by_region": frame}
    )
    authority = build_execution_authority(drifted)
    plan = compile_execution_plan(authority)
    assert any(not unit.in_manifest for unit in plan.scan_units)
    with pytest.raises(ReferenceImplError) as info:
        execute_plan(plan, authority)
    assert info.value.code == ErrorCode.DATASET_LOCATION_UNRESOLVED
    assert info.value.subjects == ("rogue",)
    assert not (sales_manifest.parent / "out").exists()
