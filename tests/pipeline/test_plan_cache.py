"""The plan cache is sound: a hit gives the bytes fresh planning gives, and every input a
plan depends on is in the key (each twin changes one input and sees the views miss).

Real sessions over real Delta and Parquet tables (the shop project); the cache is the
on-disk store the gate uses.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import deltalake
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pytest_planguard.adapter import BundleView
from pytest_planguard.gate import plan_cache as store_module
from pytest_planguard.gate.plan_cache import PlanCacheStore
from pytest_planguard.reference_adapter import ReferenceAdapter
from tests.support.gate import plan_entry_files
from tests.support.shop import edit, write_shop

VIEWS = ("order_totals", "customer_totals", "big_spenders", "event_counts")


class Spy(PlanCacheStore):
    """The gate's store, remembering which labels missed (were planned)."""

    def __init__(self, directory: Path, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.looked: list[str] = []

    def get(self, key: str) -> bytes | None:
        found = super().get(key)
        self.looked.append("hit" if found is not None else "miss")
        return found


def bundles(manifest: Path, cache: PlanCacheStore | None) -> Mapping[str, BundleView]:
    adapter = ReferenceAdapter(plan_cache=cache)
    context = adapter.build_context(adapter.compile(manifest))
    return adapter.bundles(adapter.plan(context))


def as_bytes(found: Mapping[str, BundleView]) -> bytes:
    return msgspec.json.encode({view: b.__repr__() for view, b in sorted(found.items())})


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return write_shop(tmp_path / "shop")


@pytest.fixture
def planned(shop: Path, tmp_path: Path) -> Callable[[], dict[str, int]]:
    """Plan the shop through one cache directory; -> hits and misses of that run."""
    directory = tmp_path / "cache"

    def run() -> dict[str, int]:
        store = PlanCacheStore(directory)
        bundles(shop, store)
        return {"hits": store.stats.hits, "misses": store.stats.misses}

    assert run() == {"hits": 0, "misses": 4}
    assert run() == {"hits": 4, "misses": 0}
    return run


def test_a_hit_gives_the_bytes_fresh_planning_gives(shop: Path, tmp_path: Path) -> None:
    store = PlanCacheStore(tmp_path / "cache")
    cold = bundles(shop, store)
    warm = bundles(shop, store)
    fresh = bundles(shop, None)
    assert store.stats.hits == len(VIEWS)
    # and the statistics of the 3 datasets, and the manifest's SQL analyses
    assert store.stats.writes == len(VIEWS) + 3 + 1
    assert as_bytes(warm) == as_bytes(fresh) == as_bytes(cold)


def test_editing_a_view_re_plans_it_and_the_views_that_inline_it(
    shop: Path, planned: Callable[[], dict[str, int]]
) -> None:
    edit(shop, "sum(amount) AS total", "sum(amount) + 1 AS total")
    # order_totals, and customer_totals and big_spenders, which inline it
    assert planned() == {"hits": 1, "misses": 3}


def test_a_new_delta_version_re_plans_the_views_that_scan_it(
    shop: Path, planned: Callable[[], dict[str, int]]
) -> None:
    deltalake.write_deltalake(
        str(shop.parent / "data" / "customers"),
        pa.table({"id": [10], "name": ["customer 10"]}),
        mode="append",
    )
    # customer_totals, big_spenders and event_counts scan customers; order_totals does not
    assert planned() == {"hits": 1, "misses": 3}


def test_a_delta_table_recreated_at_the_same_version_re_plans(
    shop: Path, planned: Callable[[], dict[str, int]]
) -> None:
    location = shop.parent / "data" / "orders"
    shutil.rmtree(location)
    deltalake.write_deltalake(
        str(location), pa.table({"order_id": [1], "customer_id": [1], "amount": [1.0]})
    )  # version 0 again, another table id
    assert planned()["misses"] == 3


def test_a_changed_parquet_file_re_plans_the_views_that_scan_it(
    shop: Path, planned: Callable[[], dict[str, int]]
) -> None:
    pq.write_table(
        pa.table({"customer_id": [1, 2, 3], "kind": ["a", "b", "c"]}),
        shop.parent / "data" / "events" / "part-0.parquet",
    )
    assert planned() == {"hits": 3, "misses": 1}


def test_a_changed_setting_re_plans_every_view(
    shop: Path, planned: Callable[[], dict[str, int]]
) -> None:
    edit(shop, "target_partitions = 4", "target_partitions = 3")
    assert planned() == {"hits": 0, "misses": 4}


def test_other_engine_versions_re_plan_every_view(
    planned: Callable[[], dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reference_impl.relspec import execution_plan

    real = execution_plan.engine_versions
    monkeypatch.setattr(execution_plan, "engine_versions", lambda: real() | {"datafusion": "56"})
    assert planned() == {"hits": 0, "misses": 4}


def test_another_normalizer_version_uses_other_entries(
    planned: Callable[[], dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "NORMALIZER_VERSION", 999)
    assert planned() == {"hits": 0, "misses": 4}


UDF_MANIFEST_TAIL = """
[udfs.double_it]
provider = "shop_udfs:double_it"
"""

UDF_MODULE = """\
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import udf


def double_it():
    return udf(lambda a: pc.multiply(a, {factor}), [pa.float64()], pa.float64(), "immutable",
               name="double_it")
"""


def test_a_changed_udf_re_plans_every_view(shop: Path, tmp_path: Path) -> None:
    module = shop.parent / "shop_udfs.py"
    module.write_text(UDF_MODULE.format(factor=2))
    shop.write_text(shop.read_text() + UDF_MANIFEST_TAIL)
    edit(shop, "sum(amount) AS total", "sum(double_it(amount)) AS total")
    edit(shop, 'sql = "SELECT customer_id,', 'udfs = ["double_it"]\nsql = "SELECT customer_id,')
    directory = tmp_path / "cache"
    first = PlanCacheStore(directory)
    bundles(shop, first)
    module.write_text(UDF_MODULE.format(factor=3))
    second = PlanCacheStore(directory)
    bundles(shop, second)
    assert (first.stats.misses, second.stats.hits, second.stats.misses) == (4, 0, 4)


def test_a_corrupt_entry_is_a_miss_never_an_error(shop: Path, tmp_path: Path) -> None:
    store = PlanCacheStore(tmp_path / "cache")
    expected = as_bytes(bundles(shop, store))
    files = plan_entry_files(tmp_path / "cache")
    files[0].write_bytes(files[0].read_bytes()[:-7])  # torn
    files[1].write_bytes(b"planguard-plan-cache\0" + b"\0" * 32 + b"garbage")
    again = PlanCacheStore(tmp_path / "cache")
    assert as_bytes(bundles(shop, again)) == expected
    assert (again.stats.corrupt, again.stats.misses, again.stats.hits) == (2, 2, 2)


def test_a_valid_entry_under_the_wrong_key_is_caught_by_verify(shop: Path, tmp_path: Path) -> None:
    """What an incomplete key would do: serve another plan. verify re-plans and tells."""
    directory = tmp_path / "cache"
    bundles(shop, PlanCacheStore(directory))
    files = plan_entry_files(directory)
    payloads = [p.read_bytes() for p in files]
    for path, payload in zip(files, payloads[1:] + payloads[:1], strict=True):
        path.write_bytes(payload)  # every entry now holds another view's plan
    unverified = PlanCacheStore(directory)
    wrong = bundles(shop, unverified)
    assert as_bytes(wrong) != as_bytes(bundles(shop, None))
    checked = PlanCacheStore(directory, verify=VIEWS)
    right = bundles(shop, checked)
    assert as_bytes(right) == as_bytes(bundles(shop, None))
    assert sorted(checked.stats.unsound) == sorted(VIEWS)
    assert checked.stats.verified == len(VIEWS)


def test_writes_are_atomic_and_the_store_stays_within_its_bound(tmp_path: Path) -> None:
    store = PlanCacheStore(tmp_path / "cache", max_bytes=10_000)
    for index in range(30):
        store.put(f"key-{index}", bytes(1000))
    assert not list((tmp_path / "cache").rglob(".*.tmp"))
    entries, size = store.size()
    assert entries == 30
    assert size > 10_000
    assert store.trim() > 0
    entries, size = store.size()
    assert size <= 8_000
    assert store.get("key-29") is not None  # the newest survive


def test_an_unwritable_directory_is_no_cache_not_a_failure(shop: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    store = PlanCacheStore(blocker)
    assert as_bytes(bundles(shop, store)) == as_bytes(bundles(shop, None))
    assert store.stats.writes == 0


def test_dataset_statistics_follow_the_data(shop: Path, tmp_path: Path) -> None:
    """Statistics are cached per dataset identity: new rows give new estimates."""
    store = PlanCacheStore(tmp_path / "cache")
    before = bundles(shop, store)
    deltalake.write_deltalake(
        str(shop.parent / "data" / "orders"),
        pa.table({"order_id": [100], "customer_id": [1], "amount": [5.0]}),
        mode="append",
    )
    after = bundles(shop, PlanCacheStore(tmp_path / "cache"))
    assert as_bytes(after) == as_bytes(bundles(shop, None))
    rows = before["order_totals"].signals["estimated_rows"]
    assert after["order_totals"].signals["estimated_rows"] == rows + 1
