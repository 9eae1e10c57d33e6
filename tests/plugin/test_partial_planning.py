"""A run that selects part of a target's items (a pytest-split shard, ``-k``) and none of
its whole-run checks plans only the selected views and the views they read, not the whole
target.  Real pytest runs, cold plan cache: the report's ``misses`` are the views planned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import gate as gates
from tests.support.shop import edit, write_shop


@pytest.fixture
def shop(pytester: pytest.Pytester) -> Path:
    write_shop(pytester.path)
    pytester.makeini("[pytest]\nplanguard_manifests = manifest.toml\n")
    gates.gate(pytester, "--snapshot-update", "--planguard-no-cache").assert_outcomes(passed=8)
    return pytester.path


def planned(pytester: pytest.Pytester, *args: str) -> tuple[int, dict[str, object]]:
    """Views planned (cache misses, cache emptied first) and the report's items by id."""
    report = pytester.path / "report.json"
    cache = pytester.path / ".planguard_cache"
    if cache.exists():
        import shutil

        shutil.rmtree(cache)
    gates.gate(pytester, "--planguard-only", "--planguard-report", str(report), *args)
    data = json.loads(report.read_text())
    return data["cache"]["misses"], {item["nodeid"]: item for item in data["items"]}


@pytest.mark.parametrize(
    ("selection", "views"),
    [("event_counts", 1), ("big_spenders", 3), ("order_totals or event_counts", 2)],
)
def test_a_partial_selection_plans_its_views_and_what_they_read(
    pytester: pytest.Pytester, shop: Path, selection: str, views: int
) -> None:
    """big_spenders reads customer_totals, which reads order_totals: three plans."""
    misses, items = planned(pytester, "-k", selection)
    assert misses == views
    assert all(item["status"] == "unchanged" for item in items.values())


def test_a_whole_run_check_in_the_selection_plans_everything(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """Twin: the determinism check compares every view's plan, so the run plans all."""
    misses, _ = planned(pytester, "-k", "event_counts or determinism")
    assert misses == 4


def test_a_partial_run_still_names_the_upstream_cause_of_a_change(
    pytester: pytest.Pytester, shop: Path
) -> None:
    edit(shop / "manifest.toml", "sum(amount) AS total, count", "sum(amount) * 2 AS total, count")
    _, items = planned(pytester, "-k", "big_spenders")
    found = items["manifest.toml::big_spenders"]
    assert found["status"] == "changed"
    assert found["caused_by"] == ["customer_totals", "order_totals"]


def test_a_session_target_plans_part_of_its_views_too(pytester: pytest.Pytester) -> None:
    from tests.support.sessions import shop_project

    shop_project(pytester)
    gates.gate(pytester, "--snapshot-update").assert_outcomes(passed=6)
    misses, items = planned(pytester, "-k", "sku_counts")
    assert misses == 1
    assert [item["status"] for item in items.values()] == ["unchanged"]
