"""The review renderers on plain data (no gate run): side-by-side rows, plan trees, escaping,
GitHub workflow commands and their cap, the Markdown size limit, extra finding fields."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_planguard.gate import github
from pytest_planguard.gate.html import render_html
from pytest_planguard.gate.markdown import render_markdown
from pytest_planguard.gate.review import (
    Review,
    ReviewView,
    diff_rows,
    plan_tree,
    review_from_report,
    section_diffs,
    sides,
)

OLD = """# planguard plan bundle v1
# view: v
# engine: datafusion=55.0.0

== P0 logical
Projection: a
  TableScan: t

== P2 physical
ProjectionExec: expr=[a]
  DataSourceExec: file_groups={1 group}
"""
NEW = OLD.replace("ProjectionExec: expr=[a]\n", "ProjectionExec: expr=[a]\n  FilterExec: a > 1\n")
NEW = NEW.replace("  DataSourceExec", "    DataSourceExec").replace(
    "datafusion=55", "datafusion=56"
)


def review(*views: ReviewView) -> Review:
    return Review(
        title="t", labels=("base", "head"), summary=[("changed", str(len(views)))],
        facts=[("engine", "x")], views=list(views),
    )  # fmt: skip


def test_section_diffs_keep_the_whole_section_and_rebuild_both_sides() -> None:
    diffs = section_diffs(OLD, NEW, "v")
    assert sorted(diffs) == ["P2 physical", "header"]
    old, new = sides(diffs["P2 physical"])
    assert old == ["ProjectionExec: expr=[a]", "  DataSourceExec: file_groups={1 group}"]
    assert new[1] == "  FilterExec: a > 1"
    assert "engine: datafusion=55.0.0" in diffs["header"]
    long_old = "\n".join(f"{'  ' * i}Op{i}: x" for i in range(12))
    long_new = long_old.replace("Op11: x", "Op11: y")
    old, new = sides(
        section_diffs(f"== P1 optimized\n{long_old}\n", f"== P1 optimized\n{long_new}\n")[
            "P1 optimized"
        ]
    )
    assert (len(old), len(new), new[0], new[-1].strip()) == (12, 12, "Op0: x", "Op11: y")


def test_plan_tree_marks_an_inserted_operator_and_keeps_the_subtree() -> None:
    old, new = sides(section_diffs(OLD, NEW)["P2 physical"])
    nodes = [(n.depth, n.status, n.text.split(":")[0]) for n in plan_tree(old, new)]
    assert nodes == [
        (0, "equal", "ProjectionExec"),
        (1, "added", "FilterExec"),
        (2, "equal", "DataSourceExec"),
    ]
    changed = plan_tree(["A: x", "  B: y"], ["A: x", "  B: z"])
    assert [(n.status, n.was) for n in changed] == [("equal", ""), ("changed", "B: y")]
    removed = plan_tree(["A", "  B", "    C"], ["A", "  C"])
    assert [n.status for n in removed] == ["equal", "removed", "equal"]


def test_side_by_side_rows_pair_removed_with_added_lines() -> None:
    diff = "--- a\n+++ b\n@@ -1,3 +1,3 @@\n x\n-y\n-z\n+Y\n w\n@@ -9 +9 @@\n-q\n"
    assert list(diff_rows(diff)) == [
        ("equal", "x", "x"),
        ("replace", "y", "Y"),
        ("delete", "z", None),
        ("equal", "w", "w"),
        ("gap", None, None),
        ("delete", "q", None),
    ]


def test_html_escapes_what_it_shows() -> None:
    hostile = ReviewView(
        target="m.toml", view="<script>alert(1)</script>", status="changed",
        classes=("semantic",), message="<img src=x onerror=alert(1)>",
        diffs=section_diffs(OLD.replace("a", "<b>"), NEW),
        extra={"first_divergence": "<i>rule</i>"},
    )  # fmt: skip
    html = render_html(review(hostile))
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<i>rule" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # the page's own


def test_extra_finding_fields_are_shown_as_they_come() -> None:
    """A field a finding gains later shows without a renderer change; the rule trace's
    fields have their own lines."""
    item = {
        "kind": "plan", "manifest": "m.toml", "nodeid": "m.toml::v", "view": "v",
        "status": "changed", "codes": ["PLAN_CHANGED"], "classes": ["optimizer"],
        "outcome": "failed", "diffs": section_diffs(OLD, NEW),
    }  # fmt: skip
    finding = {
        "code": "PLAN_CHANGED", "nodeid": "m.toml::v", "check": "plan", "view": "v",
        "first_divergence": "logical_plan after push_down_filter",
        "rules_started": ["a", "b"], "classes": ["optimizer"], "future_field": ["x", "y"],
    }  # fmt: skip
    built = review_from_report({"items": [item], "findings": [finding]}, lambda n: f"acc {n}")
    (view,) = built.views
    assert view.extra == {"future_field": ["x", "y"]}
    assert view.first_divergence == "logical_plan after push_down_filter"
    assert view.rules_started == ("a", "b")
    html = render_html(built)
    assert "<b>future_field</b>: <span class=mono>x, y</span>" in html
    assert "first diverged at <b class=mono>logical_plan after push_down_filter</b>" in html
    assert "rules started firing: <span class=mono>a, b</span>" in html
    assert "<td class=mono>logical_plan after push_down_filter<td" in html  # the table
    assert "acc m.toml::v" in html


def test_workflow_commands_escape_properties_and_data() -> None:
    line = github.command("error", "50% done\nnext", file="a,b:c.sql", line=3, title="t: x, y")
    assert line == "::error file=a%2Cb%3Ac.sql,line=3,title=t%3A x%2C y::50%25 done%0Anext"


def test_workflow_commands_are_capped_per_level_with_a_last_line() -> None:
    views = [
        ReviewView(target="m", view=f"v{i}", status="changed", classes=("semantic",),
                   action="fail" if i % 2 else "warn", location=f"m.toml:{i + 1}")
        for i in range(30)
    ]  # fmt: skip
    lines = list(github.workflow_commands(review(*views), plugin_annotates_failures=False))
    assert sum(x.startswith("::error ") for x in lines) == github.PER_LEVEL
    assert sum(x.startswith("::warning ") for x in lines) == github.PER_LEVEL
    assert lines[-1].startswith("::notice::planguard: 10 more plan change(s) not annotated")
    assert lines[0].startswith("::warning file=m.toml,line=1,title=planguard%3A v0 semantic::")
    moved = github.workflow_commands(
        review(views[0]),
        plugin_annotates_failures=False,
        root=Path("/ws/project"),
        workspace="/ws",
    )
    assert next(moved).startswith("::warning file=project/m.toml,line=1,")
    only_warned = list(github.workflow_commands(review(*views), plugin_annotates_failures=True))
    assert not [x for x in only_warned if x.startswith("::error")]
    assert only_warned[-1].startswith("::notice::planguard: 5 more")


def test_markdown_stays_under_its_budget() -> None:
    big = "\n".join(f"+line {i} " + "x" * 80 for i in range(2000))
    views = [
        ReviewView(target="m", view=f"v{i}", status="changed", classes=("physical",),
                   diffs={"P2 physical": f"--- a\n+++ b\n@@ -1 +1 @@\n{big}"})
        for i in range(100)
    ]  # fmt: skip
    text = render_markdown(review(*views), budget=1024 * 1024)
    assert len(text.encode()) < 1024 * 1024
    assert text.count("| `v") == 100  # every view is in the table
    shown = len(re.findall(r"<details>", text))
    assert 0 < shown < 100
    assert f"{100 - shown} more diff(s) left out" in text


def test_a_changed_operator_reads_at_a_glance() -> None:
    """Each view starts with its first changed lines, one merged line each, and a changed
    operator in the tree shows what in it changed."""
    new = OLD.replace("ProjectionExec: expr=[a]", "ProjectionExec: expr=[b]")
    view = ReviewView(
        target="m", view="v", status="changed", classes=("physical",),
        diffs=section_diffs(OLD, new),
    )  # fmt: skip
    html = render_html(review(view))
    glance = re.search(r"<ul class=glance>(.*?)</ul>", html)
    assert glance is not None
    assert glance.group(1) == (
        "<li><span class=muted>P2 physical</span> "
        "ProjectionExec: expr=[<del>a</del><ins>b</ins>]</li>"
    )
    assert "<b>ProjectionExec</b>: expr=[<del>a</del><ins>b</ins>]</span>" in html
