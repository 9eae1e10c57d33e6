"""The determinism check over the plan cache: a view whose inputs changed is planned
afresh in every process, so its nondeterminism is caught on the run that changes it; an
unchanged view established by an earlier passing check is not planned again.

The nondeterminism is real: the plan of ``big_spenders`` gets a line that depends on the
process's string hash seed (as a hash-map iteration order would), once a flag file exists.
Only the determinism subprocesses (other PYTHONHASHSEEDs) can see it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.shop import edit, write_shop

SEEDED = '''
from pathlib import Path

import msgspec

from reference_impl.relspec import execution_plan
from pytest_planguard.reference_adapter import ReferenceAdapter

_real = execution_plan.plan_frame


def _seeded(frame, **options):
    planned = _real(frame, **options)
    if Path("unstable").exists() and "Filter: customer_totals.total" in planned.p0:
        line = f"\\n  Seed: {hash('planguard') % 100003}"
        return msgspec.structs.replace(planned, p2=planned.p2 + line)
    return planned


execution_plan.plan_frame = _seeded


class SeededAdapter(ReferenceAdapter):
    """The reference adapter, with the hash-seeded plan above."""
'''

GATE = ("-p", "no:cacheprovider", "--planguard", "--planguard-adapter", "seeded:SeededAdapter")
DETERMINISM = ("--planguard-runs", "1", "--planguard-processes", "2")


@pytest.fixture
def shop(pytester: pytest.Pytester) -> Path:
    write_shop(pytester.path)
    pytester.makepyfile(seeded=SEEDED)
    pytester.makeini("[pytest]\nplanguard_manifests = manifest.toml\n")
    first = pytester.runpytest_subprocess(*GATE, *DETERMINISM, "--snapshot-update")
    first.assert_outcomes(passed=8)
    return pytester.path


def determinism(pytester: pytest.Pytester, *args: str) -> dict[str, str]:
    result = pytester.runpytest_subprocess(
        *GATE, *DETERMINISM, "--planguard-report", "r.json", "--snapshot-update", *args
    )
    items = json.loads((pytester.path / "r.json").read_text())["items"]
    (found,) = [item for item in items if item.get("check") == "determinism"]
    assert result.ret in (0, 1), result.stdout.str()[-3000:]
    return {"status": found["status"], "message": found.get("message", "")}


def test_a_changed_nondeterministic_view_is_caught(pytester: pytest.Pytester, shop: Path) -> None:
    (shop / "unstable").touch()
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 101")
    outcome = determinism(pytester)
    assert outcome["status"] == "failed"
    assert "plan fingerprint of view 'big_spenders'" in outcome["message"]


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_the_same_change_without_the_nondeterminism_passes(
    pytester: pytest.Pytester, shop: Path, xdist: tuple[str, ...]
) -> None:
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 101")
    outcome = determinism(pytester, *xdist)
    assert outcome["status"] == "passed"
    # only big_spenders changed: one plan was made afresh, the three others were reused
    assert outcome["message"].startswith("1 of 4 distinct plans checked afresh")


def test_without_the_cache_every_view_is_checked_afresh(
    pytester: pytest.Pytester, shop: Path
) -> None:
    (shop / "unstable").touch()  # nothing edited: big_spenders is established in the cache
    outcome = determinism(pytester, "--planguard-no-cache")
    assert outcome["status"] == "failed"
    assert "plan fingerprint of view 'big_spenders'" in outcome["message"]


@pytest.mark.parametrize("cache", [(), ("--planguard-no-cache",)], ids=["cache", "no-cache"])
def test_under_xdist_the_run_s_subprocesses_catch_it(
    pytester: pytest.Pytester, shop: Path, cache: tuple[str, ...]
) -> None:
    """Under -n 2 the subprocesses worker gw0 started at collection are the ones the
    determinism item compares with, whichever worker runs it: their results cross
    processes through the run's directory, and the nondeterminism is caught (with one
    run, the subprocesses are the only comparison there is)."""
    (shop / "unstable").touch()
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 101")
    outcome = determinism(pytester, "-n", "2", *cache)
    assert outcome["status"] == "failed"
    assert "plan fingerprint of view 'big_spenders'" in outcome["message"]


NO_SAMPLE = """
from pytest_planguard.gate import plan_cache

plan_cache.DeterminismCache._sampled = lambda self, key: False  # the sample draws nothing
"""


def test_a_run_an_earlier_check_established_repeats_nothing(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """Nothing changed since a passing check, which saw these very plans and
    fingerprints: no run is repeated and the subprocesses started for it are stopped.
    (The random sample is switched off here: a sampled view would be checked afresh.)"""
    pytester.makeconftest(NO_SAMPLE)
    determinism(pytester)  # establishes the run (the fixture's plans may be sampled)
    outcome = determinism(pytester)
    assert outcome["status"] == "passed"
    assert outcome["message"].startswith(
        "0 of 4 distinct plans checked afresh: an earlier passing check saw the same plans"
    )


def test_a_run_with_other_fingerprints_is_checked_though_no_plan_changed(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """Twin: a comment in a view's SQL changes the manifest's fingerprint but no plan: the
    run is not the established one, so the processes compare it (planning nothing afresh)."""
    pytester.makeconftest(NO_SAMPLE)
    determinism(pytester)
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 100 /* a comment */")
    outcome = determinism(pytester)
    assert outcome["status"] == "passed"
    assert outcome["message"].startswith("0 of 4 distinct plans checked afresh in every run")


def test_a_check_without_subprocesses_does_not_vouch_for_one_with_them(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """A changed nondeterministic view passes a check without subprocesses (nothing there
    can see another hash seed). What that check establishes is not trusted by a later
    check with subprocesses: it plans the view afresh in them and catches it (with the
    markers shared between strengths, it repeated nothing and passed)."""
    pytester.makeconftest(NO_SAMPLE)
    (shop / "unstable").touch()
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 101")
    weak = determinism(pytester, "--planguard-processes", "0")
    assert weak["status"] == "passed"
    outcome = determinism(pytester)
    assert outcome["status"] == "failed"
    assert "plan fingerprint of view 'big_spenders'" in outcome["message"]


def test_an_equally_strong_check_trusts_what_it_established(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """Twin: after a passing check with subprocesses, the same check repeats nothing."""
    pytester.makeconftest(NO_SAMPLE)
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 101")
    assert determinism(pytester)["status"] == "passed"
    outcome = determinism(pytester)
    assert outcome["message"].startswith("0 of 4 distinct plans checked afresh: an earlier")
