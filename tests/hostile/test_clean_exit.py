"""Clean exit: no planning thread is left in the engine when the interpreter finalizes.

On CPython before 3.14 a thread that comes back from a GIL-releasing engine call after
finalization has begun is ended with ``pthread_exit``; the forced unwind through the
engine's Rust and C++ frames aborts the process (``terminate called without an active
exception``, SIGABRT, exit 134) after it has written everything.  The planning budget's
worker threads are the only Python threads that call into the engine, so none may be alive
at exit: an idle worker is joined when it is closed, an abandoned one before finalization.

The subprocess checks print the planner threads still alive from an ``atexit`` hook that
is registered before planguard is imported, so it runs after planguard's own exit hooks,
as the last thing before finalization.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

# Imported at module import, never inside a test: pytester restores sys.modules after each
# test, and deltalake's native module panics when it is initialized twice.
import deltalake
import pyarrow as pa
import pytest
from datafusion import SessionContext

from reference_impl.engine.budget import (
    THREAD_NAME,
    BudgetExceeded,
    PlanningWorker,
    abandoned_workers,
)
from tests.hostile.helpers import assert_no_traceback
from tests.hostile.test_budget import chain_manifest

REPO = Path(__file__).resolve().parents[2]

EXIT_PROBE = """\
import atexit
import sys
import threading


def _planners_at_exit() -> None:
    alive = sorted(t.name for t in threading.enumerate() if t.name == {name!r})
    print("planners alive at exit:", alive, flush=True)


atexit.register(_planners_at_exit)  # first registered, so it runs last
"""


def run_script(body: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = EXIT_PROBE.format(name=THREAD_NAME) + textwrap.dedent(body)
    env = {key: value for key, value in os.environ.items() if key != "PLANGUARD_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONFAULTHANDLER"] = "1"
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
        timeout=300,
    )


def planners() -> set[int | None]:
    return {t.ident for t in threading.enumerate() if t.name == THREAD_NAME}


def test_close_leaves_no_planning_thread_behind() -> None:
    before = planners()
    ctx = SessionContext()
    worker = PlanningWorker()
    try:
        plan = worker.run(lambda: ctx.sql("SELECT 1 AS a").execution_plan(), 60.0)
        assert plan.partition_count >= 1
    finally:
        worker.close()
    assert planners() - before == set(), "a closed worker's thread is still alive"


def test_an_abandoned_worker_is_joined_before_the_interpreter_finalizes(tmp_path: Path) -> None:
    """A job cut at its deadline keeps calling into the engine (each call returns into
    Python); the process ends with its own exit code, the worker joined before exit."""
    done = run_script(
        """
        import time
        from datafusion import SessionContext
        from reference_impl.engine.budget import BudgetExceeded, PlanningWorker

        ctx = SessionContext()

        def job() -> None:
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                ctx.sql("SELECT 1 AS a").to_pydict()

        worker = PlanningWorker()
        try:
            worker.run(job, 0.05)
        except BudgetExceeded:
            print("budget exceeded", flush=True)
        finally:
            worker.close()
        sys.exit(3)
        """,
        tmp_path,
    )
    assert done.returncode == 3, (done.returncode, done.stderr[-2000:])
    assert "budget exceeded" in done.stdout
    assert "planners alive at exit: []" in done.stdout, done.stdout


def test_planguard_validate_over_budget_exits_1_with_no_planner_left(tmp_path: Path) -> None:
    """The CLI on the pathological chain: one view is cut at the budget while its planning
    goes on; the process still ends by exit code 1, with that planning joined first."""
    manifest = chain_manifest(tmp_path / "chain")
    done = run_script(
        f"""
        from pytest_planguard.cli import main

        sys.exit(main(["validate", {str(manifest)!r}]))
        """,
        tmp_path,
    )
    assert_no_traceback(done.stdout, done.stderr)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "PLANNING_BUDGET_EXCEEDED" in done.stdout
    assert "planners alive at exit: []" in done.stdout, done.stdout[-2000:]


def test_planguard_run_on_one_table_exits_0_with_no_planner_left(tmp_path: Path) -> None:
    """Twin on the normal path: nothing over budget, output committed, nothing left."""
    deltalake.write_deltalake(str(tmp_path / "t"), pa.table({"a": [1, 2, 3, 4, 5]}))
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(
        '[datasets.t]\nformat = "delta"\nlocation = "t"\n'
        '[views.v]\nsql = "SELECT a FROM t"\n'
        '[outputs.o]\nview = "v"\nlocation = "out/o"\n'
        '[policy]\nmode = "warn"\n',
        encoding="utf-8",
    )
    done = run_script(
        f"""
        from pytest_planguard.cli import main

        sys.exit(main(["run", {str(manifest)!r}]))
        """,
        tmp_path,
    )
    assert_no_traceback(done.stdout, done.stderr)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "wrote o (5 rows, overwrite)" in done.stdout
    assert deltalake.DeltaTable(str(tmp_path / "out" / "o")).version() == 0
    assert "planners alive at exit: []" in done.stdout, done.stdout


def test_a_worker_abandoned_in_process_is_listed_until_it_ends() -> None:
    """In-process view of the same rule: an abandoned worker is known until it has ended."""
    before = set(abandoned_workers())
    release = threading.Event()
    worker = PlanningWorker()
    try:
        with pytest.raises(BudgetExceeded):
            worker.run(release.wait, 0.05)
        (thread,) = set(abandoned_workers()) - before
        assert thread.name == THREAD_NAME
    finally:
        release.set()
        worker.close()
    thread.join()
    assert thread not in abandoned_workers()
