"""A DataFusion pipeline of a user's own, for the session gate's tests.

The module it writes (``shop/pipeline.py``) knows nothing of planguard: it registers
three Delta tables written here with deltalake, a Python UDF and views, in a session that
does not enable ``information_schema``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake  # at import, never in a test: see tests/support/shop

VIEWS = {
    "valid_orders": "SELECT order_id, customer_id, amount_cents FROM orders "
    "WHERE status <> 'cancelled'",
    "order_eur": "SELECT order_id, customer_id, cents_to_eur(amount_cents) AS amount_eur "
    "FROM valid_orders",
    "customer_totals": "SELECT customer_id, sum(amount_eur) AS total_eur FROM order_eur "
    "GROUP BY customer_id",
    "big_customers": "SELECT c.customer_id, c.name, t.total_eur FROM customers c "
    "JOIN customer_totals t ON c.customer_id = t.customer_id WHERE t.total_eur > 10",
    "sku_counts": "SELECT sku, count(*) AS n FROM items GROUP BY sku",
}

MODULE = """
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext, udf
from deltalake import DeltaTable

DATA = Path(__file__).resolve().parent.parent / "data"
VIEWS = {views!r}


def _cents_to_eur(cents):
    return pc.divide(pc.cast(cents, pa.float64()), 100.0)


def make_context():
    ctx = SessionContext()
    for table in ("orders", "customers", "items"):
        ctx.register_table(table, DeltaTable(str(DATA / table)))
    ctx.register_udf(udf(_cents_to_eur, [pa.int64()], pa.float64(), "immutable",
                         name="cents_to_eur"))
    for name, sql in VIEWS.items():
        ctx.register_view(name, ctx.sql(sql))
    return ctx
"""


def write_tables(data: Path) -> None:
    orders = pa.table(
        {
            "order_id": pa.array(range(1, 61), pa.int64()),
            "customer_id": pa.array([1 + i % 12 for i in range(60)], pa.int64()),
            "amount_cents": pa.array([100 + 37 * i for i in range(60)], pa.int64()),
            "status": ["cancelled" if i % 5 == 0 else "shipped" for i in range(60)],
        }
    )
    customers = pa.table(
        {
            "customer_id": pa.array(range(1, 13), pa.int64()),
            "name": [f"customer {i}" for i in range(1, 13)],
        }
    )
    items = pa.table({"order_id": pa.array(range(1, 31), pa.int64()), "sku": ["a", "b"] * 15})
    for name, table in (("orders", orders), ("customers", customers), ("items", items)):
        write_deltalake(str(data / name), table)


def write_pipeline(root: Path, views: dict[str, str] | None = None, extra: str = "") -> Path:
    """(Re)write ``root/shop/pipeline.py`` with ``views`` (default :data:`VIEWS`)."""
    package = root / "shop"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    module = package / "pipeline.py"
    module.write_text(MODULE.format(views=views if views is not None else VIEWS) + extra)
    return module


def shop_project(pytester: pytest.Pytester, ini: str = "") -> Path:
    """A project with the user's pipeline and one ini key pointing at its factory."""
    write_tables(pytester.path / "data")
    module = write_pipeline(pytester.path)
    pytester.makeini(f"[pytest]\nplanguard_sessions = shop.pipeline:make_context\n{ini}")
    return module


def snapshot_dir(pytester: pytest.Pytester) -> Path:
    return pytester.path / "snapshots" / "shop" / "pipeline" / "make_context"


def make_leaky(root: Path) -> None:
    """Rewrite the pipeline so that ``sku_counts`` adds a number that depends on the
    process's string hash seed: every single run passes, the determinism check fails."""
    leaky = dict(VIEWS, sku_counts="SELECT sku, count(*) + {seed} AS n FROM items GROUP BY sku")
    write_pipeline(root, leaky)
    module = root / "shop" / "pipeline.py"
    module.write_text(
        module.read_text().replace(
            "ctx.register_view(name, ctx.sql(sql))",
            "ctx.register_view(name, ctx.sql(sql.replace('{seed}', str(hash('x') % 997))))",
        )
    )
