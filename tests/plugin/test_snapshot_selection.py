"""Selecting part of a gate never deletes, and never reports as unused, a snapshot.

Unused-snapshot detection and deletion consider only the manifests whose gate items were
all collected and selected in the session.  Every selection form (a node id, ``-k``,
``-m``, ``--deselect``, ``--lf``) is run with and without pytest-xdist, and each has a
twin: the same project with a full selection does delete the unused snapshot.

The project is laid out the way a team's repository is: the manifest in a subdirectory
(``ex/``), the ini file at the root, snapshots under ``snaps/``.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import pytest

from pytest_planguard.gate.snapshot import FORMAT_LINE
from tests.support import gate as gates
from tests.support.gate import FAST
from tests.support.shop import edit, write_shop

VIEWS = ("big_spenders", "customer_totals", "event_counts", "order_totals")
SNAPS = Path("snaps/ex/manifest")
XDIST = pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
NO_CACHE = ("-p", "no:cacheprovider")


def gate(pytester: pytest.Pytester, *args: str, cache: bool = False) -> pytest.RunResult:
    options = FAST if not cache else tuple(a for a in FAST if a not in NO_CACHE)
    return gates.gate(pytester, *args, options=options)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """The shop manifest at ``ex/``, accepted, plus a stale snapshot ``gone.plan`` of a view
    the manifest no longer has, and one ordinary test so that any selection runs something."""
    write_shop(pytester.path / "ex")
    pytester.makeini(
        "[pytest]\nplanguard_manifests = ex/manifest.toml\nplanguard_snapshot_dir = snaps\n"
    )
    pytester.makepyfile(test_other="def test_other():\n    assert 1 + 1 == 2\n")
    gate(pytester, "--snapshot-update").assert_outcomes(passed=5 + len(VIEWS))
    assert sorted(p.stem for p in snapshots(pytester)) == sorted(VIEWS)
    gone = pytester.path / SNAPS / "gone.plan"
    gone.write_text((pytester.path / SNAPS / "event_counts.plan").read_text())
    return pytester.path


def snapshots(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / SNAPS).glob("*.plan"))


def test_the_printed_accept_command_keeps_every_other_snapshot(
    pytester: pytest.Pytester, project: Path
) -> None:
    (project / SNAPS / "gone.plan").unlink()
    before = {p.name: p.read_bytes() for p in snapshots(pytester)}
    edit(project / "ex" / "manifest.toml", "WHERE total > 100", "WHERE total > 200")
    failed = gate(pytester)
    failed.assert_outcomes(passed=5 + len(VIEWS) - 1, failed=1)
    line = next(line for line in failed.outlines if line.startswith("To accept this change:"))
    command = shlex.split(line.partition(":")[2])
    assert command[:3] == ["pytest", "--planguard", "--snapshot-update"]
    assert command[-1] == "ex/manifest.toml::big_spenders"

    accepted = gate(pytester, *command[2:])
    accepted.assert_outcomes(passed=1)
    assert "Deleted" not in accepted.stdout.str()
    after = {p.name: p.read_bytes() for p in snapshots(pytester)}
    assert sorted(after) == sorted(before)
    assert after["big_spenders.plan"] != before["big_spenders.plan"]
    assert {k: v for k, v in after.items() if k != "big_spenders.plan"} == {
        k: v for k, v in before.items() if k != "big_spenders.plan"
    }
    gate(pytester).assert_outcomes(passed=5 + len(VIEWS))


SELECTIONS = {
    "node id": ("ex/manifest.toml::big_spenders",),
    "-k": ("-k", "big_spenders or test_other"),
    "-m": ("-m", "not planguard"),
    "--deselect": ("--deselect", "ex/manifest.toml::order_totals"),
}


@XDIST
@pytest.mark.parametrize("selection", list(SELECTIONS), ids=list(SELECTIONS))
def test_a_partial_selection_neither_deletes_nor_reports_unused(
    pytester: pytest.Pytester, project: Path, selection: str, xdist: tuple[str, ...]
) -> None:
    result = gate(pytester, "--snapshot-update", *xdist, *SELECTIONS[selection])
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert (project / SNAPS / "gone.plan").exists()
    assert "gone.plan" not in result.stdout.str()
    assert len(snapshots(pytester)) == len(VIEWS) + 1

    plain = gate(pytester, *xdist, *SELECTIONS[selection])
    assert plain.ret == pytest.ExitCode.OK, plain.stdout.str()
    assert not [line for line in plain.outlines if "UNUSED" in line or "gone.plan" in line]


@XDIST
def test_last_failed_reruns_neither_delete_nor_report_unused(
    pytester: pytest.Pytester, project: Path, xdist: tuple[str, ...]
) -> None:
    edit(project / "ex" / "manifest.toml", "WHERE total > 100", "WHERE total > 200")
    gate(pytester, *xdist, cache=True).assert_outcomes(
        passed=5 + len(VIEWS) - 1, failed=1, errors=0
    )
    rerun = gate(pytester, "--lf", "--snapshot-update", *xdist, cache=True)
    rerun.assert_outcomes(passed=1)
    assert (project / SNAPS / "gone.plan").exists()
    assert "gone.plan" not in rerun.stdout.str()


@XDIST
def test_twin_a_full_selection_deletes_the_unused_snapshot_and_lists_it(
    pytester: pytest.Pytester, project: Path, xdist: tuple[str, ...]
) -> None:
    reported = gate(pytester, *xdist)
    assert reported.ret == pytest.ExitCode.TESTS_FAILED
    reported.stdout.fnmatch_lines(["*UNUSED*snapshot ex/manifest/gone.plan*"])
    assert (project / SNAPS / "gone.plan").exists()

    deleted = gate(pytester, "--snapshot-update", *xdist)
    assert deleted.ret == pytest.ExitCode.OK, deleted.stdout.str()
    deleted.stdout.fnmatch_lines(["*DELETED*snapshot ex/manifest/gone.plan*"])
    assert not (project / SNAPS / "gone.plan").exists()
    assert sorted(p.stem for p in snapshots(pytester)) == sorted(VIEWS)


@XDIST
def test_twin_last_failed_with_nothing_failed_is_a_full_run_and_deletes(
    pytester: pytest.Pytester, project: Path, xdist: tuple[str, ...]
) -> None:
    deleted = gate(pytester, "--lf", "--snapshot-update", *xdist, cache=True)
    assert deleted.ret == pytest.ExitCode.OK, deleted.stdout.str()
    assert not (project / SNAPS / "gone.plan").exists()


def test_warn_unused_reports_without_failing(pytester: pytest.Pytester, project: Path) -> None:
    result = gate(pytester, "--snapshot-warn-unused")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*UNUSED*snapshot ex/manifest/gone.plan*"])


def test_only_planguard_snapshot_files_are_ever_deleted(
    pytester: pytest.Pytester, project: Path
) -> None:
    """A README, a backup, a ``.plan`` file that is not a planguard snapshot and a link
    to a snapshot outside the directory stay; the stale snapshot goes."""
    directory = project / SNAPS
    foreign = {
        "README.md": "what these files are\n",
        "x.plan.orig": FORMAT_LINE + "\n",
        "notes.plan": "my own notes\n",
    }
    for name, text in foreign.items():
        (directory / name).write_text(text)
    outside = project / "elsewhere.plan"
    outside.write_text((directory / "gone.plan").read_text())
    (directory / "link.plan").symlink_to(outside)

    result = gate(pytester, "--snapshot-update")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert not (directory / "gone.plan").exists()
    for name, text in foreign.items():
        assert (directory / name).read_text() == text
    assert (directory / "link.plan").is_symlink()
    assert outside.exists()
    assert "unknown snapshot" not in result.stdout.str().lower()


def test_stale_temporary_files_of_a_killed_writer_are_removed_by_the_next_update(
    pytester: pytest.Pytester, project: Path
) -> None:
    directory = project / SNAPS
    stale = directory / ".big_spenders.plan.k3j9_x2a.tmp"
    stale.write_text("half a snapshot")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    newer = directory / ".order_totals.plan.abcdefgh.tmp"
    newer.write_text("written after the run started")
    future = time.time() + 3600
    os.utime(newer, (future, future))
    lookalike = directory / ".big_spenders.plan.tmp"
    lookalike.write_text("not the writer's pattern")
    os.utime(lookalike, (old, old))

    gate(pytester).assert_outcomes(passed=5 + len(VIEWS))  # no update: nothing removed
    assert stale.exists()

    (directory / "gone.plan").unlink()
    result = gate(pytester, "--snapshot-update")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert not stale.exists()
    assert newer.exists()
    assert lookalike.exists()


def test_views_without_a_bundle_are_unavailable_not_passed(
    pytester: pytest.Pytester, project: Path
) -> None:
    """When every view fails before a bundle exists, neither syrupy nor planguard counts a
    passed snapshot, and --snapshot-update keeps every snapshot."""
    (project / SNAPS / "gone.plan").unlink()
    before = {p.name: p.read_bytes() for p in snapshots(pytester)}
    manifest = project / "ex" / "manifest.toml"
    edit(manifest, "FROM orders GROUP BY customer_id", "FROM orders GROUP BY nope")
    edit(manifest, "SELECT e.kind, count(*) AS n", "SELECT e.nope, count(*) AS n")
    result = gate(pytester, "--snapshot-update")
    assert result.ret != pytest.ExitCode.OK
    out = result.stdout.str()
    assert "snapshots passed" not in out
    assert "snapshot passed" not in out
    result.stdout.fnmatch_lines(["views checked * of 4:*unavailable *"])
    unavailable = [line for line in result.outlines if line.strip().startswith("UNAVAILABLE")]
    assert len(unavailable) >= 2
    assert {p.name: p.read_bytes() for p in snapshots(pytester)} == before
