"""Outputs don't fail half-way (issue 19.3).

``validate`` compares each output view's schema with the Delta table at the output's
location (``OUTPUT_SCHEMA_MISMATCH``, field ``outputs.<name>.schema_mode``); ``run``
collects and checks every output before its first commit and commits none when one would
fail; ``schema_mode`` maps onto deltalake's schema modes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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

MANIFEST = """
[datasets.sales]
format = "delta"
location = "sales"

[views.a_view]
sql = "SELECT region, amount FROM sales"

[views.b_view]
sql = "{b_sql}"

[outputs.a_out]
view = "a_view"
location = "out/a"
mode = "{mode}"

[outputs.b_out]
view = "b_view"
location = "out/b"
mode = "{mode}"
{b_extra}

[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""

NARROW = "SELECT region, sum(amount) AS total FROM sales GROUP BY region"
WIDE = "SELECT region, sum(amount) AS total, count(*) AS n FROM sales GROUP BY region"
SALES = {"region": ["n", "s", "n"], "amount": [10, 3, 5]}


class Project:
    def __init__(self, write_manifest: WriteManifest, delta_table: DeltaTableFactory) -> None:
        self.write_manifest = write_manifest
        self.root = delta_table("sales", SALES).parent

    def manifest(self, b_sql: str, *, mode: str = "overwrite", schema_mode: str = "") -> Path:
        extra = f'schema_mode = "{schema_mode}"' if schema_mode else ""
        return self.write_manifest(MANIFEST.format(b_sql=b_sql, mode=mode, b_extra=extra))

    def version(self, name: str) -> int:
        return int(deltalake.DeltaTable(str(self.root / "out" / name)).version())

    def read(self, name: str) -> dict[str, list[Any]]:
        table = deltalake.DeltaTable(str(self.root / "out" / name)).to_pyarrow_table()
        ordered = table.sort_by([(c, "ascending") for c in table.column_names])
        rows: dict[str, list[Any]] = ordered.to_pydict()
        return rows


@pytest.fixture
def project(write_manifest: WriteManifest, delta_table: DeltaTableFactory) -> Project:
    project = Project(write_manifest, delta_table)
    first = run_pipeline(project.manifest(NARROW))
    assert first.execution is not None
    assert first.execution.ok
    assert (project.version("a"), project.version("b")) == (0, 0)
    return project


def test_validate_reports_the_mismatch_before_anything_runs(project: Project) -> None:
    before = (project.read("a"), project.read("b"))
    run = run_pipeline(project.manifest(WIDE), execute=False)
    (issue,) = run.validation.issues
    assert issue.code == PolicyCode.OUTPUT_SCHEMA_MISMATCH
    assert (issue.severity, issue.subject, issue.subject_kind) == ("error", "b_out", "output")
    assert issue.field_path == "outputs.b_out.schema_mode"
    assert "columns the table lacks: n" in issue.message
    (target,) = [t for t in run.plan.output_targets if t.name == "b_out"]
    assert target.table_version == 0
    assert [c.name for c in target.view_columns] == ["region", "total", "n"]
    assert (project.read("a"), project.read("b")) == before


def test_validate_is_clean_when_the_schemas_match(project: Project) -> None:
    """Twin: the unchanged manifest over its own outputs has no finding."""
    run = run_pipeline(project.manifest(NARROW), execute=False)
    assert run.validation.issues == ()
    assert all(t.table_exists and not t.schema_problems for t in run.plan.output_targets)


def test_a_run_whose_second_output_would_fail_commits_neither(project: Project) -> None:
    """The issue's done-when.  In warn mode validation lets the run go ahead; the
    preflight then refuses before the first commit (a_out sorts, and writes, first)."""
    before = (project.read("a"), project.read("b"))
    run = run_pipeline(project.manifest(WIDE), mode="warn")
    assert run.validation.ok  # downgraded to a warning by the mode
    assert run.execution is not None
    assert run.execution.outputs == ()
    assert run.execution.skipped_outputs == ("a_out", "b_out")
    (finding,) = run.execution.findings
    assert (finding.code, finding.subject) == (PolicyCode.OUTPUT_SCHEMA_MISMATCH, "b_out")
    assert finding.field_path == "outputs.b_out.schema_mode"
    assert (project.version("a"), project.version("b")) == (0, 0)
    assert (project.read("a"), project.read("b")) == before


def test_planguard_run_exits_1_and_validate_names_the_field(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = project.manifest(WIDE)
    assert main(["validate", str(manifest), "--json"]) == 1
    (issue,) = json.loads(capsys.readouterr().out)["validation"]["issues"]
    assert (issue["code"], issue["field_path"]) == (
        "OUTPUT_SCHEMA_MISMATCH",
        "outputs.b_out.schema_mode",
    )
    assert main(["run", str(manifest), "--mode", "warn"]) == 1
    assert "error[OUTPUT_SCHEMA_MISMATCH] output b_out:" in capsys.readouterr().out
    assert (project.version("a"), project.version("b")) == (0, 0)


def test_schema_mode_overwrite_lets_a_column_added_output_through(project: Project) -> None:
    run = run_pipeline(project.manifest(WIDE, schema_mode="overwrite"))
    assert run.validation.issues == ()
    assert run.execution is not None
    assert run.execution.ok
    assert (project.version("a"), project.version("b")) == (1, 1)
    assert project.read("b") == {"region": ["n", "s"], "total": [15, 3], "n": [2, 1]}


def test_schema_mode_merge_adds_the_column_while_appending(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    project = Project(write_manifest, delta_table)
    assert run_pipeline(project.manifest(NARROW, mode="append")).execution is not None
    strict = run_pipeline(project.manifest(WIDE, mode="append"), execute=False)
    assert [i.code for i in strict.validation.issues] == [PolicyCode.OUTPUT_SCHEMA_MISMATCH]

    run = run_pipeline(project.manifest(WIDE, mode="append", schema_mode="merge"))
    assert run.validation.issues == ()
    assert run.execution is not None
    assert run.execution.ok
    table = deltalake.DeltaTable(str(project.root / "out" / "b"))
    assert table.version() == 1
    assert [field.name for field in table.schema().fields] == ["region", "total", "n"]
    rows = sorted(zip(*project.read("b").values(), strict=True), key=lambda r: tuple(map(str, r)))
    assert rows == [("n", 15, 2), ("n", 15, None), ("s", 3, 1), ("s", 3, None)]


def test_a_lossy_type_change_is_a_mismatch_not_a_silent_cast(project: Project) -> None:
    """deltalake alone casts a double into a long column (3.7 is stored as 3); strict
    refuses it, and a lossless widening (int -> long) passes."""
    lossy = "SELECT region, CAST(sum(amount) AS DOUBLE) + 0.7 AS total FROM sales GROUP BY 1"
    run = run_pipeline(project.manifest(lossy), execute=False)
    (issue,) = run.validation.issues
    assert "column total: the view gives double, the table holds long" in issue.message

    widening = "SELECT region, CAST(sum(amount) AS INT) AS total FROM sales GROUP BY region"
    ok = run_pipeline(project.manifest(widening))
    assert ok.validation.issues == ()
    assert ok.execution is not None
    assert ok.execution.ok
    assert project.read("b")["total"] == [15, 3]


def test_a_run_checks_the_table_as_it_is_at_commit_time(project: Project) -> None:
    """The table may change between validation and the run: the preflight reads it again."""
    manifest = project.manifest(NARROW)
    run = run_pipeline(manifest, execute=False)
    assert run.validation.issues == ()
    deltalake.write_deltalake(
        str(project.root / "out" / "b"),
        pa.table({"region": ["x"], "total": [1], "extra": [True]}),
        mode="overwrite",
        schema_mode="overwrite",
    )
    again = run_pipeline(manifest, mode="warn")
    assert again.execution is not None
    assert [f.code for f in again.execution.findings] == [PolicyCode.OUTPUT_SCHEMA_MISMATCH]
    assert "table columns the view lacks: extra" in again.execution.findings[0].message
    assert project.version("a") == 0


def test_a_non_nullable_table_column_given_nulls_is_caught_before_any_commit(
    project: Project,
) -> None:
    schema = pa.schema([("region", pa.string(), False), ("total", pa.int64())])
    deltalake.write_deltalake(
        str(project.root / "out" / "b"),
        pa.table({"region": ["x"], "total": [1]}, schema=schema),
        mode="overwrite",
        schema_mode="overwrite",
    )
    nulls = "SELECT CAST(NULL AS VARCHAR) AS region, sum(amount) AS total FROM sales"
    run = run_pipeline(project.manifest(nulls), mode="warn")
    assert run.execution is not None
    (finding,) = run.execution.findings
    assert "column region is not nullable in the table but gets nulls" in finding.message
    assert project.version("a") == 0


def test_schema_mode_overwrite_with_append_is_refused_at_load(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    project = Project(write_manifest, delta_table)
    manifest = project.manifest(NARROW, mode="append", schema_mode="overwrite")
    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(manifest, execute=False)
    assert info.value.code == ErrorCode.MANIFEST_CONFLICTING_FIELDS
    assert info.value.field_path == "outputs.b_out.schema_mode"
    assert not (project.root / "out").exists()


def test_a_write_failing_after_preflight_names_what_was_committed(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What remains possible (README): Delta has no multi-table transaction, so a write
    failing for a reason no preflight sees leaves the earlier outputs committed."""
    real = deltalake.write_deltalake
    calls: list[str] = []

    def flaky(location: str, data: Any, **kwargs: Any) -> None:
        calls.append(location)
        if len(calls) == 2:
            raise OSError("No space left on device")
        real(location, data, **kwargs)

    monkeypatch.setattr(deltalake, "write_deltalake", flaky)
    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(project.manifest(NARROW))
    assert info.value.code == ErrorCode.OUTPUT_WRITE_FAILED
    assert info.value.field_path == "outputs.b_out"
    assert "already committed by this run: a_out (version 1)" in info.value.message
    assert (project.version("a"), project.version("b")) == (1, 0)


KILL_ON_SECOND_WRITE = """
import os, signal, sys
import deltalake
real = deltalake.write_deltalake
calls = []
def write(location, data, **kwargs):
    calls.append(location)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    real(location, data, **kwargs)
deltalake.write_deltalake = write
from pytest_planguard.cli import main
sys.exit(main(["run", sys.argv[1]]))
"""


def test_a_crash_between_two_commits_leaves_each_table_intact(project: Project) -> None:
    """The README's residual, measured: SIGKILL after the first commit.  The first output
    has its new version, the second its old one, and both read cleanly."""
    import signal
    import subprocess
    import sys

    manifest = project.manifest(NARROW)
    before_b = project.read("b")
    done = subprocess.run(
        [sys.executable, "-c", KILL_ON_SECOND_WRITE, str(manifest)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert (project.version("a"), project.version("b")) == (1, 0)
    assert project.read("b") == before_b
    assert len(project.read("a")["region"]) == 3
