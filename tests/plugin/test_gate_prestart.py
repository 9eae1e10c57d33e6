"""The gate starts the determinism subprocesses ahead of the run, and only when they are due."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import gate as gates

SPAWN_LOG = """
import pytest_planguard.gate.state as gate
import pytest_planguard.determinism_processes as processes

_spawn = processes._spawn
_run = gate.GateState._instrumented_run


def _log(event):
    with open("events.log", "a") as log:
        log.write(event + "\\n")


def _logged_spawn(adapter_spec, manifest, seed, *rest, **options):
    _log("spawn-" + seed)
    return _spawn(adapter_spec, manifest, seed, *rest, **options)


def _logged_run(self, path, **kwargs):
    _log("run")
    return _run(self, path, **kwargs)


import pytest_planguard.gate.items as items

_check = items.GateItem._check_determinism


def _logged_check(self, run):
    _log("check")
    return _check(self, run)


processes._spawn = _logged_spawn
gate.GateState._instrumented_run = _logged_run
items.GateItem._check_determinism = _logged_check
"""


def _events(pytester: pytest.Pytester) -> list[str]:
    log = pytester.path / "events.log"
    events = log.read_text().split() if log.exists() else []
    return [e for e in events if e != "check"]


def _spawned(pytester: pytest.Pytester) -> list[str]:
    return [event[len("spawn-") :] for event in _events(pytester) if event.startswith("spawn-")]


VIEWS = ("big_spenders", "customer_totals", "event_counts", "order_totals")


def _gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makeconftest(SPAWN_LOG)
    return gates.gate(pytester, *args, options=("-p", "no:cacheprovider", "--planguard-runs", "1"))


def test_each_determinism_subprocess_starts_once(pytester: pytest.Pytester, shop: Path) -> None:
    """The random seed's subprocess starts before the run; the fixed seed's (1) is held
    back until the run plans a view afresh (here: the first, no cache yet)."""
    result = _gate(pytester, "--snapshot-update", "--planguard-processes", "2")
    result.assert_outcomes(passed=4 + len(VIEWS))
    events = _events(pytester)
    assert events[0].startswith("spawn-")  # drawn at random
    assert events[0] != "spawn-1"
    assert events[1:] == ["run", "spawn-1"]


def test_a_real_run_starts_them_after_it(pytester: pytest.Pytester, shop: Path) -> None:
    """Twin: with --planguard-execute the run writes outputs, so nothing runs beside it."""
    result = _gate(
        pytester, "--snapshot-update", "--planguard-processes", "2", "--planguard-execute"
    )
    result.assert_outcomes(passed=4 + len(VIEWS))
    events = _events(pytester)
    assert events[:2] == ["run", "spawn-1"]
    assert events[2].startswith("spawn-")
    assert len(events) == 3


def test_no_subprocess_when_the_determinism_item_is_deselected(
    pytester: pytest.Pytester, shop: Path
) -> None:
    result = _gate(pytester, "--snapshot-update", "-k", "not determinism")
    result.assert_outcomes(passed=3 + len(VIEWS), deselected=1)
    assert _spawned(pytester) == []


def test_the_determinism_item_alone_starts_its_subprocesses(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """Twin of the deselection test: the same log sees the spawns when the item runs."""
    result = _gate(pytester, "-k", "determinism", "--planguard-processes", "1")
    result.assert_outcomes(passed=1, deselected=3 + len(VIEWS))
    assert _spawned(pytester) == ["1"]


def test_they_start_at_collection_while_other_tests_run(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """A suite whose tests run before the gate's items: the subprocesses are already
    running during those tests, not started when the gate's first item comes."""
    pytester.mkdir("a")
    (pytester.path / "a" / "test_first.py").write_text(
        "def test_first():\n"
        "    with open('events.log', 'a') as log:\n"
        "        log.write('user-test\\n')\n"
    )
    result = _gate(pytester, "--snapshot-update", "--planguard-processes", "1")
    result.assert_outcomes(passed=5 + len(VIEWS))
    assert _events(pytester) == ["spawn-1", "user-test", "run"]


def test_under_xdist_they_start_once_for_the_run_at_collection(
    pytester: pytest.Pytester, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under pytest-xdist worker gw0 starts the subprocesses when collection ends, once
    for the run (not once per worker, nor when the item comes up), and the worker that
    runs the determinism item reads their results from the run's directory.  The fixed
    seed's waits for a worker's first plan-cache miss (no cache yet: at once)."""
    temporary = pytester.mkdir("tmp")
    monkeypatch.setenv("TMPDIR", str(temporary))
    result = _gate(pytester, "--snapshot-update", "--planguard-processes", "2", "-n", "2")
    result.assert_outcomes(passed=4 + len(VIEWS))
    spawned = _spawned(pytester)
    assert len(spawned) == 2
    assert spawned.count("1") == 1  # held back until a worker's first miss, started once
    events = _events(pytester)
    random_seed = next(i for i, e in enumerate(events) if e.startswith("spawn-") and e != "spawn-1")
    assert random_seed < events.index("run")
    assert list(temporary.iterdir()) == []  # the run's directory is gone


def test_under_xdist_deselecting_the_item_starts_none(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """Twin: nothing is started for a determinism item no worker will run."""
    result = _gate(pytester, "--snapshot-update", "-n", "2", "-k", "not determinism")
    result.assert_outcomes(passed=3 + len(VIEWS))
    assert _spawned(pytester) == []


def test_the_determinism_item_runs_after_the_other_items(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """Its subprocesses plan while the views' items run; the check then reads their
    results instead of waiting for them before the views are gated."""
    result = _gate(pytester, "--snapshot-update", "-v")
    result.assert_outcomes(passed=4 + len(VIEWS))
    ran = [line.split()[0] for line in result.outlines if line.endswith("%]")]
    assert ran[-1] == "manifest::toml::invariant[determinism]"
    assert ran[:3] == [
        "manifest::toml::invariant[single_compile]",
        "manifest::toml::invariant[resolver_identity]",
        "manifest::toml::policy[validation]",
    ]


def _timeline(pytester: pytest.Pytester) -> list[str]:
    """Every event, the determinism check's start included, with the random seed's
    spawn written ``spawn-R``."""
    log = pytester.path / "events.log"
    events = log.read_text().split() if log.exists() else []
    return [e if not e.startswith("spawn-") or e == "spawn-1" else "spawn-R" for e in events]


SAMPLE_ALL = """
from pytest_planguard.gate.plan_cache import DeterminismCache

DeterminismCache._sampled = lambda self, key: True
"""


def _warm(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A first gate run (which establishes every plan), then the log cleared."""
    _gate(pytester, "--snapshot-update", "--planguard-processes", "2").assert_outcomes(
        passed=4 + len(VIEWS)
    )
    (pytester.path / "events.log").unlink()
    return _gate(pytester, "--planguard-processes", "2", "--planguard-report", "r.json", *args)


def _determinism_message(pytester: pytest.Pytester) -> str:
    report = json.loads((pytester.path / "r.json").read_text())
    return next(i["message"] for i in report["items"] if i.get("check") == "determinism")


def test_a_recheck_of_established_plans_runs_without_the_fixed_seed(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """Every plan established, every one drawn for a re-check: the fixed seed's
    subprocess, which planned them under seed 1 when they were established, never
    starts; the random seed's does, and the check passes and says so."""
    pytester.makepyfile(sample_all=SAMPLE_ALL)
    result = _warm(pytester, "-p", "sample_all")
    result.assert_outcomes(passed=4 + len(VIEWS))
    assert _timeline(pytester) == ["spawn-R", "run", "check"]
    assert "without the subprocess of PYTHONHASHSEED=1" in _determinism_message(pytester)


def test_a_changed_view_starts_the_fixed_seed_during_the_run(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """Twin: a view whose SQL changed misses the plan cache; the fixed seed's subprocess
    starts then, during the run, not when the check comes up."""
    _gate(pytester, "--snapshot-update", "--planguard-processes", "2")
    (pytester.path / "events.log").unlink()
    edit_first_view(pytester.path / "manifest.toml")
    result = _gate(pytester, "--snapshot-update", "--planguard-processes", "2")
    result.assert_outcomes(passed=4 + len(VIEWS))
    assert _timeline(pytester) == ["spawn-R", "run", "spawn-1", "check"]


def test_a_cached_plan_no_check_established_starts_the_fixed_seed_at_the_check(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """Twin: the plans are cached by a run without the determinism item, so they hit the
    cache but no check established them: the check starts the fixed seed's subprocess
    and reads it (four plans checked afresh)."""
    _gate(pytester, "--snapshot-update", "-k", "not determinism").assert_outcomes(
        passed=3 + len(VIEWS), deselected=1
    )
    (pytester.path / "events.log").unlink()
    result = _gate(pytester, "--planguard-processes", "2", "--planguard-report", "r.json")
    result.assert_outcomes(passed=4 + len(VIEWS))
    assert _timeline(pytester) == ["spawn-R", "run", "check", "spawn-1"]
    assert _determinism_message(pytester).startswith("4 of 4 distinct plans checked afresh")
    assert "PYTHONHASHSEED=1" not in _determinism_message(pytester)


@pytest.mark.parametrize("changed", [False, True], ids=["recheck", "changed-view"])
def test_under_xdist_the_fixed_seed_waits_for_a_plan_not_established(
    pytester: pytest.Pytester, shop: Path, changed: bool
) -> None:
    """The same rule across workers: a re-check of established plans runs without the
    fixed seed's subprocess; a changed view's plan-cache miss in whichever worker plans it
    starts it, once for the run, and the check reads it."""
    pytester.makepyfile(sample_all=SAMPLE_ALL)
    _gate(pytester, "--snapshot-update", "--planguard-processes", "2").assert_outcomes(
        passed=4 + len(VIEWS)
    )
    (pytester.path / "events.log").unlink()
    if changed:
        edit_first_view(pytester.path / "manifest.toml")
    result = _gate(
        pytester,
        "--snapshot-update",
        "--planguard-processes",
        "2",
        "-n",
        "2",
        "-p",
        "sample_all",
        "--planguard-report",
        "r.json",
    )
    result.assert_outcomes(passed=4 + len(VIEWS))
    spawned = _spawned(pytester)
    assert spawned.count("1") == (1 if changed else 0)
    assert len(spawned) == (2 if changed else 1)
    held = "without the subprocess of PYTHONHASHSEED=1" in _determinism_message(pytester)
    assert held is not changed
    if changed:  # started on the miss, during the run, not by the check
        timeline = _timeline(pytester)
        assert timeline.index("spawn-1") < timeline.index("check")


def edit_first_view(manifest: Path) -> None:
    text = manifest.read_text()
    manifest.write_text(text.replace("SELECT ", "SELECT DISTINCT ", 1))
