"""The plan cache of a session target: tables are identified by what the factory
registered (a DeltaTable by version and table id, a Parquet path by its files), so new
data re-plans the views that read it, and a hit gives the bundles fresh planning gives."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from pytest_planguard.gate.plan_cache import PlanCacheStore
from pytest_planguard.session_adapter import SessionAdapter

MODULE = """
from pathlib import Path

from datafusion import SessionContext
from deltalake import DeltaTable

DATA = Path({data!r})


def make_context():
    ctx = SessionContext()
    ctx.register_table("orders", DeltaTable(str(DATA / "orders")))
    ctx.register_parquet("events", str(DATA / "events"))
    ctx.register_view("totals", ctx.sql(
        "SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id"))
    ctx.register_view("kinds", ctx.sql("SELECT kind, count(*) AS n FROM events GROUP BY kind"))
    return ctx
"""

_names = itertools.count()


@pytest.fixture
def spec(tmp_path: Path) -> Iterator[str]:
    data = tmp_path / "data"
    write_deltalake(str(data / "orders"), pa.table({"customer_id": [1, 2], "amount": [1.0, 2.0]}))
    (data / "events").mkdir(parents=True)
    pq.write_table(pa.table({"kind": ["a", "b"]}), data / "events" / "part-0.parquet")
    name = f"session_cache_pipeline_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(MODULE.format(data=str(data)))
    sys.path.insert(0, str(tmp_path))
    yield f"{name}:make_context"
    sys.path.remove(str(tmp_path))
    sys.modules.pop(name, None)


def plan(spec: str, store: PlanCacheStore | None) -> bytes:
    adapter = SessionAdapter(spec).with_plan_cache(store)
    program = adapter.compile(Path("unused"))
    bundles = adapter.bundles(adapter.plan(adapter.build_context(program)))
    return msgspec.json.encode({v: repr(b) for v, b in sorted(bundles.items())})


def looked(spec: str, directory: Path) -> tuple[int, int]:
    store = PlanCacheStore(directory)
    assert plan(spec, store) == plan(spec, None)  # a hit gives the fresh bundles
    return store.stats.hits, store.stats.misses


def test_a_second_planning_is_served_from_the_cache(spec: str, tmp_path: Path) -> None:
    assert looked(spec, tmp_path / "cache") == (0, 2)
    assert looked(spec, tmp_path / "cache") == (2, 0)


def test_a_new_delta_version_re_plans_the_view_that_reads_it(spec: str, tmp_path: Path) -> None:
    looked(spec, tmp_path / "cache")
    write_deltalake(
        str(tmp_path / "data" / "orders"),
        pa.table({"customer_id": [3], "amount": [3.0]}),
        mode="append",
    )
    assert looked(spec, tmp_path / "cache") == (1, 1)


def test_a_changed_parquet_file_re_plans_the_view_that_reads_it(spec: str, tmp_path: Path) -> None:
    looked(spec, tmp_path / "cache")
    pq.write_table(
        pa.table({"kind": ["a", "b", "c"]}), tmp_path / "data" / "events" / "part-0.parquet"
    )
    assert looked(spec, tmp_path / "cache") == (1, 1)


def test_a_worker_of_two_plans_each_view_once_starting_at_its_slice(
    spec: str, tmp_path: Path
) -> None:
    """The session adapter plans ahead in the order of ``share_order`` (the views are
    ``kinds`` and ``totals``, in registration order): the second worker starts with the
    second view, plans each view once and gives the bundles fresh planning gives."""
    from tests.pipeline.test_plan_cache_share import Recording

    store = Recording(tmp_path / "cache", share=(1, 2))
    assert plan(spec, store) == plan(spec, None)
    first_lines = [text.splitlines()[0] for text in store.written]
    assert len(first_lines) == 2
    assert "customer_id" in first_lines[0]  # totals
    assert "kind" in first_lines[1]
    assert store.lookups == 2
    other = Recording(tmp_path / "cache", share=(0, 2))
    assert plan(spec, other) == plan(spec, None)
    assert (other.written, other.stats.hits) == ([], 2)
