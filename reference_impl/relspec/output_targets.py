"""Output targets: each declared output against the Delta table already at its location.

``compile_execution_plan`` records one :class:`OutputTarget` per output, so ``validate``
reports ``OUTPUT_SCHEMA_MISMATCH`` before anything runs; ``execute_plan`` repeats the same
comparison on the collected result (and the table as it is then) before its first commit.

What deltalake 1.6 does with a differing schema, and what planguard checks instead:

- no ``schema_mode`` (planguard ``strict``): a different column count or an unknown
  column fails the write, but an existing column *casts*, silently and lossily (a float
  ``3.7`` written to a ``long`` column is stored as ``3``).  ``strict`` therefore needs the
  same column names and, per column, the same Delta type or a lossless widening
  (``integer`` -> ``long``, ``float`` -> ``double``).
- ``schema_mode="merge"``: new columns are added, missing ones written as null, existing
  ones cast as above.  ``merge`` therefore accepts added and missing columns and checks
  the types of the shared ones.
- ``schema_mode="overwrite"`` (only with ``mode="overwrite"``; deltalake refuses it for
  appends): the table takes the view's schema.  Nothing to check.

A column the table declares non-nullable fails the write when the data holds a null
there; only the collected data can tell, so execution checks it (``null_columns``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reference_impl.engine.object_store import store_table_columns
from reference_impl.relspec.contracts import OutputColumn, OutputTarget
from reference_impl.semantics.program import OutputBinding, StoreDeclaration

_WIDENING = frozenset(
    {
        ("byte", "short"),
        ("byte", "integer"),
        ("byte", "long"),
        ("short", "integer"),
        ("short", "long"),
        ("integer", "long"),
        ("float", "double"),
    }
)
"""(view type, table type) pairs a write converts without losing anything."""


SCHEMA_MODE_HINT = (
    "to change the table, set schema_mode = 'merge' (adds new columns) or 'overwrite' "
    "(replaces the schema; needs mode = 'overwrite')"
)


def output_targets(
    outputs: Iterable[OutputBinding],
    schemas: Mapping[str, Any],
    locations: Mapping[str, str],
    stores: Mapping[str, StoreDeclaration] | None = None,
) -> tuple[OutputTarget, ...]:
    """One target per output; ``schemas`` maps each planned view to its pyarrow schema,
    ``locations`` each output to where it is written (resolved by the data source),
    ``stores`` the manifest's stores (for outputs on one)."""
    targets: list[OutputTarget] = []
    for output in outputs:
        location = locations[output.name]
        store = (stores or {}).get(output.store) if output.store is not None else None
        exists, version, table_cols, error = read_table_columns(
            location, store=store, output=output.name
        )
        schema = schemas.get(output.view)
        view_cols = delta_columns(schema) if schema is not None else ()
        problems: tuple[str, ...] = (error,) if error else ()
        if schema is not None and exists and not error:
            problems = schema_problems(view_cols, table_cols, output.schema_mode)
        targets.append(
            OutputTarget(
                name=output.name,
                view=output.view,
                location=location,
                mode=output.mode,
                schema_mode=output.schema_mode,
                table_exists=exists,
                table_version=version,
                view_columns=view_cols,
                table_columns=table_cols,
                schema_problems=problems,
            )
        )
    return tuple(targets)


def delta_columns(schema: Any) -> tuple[OutputColumn, ...]:
    """A pyarrow schema's columns as the Delta types a write would give them."""
    import pyarrow as pa
    from deltalake import Schema

    out: list[OutputColumn] = []
    for field in schema:
        try:
            encoded = json.loads(Schema.from_arrow(pa.schema([field])).to_json())
            kind = _type_text(encoded["fields"][0]["type"])
        except Exception:
            kind = f"unsupported({field.type})"
        out.append(OutputColumn(name=field.name, type=kind, nullable=bool(field.nullable)))
    return tuple(out)


def read_table_columns(
    location: str, *, store: StoreDeclaration | None = None, output: str = ""
) -> tuple[bool, int | None, tuple[OutputColumn, ...], str | None]:
    """(table exists, its version, its columns, a problem reading it) at ``location``.

    On a ``store``, a store failure (unreachable, access denied, no bucket) is raised as
    its coded error: no output can be written there."""
    from deltalake import DeltaTable

    if store is not None:
        exists, table = store_table_columns(location, store, output=output)
        if not exists:
            return False, None, (), None
    elif not (Path(location) / "_delta_log").is_dir():
        return False, None, (), None
    try:
        table = table if store is not None else DeltaTable(location)
        encoded = json.loads(table.schema().to_json())
        version = int(table.version())
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return True, None, (), f"cannot read the existing Delta table: {first}"
    columns = tuple(
        OutputColumn(
            name=field["name"], type=_type_text(field["type"]), nullable=bool(field["nullable"])
        )
        for field in encoded["fields"]
    )
    return True, version, columns, None


def schema_problems(
    view: tuple[OutputColumn, ...],
    table: tuple[OutputColumn, ...],
    schema_mode: str,
    *,
    null_columns: Iterable[str] = (),
) -> tuple[str, ...]:
    """Why writing ``view`` over ``table`` with ``schema_mode`` would fail or lose data."""
    if schema_mode == "overwrite":
        return ()
    problems: list[str] = []
    by_name = {column.name: column for column in table}
    view_names = {column.name for column in view}
    added = [column.name for column in view if column.name not in by_name]
    missing = [column.name for column in table if column.name not in view_names]
    if schema_mode == "strict":
        if added:
            problems.append(f"columns the table lacks: {', '.join(added)}")
        if missing:
            problems.append(f"table columns the view lacks: {', '.join(missing)}")
    for column in view:
        existing = by_name.get(column.name)
        if existing is None or existing.type == column.type:
            continue
        if (column.type, existing.type) not in _WIDENING:
            problems.append(
                f"column {column.name}: the view gives {column.type}, the table holds "
                f"{existing.type}"
            )
    nulls = set(null_columns)
    for column in table:
        lacking = schema_mode == "merge" and column.name not in view_names
        if not column.nullable and (column.name in nulls or lacking):
            problems.append(f"column {column.name} is not nullable in the table but gets nulls")
    return tuple(problems)


def _type_text(kind: Any) -> str:
    return kind if isinstance(kind, str) else json.dumps(kind, sort_keys=True)
