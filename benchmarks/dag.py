"""Synthetic layered view DAGs over a few small Delta tables, for the scaling benchmarks.

Shape (deterministic for a given size and seed):

* four Delta datasets written with deltalake: ``events`` (2,000 rows), ``users`` (200),
  ``items`` (100) and ``regions`` (10);
* ``LAYERS`` layers of views, each about ``size / LAYERS`` wide (so 2,000 views are five
  layers of 400).  Every view outputs the same three columns ``k BIGINT, g BIGINT,
  v DOUBLE``, so any view can consume any other;
* layer 0 reads datasets: a filter/projection of ``events``, an aggregate of ``events``,
  a join of ``events`` with ``items`` or ``users``, or a filter of ``users``;
* a view of layer ``L >= 1`` reads one to three views of layer ``L - 1``: a filter, an
  aggregate, a window-free rank by ``k``, a join of two, or a ``UNION ALL`` of two or three.

DataFusion inlines a registered view into every view that reads it, so a view's plan holds
every scan of its ancestors.  To keep the planning cost of one view bounded whatever the
size, a view only takes inputs whose expanded scan counts add up to at most
``MAX_EXPANDED_SCANS`` (it falls back to reading a single input); the mean is about three
Delta scans per view.  The depth is fixed (``LAYERS``), so growing the DAG widens the
layers instead of deepening the chains: planning cost per view does not depend on the size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

LAYERS = 5
MAX_EXPANDED_SCANS = 4
DATASETS = ("events", "items", "regions", "users")


@dataclass(frozen=True)
class View:
    name: str
    sql: str
    scans: int
    """Dataset scans in the view's plan once upstream views are inlined."""


def write_datasets(data: Path, seed: int = 7) -> None:
    """The four Delta tables under ``data/<name>`` (skipped when already there)."""
    import deltalake
    import pyarrow as pa

    rng = random.Random(seed)
    tables = {
        "events": {
            "event_id": pa.array(range(2000), pa.int64()),
            "user_id": pa.array([rng.randrange(200) for _ in range(2000)], pa.int64()),
            "item_id": pa.array([rng.randrange(100) for _ in range(2000)], pa.int64()),
            "region_id": pa.array([rng.randrange(10) for _ in range(2000)], pa.int64()),
            "qty": pa.array([rng.randrange(1, 20) for _ in range(2000)], pa.int64()),
            "amount": pa.array([round(rng.uniform(1, 500), 2) for _ in range(2000)]),
        },
        "users": {
            "user_id": pa.array(range(200), pa.int64()),
            "region_id": pa.array([rng.randrange(10) for _ in range(200)], pa.int64()),
            "segment": pa.array([rng.choice("abcd") for _ in range(200)]),
            "signup_year": pa.array([rng.randrange(2015, 2025) for _ in range(200)], pa.int64()),
        },
        "items": {
            "item_id": pa.array(range(100), pa.int64()),
            "category": pa.array([rng.choice(["x", "y", "z"]) for _ in range(100)]),
            "price": pa.array([round(rng.uniform(1, 100), 2) for _ in range(100)]),
        },
        "regions": {
            "region_id": pa.array(range(10), pa.int64()),
            "region_name": pa.array([f"r{i}" for i in range(10)]),
        },
    }
    for name, columns in tables.items():
        target = data / name
        if (target / "_delta_log").is_dir():
            continue
        deltalake.write_deltalake(str(target), pa.table(columns))


def _layer0(rng: random.Random, name: str) -> View:
    c = rng.randrange(1, 19)
    form = rng.randrange(5)
    if form == 0:
        sql = f"SELECT user_id AS k, region_id AS g, amount AS v FROM events WHERE qty > {c}"
        return View(name, sql, 1)
    if form == 1:
        sql = (
            "SELECT user_id AS k, min(region_id) AS g, sum(amount) AS v FROM events "
            f"WHERE qty <> {c} GROUP BY user_id"
        )
        return View(name, sql, 1)
    if form == 2:
        sql = (
            "SELECT e.item_id AS k, e.region_id AS g, e.amount * i.price AS v "
            f"FROM events e JOIN items i ON e.item_id = i.item_id WHERE e.qty < {c + 2}"
        )
        return View(name, sql, 2)
    if form == 3:
        sql = (
            "SELECT u.user_id AS k, r.region_id AS g, CAST(u.signup_year AS DOUBLE) AS v "
            "FROM users u JOIN regions r ON u.region_id = r.region_id "
            f"WHERE u.segment = '{'abcd'[c % 4]}'"
        )
        return View(name, sql, 2)
    sql = (
        "SELECT e.user_id AS k, u.region_id AS g, avg(e.amount) AS v "
        "FROM events e JOIN users u ON e.user_id = u.user_id "
        f"WHERE u.signup_year > {2014 + c % 10} GROUP BY e.user_id, u.region_id"
    )
    return View(name, sql, 2)


def _unary(rng: random.Random, name: str, source: View) -> View:
    c = rng.randrange(1, 10)
    a = source.name
    form = rng.randrange(3)
    if form == 0:
        sql = f"SELECT k, g, v * {c}.5 AS v FROM {a} WHERE g <> {c}"
    elif form == 1:
        sql = f"SELECT k, max(g) AS g, sum(v) AS v FROM {a} GROUP BY k"
    else:
        sql = f"SELECT k % {c + 10} AS k, g, v FROM {a} WHERE v > {c * 10}"
    return View(name, sql, source.scans)


def _combine(rng: random.Random, name: str, sources: list[View]) -> View:
    scans = sum(source.scans for source in sources)
    if len(sources) == 2 and rng.random() < 0.5:
        a, b = (source.name for source in sources)
        sql = f"SELECT {a}.k, {a}.g, {a}.v + {b}.v AS v FROM {a} JOIN {b} ON {a}.k = {b}.k"
        if rng.random() < 0.5:
            sql = (
                f"SELECT {a}.k, max({b}.g) AS g, sum({a}.v) AS v "
                f"FROM {a} JOIN {b} ON {a}.k = {b}.k GROUP BY {a}.k"
            )
        return View(name, sql, scans)
    sql = " UNION ALL ".join(f"SELECT k, g, v FROM {source.name}" for source in sources)
    return View(name, sql, scans)


def generate_views(size: int, seed: int = 11) -> list[View]:
    """``size`` views in ``LAYERS`` layers (see module docs), in layer order."""
    rng = random.Random(seed)
    widths = [size // LAYERS + (1 if i < size % LAYERS else 0) for i in range(LAYERS)]
    layers: list[list[View]] = []
    for depth, width in enumerate(widths):
        layer: list[View] = []
        for index in range(width):
            name = f"l{depth}_v{index:04d}"
            if depth == 0:
                layer.append(_layer0(rng, name))
                continue
            previous = layers[-1]
            wanted = rng.choice((1, 1, 2, 2, 3))
            sources = rng.sample(previous, min(wanted, len(previous)))
            while len(sources) > 1 and sum(s.scans for s in sources) > MAX_EXPANDED_SCANS:
                sources.pop()
            if len(sources) == 1:
                layer.append(_unary(rng, name, sources[0]))
            else:
                layer.append(_combine(rng, name, sources))
        layers.append(layer)
    return [view for layer in layers for view in layer]


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_manifest(path: Path, size: int) -> Path:
    """A manifest of ``size`` views at ``path``, reading the tables in ``path.parent/data``."""
    lines = [f'[project]\nname = "dag{size}"\n']
    for name in DATASETS:
        lines.append(f'[datasets.{name}]\nformat = "delta"\nlocation = "data/{name}"\n')
    for view in generate_views(size):
        lines.append(f"[views.{view.name}]\nsql = {_toml_string(view.sql)}\n")
    lines.append(
        "[runtime]\ntarget_partitions = 4\nplanning_budget_ms = 60000\n\n"
        '[policy]\nmode = "error"\nsmall_input_rows = 100\n\n'
        "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def mean_scans(size: int) -> float:
    views = generate_views(size)
    return sum(view.scans for view in views) / len(views)
