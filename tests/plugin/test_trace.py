"""The rule trace (issue 18): one ``EXPLAIN VERBOSE`` per view in every bundle, the first
divergence of a changed view, classification by that evidence, and the upgrade rehearsal
(gate, update, change the engine's planning, gate again, ``planguard diff --summary``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# At collection, not in a test: a pytester run in the same worker that imported DataFusion
# first would drop it from sys.modules, and importing its native module again panics
# (pyo3-log: SetLoggerError).
from datafusion import SessionConfig, SessionContext

import reference_impl.examples.sales.pipeline as sales
from pytest_planguard.cli import main
from pytest_planguard.gate.classify import classify
from pytest_planguard.gate.policy import ChangeClass
from pytest_planguard.gate.snapshot import snapshot_damage
from pytest_planguard.gate.trace import compare_traces, parse_trace, trace_lines
from tests.support.gate import FAST, run_gate
from tests.support.tpch import copy_tpch

PHYSICAL = ("initial_physical_plan", "physical_plan after ")


def _gate(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_gate(project, *FAST, *args, env=dict(os.environ))


def test_upgrade_rehearsal_names_a_physical_stage_and_groups_by_it(
    tmp_path: Path, tpch_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Gate on the pinned settings, keep that tree, plan with ``target_partitions = 1``
    (the kind of change an engine upgrade makes: same SQL, other physical planning), gate
    again, then compare the two trees."""
    project = tmp_path / "tpch"
    manifest = copy_tpch(project, tpch_data)
    (project / "pytest.ini").write_text("[pytest]\nplanguard_manifests = manifest.toml\n")
    first = _gate(project, "--snapshot-update")
    assert first.returncode == 0, first.stdout[-3000:]
    base = tmp_path / "base"
    shutil.copytree(project / "snapshots", base)

    text = manifest.read_text()
    assert "target_partitions = 4" in text
    manifest.write_text(text.replace("target_partitions = 4", "target_partitions = 1"))
    failed = _gate(project, "--planguard-report", "report.json")
    assert failed.returncode == 1, failed.stdout[-3000:]
    report = json.loads((project / "report.json").read_text())
    changed = [f for f in report["findings"] if f["code"] == "PLAN_CHANGED"]
    assert changed
    assert all(f["first_divergence"].startswith(PHYSICAL) for f in changed), [
        (f["view"], f["first_divergence"]) for f in changed
    ]
    assert "first diverged at physical_plan after " in failed.stdout
    assert all(f["class"] == "physical" and not f["trace_disagreement"] for f in changed)

    assert _gate(project, "--snapshot-update").returncode == 0
    head = project / "snapshots"
    assert main(["diff", str(base), str(head), "--summary"]) == 1
    out = capsys.readouterr().out
    assert main(["diff", str(base), str(head), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    groups = data["summary"]["by_first_divergence"]
    assert sum(len(names) for names in groups.values()) == len(changed)
    assert all(stage.startswith(PHYSICAL) for stage in groups)
    for stage, names in groups.items():
        count = f"{len(names)} view{'s' if len(names) != 1 else ''}"
        assert f"{count}: {stage}\n" in out
    assert "--- P2 physical ---" not in out  # the summary is the groups, not the diffs
    assert {c["first_divergence"] for c in data["changes"]} == set(groups)
    # the HTML report of the two trees names each view's first divergence too
    page = tmp_path / "diff.html"
    assert main(["diff", str(base), str(head), "--html", str(page)]) == 1
    capsys.readouterr()
    html = page.read_text()
    assert "<th>first diverged at" in html
    for stage in groups:
        assert f"first diverged at <b class=mono>{stage}</b>" in html


# ----------------------------------------------------------- trace sections, pure parts


def _lines(*stages: tuple[str, str | None]) -> str:
    return "\n".join(trace_lines(stages, lambda text: text))


STAGES: tuple[tuple[str, str | None], ...] = (
    ("initial_logical_plan", "scan t"),
    ("logical_plan after push_down_filter", "scan t filter"),
    ("logical_plan after optimize_projections", None),
    ("logical_plan after push_down_filter", None),
    ("logical_plan", None),
    ("initial_physical_plan", "exec t"),
    ("physical_plan after join_selection", None),
    ("physical_plan", None),
)
BASE = _lines(*STAGES)


def test_trace_lines_hash_each_stage_and_mark_unchanged_ones() -> None:
    lines = BASE.splitlines()
    assert lines[2] == "logical_plan after optimize_projections: ="
    # a rule that runs again is numbered, so every stage name is unique
    assert lines[3] == "logical_plan after push_down_filter #2: ="
    parsed = parse_trace(BASE)
    assert [stage for stage, _ in parsed][:2] == [
        "initial_logical_plan",
        "logical_plan after push_down_filter",
    ]
    assert parsed[2][1] == parsed[1][1] != parsed[0][1]  # "=" resolved to the hash above
    # a stage whose normalized text equals the stage before is unchanged too
    again = trace_lines([("a", "x/1"), ("b after r", "x/2")], lambda t: t.split("/")[0])
    assert again[1] == "b after r: ="


def test_first_divergence_and_the_rules_that_started_and_stopped() -> None:
    # the same stages, but join_selection now changes the physical plan
    head = _lines(*STAGES[:6], ("physical_plan after join_selection", "exec t swapped"), STAGES[7])
    found = compare_traces(BASE, head)
    assert found is not None
    assert found.first_divergence == "physical_plan after join_selection"
    assert (found.rules_started, found.rules_stopped) == (
        ("physical_plan after join_selection",),
        (),
    )
    back = compare_traces(head, BASE)
    assert back is not None
    assert back.rules_stopped == ("physical_plan after join_selection",)
    assert compare_traces(BASE, BASE) == compare_traces(BASE, BASE)
    same = compare_traces(BASE, BASE)
    assert same is not None
    assert same.first_divergence is None
    assert compare_traces("", head) is None  # a snapshot without a trace: nothing to say


def _snapshot(p0: str, p1: str, p2: str, trace: str | None) -> str:
    text = (
        "# planguard plan bundle v1\n# view: v\n\n"
        f"== P0 logical\n{p0}\n\n== P1 optimized\n{p1}\n\n== P2 physical\n{p2}\n\n"
        "== schema\na: Int64\n\n== signals\noperator_total: 1\n"
    )
    return text + (f"\n== trace\n{trace}\n" if trace is not None else "")


def test_classification_takes_the_trace_as_evidence() -> None:
    optimizer_trace = _lines(
        ("initial_logical_plan", "scan t"),
        ("logical_plan after push_down_filter", "scan t pushed"),
        ("initial_physical_plan", "exec t"),
    )
    old = _snapshot("scan t", "scan t filter", "exec", BASE)
    # P0 equal, P1 changed, the trace first diverges at an optimizer rule: optimizer
    found = classify(old, _snapshot("scan t", "scan t pushed", "exec", optimizer_trace))
    assert found.classes == (ChangeClass.OPTIMIZER,)
    assert found.first_divergence == "logical_plan after push_down_filter"
    assert found.trace_disagreement == ""
    # only P2 changed, yet the trace names an optimizer rule: say so and keep both
    disputed = classify(old, _snapshot("scan t", "scan t filter", "exec 2", optimizer_trace))
    assert disputed.classes == (ChangeClass.OPTIMIZER, ChangeClass.PHYSICAL)
    assert "first diverged at logical_plan after push_down_filter" in (disputed.trace_disagreement)
    # the plans changed but the traces are equal stage for stage: said too
    blind = classify(old, _snapshot("scan t", "scan t filter", "exec 2", BASE))
    assert blind.classes == (ChangeClass.PHYSICAL,)
    assert "traces are equal" in blind.trace_disagreement
    # the trace alone changed: the plans did not, so it is cosmetic
    assert classify(old, _snapshot("scan t", "scan t filter", "exec", optimizer_trace)).classes == (
        ChangeClass.COSMETIC,
    )


def test_a_snapshot_without_a_trace_is_well_formed_and_a_misplaced_one_is_not() -> None:
    assert snapshot_damage(_snapshot("a", "b", "c", None)) == ()
    assert snapshot_damage(_snapshot("a", "b", "c", BASE)) == ()
    misplaced = _snapshot("a", "b", "c", None).replace(
        "== schema", f"== trace\n{BASE}\n\n== schema"
    )
    assert snapshot_damage(misplaced)
    twice = _snapshot("a", "b", "c", BASE) + f"\n== trace\n{BASE}\n"
    assert snapshot_damage(twice)
    old = _snapshot("a", "b", "c", None)
    found = classify(old, _snapshot("a", "b", "c 2", BASE))
    assert found.classes == (ChangeClass.PHYSICAL,)
    assert found.first_divergence is None


# ----------------------------------------------------------------- the engine's own trace


def test_the_trace_of_a_registered_view_follows_the_planner_not_the_statistics() -> None:
    from reference_impl.relspec.frame_plan import plan_frame

    def session(partitions: int, statistics: str) -> SessionContext:
        ctx = SessionContext(SessionConfig().with_target_partitions(partitions))
        ctx.sql("CREATE TABLE t AS VALUES (1, 'a'), (2, 'b')").collect()
        ctx.sql("CREATE TABLE u AS VALUES (1, 10), (2, 20)").collect()
        ctx.sql(f"SET datafusion.explain.show_statistics = {statistics}").collect()
        ctx.register_view(
            "v",
            ctx.sql(
                "SELECT t.column2, sum(u.column2) FROM t JOIN u ON t.column1 = u.column1 "
                "WHERE u.column2 > 5 GROUP BY 1"
            ),
        )
        return ctx

    def section(ctx: SessionContext) -> str:
        planned = plan_frame(ctx.table("v"), trace=True)
        assert planned.statistics is not None
        assert planned.statistics.rows is not None
        assert not any("statistics=[" in (text or "") for _, text in planned.trace)
        return "\n".join(trace_lines(planned.trace, lambda text: text))

    four = section(session(4, "false"))
    stages = [stage for stage, _ in parse_trace(four)]
    assert stages[0] == "initial_logical_plan"
    assert stages[-1] == "physical_plan"
    assert not any(stage.endswith(("_with_stats", "_with_schema")) for stage in stages)
    assert "logical_plan after push_down_filter" in four
    assert section(session(4, "true")) == four  # statistics shown or not: the same trace
    one = compare_traces(four, section(session(1, "false")))
    assert one is not None
    assert one.first_divergence is not None
    assert one.first_divergence.startswith(PHYSICAL)


def test_fingerprint_runs_skip_the_trace_and_fingerprint_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The determinism check's extra runs plan without the trace (``for_fingerprints``),
    and their fingerprints equal the traced run's: no false determinism failure."""
    import importlib

    from pytest_planguard.invariants import fingerprints_once
    from pytest_planguard.session_adapter import SessionAdapter

    monkeypatch.setenv("SALES_DATA_DIR", str(tmp_path / "sales"))
    importlib.reload(sales)  # DATA follows the environment
    try:
        adapter = SessionAdapter("reference_impl.examples.sales.pipeline:make_context")
        module = Path(sales.__file__)
        compiled = adapter.compile(module)
        context = adapter.build_context(compiled)
        plan = adapter.plan(context)
        traced = adapter.fingerprints(compiled, context, plan, adapter.validate(plan, context))
        assert all(bundle.trace for bundle in adapter.bundles(plan).values())
        narrow = adapter.for_fingerprints()
        untraced = narrow.plan(narrow.build_context(narrow.compile(module)))
        assert not any(bundle.trace for bundle in narrow.bundles(untraced).values())
        assert fingerprints_once(adapter, module).plans == traced.plans
    finally:
        monkeypatch.delenv("SALES_DATA_DIR")
        importlib.reload(sales)
