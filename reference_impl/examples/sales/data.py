"""The sales example's Delta tables: small, deterministic, written on first use.

Each table is written in a temporary directory and moved into place with a rename, under
a file lock, so concurrent processes (pytest-xdist workers, the determinism check's
subprocesses) never see a half-written table.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa

TABLES = ("customers", "orders", "order_items")
COUNTRIES = ("DE", "FR", "NL", "PL", "SE")
STATUSES = ("shipped", "shipped", "open", "cancelled")


def ensure_tables(directory: Path) -> None:
    """Write the missing tables under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name, table in _tables().items():
            if not (directory / name / "_delta_log").is_dir():
                _write(directory, name, table)


def _tables() -> dict[str, pa.Table]:
    customers = pa.table(
        {
            "customer_id": pa.array(range(1, 41), pa.int64()),
            "name": [f"customer {i:02d}" for i in range(1, 41)],
            "country": [COUNTRIES[i % len(COUNTRIES)] for i in range(40)],
        }
    )
    orders = pa.table(
        {
            "order_id": pa.array(range(1, 201), pa.int64()),
            "customer_id": pa.array([1 + (i * 7) % 40 for i in range(200)], pa.int64()),
            "order_date": pa.array([f"2026-11-{1 + i % 28:02d}" for i in range(200)]).cast(
                pa.string()
            ),
            "status": [STATUSES[i % len(STATUSES)] for i in range(200)],
        }
    )
    items = pa.table(
        {
            "order_id": pa.array([1 + i // 3 for i in range(600)], pa.int64()),
            "sku": [f"sku-{i % 17:02d}" for i in range(600)],
            "quantity": pa.array([1 + i % 4 for i in range(600)], pa.int64()),
            "price_cents": pa.array([199 + (i * 37) % 5000 for i in range(600)], pa.int64()),
        }
    )
    return {"customers": customers, "orders": orders, "order_items": items}


def _write(directory: Path, name: str, table: pa.Table) -> None:
    from deltalake import write_deltalake

    with tempfile.TemporaryDirectory(dir=directory, prefix=".tmp-") as tmp:
        staged = Path(tmp) / name
        write_deltalake(str(staged), table)
        shutil.rmtree(directory / name, ignore_errors=True)
        staged.rename(directory / name)
