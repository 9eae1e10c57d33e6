"""The shop project used by plugin tests: real Delta and Parquet tables and a manifest."""

from __future__ import annotations

from pathlib import Path

# Imported here, at conftest load (tests/plugin/conftest.py imports this module), and never
# inside a test: pytester restores sys.modules after each test, and deltalake's native
# module panics when it is initialized twice.
import deltalake
import pyarrow as pa
import pyarrow.parquet as pq

SHOP_MANIFEST = """\
[project]
name = "shop"

[datasets.orders]
format = "delta"
location = "data/orders"

[datasets.customers]
format = "delta"
location = "data/customers"

[datasets.events]
format = "parquet"
location = "data/events"

[views.order_totals]
sql = "SELECT customer_id, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer_id"

[views.customer_totals]
sql = "SELECT c.name, t.total FROM customers c JOIN order_totals t ON c.id = t.customer_id"

[views.big_spenders]
sql = "SELECT name, total FROM customer_totals WHERE total > 100 ORDER BY total DESC"

[views.event_counts]
sql = '''
SELECT e.kind, count(*) AS n
FROM events e JOIN customers c ON e.customer_id = c.id
GROUP BY e.kind
'''

[outputs.big_spenders_out]
view = "big_spenders"
location = "out/big_spenders"

[runtime]
target_partitions = 4

[policy]
mode = "error"
small_input_rows = 0

[policy.delta_support]
max_reader_version = 3
max_writer_version = 7
"""


def write_shop(root: Path) -> Path:
    """Write the shop tables (real Delta and Parquet) and manifest under ``root``."""
    data = root / "data"
    deltalake.write_deltalake(
        str(data / "orders"),
        pa.table(
            {
                "order_id": list(range(100)),
                "customer_id": [i % 10 for i in range(100)],
                "amount": [float(i) for i in range(100)],
            }
        ),
    )
    deltalake.write_deltalake(
        str(data / "customers"),
        pa.table({"id": list(range(10)), "name": [f"customer {i}" for i in range(10)]}),
    )
    (data / "events").mkdir(parents=True)
    for part in range(8):
        pq.write_table(
            pa.table({"customer_id": [part, part + 1], "kind": ["click", "view"]}),
            data / "events" / f"part-{part}.parquet",
        )
    manifest = root / "manifest.toml"
    manifest.write_text(SHOP_MANIFEST, encoding="utf-8")
    return manifest


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")
