"""Under pytest-xdist the workers split the gate's planning through the shared plan cache:
worker ``gwK`` of ``N`` plans ahead from its own slice of the views
(tests/pipeline/test_plan_cache_share.py shows what that does), and the gate gives the
same results as a serial run.  Real pytest runs with two workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import gate as gates
from tests.support.shop import write_shop

VIEWS = 4
ITEMS = 4 + VIEWS

RECORD_SHARE = r"""
import json, os
from pathlib import Path

from pytest_planguard.gate import plan_cache

_init = plan_cache.PlanCacheStore.__init__


def _recording(self, directory, **kwargs):
    _init(self, directory, **kwargs)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with Path(f"share-{worker}.jsonl").open("a") as out:
        out.write(json.dumps(kwargs.get("share")) + "\n")


plan_cache.PlanCacheStore.__init__ = _recording
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    write_shop(pytester.path)
    pytester.makeini("[pytest]\nplanguard_manifests = manifest.toml\n")
    pytester.makeconftest(RECORD_SHARE)
    gate(pytester, "--snapshot-update", "--planguard-no-cache").assert_outcomes(passed=ITEMS)
    shares(pytester.path)
    return pytester.path


def gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return gates.gate(pytester, "--planguard-only", *args)


def shares(root: Path) -> dict[str, set[object]]:
    """Per process, the shares its plan cache stores were given (the gate's store; the
    determinism check and the report read the same directory through others)."""
    found: dict[str, set[object]] = {}
    for path in root.glob("share-*.jsonl"):
        values = [json.loads(line) for line in path.read_text().splitlines()]
        found[path.stem.removeprefix("share-")] = {tuple(v) if v else None for v in values}
        path.unlink()
    return found


def test_each_worker_plans_ahead_from_its_own_slice(
    pytester: pytest.Pytester, project: Path
) -> None:
    report = project / "report.json"
    gate(pytester, "-n", "2", "--planguard-report", str(report)).assert_outcomes(passed=ITEMS)
    found = shares(project)
    assert (0, 2) in found["gw0"]
    assert (1, 2) in found["gw1"]
    assert all(share is None for share in found.get("main", set()))  # the controller
    cache = json.loads(report.read_text())["cache"]
    # every view planned by some worker, and none planned by both twice over
    assert VIEWS <= cache["misses"] <= 2 * VIEWS
    assert cache["hits"] + cache["misses"] >= VIEWS


def test_a_serial_run_plans_alone(pytester: pytest.Pytester, project: Path) -> None:
    gate(pytester).assert_outcomes(passed=ITEMS)
    assert shares(project) == {"main": {None}}


def test_a_worker_finds_a_changed_view_as_a_serial_run_does(
    pytester: pytest.Pytester, project: Path
) -> None:
    """The split changes who plans, not what is found: an edited view fails under -n 2 as
    it does serially, and only it."""
    from tests.support.shop import edit

    edit(project / "manifest.toml", "WHERE total > 100", "WHERE total > 200")
    serial = gate(pytester, "--planguard-no-cache")
    split = gate(pytester, "-n", "2")
    for result in (serial, split):
        result.assert_outcomes(passed=ITEMS - 1, failed=1)
        assert "big_spenders" in "\n".join(
            line for line in result.outlines if line.startswith("FAILED")
        )


def test_a_session_under_xdist_finds_what_a_serial_run_finds(pytester: pytest.Pytester) -> None:
    """A session target (the user's own factory): the workers split its planning too, and
    an edited view fails under -n 2 with the views that read it, as serially."""
    from tests.support.sessions import VIEWS as SESSION_VIEWS
    from tests.support.sessions import shop_project, write_pipeline

    shop_project(pytester)
    items = len(SESSION_VIEWS) + 1
    gate(pytester, "--snapshot-update").assert_outcomes(passed=items)
    gate(pytester, "-n", "2", "--planguard-no-cache").assert_outcomes(passed=items)
    edited = dict(SESSION_VIEWS, valid_orders=SESSION_VIEWS["valid_orders"].replace("<>", "="))
    write_pipeline(pytester.path, edited)
    serial = gate(pytester, "--planguard-no-cache")
    split = gate(pytester, "-n", "2")
    failed = []
    for result in (serial, split):
        result.assert_outcomes(passed=2, failed=4)
        failed.append(
            sorted(line.split()[1] for line in result.outlines if line.startswith("FAILED"))
        )
    assert failed[0] == failed[1]


def test_a_session_s_nondeterminism_is_caught_under_xdist(pytester: pytest.Pytester) -> None:
    """The subprocesses gw0 starts rebuild the session (``--session``) from what the
    shared directory records, whichever worker runs the determinism item."""
    from tests.support.sessions import VIEWS as SESSION_VIEWS
    from tests.support.sessions import make_leaky, shop_project

    shop_project(pytester)
    options = ("--planguard-processes", "2", "--planguard-runs", "1")
    gate(pytester, "--snapshot-update", *options).assert_outcomes(passed=len(SESSION_VIEWS) + 1)
    make_leaky(pytester.path)
    result = gates.gate(
        pytester,
        "--planguard-only",
        "-n",
        "2",
        *options,
        "-k",
        "determinism",
        options=("-p", "no:cacheprovider"),
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*plan fingerprint of view 'sku_counts' differs between runs*"])
