"""``check_determinism`` called in-process on the shop manifest with the reference adapter
(issue 20): run labels and counts, reuse of started subprocesses only when they match, a
failing subprocess, and a difference found between runs.  tests/plugin runs the same
check through a gate in a subprocess, which mutmut cannot trace back to a test."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_planguard.adapter import PipelineFingerprints
from pytest_planguard.determinism_processes import (
    Checked,
    Child,
    DeterminismProcesses,
    shared_processes,
    start_determinism_processes,
    stop_shared,
)
from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.invariants import check_determinism, fingerprints_once
from pytest_planguard.reference_adapter import ReferenceAdapter
from tests.support.shop import write_shop


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_shop(tmp_path / "shop")


def test_runs_are_labelled_in_order_and_agree(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    report = check_determinism(ReferenceAdapter(), None, manifest, runs=2, processes=1)
    assert [label for label, _ in report.runs] == [
        "in-process run 1",
        "in-process run 2",
        "subprocess PYTHONHASHSEED=1",
    ]
    assert report.difference is None
    assert report.failure() is None
    assert all(fingerprints == report.runs[0][1] for _, fingerprints in report.runs)


def test_a_given_first_run_is_used_as_run_one(manifest: Path) -> None:
    adapter = ReferenceAdapter()
    first = fingerprints_once(adapter, manifest)
    doctored = PipelineFingerprints(
        manifest="doctored",
        plans=first.plans,
        runtime=first.runtime,
        validation_artifact=first.validation_artifact,
    )
    report = check_determinism(adapter, None, manifest, runs=2, processes=0, first=doctored)
    assert report.runs[0] == ("in-process run 1", doctored)
    assert [label for label, _ in report.runs] == ["in-process run 1", "in-process run 2"]
    assert report.difference is not None
    assert (report.difference.field, report.difference.baseline) == (
        "manifest fingerprint",
        "doctored",
    )
    assert report.difference.other_label == "in-process run 2"


def test_matching_started_processes_are_used_and_others_replaced(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONHASHSEED", "1")
    adapter = ReferenceAdapter()
    started = start_determinism_processes(Checked(None, manifest, 1))
    report = check_determinism(adapter, None, manifest, runs=1, processes=1, started=started)
    assert [label for label, _ in report.runs] == [
        "in-process run 1",
        "subprocess PYTHONHASHSEED=2",
    ]
    assert all(child.process and child.process.returncode == 0 for child in started.children)
    other = start_determinism_processes(Checked(None, manifest, 2))
    report = check_determinism(adapter, None, manifest, runs=1, processes=1, started=other)
    assert len(report.runs) == 2  # one fresh subprocess, not the two started
    assert all(child.process and child.process.returncode is not None for child in other.children)
    assert not other.directory.exists()  # cleaned up
    assert not started.directory.exists()


def test_a_failing_subprocess_is_an_adapter_error_naming_its_seed(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    with pytest.raises(PlanguardError) as raised:
        check_determinism(
            ReferenceAdapter(), "no_such_module_x:Factory", manifest, runs=1, processes=1
        )
    assert raised.value.code is PlanguardCode.ADAPTER_ERROR
    assert raised.value.message.startswith(
        "determinism subprocess (PYTHONHASHSEED=1) failed with exit 2: "
    )
    assert "Traceback" not in raised.value.message  # the worker's coded line, no traceback
    assert raised.value.message.endswith(
        "cannot load factory 'no_such_module_x:Factory': ModuleNotFoundError: No module named "
        "'no_such_module_x'"
    )


def test_another_process_reads_the_subprocesses_of_a_shared_directory(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest-xdist: gw0 starts them in the run's directory, another worker reads them
    there (the same fingerprints a local run gives) and leaves the directory alone."""
    monkeypatch.setenv("PYTHONHASHSEED", "5")
    shared = tmp_path / "run" / "target"
    start_determinism_processes(Checked(None, manifest, 2), directory=shared)
    found = shared_processes(shared)
    assert found is not None
    assert found.matches(Checked(None, manifest, 2))
    assert not found.matches(Checked(None, manifest, 1))
    local = fingerprints_once(ReferenceAdapter(), manifest)
    outcomes = found.outcomes()
    assert outcomes[0][0] == "1"
    assert [fingerprints for _, fingerprints in outcomes] == [local, local]
    found.close()
    assert (shared / "started.json").exists()  # the controller removes the run's directory
    stop_shared(shared.parent)
    assert not shared.parent.exists()


def test_a_shared_subprocess_killed_before_its_result_is_reported_not_awaited(
    manifest: Path, tmp_path: Path
) -> None:
    """Twin: a subprocess that dies without writing (killed, out of memory) is seen dead
    by the reader, which reports it instead of waiting for a file that never comes."""
    import os
    import signal

    shared = tmp_path / "run" / "target"
    started = start_determinism_processes(Checked(None, manifest, 1), directory=shared)
    os.kill(started.children[0].pid, signal.SIGKILL)
    started.children[0].process.wait()  # type: ignore[union-attr]
    found = shared_processes(shared)
    assert found is not None
    assert found.outcomes() == [("1", "ended without a result")]
    with pytest.raises(PlanguardError, match=r"subprocess \(PYTHONHASHSEED=1\) ended without"):
        check_determinism(ReferenceAdapter(), None, manifest, runs=1, processes=1, started=found)


def test_closing_another_process_s_subprocesses_spares_a_reused_pid(tmp_path: Path) -> None:
    """The controller stops what is left of gw0's subprocesses by pid: a pid is killed only
    while its command line still names the subprocess's result file (a pid reused by an
    unrelated process since is spared)."""
    import subprocess
    import sys
    import time

    shared = tmp_path / "run" / "target"
    shared.mkdir(parents=True)
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    bystander = subprocess.Popen(sleep)
    ours = subprocess.Popen([*sleep, str(shared / "1.json")])
    cmdline = Path(f"/proc/{ours.pid}/cmdline")
    for _ in range(500):  # until it has exec'd (a forked child shows its parent's first)
        if str(shared / "1.json").encode() in cmdline.read_bytes():
            break
        time.sleep(0.01)
    try:
        found = DeterminismProcesses(
            Checked(None, tmp_path / "m.toml", 2),
            shared,
            [Child(seed="1", pid=bystander.pid), Child(seed="2", pid=ours.pid)],
            owned=False,
        )
        found.close()
        assert ours.wait(timeout=10) != 0  # killed
        assert bystander.poll() is None  # spared
    finally:
        for process in (bystander, ours):
            process.kill()
            process.wait()
