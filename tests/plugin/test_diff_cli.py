"""``planguard diff BASE_DIR HEAD_DIR`` over real snapshot trees (the repository's own)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_planguard.cli import main
from tests.support.trees import snapshot_trees


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    return snapshot_trees(tmp_path)


def one(head: Path, view: str) -> Path:
    (path,) = head.rglob(f"{view}.plan")
    return path


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_identical_trees_exit_zero(
    trees: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", *map(str, trees)]) == 0
    assert "0 changed (none), 0 failing the gate" in capsys.readouterr().out


def test_physical_change_fails_unless_policy_warns(
    trees: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, head = trees
    replace_in(one(head, "q01"), "SortPreservingMergeExec", "SortPreservingMergeExec2")
    assert main(["diff", str(base), str(head)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  reference_impl/examples/tpch/manifest/q01.plan: changed (physical)" in out
    assert "-SortPreservingMergeExec" in out
    assert main(["diff", str(base), str(head), "--policy", "physical=warn"]) == 0


def test_new_removed_and_semantic_changes_in_json(
    trees: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, head = trees
    one(head, "q02").unlink()
    shutil.copy(one(head, "q03"), one(head, "q03").with_name("q99.plan"))
    replace_in(one(head, "q04"), "== P0 logical\n", "== P0 logical\nLimit: skip=0, fetch=1\n")
    assert main(["diff", str(base), str(head), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    statuses = {c["view"]: (c["status"], c["classes"], c["code"]) for c in data["changes"]}
    assert statuses == {
        "q02": ("removed", ["removed"], "PLAN_REMOVED"),
        "q99": ("new", ["new"], "PLAN_NEW"),
        "q04": ("changed", ["semantic"], "PLAN_CHANGED"),
    }
    paths = {p.relative_to(base) for p in base.rglob("*.plan")}
    paths |= {p.relative_to(head) for p in head.rglob("*.plan")}
    assert data["summary"]["compared"] == len(paths)  # every snapshot of either tree
    assert data["summary"]["failing"] == 3


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["diff", "/nonexistent/base", "."], "SNAPSHOT_TREE_INVALID"),
        (["diff", ".", ".", "--policy", "physical=maybe"], "CONFIG_ERROR"),
    ],
)
def test_bad_input_exits_two(
    args: list[str], code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert f"error[{code}]" in capsys.readouterr().err
