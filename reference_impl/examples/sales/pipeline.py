"""A DataFusion + Delta Lake pipeline of its own, gated by planguard with no adapter.

Nothing here knows about planguard: a zero-argument factory builds the session the
pipeline runs on (three Delta tables, a Python UDF, eight views), and ``write_outputs``
writes two of the views as Delta tables.  planguard gates it with one ini key::

    [tool.pytest.ini_options]
    planguard_sessions = ["reference_impl.examples.sales.pipeline:make_context"]
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext, udf
from deltalake import DeltaTable, write_deltalake

from reference_impl.examples.sales.data import ensure_tables

DATA = Path(os.environ.get("SALES_DATA_DIR", Path(__file__).parent / "data"))

VIEWS = {
    "valid_orders": """
        SELECT order_id, customer_id, order_date, status
        FROM orders
        WHERE status <> 'cancelled'
    """,
    "order_lines": """
        SELECT o.order_id, o.customer_id, o.order_date, i.sku, i.quantity,
               cents_to_eur(i.price_cents * i.quantity) AS amount_eur
        FROM valid_orders o JOIN order_items i ON o.order_id = i.order_id
    """,
    "order_totals": """
        SELECT order_id, customer_id, order_date, sum(amount_eur) AS total_eur
        FROM order_lines GROUP BY order_id, customer_id, order_date
    """,
    "customer_orders": """
        SELECT c.customer_id, c.name, c.country, t.order_id, t.total_eur
        FROM customers c JOIN order_totals t ON c.customer_id = t.customer_id
    """,
    "customer_value": """
        SELECT customer_id, name, country, count(*) AS orders, sum(total_eur) AS value_eur
        FROM customer_orders GROUP BY customer_id, name, country
    """,
    "top_customers": """
        SELECT customer_id, name, value_eur FROM customer_value
        ORDER BY value_eur DESC, customer_id LIMIT 10
    """,
    "country_revenue": """
        SELECT country, sum(value_eur) AS revenue_eur FROM customer_value GROUP BY country
    """,
    "daily_revenue": """
        SELECT order_date, sum(total_eur) AS revenue_eur FROM order_totals GROUP BY order_date
    """,
}
OUTPUTS = ("customer_value", "daily_revenue")


def _cents_to_eur(cents: pa.Array) -> pa.Array:
    return pc.divide(pc.cast(cents, pa.float64()), 100.0)


cents_to_eur = udf(_cents_to_eur, [pa.int64()], pa.float64(), "immutable", name="cents_to_eur")


def make_context() -> SessionContext:
    """The pipeline's session: tables, UDF and views registered, nothing executed."""
    ensure_tables(DATA)
    ctx = SessionContext()
    for table in ("customers", "orders", "order_items"):
        ctx.register_table(table, DeltaTable(str(DATA / table)))
    ctx.register_udf(cents_to_eur)
    for name, sql in VIEWS.items():
        ctx.register_view(name, ctx.sql(sql))
    return ctx


def write_outputs(target: Path) -> None:
    """Run the pipeline: write each output view as a Delta table under ``target``."""
    ctx = make_context()
    for view in OUTPUTS:
        write_deltalake(str(target / view), ctx.table(view).to_arrow_table(), mode="overwrite")
