"""Injected Delta faults: broken logs, vanished tables and files, a protocol newer than
supported, and a run that fails or is killed in the middle of ``execute_plan``.

Each ends in a coded error naming the dataset or output (never a traceback), and every
output keeps its earlier Delta versions intact and readable.
"""

from __future__ import annotations

import json
import shutil
import signal
import textwrap
from pathlib import Path
from typing import Any

# Imported at module import, never inside a test: pytester restores sys.modules after each
# test, and deltalake's native module panics when it is initialized twice.
import deltalake
import pyarrow as pa
import pytest

from pytest_planguard.cli import main
from reference_impl.errors import ReferenceImplError
from reference_impl.execution import execute_plan
from reference_impl.pipeline import run_pipeline
from reference_impl.relspec.scan_overrides import apply_scan_unit_overrides
from tests.hostile.helpers import (
    ERROR_LINE,
    assert_no_traceback,
    tree_state,
)
from tests.support.cli import run_planguard
from tests.support.codes import CodeRecorder

ROWS = 4000

FAULTY_UDFS = """
import os
import signal

import pyarrow as pa
from datafusion import udf

batches = 0


def _faulty(values: pa.Array) -> pa.Array:
    global batches
    batches += 1
    mode = os.environ.get("PLANGUARD_FAULT", "")
    if batches >= 3 and mode == "raise":
        raise RuntimeError("injected fault in the middle of the stream")
    if batches >= 3 and mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return values


faulty = udf(_faulty, [pa.int64()], pa.int64(), "volatile", name="faulty")
"""

MANIFEST = """
[datasets.t]
format = "delta"
location = "t"

[views.plain]
sql = "SELECT a FROM t"

[views.guarded]
sql = "SELECT faulty(a) AS a FROM t"
udfs = ["faulty"]

[outputs.o1_plain]
view = "plain"
location = "out/plain"

[outputs.o2_guarded]
view = "guarded"
location = "out/guarded"

[udfs.faulty]
provider = "faulty_udfs:faulty"

[runtime]
batch_size = 256
cache_min_consumers = 0

[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 3
max_writer_version = 7
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("PLANGUARD_FAULT", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    deltalake.write_deltalake(str(root / "t"), pa.table({"a": list(range(ROWS))}))
    (root / "faulty_udfs.py").write_text(textwrap.dedent(FAULTY_UDFS), encoding="utf-8")
    path = root / "manifest.toml"
    path.write_text(MANIFEST, encoding="utf-8")
    return path


def read(location: Path) -> list[Any]:
    return sorted(deltalake.DeltaTable(str(location)).to_pyarrow_table().column("a").to_pylist())


def first_run_then_new_input(manifest: Path) -> dict[str, list[Any]]:
    """Write every output once (version 0), then append input rows for the next run."""
    run = run_pipeline(manifest)
    assert run.execution is not None
    root = manifest.parent
    before = {name: read(root / "out" / name) for name in ("plain", "guarded")}
    assert all(len(rows) == ROWS for rows in before.values())
    deltalake.write_deltalake(
        str(root / "t"), pa.table({"a": list(range(ROWS, ROWS + 100))}), mode="append"
    )
    return before


def assert_outputs_intact(root: Path, before: dict[str, list[Any]], *, plain: int) -> None:
    """``out/guarded`` still reads as before at version 0; ``out/plain`` is at ``plain``."""
    guarded = deltalake.DeltaTable(str(root / "out" / "guarded"))
    assert guarded.version() == 0
    assert read(root / "out" / "guarded") == before["guarded"]
    assert deltalake.DeltaTable(str(root / "out" / "plain")).version() == plain
    assert len(read(root / "out" / "plain")) == ROWS + 100 * plain


# -- the Delta log -------------------------------------------------------------------------


def truncate_latest_commit(table: Path) -> None:
    deltalake.write_deltalake(str(table), pa.table({"a": [1]}), mode="append")
    commit = table / "_delta_log" / "00000000000000000001.json"
    text = commit.read_text(encoding="utf-8")
    commit.write_text(text[: len(text) // 2], encoding="utf-8")


def remove_first_commit(table: Path) -> None:
    deltalake.write_deltalake(str(table), pa.table({"a": [1]}), mode="append")
    (table / "_delta_log" / "00000000000000000000.json").unlink()


def dangling_checkpoint_hint(table: Path) -> None:
    hint = {"version": 0, "size": 3}
    (table / "_delta_log" / "_last_checkpoint").write_text(json.dumps(hint), encoding="utf-8")


def garbage_commit(table: Path) -> None:
    (table / "_delta_log" / "00000000000000000000.json").write_bytes(b"\x00\xff\x13garbage")


LOG_FAULTS = {
    "truncated-latest-commit": truncate_latest_commit,
    "first-commit-removed": remove_first_commit,
    "checkpoint-hint-without-checkpoint": dangling_checkpoint_hint,
    "binary-garbage-commit": garbage_commit,
}


@pytest.mark.produces_codes("DELTA_LOG_CORRUPT")
@pytest.mark.parametrize("fault", list(LOG_FAULTS))
def test_a_corrupted_delta_log_is_a_coded_error(
    project: Path,
    fault: str,
    capsys: pytest.CaptureFixture[str],
    codes: CodeRecorder,
) -> None:
    LOG_FAULTS[fault](project.parent / "t")
    before = tree_state(project.parent)
    assert main(["validate", str(project)]) == 2
    out, err = capsys.readouterr()
    assert_no_traceback(out, err)
    assert out == ""
    (line,) = err.strip().splitlines()  # one line: no engine backtrace after it
    match = ERROR_LINE.match(line)
    assert match is not None, line
    codes.expect(match["code"], "DELTA_LOG_CORRUPT", line)
    assert f"{project}: datasets.t.location: dataset 't'" in line
    assert tree_state(project.parent) == before


@pytest.mark.produces_codes("DELTA_PROTOCOL_UNSUPPORTED")
@pytest.mark.parametrize(
    "protocol",
    [
        {"minReaderVersion": 4, "minWriterVersion": 8},
        {
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["planguardFutureFeature"],
            "writerFeatures": ["planguardFutureFeature"],
        },
    ],
    ids=["reader-version-4", "unknown-reader-feature"],
)
def test_a_table_protocol_newer_than_supported_is_its_own_code(
    project: Path, protocol: dict[str, Any], codes: CodeRecorder
) -> None:
    """Not DELTA_LOG_CORRUPT: the log is fine, the engine is too old for it."""
    log = project.parent / "t" / "_delta_log" / "00000000000000000000.json"
    actions = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    for action in actions:
        if "protocol" in action:
            action["protocol"] = protocol
    log.write_text("\n".join(json.dumps(a) for a in actions) + "\n", encoding="utf-8")
    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(project, execute=False)
    codes.expect(info.value.code, "DELTA_PROTOCOL_UNSUPPORTED", info.value.render())
    assert info.value.field_path == "datasets.t.location"
    assert info.value.subjects == ("t",)


def test_the_healthy_table_validates_cleanly(project: Path) -> None:
    """Twin of the Delta faults: the untouched project plans and passes validation."""
    run = run_pipeline(project, execute=False)
    assert run.validation.ok, run.validation.issues
    assert {node.status for node in run.plan.view_nodes} == {"planned"}


# -- faults between planning and execution -------------------------------------------------


def plan_then(manifest: Path, fault: Any) -> ReferenceImplError:
    """Plan and validate, inject ``fault``, then execute as the pipeline does."""
    run = run_pipeline(manifest, execute=False)
    assert run.validation.ok
    fault(manifest.parent)
    semantic = run.authority.semantic_context

    def execute() -> None:
        apply_scan_unit_overrides(
            semantic.session, semantic.dataset_resolver, run.plan.scan_policy_overrides_by_key
        )
        execute_plan(run.plan, run.authority)

    with pytest.raises(ReferenceImplError) as info:
        execute()
    return info.value


def delete_data_files(root: Path) -> None:
    for data in (root / "t").glob("*.parquet"):
        data.unlink()


def delete_table(root: Path) -> None:
    shutil.rmtree(root / "t")


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        pytest.param(
            delete_data_files,
            "DATASET_UNREADABLE",
            marks=pytest.mark.produces_codes("DATASET_UNREADABLE"),
            id="data-files-deleted",
        ),
        pytest.param(
            delete_table,
            "DATASET_NOT_FOUND",
            marks=pytest.mark.produces_codes("DATASET_NOT_FOUND"),
            id="table-deleted",
        ),
    ],
)
def test_an_input_vanishing_after_planning_fails_before_any_write(
    project: Path, fault: Any, code: str, codes: CodeRecorder
) -> None:
    """Execution re-registers each input at its planned version through the resolver; a
    table or data file gone since planning fails there, before any output is written."""
    before = first_run_then_new_input(project)
    err = plan_then(project, fault)
    codes.expect(err.code, code, err.render())
    assert err.field_path == "datasets.t.location"
    assert "Traceback" not in err.render()
    assert_outputs_intact(project.parent, before, plain=0)  # nothing was written


@pytest.mark.produces_codes("EXECUTION_FAILED")
def test_an_exception_in_the_middle_of_execute_plan_keeps_earlier_versions(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    codes: CodeRecorder,
) -> None:
    before = first_run_then_new_input(project)
    monkeypatch.setenv("PLANGUARD_FAULT", "raise")
    assert main(["run", str(project)]) == 2
    out, err = capsys.readouterr()
    assert_no_traceback(out, err)
    match = ERROR_LINE.match(err.strip())
    assert match is not None, err
    codes.expect(match["code"], "EXECUTION_FAILED", err)
    assert f"{project}: views.guarded: " in err
    assert "injected fault in the middle of the stream" in err
    # the view failed while the outputs were collected, before the first commit: both
    # outputs still read as before (issue 19.3)
    assert_outputs_intact(project.parent, before, plain=0)

    monkeypatch.delenv("PLANGUARD_FAULT")  # twin: without the fault the run commits
    assert main(["run", str(project)]) == 0
    assert deltalake.DeltaTable(str(project.parent / "out" / "guarded")).version() == 1


@pytest.mark.produces_codes("OUTPUT_WRITE_FAILED")
def test_a_failed_first_write_leaves_no_directory_behind(
    project: Path, monkeypatch: pytest.MonkeyPatch, codes: CodeRecorder
) -> None:
    real = deltalake.write_deltalake

    def failing(location: str, data: Any, **kwargs: Any) -> None:
        if not location.endswith("guarded"):
            return real(location, data, **kwargs)
        # a write that gets as far as a data file, then fails before its commit
        Path(location).mkdir(parents=True)
        (Path(location) / "part-00000.parquet").write_bytes(b"PAR1")
        raise OSError("No space left on device")

    monkeypatch.setattr(deltalake, "write_deltalake", failing)
    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(project)
    codes.expect(info.value.code, "OUTPUT_WRITE_FAILED")
    assert "already committed by this run: o1_plain (version 0)" in info.value.message
    out = project.parent / "out"
    assert deltalake.DeltaTable(str(out / "plain")).version() == 0
    assert not (out / "guarded").exists(), sorted(p.name for p in (out / "guarded").iterdir())


def test_the_process_killed_in_the_middle_of_execute_plan_keeps_earlier_versions(
    project: Path,
) -> None:
    """SIGKILL while the outputs are collected: no handler runs, nothing is cleaned up,
    and still every output reads as its previous committed version (nothing is committed
    before every output was collected and checked)."""
    before = first_run_then_new_input(project)
    done = run_planguard("run", project, env={"PLANGUARD_FAULT": "kill"})
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])
    assert_outputs_intact(project.parent, before, plain=0)
    again = run_planguard("run", project, env={"PLANGUARD_FAULT": ""})  # twin: commits
    assert again.returncode == 0, again.stderr
    assert deltalake.DeltaTable(str(project.parent / "out" / "guarded")).version() == 1
    assert len(read(project.parent / "out" / "guarded")) == ROWS + 100
