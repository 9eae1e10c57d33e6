"""Faults between the stages of a run: a session that drifted from its manifest, outputs
whose views were never planned, and a warning-only run for contrast.  Each fails closed
with a code and writes nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

# Imported at module import, never inside a test: pytester restores sys.modules after each
# test, and deltalake's native module panics when it is initialized twice.
import deltalake
import pyarrow as pa
import pytest

from pytest_planguard.cli import main
from reference_impl.errors import ReferenceImplError
from reference_impl.execution import execute_plan
from reference_impl.pipeline import run_pipeline
from reference_impl.relspec.authority import build_execution_authority
from reference_impl.relspec.execution_plan import compile_execution_plan
from reference_impl.relspec.policy_validation import validate_policy_bundle
from tests.hostile.helpers import ERROR_LINE, assert_no_traceback, tree_state
from tests.support.codes import CodeRecorder

CLEAN = (
    "[policy]\nsmall_input_rows = 0\n"
    "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n"
)
MANIFEST = (
    '[datasets.t]\nformat = "delta"\nlocation = "t"\n'
    '[views.v]\nsql = "SELECT a FROM t"\n'
    '[outputs.o]\nview = "v"\nlocation = "out/o"\n'
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    deltalake.write_deltalake(str(root / "t"), pa.table({"a": list(range(10))}))
    deltalake.write_deltalake(str(root / "rogue"), pa.table({"a": [666]}))
    return root


@pytest.mark.produces_codes("SCAN_DATASET_NOT_IN_MANIFEST", "DATASET_LOCATION_UNRESOLVED")
def test_a_session_drifted_from_its_manifest_is_found_and_fails_closed(
    root: Path, codes: CodeRecorder
) -> None:
    """A view frame swapped for one reading a table registered behind the resolver's back:
    validation names the undeclared scan, and execution refuses before writing anything,
    because the resolver cannot resolve a dataset the manifest does not declare."""
    path = root / "manifest.toml"
    path.write_text(MANIFEST + CLEAN, encoding="utf-8")
    run = run_pipeline(path, execute=False)
    semantic = run.authority.semantic_context
    ctx = semantic.session
    ctx.register_table("rogue", deltalake.DeltaTable(str(root / "rogue")))
    drifted = dataclasses.replace(
        semantic, view_frames={**semantic.view_frames, "v": ctx.sql("SELECT a FROM rogue")}
    )
    authority = build_execution_authority(drifted)
    plan = compile_execution_plan(authority)
    result = validate_policy_bundle(plan, runtime_profile=semantic.runtime_profile, udf_snapshot={})
    codes.expect_all((i.code for i in result.issues), ["SCAN_DATASET_NOT_IN_MANIFEST"])
    assert not result.ok

    before = tree_state(root)
    with pytest.raises(ReferenceImplError) as info:
        execute_plan(plan, authority)  # as if someone ignored the finding
    codes.expect(info.value.code, "DATASET_LOCATION_UNRESOLVED", info.value.render())
    assert info.value.field_path == "datasets.rogue"
    assert tree_state(root) == before  # fails closed before any write


@pytest.mark.produces_codes("EXECUTION_FAILED")
def test_run_refuses_outputs_whose_views_were_not_planned(
    root: Path, capsys: pytest.CaptureFixture[str], codes: CodeRecorder
) -> None:
    """``--mode warn`` turns the planning error into a warning, so execution starts; it
    stops before writing, naming the view that has no plan."""
    path = root / "manifest.toml"
    path.write_text(MANIFEST.replace("SELECT a FROM t", "SELECT missing FROM t") + CLEAN, "utf-8")
    before = tree_state(root)
    assert main(["run", "--mode", "warn", str(path)]) == 2
    out, err = capsys.readouterr()
    assert_no_traceback(out, err)
    match = ERROR_LINE.search(err)
    assert match is not None, err
    codes.expect(match["code"], "EXECUTION_FAILED", err)
    assert "views v were not planned; nothing was written" in err
    assert tree_state(root) == before
    assert not (root / "out").exists()


@pytest.mark.produces_codes("SMALL_INPUT_SCAN_POLICY", "DELTA_PROTOCOL_SUPPORT_UNCONFIGURED")
def test_warnings_alone_exit_0_and_the_run_writes(
    root: Path, capsys: pytest.CaptureFixture[str], codes: CodeRecorder
) -> None:
    """Twin of the failing runs: small inputs get the small-input scan policy (a
    warning); in warn mode an unconfigured Delta support is a warning too; the run
    writes its output."""
    path = root / "manifest.toml"
    path.write_text(MANIFEST, encoding="utf-8")
    assert main(["run", "--mode", "warn", str(path)]) == 0
    out, _ = capsys.readouterr()
    warnings = [line.split("]", 1)[0].removeprefix("warning[") for line in out.splitlines()]
    codes.expect_all(warnings, ["SMALL_INPUT_SCAN_POLICY", "DELTA_PROTOCOL_SUPPORT_UNCONFIGURED"])
    assert deltalake.DeltaTable(str(root / "out" / "o")).version() == 0
