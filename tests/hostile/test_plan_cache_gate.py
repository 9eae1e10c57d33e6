"""The gate over its plan cache, in real pytest runs: hits on the second run, nothing
read or written under --planguard-no-cache, and --planguard-cache-verify failing
PLAN_CACHE_UNSOUND on a cache that serves another view's plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.conftest import CodeRecorder
from tests.support.gate import FAST, plan_entry_files
from tests.support.shop import write_shop

VIEWS = 4


def gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*FAST, "--planguard", *args)


@pytest.fixture
def shop(pytester: pytest.Pytester) -> Path:
    write_shop(pytester.path)
    pytester.makeini("[pytest]\nplanguard_manifests = manifest.toml\n")
    gate(pytester, "--snapshot-update").assert_outcomes(passed=4 + VIEWS)
    return pytester.path


def test_the_second_run_is_served_from_the_cache(pytester: pytest.Pytester, shop: Path) -> None:
    result = gate(pytester, "--planguard-report", "report.json")
    result.assert_outcomes(passed=4 + VIEWS)
    result.stdout.fnmatch_lines([f"plan cache: {VIEWS} hits, 0 misses (100% hit rate)*"])
    cache = json.loads((shop / "report.json").read_text())["cache"]
    assert (cache["hits"], cache["misses"], cache["hit_rate"]) == (VIEWS, 0, 1.0)
    assert cache["directory"] == str(shop / ".planguard_cache")


def test_no_cache_reads_and_writes_nothing(pytester: pytest.Pytester, tmp_path: Path) -> None:
    write_shop(pytester.path)
    pytester.makeini("[pytest]\nplanguard_manifests = manifest.toml\n")
    result = gate(pytester, "--snapshot-update", "--planguard-no-cache")
    result.assert_outcomes(passed=4 + VIEWS)
    assert not (pytester.path / ".planguard_cache").exists()
    assert "plan cache:" not in result.stdout.str()


def _swap_entries(directory: Path) -> None:
    """Every cached plan replaced by another view's: what a key missing an input does."""
    entries = plan_entry_files(directory)
    payloads = [p.read_bytes() for p in entries]
    for path, payload in zip(entries, payloads[1:] + payloads[:1], strict=True):
        path.write_bytes(payload)


@pytest.mark.produces_codes("PLAN_CACHE_UNSOUND")
def test_verify_fails_on_an_unsound_cache(
    pytester: pytest.Pytester, shop: Path, codes: CodeRecorder
) -> None:
    _swap_entries(shop / ".planguard_cache")
    result = gate(pytester, "--planguard-cache-verify", str(VIEWS), "--planguard-report", "r.json")
    result.assert_outcomes(passed=4, failed=VIEWS)
    result.stdout.fnmatch_lines(["*error[[]PLAN_CACHE_UNSOUND[]] view '*': its cached plan*"])
    items = json.loads((shop / "r.json").read_text())["items"]
    for item in items:
        if item["kind"] == "plan":
            codes.expect(item["codes"][0], "PLAN_CACHE_UNSOUND")
    # the unsound entries were removed: the next run plans afresh and passes
    gate(pytester).assert_outcomes(passed=4 + VIEWS)


def test_verify_passes_on_a_sound_cache(pytester: pytest.Pytester, shop: Path) -> None:
    result = gate(pytester, "--planguard-cache-verify", str(VIEWS))
    result.assert_outcomes(passed=4 + VIEWS)
    result.stdout.fnmatch_lines([f"plan cache: {VIEWS} hits*, {VIEWS} verified"])
