"""Processes sharing a plan cache split the planning: each plans ahead from its own slice
of the views (``share_order``), writes what it plans and reads what another wrote, and
plans each view once, with the bundles fresh planning gives.

The interleaving of two pytest-xdist workers is not deterministic, so these tests drive
one process at a time over a shared directory: the order a worker plans in, that it
plans each view once, and that a second worker reads the first's plans instead of
planning them again.  tests/plugin/test_xdist_plan_split.py runs real workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from pytest_planguard.gate.plan_cache import PlanCacheStore
from reference_impl.relspec.plan_cache import NOT_PLANS, share_order
from tests.pipeline.test_plan_cache import VIEWS, as_bytes, bundles
from tests.support.shop import write_shop


class Recording(PlanCacheStore):
    """The gate's store, remembering the P0 of each plan written and each lookup."""

    def __init__(self, directory: Path, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.written: list[str] = []
        self.lookups = 0

    def get(self, key: str) -> bytes | None:
        self.lookups += not key.startswith(NOT_PLANS)
        return super().get(key)

    def put(self, key: str, value: bytes) -> None:
        super().put(key, value)
        if not key.startswith(NOT_PLANS):
            self.written.append(p0_of(value))


def p0_of(value: bytes) -> str:
    """The P0 of a cached plan (a manifest's entry nests it under ``frame``)."""
    decoded = msgspec.msgpack.decode(value)
    return str(decoded["frame"]["p0"] if "frame" in decoded else decoded["p0"])


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return write_shop(tmp_path / "shop")


def test_share_order_starts_at_the_process_s_own_slice() -> None:
    names = tuple(f"v{i}" for i in range(7))

    class Shared:
        def __init__(self, share: tuple[int, int] | None) -> None:
            self.share = share

    assert share_order(None, names) == ()
    assert share_order(Shared(None), names) == ()
    assert share_order(Shared((0, 1)), names) == ()
    # its own slice front to back, then the others' back to front (they meet their owner)
    assert share_order(Shared((0, 2)), names) == ("v0", "v1", "v2", "v6", "v5", "v4", "v3")
    assert share_order(Shared((1, 2)), names) == ("v3", "v4", "v5", "v6", "v2", "v1", "v0")
    assert share_order(Shared((1, 3)), names) == ("v2", "v3", "v1", "v0", "v6", "v5", "v4")
    assert share_order(Shared((2, 3)), names) == ("v4", "v5", "v6", "v3", "v2", "v1", "v0")
    assert share_order(Shared((1, 2)), ()) == ()


def test_a_worker_plans_each_view_once_starting_at_its_slice(shop: Path, tmp_path: Path) -> None:
    fresh = bundles(shop, None)
    order = list(fresh)  # the views in plan order (dependencies first)
    assert sorted(order) == sorted(VIEWS)
    p0 = {fresh[view].p0: view for view in order}
    store = Recording(tmp_path / "cache", share=(1, 2))
    shared = bundles(shop, store)
    assert as_bytes(shared) == as_bytes(fresh)
    # second of two workers: its half, then the first worker's from the end
    assert [p0[text] for text in store.written] == [*order[2:], order[1], order[0]]
    # planned ahead, then read from what was planned: one lookup and one write per view
    assert store.lookups == len(VIEWS)
    assert store.stats.misses == len(VIEWS)


def test_a_second_worker_reads_what_the_first_planned(shop: Path, tmp_path: Path) -> None:
    first = Recording(tmp_path / "cache", share=(0, 2))
    planned_first = bundles(shop, first)
    second = Recording(tmp_path / "cache", share=(1, 2))
    assert as_bytes(bundles(shop, second)) == as_bytes(planned_first)
    assert second.written == []
    assert (second.stats.hits, second.stats.misses) == (len(VIEWS), 0)


def test_a_view_that_fails_ahead_fails_once_and_its_readers_are_skipped(
    shop: Path, tmp_path: Path
) -> None:
    """Planning ahead does not change what a failure means: the failing view fails with
    the same status as without a share, and the views reading it are skipped."""
    from tests.support.shop import edit

    # a cast DataFusion accepts when the view is registered but fails at planning
    edit(shop, "sum(amount) AS total", "sum(amount) + CAST('x' AS INT) AS total")
    alone = bundles(shop, None)
    shared = bundles(shop, Recording(tmp_path / "cache", share=(1, 2)))
    statuses = {v: b.status for v, b in shared.items()}
    assert statuses == {v: b.status for v, b in alone.items()}
    assert statuses["order_totals"] == "failed"
    assert statuses["customer_totals"] == statuses["big_spenders"] == "skipped"
