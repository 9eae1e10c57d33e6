"""The review outputs of ``pytest --planguard`` (issue 14): the self-contained HTML report,
opened in headless Chromium; the JSON report's diffs; the Markdown summary; GitHub
workflow commands and step summary; the location of a view's item."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.support.browser import load, outside, screenshot
from tests.support.gate import gate
from tests.support.shop import edit

SNAPSHOTS = Path("snapshots/manifest")
VIEWS = ("big_spenders", "customer_totals", "event_counts", "order_totals")
NO_GITHUB_PLUGIN = ("-p", "no:pytest_github_actions_annotate_failures")


def accepted(pytester: pytest.Pytester) -> None:
    gate(pytester, "--snapshot-update").assert_outcomes(passed=4 + len(VIEWS))


def shown(dom: str) -> int:
    found = re.search(r'<span id="shown">(\d+)</span>', dom)
    assert found, "the report has no count of shown views"
    return int(found.group(1))


def visible_rows(dom: str) -> list[str]:
    """The views of the table's rows the filter left visible."""
    rows = re.findall(r'<tr ([^>]*data-view="[^"]*"[^>]*)>', dom)
    return [
        re.search(r'data-view="([^"]*)"', row).group(1)  # type: ignore[union-attr]
        for row in rows
        if 'class="hidden"' not in row
    ]


def artifact_dir(tmp_path: Path) -> Path:
    """Where screenshots are kept: ``$PLANGUARD_ARTIFACT_DIR`` (CI), else the test's own
    directory."""
    directory = Path(os.environ.get("PLANGUARD_ARTIFACT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_html_report_of_an_edited_view_renders_offline_in_chromium(
    pytester: pytest.Pytester, shop: Path, tmp_path: Path
) -> None:
    accepted(pytester)
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 200")
    result = gate(pytester, "--planguard-html", "r.html", "--planguard-report", "report.json")
    result.assert_outcomes(passed=4 + len(VIEWS) - 1, failed=1)
    html = (pytester.path / "r.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "a remote resource"

    page = load((pytester.path / "r.html").as_uri())
    assert outside(page.requests) == []
    section = re.search(r"<section [^>]*id=\"v-manifest-toml-big_spenders\"[^>]*>", page.dom)
    assert section
    assert 'data-classes="semantic"' in section.group(0)
    assert visible_rows(page.dom) == ["big_spenders"]
    # the physical plan as a tree, the changed operator marked; the sections side by side
    assert re.search(r"<span class=\"op changed\"[^>]*><b>FilterExec</b>", page.dom)
    assert "<del>100</del>" in page.dom
    assert "<ins>200</ins>" in page.dom
    assert "<th>snapshot</th>" in page.dom
    assert "<th>current</th>" in page.dom
    # unchanged views are listed, not rendered
    assert "manifest.toml::order_totals" in page.dom
    assert 'id="v-manifest-toml-order_totals"' not in page.dom

    # the JSON report holds the view's unified diff, section by section
    data = json.loads((pytester.path / "report.json").read_text())
    (item,) = [i for i in data["items"] if i.get("view") == "big_spenders"]
    assert "-    Filter: customer_totals.total > Int64(100)" in item["diffs"]["P0 logical"]
    assert "+    Filter: customer_totals.total > Int64(200)" in item["diffs"]["P0 logical"]

    shot = artifact_dir(tmp_path) / "shop-report.png"
    screenshot((pytester.path / "r.html").as_uri(), shot)
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_filter_runs_in_the_browser(pytester: pytest.Pytester, shop: Path) -> None:
    """Four changed views of two classes; the page's own script filters them by text, by
    class and to the failing ones (the URL's fragment sets the filter before it runs)."""
    accepted(pytester)
    edit(
        shop / "manifest.toml",
        "count(*) AS n FROM orders",
        "count(*) AS n FROM orders WHERE amount > 1",
    )
    edit(
        shop / "manifest.toml",
        "SELECT e.kind, count(*) AS n",
        "SELECT e.kind, count(*) AS n, 1 AS one",
    )
    gate(pytester, "--planguard-gate", "schema_additive=warn", "--planguard-html", "r.html")
    uri = (pytester.path / "r.html").as_uri()

    everything = load(uri).dom
    assert shown(everything) == 4
    assert sorted(visible_rows(everything)) == sorted(VIEWS)

    by_text = load(uri + "#q=spenders").dom
    assert (shown(by_text), visible_rows(by_text)) == (1, ["big_spenders"])
    assert 'class="view hidden" id="v-manifest-toml-order_totals"' in by_text

    nothing = load(uri + "#q=no-such-view").dom
    assert (shown(nothing), visible_rows(nothing)) == (0, [])

    additive = load(uri + "#class=schema_additive").dom
    assert (shown(additive), visible_rows(additive)) == (1, ["event_counts"])

    failing = load(uri + "#failing=1").dom
    assert sorted(visible_rows(failing)) == ["big_spenders", "customer_totals", "order_totals"]


def test_html_report_from_the_ini_key_under_xdist(pytester: pytest.Pytester, shop: Path) -> None:
    """Under pytest-xdist the controller writes the report, from what the workers sent."""
    accepted(pytester)
    (shop / "pytest.ini").write_text(
        "[pytest]\nplanguard_manifests = manifest.toml\nplanguard_html = out/report.html\n"
    )
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 200")
    gate(pytester, "-n", "2").assert_outcomes(passed=4 + len(VIEWS) - 1, failed=1)
    html = (shop / "out" / "report.html").read_text()
    assert 'data-view="big_spenders"' in html
    assert "FilterExec" in html
    assert "datafusion=" in html  # the engine versions, from the invariant items' header


def test_github_actions_annotations_and_step_summary(
    pytester: pytest.Pytester, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted(pytester)
    summary = pytester.path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 200")
    line = 1 + shop.joinpath("manifest.toml").read_text().splitlines().index("[views.big_spenders]")

    # without the annotate-failures plugin: our own ::error, at the view's manifest table
    result = gate(pytester, *NO_GITHUB_PLUGIN, "--planguard-markdown", "pr.md")
    errors = [x for x in result.outlines if x.startswith("::error")]
    assert len(errors) == 1, result.outlines
    assert errors[0].startswith(f"::error file=manifest.toml,line={line},title=planguard%3A big")
    assert "%0ATo accept: pytest --planguard --snapshot-update" in errors[0]
    text = summary.read_text()
    assert text.startswith("earlier step\n## planguard: plan changes")
    assert "| `big_spenders` | `manifest.toml` | semantic | fail |  |" in text
    assert "<details><summary>big_spenders: semantic</summary>" in text
    assert (pytester.path / "pr.md").read_text() in text

    # with the plugin: it annotates the failed item at the same place; we add no duplicate
    result = gate(pytester)
    ours = [x for x in result.outlines + result.errlines if x.startswith("::error")]
    assert len(ours) == 1, ours
    assert ours[0].startswith(f"::error file=manifest.toml,line={line}")

    # a warned class is ours to annotate, with or without the plugin
    for options in ((), NO_GITHUB_PLUGIN):
        result = gate(pytester, *options, "--planguard-gate", "semantic=warn")
        warnings = [x for x in result.outlines if x.startswith("::warning")]
        assert len(warnings) == 1, result.outlines
        assert "big_spenders" in warnings[0]
        assert not [x for x in result.outlines + result.errlines if x.startswith("::error")]


def test_no_github_output_outside_github_actions(
    pytester: pytest.Pytester, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted(pytester)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 200")
    result = gate(pytester, *NO_GITHUB_PLUGIN)
    assert not [x for x in result.outlines if x.startswith("::")]
    assert not summary.exists()


def test_item_location_points_at_the_views_sql_file(tmp_path: Path, tpch_data: Path) -> None:
    """The bundled TPC-H example keeps each view's SQL in a file: an edited view's item
    points there (``-rA``, IDEs, annotations), and its report is kept as an artifact."""
    import subprocess
    import sys

    from tests.support.tpch import copy_tpch

    project = tmp_path / "tpch"
    copy_tpch(project, tpch_data)
    (project / "pytest.ini").write_text("[pytest]\nplanguard_manifests = manifest.toml\n")
    accept = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--planguard"]
    accept += ["--planguard-processes", "0", "--snapshot-update"]
    subprocess.run(accept, cwd=project, capture_output=True, check=True)
    view = project / "views" / "q05.sql"
    view.write_text(view.read_text().replace("r_name = 'ASIA'", "r_name = 'EUROPE'"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GITHUB_"))},
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            *NO_GITHUB_PLUGIN,
            "--planguard",
            "--planguard-processes",
            "0",
            "--planguard-html",
            "r.html",
            "-rA",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    (error,) = [x for x in done.stdout.splitlines() if x.startswith("::error")]
    assert error.startswith("::error file=views/q05.sql,line=1,title=planguard%3A q05 semantic")
    assert "| `q05` | `manifest.toml` | semantic | fail |" in (tmp_path / "summary.md").read_text()
    page = load((project / "r.html").as_uri())
    assert outside(page.requests) == []
    assert visible_rows(page.dom) == ["q05"]
    assert "EUROPE" in page.dom
    shot = artifact_dir(tmp_path) / "tpch-report.png"
    screenshot((project / "r.html").as_uri(), shot)
    assert shot.stat().st_size > 10_000


def test_an_html_path_that_is_a_directory_is_refused_before_the_run(
    pytester: pytest.Pytester, shop: Path
) -> None:
    (pytester.path / "out").mkdir()
    result = gate(pytester, "--planguard-html", "out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*error?CONFIG_ERROR? planguard_html*is a directory; name a file"])
    ok = gate(pytester, "--planguard-html", "out/r.html", "--snapshot-update")
    ok.assert_outcomes(passed=4 + len(VIEWS))
    assert (pytester.path / "out" / "r.html").is_file()
