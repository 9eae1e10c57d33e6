"""Unused-snapshot detection (``GateState._unused_snapshots`` and
``_complete_manifests``) in an in-process gate, so that mutmut can see which test reaches
it (issue 20; tests/plugin/test_snapshot_selection.py runs the gate in subprocesses).

One project: the shop manifest, accepted, plus ``gone.plan`` (a snapshot of a view the
manifest no longer has), a foreign ``notes.plan`` and a stale temporary of a killed
writer.  Each syrupy option that changes what happens to ``gone.plan`` gets a row."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

# The engines are imported here, never first inside the in-process gate: pytester restores
# sys.modules after each run, and a native module initialized twice panics.
import datafusion  # noqa: F401
import deltalake  # noqa: F401
import pytest

import pytest_planguard.reference_adapter  # noqa: F401
from tests.support.gate import FAST
from tests.support.shop import write_shop

VIEWS = ("big_spenders", "customer_totals", "event_counts", "order_totals")
SNAPS = Path("snaps/ex/manifest")


def gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*FAST, "--planguard", *args)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_shop(pytester.path / "ex")
    pytester.makeini(
        "[pytest]\nplanguard_manifests = ex/manifest.toml\nplanguard_snapshot_dir = snaps\n"
    )
    pytester.makepyfile(test_other="def test_other():\n    assert 1 + 1 == 2\n")
    gate(pytester, "--snapshot-update").assert_outcomes(passed=5 + len(VIEWS))
    snaps = pytester.path / SNAPS
    (snaps / "gone.plan").write_text((snaps / "event_counts.plan").read_text())
    (snaps / "notes.plan").write_text("my notes\n")
    stale = snaps / ".gone.plan.abcd_123.tmp"
    stale.write_text("half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    return pytester.path


def unused(project: Path, result: pytest.RunResult) -> list[dict[str, object]]:
    del result
    report = json.loads((project / "report.json").read_text(encoding="utf-8"))
    entries: list[dict[str, object]] = report["unused_snapshots"]
    return entries


def names(project: Path) -> list[str]:
    return sorted(p.name for p in (project / SNAPS).iterdir())


ALL = sorted(f"{v}.plan" for v in VIEWS)


def test_a_full_run_fails_on_an_unused_snapshot_and_deletes_nothing(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = gate(pytester, "--planguard-report", "report.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert unused(project, result) == [
        {
            "code": "SNAPSHOT_UNUSED",
            "snapshot": "ex/manifest/gone.plan",
            "view": "gone",
            "deleted": False,
        }
    ]
    assert names(project) == sorted([*ALL, ".gone.plan.abcd_123.tmp", "gone.plan", "notes.plan"])


def test_warn_unused_reports_without_failing(pytester: pytest.Pytester, project: Path) -> None:
    result = gate(pytester, "--planguard-report", "report.json", "--snapshot-warn-unused")
    assert result.ret == pytest.ExitCode.OK
    assert [e["view"] for e in unused(project, result)] == ["gone"]


def test_disable_unused_reports_nothing(pytester: pytest.Pytester, project: Path) -> None:
    result = gate(pytester, "--planguard-report", "report.json", "--snapshot-disable-unused")
    assert result.ret == pytest.ExitCode.OK
    assert unused(project, result) == []


def test_update_deletes_the_unused_snapshot_and_the_stale_temporary_only(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = gate(pytester, "--planguard-report", "report.json", "--snapshot-update")
    assert result.ret == pytest.ExitCode.OK
    assert unused(project, result) == [
        {
            "code": "SNAPSHOT_UNUSED",
            "snapshot": "ex/manifest/gone.plan",
            "view": "gone",
            "deleted": True,
        }
    ]
    assert names(project) == sorted([*ALL, "notes.plan"])


def test_update_without_cleanup_reports_and_keeps_the_snapshot(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = gate(
        pytester, "--planguard-report", "report.json", "--snapshot-update", "--snapshot-no-cleanup"
    )
    assert result.ret == pytest.ExitCode.OK
    assert [(e["view"], e["deleted"]) for e in unused(project, result)] == [("gone", False)]
    assert "gone.plan" in names(project)
    assert ".gone.plan.abcd_123.tmp" not in names(project)


def test_a_partial_selection_reports_nothing(pytester: pytest.Pytester, project: Path) -> None:
    result = gate(pytester, "--planguard-report", "report.json", "--snapshot-update", "-k", "big")
    assert result.ret == pytest.ExitCode.OK
    assert unused(project, result) == []
    assert "gone.plan" in names(project)
    assert ".gone.plan.abcd_123.tmp" in names(project)
