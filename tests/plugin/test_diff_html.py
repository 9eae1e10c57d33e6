"""``planguard diff BASE HEAD --html PATH`` over the repository's own snapshot trees, the
report opened in headless Chromium (issue 14)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_planguard.cli import main
from tests.support.browser import load, outside
from tests.support.trees import snapshot_trees


def one(head: Path, view: str) -> Path:
    (path,) = head.rglob(f"{view}.plan")
    return path


def test_diff_html_renders_two_trees(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, head = snapshot_trees(tmp_path)
    q01 = one(head, "q01")
    q01.write_text(q01.read_text().replace("SortPreservingMergeExec", "SortExec", 1))
    one(head, "q02").unlink()
    out = tmp_path / "diff.html"
    assert main(["diff", str(base), str(head), "--html", str(out)]) == 1
    assert "FAIL  reference_impl/examples/tpch/manifest/q01.plan" in capsys.readouterr().out

    page = load(out.as_uri())
    assert outside(page.requests) == []
    rows = dict(re.findall(r'<tr data-view="([^"]+)" data-classes="([^"]+)"', page.dom))
    assert rows == {"q01": "physical", "q02": "removed"}
    assert "<th>base</th>" in page.dom
    assert "<th>head</th>" in page.dom
    assert re.search(r"<span class=\"op changed\" title=\"was: SortPreservingMergeExec", page.dom)
    assert "<del>SortPreservingMergeExec</del>" in page.dom  # word by word
    total = len(list(base.rglob("*.plan")))
    assert f"Unchanged views ({total - 2})" in page.dom


def test_diff_html_into_a_directory_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, head = snapshot_trees(tmp_path)
    assert main(["diff", str(base), str(head), "--html", str(tmp_path)]) == 2
    assert "error[SNAPSHOT_WRITE_FAILED]" in capsys.readouterr().err


def test_a_missing_chromium_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.support.browser import chromium

    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on it
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"\.ci/run installs it"):
        chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        chromium()
