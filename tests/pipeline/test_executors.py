"""Executors are enforced at execution (issue 17.1).

A view runs on the executor it declares and on no other: an unavailable executor skips
the view's outputs and everything downstream (``EXECUTOR_UNAVAILABLE``, exit 1, in every
policy mode) while the other outputs are still written; a registered Python executor
(``[executors.*]`` or ``run_pipeline(executors=...)``) really runs its views.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import deltalake
import pyarrow as pa
import pytest

from pytest_planguard.cli import main
from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.pipeline import run_pipeline
from reference_impl.relspec.contracts import PolicyCode

WriteManifest = Callable[..., Path]
DeltaTableFactory = Callable[..., Path]

HEAD = """
[datasets.sales]
format = "delta"
location = "sales"

[views.totals]
sql = "SELECT region, sum(amount) AS total FROM sales GROUP BY region"

[outputs.totals]
view = "totals"
location = "out/totals"

[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""

SPARK = """
[views.scaled]
sql = "SELECT region, total FROM totals"
executor = "{executor}"

[views.after_scaled]
sql = "SELECT region, total + 1 AS total FROM scaled"

[outputs.scaled]
view = "scaled"
location = "out/scaled"

[outputs.after]
view = "after_scaled"
location = "out/after"
"""

SALES = {"region": ["n", "s", "n"], "amount": [10, 3, 5]}

EXECUTOR_MODULE = """
import pyarrow as pa
import pyarrow.compute as pc

CALLS = []


def scale(inputs):
    CALLS.append(sorted(inputs))
    totals = inputs["totals"]
    # not what the view's SQL computes: proves this function, not DataFusion, ran it
    return pa.table(
        {"total": pc.multiply(totals["total"], 100), "region": totals["region"]}
    )
"""


def read(location: Path) -> dict[str, list[Any]]:
    table = deltalake.DeltaTable(str(location)).to_pyarrow_table()
    ordered = table.sort_by([(c, "ascending") for c in table.column_names])
    rows: dict[str, list[Any]] = ordered.to_pydict()
    return rows


@pytest.fixture
def spark_manifest(write_manifest: WriteManifest, delta_table: DeltaTableFactory) -> Path:
    delta_table("sales", SALES)
    return write_manifest(HEAD + SPARK.format(executor="spark"))


@pytest.mark.parametrize("mode", ["warn", "ignore"])
def test_an_unavailable_executor_skips_its_outputs_and_downstream_only(
    spark_manifest: Path, mode: str
) -> None:
    run = run_pipeline(spark_manifest, mode=mode)  # type: ignore[arg-type]
    assert run.validation.ok  # the mode downgraded the plan-time finding...
    assert run.execution is not None
    # ...but execution does not hand the view to DataFusion instead
    assert not run.execution.ok
    assert {f.code for f in run.execution.findings} == {PolicyCode.EXECUTOR_UNAVAILABLE}
    assert {f.subject: f.severity for f in run.execution.findings} == {
        "scaled": "error",
        "after": "error",
    }
    assert {f.field_path for f in run.execution.findings} == {"views.scaled.executor"}
    assert run.execution.skipped_outputs == ("after", "scaled")
    assert [out.name for out in run.execution.outputs] == ["totals"]
    assert "scaled" not in run.execution.executors_by_view
    root = spark_manifest.parent
    assert not (root / "out" / "scaled").exists()
    assert not (root / "out" / "after").exists()
    assert read(root / "out" / "totals") == {"region": ["n", "s"], "total": [15, 3]}


def test_error_mode_runs_nothing_when_an_executor_is_unavailable(spark_manifest: Path) -> None:
    run = run_pipeline(spark_manifest)
    assert not run.validation.ok
    assert run.execution is None
    assert not (spark_manifest.parent / "out").exists()


def test_planguard_run_warn_reports_the_skip_and_exits_1(
    spark_manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's done-when: none of the spark view's outputs, the others written."""
    assert main(["run", str(spark_manifest), "--mode", "warn"]) == 1
    out = capsys.readouterr().out
    assert "error[EXECUTOR_UNAVAILABLE] output scaled:" in out
    assert "error[EXECUTOR_UNAVAILABLE] output after:" in out
    assert "wrote totals" in out
    root = spark_manifest.parent
    assert (root / "out" / "totals" / "_delta_log").is_dir()
    assert not (root / "out" / "scaled").exists()

    assert main(["run", str(spark_manifest), "--mode", "warn", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False
    assert [f["code"] for f in payload["execution"]["findings"]] == ["EXECUTOR_UNAVAILABLE"] * 2


def test_the_same_manifest_with_the_executor_registered_writes_everything(
    spark_manifest: Path,
) -> None:
    """Twin of the skip: once ``spark`` exists (here a Python callable) nothing is skipped."""
    seen: list[Mapping[str, pa.Table]] = []

    def spark(inputs: Mapping[str, pa.Table]) -> pa.Table:
        seen.append(inputs)
        return inputs["totals"]

    run = run_pipeline(spark_manifest, executors={"datafusion": "builtin", "spark": spark})
    assert run.validation.ok, run.validation.issues
    assert run.execution is not None
    assert run.execution.ok
    assert {out.name for out in run.execution.outputs} == {"totals", "scaled", "after"}
    assert run.execution.executors_by_view["scaled"] == "spark"
    assert run.execution.executors_by_view["after_scaled"] == "datafusion"
    assert len(seen) == 1
    assert set(seen[0]) == {"totals"}
    root = spark_manifest.parent
    assert read(root / "out" / "after") == {"region": ["n", "s"], "total": [16, 4]}


def test_a_manifest_executor_runs_its_view_and_writes_a_readable_delta_output(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("sales", SALES)
    text = HEAD + SPARK.format(executor="pyarrow_exec")
    text += '\n[executors.pyarrow_exec]\nprovider = "my_executors:scale"\n'
    manifest = write_manifest(text)
    root = manifest.parent
    (root / "my_executors.py").write_text(textwrap.dedent(EXECUTOR_MODULE), encoding="utf-8")

    run = run_pipeline(manifest)
    assert run.validation.ok, run.validation.issues
    assert run.authority.executor_map["pyarrow_exec"] == "my_executors:scale"
    assert run.execution is not None
    assert run.execution.ok
    assert run.execution.executors_by_view["scaled"] == "pyarrow_exec"
    import my_executors  # type: ignore[import-not-found]  # imported by the run, from root

    assert my_executors.CALLS == [["totals"]]
    # the executor's result (x100), columns in the order the view's SQL declares
    table = deltalake.DeltaTable(str(root / "out" / "scaled")).to_pyarrow_table()
    assert table.column_names == ["region", "total"]
    assert read(root / "out" / "scaled") == {"region": ["n", "s"], "total": [1500, 300]}
    # and a DataFusion view downstream reads the executor's result
    assert read(root / "out" / "after") == {"region": ["n", "s"], "total": [1501, 301]}


def test_an_executor_returning_other_columns_fails_before_any_write(
    spark_manifest: Path,
) -> None:
    def wrong(inputs: Mapping[str, pa.Table]) -> pa.Table:
        return pa.table({"region": ["n"], "other": [1]})

    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(spark_manifest, executors={"datafusion": "builtin", "spark": wrong})
    assert info.value.code == ErrorCode.EXECUTION_FAILED
    assert info.value.field_path == "views.scaled"
    assert "'other'" in info.value.message
    assert "'total'" in info.value.message
    assert not (spark_manifest.parent / "out").exists()


def test_an_untrusted_executor_provider_is_refused_before_import(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("sales", SALES)
    text = HEAD + SPARK.format(executor="x")
    manifest = write_manifest(text + '\n[executors.x]\nprovider = "os:system"\n')
    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(manifest, execute=False)
    assert info.value.code == ErrorCode.UDF_PROVIDER_UNTRUSTED
    assert info.value.field_path == "executors.x.provider"
    assert info.value.file is not None


def test_datafusion_cannot_be_redeclared(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("sales", SALES)
    manifest = write_manifest(HEAD + '\n[executors.datafusion]\nprovider = "m:f"\n')
    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(manifest, execute=False)
    assert info.value.code == ErrorCode.MANIFEST_RESERVED_NAME
    assert info.value.field_path == "executors.datafusion"


def test_the_json_schema_documents_executors_and_schema_mode() -> None:
    from reference_impl.schema import manifest_json_schema

    defs = manifest_json_schema()["$defs"]
    assert "executors" in defs["ManifestDocument"]["properties"]
    assert "provider" in defs["ExecutorSpec"]["properties"]
    assert defs["OutputSpec"]["properties"]["schema_mode"]["enum"] == [
        "merge",
        "overwrite",
        "strict",
    ]


def test_the_reference_adapter_takes_executors(spark_manifest: Path) -> None:
    """The plugin's adapter passes its executors to the authority, like run_pipeline, and
    a real (not dry) execution that skipped outputs fails."""
    from pytest_planguard.errors import PlanguardCode, PlanguardError
    from pytest_planguard.reference_adapter import ReferenceAdapter

    calls: list[str] = []

    def spark(inputs: Mapping[str, pa.Table]) -> pa.Table:
        calls.append("spark")
        return inputs["totals"]

    adapter = ReferenceAdapter()
    context = adapter.build_context(adapter.compile(spark_manifest))
    with pytest.raises(PlanguardError) as info:
        adapter.execute(adapter.plan(context), context, dry_run=False)
    assert info.value.code == PlanguardCode.POLICY_FAILED
    assert "EXECUTOR_UNAVAILABLE scaled" in info.value.message
    assert not (spark_manifest.parent / "out" / "scaled").exists()

    adapter = ReferenceAdapter(executors={"datafusion": "", "spark": spark})
    context = adapter.build_context(adapter.compile(spark_manifest))
    report = adapter.execute(adapter.plan(context), context, dry_run=False)
    assert sorted(out.name for out in report.outputs) == ["after", "scaled", "totals"]
    assert calls == ["spark"]
