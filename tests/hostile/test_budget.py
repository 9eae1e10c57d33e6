"""The planning budget: ``runtime.planning_budget_ms`` bounds each view's planning.

The pathological shape of DESIGN.md section 4, a chain of views that each redefine and
filter the same column, plans in time that grows about cubically with its depth (27.7 s
at depth 100).  Under a budget of a few hundred milliseconds one view of the chain ends
as ``PLANNING_BUDGET_EXCEEDED``, the views behind it are skipped with
``VIEW_UPSTREAM_FAILED``, every other view is still planned and checked, and the whole
run takes seconds.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

# Imported at module import, never inside a test: pytester restores sys.modules after each
# test, and deltalake's native module panics when it is initialized twice.
import deltalake
import pyarrow as pa
import pytest

from reference_impl.engine.budget import BudgetExceeded, PlanningWorker
from reference_impl.engine.runtime import build_runtime_profile
from reference_impl.engine.session import build_semantic_execution_context
from reference_impl.pipeline import run_pipeline
from reference_impl.relspec.contracts import PolicyCode
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
from tests.hostile.helpers import assert_no_traceback
from tests.support.cli import run_planguard
from tests.support.codes import CodeRecorder

DEPTH = 100
BUDGET_MS = 300
SECONDS = 60
"""Generous bound for a loaded CI runner; unbudgeted, the chain alone takes ~30 s."""


def chain_manifest(root: Path, *, budget_ms: int = BUDGET_MS, depth: int = DEPTH) -> Path:
    """``c001 .. c100``: each ``SELECT a + 1 AS a, b FROM <previous> WHERE a > i``; plus
    ``side`` (reads the table) and ``tail`` (reads the end of the chain)."""
    root.mkdir(parents=True, exist_ok=True)
    deltalake.write_deltalake(
        str(root / "t"), pa.table({"a": list(range(100)), "b": list(range(100))})
    )
    lines = [
        '[datasets.t]\nformat = "delta"\nlocation = "t"\n',
        f"[runtime]\nplanning_budget_ms = {budget_ms}\n",
        "[policy]\nsmall_input_rows = 0\n",
        "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n",
        '[views.side]\nsql = "SELECT a, b FROM t WHERE b > 10"\n',
        f'[views.tail]\nsql = "SELECT count(*) AS n FROM c{depth:03d}"\n',
    ]
    previous = "t"
    for i in range(1, depth + 1):
        name = f"c{i:03d}"
        lines.append(
            f'[views.{name}]\nsql = "SELECT a + 1 AS a, b FROM {previous} WHERE a > {i}"\n'
        )
        previous = name
    path = root / "manifest.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.mark.produces_codes("PLANNING_BUDGET_EXCEEDED", "VIEW_UPSTREAM_FAILED")
def test_the_chain_ends_in_one_coded_finding_and_the_rest_is_checked(
    tmp_path: Path, codes: CodeRecorder
) -> None:
    manifest = chain_manifest(tmp_path / "chain")
    started = time.monotonic()
    run = run_pipeline(manifest, execute=False)
    elapsed = time.monotonic() - started
    assert elapsed < SECONDS, f"planning took {elapsed:.1f} s despite the budget"

    status = {node.name: node.status for node in run.plan.view_nodes}
    chain = [f"c{i:03d}" for i in range(1, DEPTH + 1)]
    over = [name for name in chain if status[name] == "budget_exceeded"]
    assert len(over) == 1, {name: status[name] for name in chain}
    cut = chain.index(over[0])
    assert cut > 0, "even the first view of the chain exceeded the budget"
    assert all(status[name] == "planned" for name in chain[:cut])
    assert all(status[name] == "skipped" for name in chain[cut + 1 :])
    assert status["tail"] == "skipped"
    assert status["side"] == "planned"  # the rest of the manifest is still checked
    assert "side" in run.plan.plan_bundles_by_view

    by_subject: dict[str, set[str]] = {}
    for issue in run.validation.issues:
        by_subject.setdefault(issue.subject, set()).add(str(issue.code))
    codes.expect_all(by_subject[over[0]], [PolicyCode.PLANNING_BUDGET_EXCEEDED])
    codes.expect_all(by_subject["tail"], [PolicyCode.VIEW_UPSTREAM_FAILED])
    assert all(by_subject[name] == {"VIEW_UPSTREAM_FAILED"} for name in chain[cut + 1 :])
    assert "side" not in by_subject
    budget_issue = next(i for i in run.validation.issues if i.subject == over[0])
    assert (budget_issue.severity, budget_issue.subject_kind) == ("error", "view")
    assert f"budget of {BUDGET_MS} ms" in budget_issue.message
    assert run.validation.is_deterministic is False  # a budget-bound result says so


def test_a_generous_budget_plans_a_short_chain_entirely(tmp_path: Path) -> None:
    """Twin: the budget cuts nothing that fits in it."""
    run = run_pipeline(
        chain_manifest(tmp_path / "chain", budget_ms=60_000, depth=12), execute=False
    )
    assert {node.status for node in run.plan.view_nodes} == {"planned"}
    assert run.validation.ok, run.validation.issues


@pytest.mark.produces_codes("PLANNING_BUDGET_EXCEEDED")
def test_validate_exits_1_with_the_finding_in_seconds(tmp_path: Path, codes: CodeRecorder) -> None:
    """Through the CLI in a real process: exit 1 (a finding), promptly, no crash at exit
    although the abandoned planning may still be running on its daemon thread."""
    manifest = chain_manifest(tmp_path / "chain")
    started = time.monotonic()
    done = run_planguard("validate", manifest, "--json", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert_no_traceback(done.stdout, done.stderr)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert elapsed < SECONDS
    artifact = json.loads(done.stdout)["validation"]
    budget = [i for i in artifact["issues"] if i["code"] == "PLANNING_BUDGET_EXCEEDED"]
    assert len(budget) == 1, budget
    codes.expect(budget[0]["code"], "PLANNING_BUDGET_EXCEEDED")
    assert re.fullmatch(r"c\d{3}", budget[0]["subject"])


@pytest.mark.produces_codes("PLANNING_BUDGET_EXCEEDED")
def test_logical_planning_at_registration_is_budgeted_too(
    tmp_path: Path, codes: CodeRecorder
) -> None:
    """``ctx.sql`` of a heavy view (a 900-term sum: ~0.1 s) under a 1 ms budget is cut at
    registration; the light view next to it is registered."""
    root = tmp_path / "heavy"
    root.mkdir()
    heavy = " + ".join(["1"] * 900)
    manifest = root / "manifest.toml"
    manifest.write_text(
        f'[views.heavy]\nsql = "SELECT {heavy} AS x"\n'
        '[views.light]\nsql = "SELECT 1 AS x"\n'
        "[runtime]\nplanning_budget_ms = 1\n",
        encoding="utf-8",
    )
    program = compile_semantic_program(load_manifest(manifest))
    semantic = build_semantic_execution_context(program, build_runtime_profile(program))
    failure = semantic.view_failures["heavy"]
    assert failure.kind == "budget_exceeded"
    assert "budget of 1 ms" in failure.message
    run = run_pipeline(manifest, execute=False)
    node = next(node for node in run.plan.view_nodes if node.name == "heavy")
    assert node.status == "budget_exceeded"
    heavy_codes = [str(i.code) for i in run.validation.issues if i.subject == "heavy"]
    codes.expect_all(heavy_codes, ["PLANNING_BUDGET_EXCEEDED"])


def test_the_worker_gives_up_waiting_and_carries_on() -> None:
    worker = PlanningWorker()
    try:
        started = time.monotonic()
        with pytest.raises(BudgetExceeded):
            worker.run(lambda: time.sleep(5), 0.05)
        assert time.monotonic() - started < 2
        assert worker.run(lambda: 42, 1.0) == 42  # a fresh worker after the abandoned one
        with pytest.raises(ZeroDivisionError):
            worker.run(lambda: 1 // 0, 1.0)
    finally:
        worker.close()


def test_a_budget_of_nothing_only_looks() -> None:
    """A budget of 0 or less (as ``Event.wait`` took it): the job is not waited for."""
    worker = PlanningWorker()
    try:
        for budget in (0.0, -0.5):
            started = time.monotonic()
            with pytest.raises(BudgetExceeded):
                worker.run(lambda: time.sleep(0.5), budget)
            assert time.monotonic() - started < 0.4
        assert worker.run(lambda: 7, 5.0) == 7
    finally:
        worker.close()


@pytest.mark.produces_codes("PLAN_UNAVAILABLE", "PLANNING_BUDGET_EXCEEDED", "PLAN_NEW")
def test_pytest_planguard_reports_the_view_and_gates_the_rest(
    pytester: pytest.Pytester, codes: CodeRecorder
) -> None:
    chain_manifest(pytester.path, depth=80)
    pytester.makeini("[pytest]\nplanguard_manifests = manifest.toml\n")
    report = pytester.path.parent / f"{pytester.path.name}-report.json"
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--planguard-processes",
        "0",
        "--planguard-runs",
        "1",
        "--planguard",
        "--planguard-report",
        str(report),
    )
    assert time.monotonic() - started < 2 * SECONDS
    output = result.stdout.str()
    assert_no_traceback(output)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    findings = json.loads(report.read_text(encoding="utf-8"))["findings"]
    policy = {f["code"] for f in findings if f["check"] == "policy"}
    codes.expect_all(policy, ["PLANNING_BUDGET_EXCEEDED"])
    plans = {f["view"]: f for f in findings if f["check"] == "plan"}
    over = [view for view, f in plans.items() if "budget of" in f["message"]]
    assert len(over) == 1, {view: f["message"] for view, f in plans.items()}
    codes.expect(plans[over[0]]["code"], "PLAN_UNAVAILABLE", plans[over[0]]["message"])
    assert plans["tail"]["code"] == "PLAN_UNAVAILABLE"
    codes.expect(plans["side"]["code"], "PLAN_NEW")  # still gated: it has no snapshot yet
