"""Facts read off DataFusion plans: operators, statistics, lineage, schema, UDF calls.

Pure helpers used by :mod:`reference_impl.relspec.execution_plan`.  Text parsing relies on
DataFusion 55's indent display (one operator per line, two spaces per level); lineage is
read by walking the optimized logical plan's variants.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from reference_impl.relspec.contracts import SchemaField

_STATS = re.compile(
    r"statistics=\[Rows=(?P<rk>Exact|Inexact|Absent)(?:\((?P<rows>\d+)\))?, "
    r"Bytes=(?P<bk>Exact|Inexact|Absent)(?:\((?P<bytes>\d+)\))?"
)
_OPERATOR = re.compile(r"^\s*(?:FFI_ExecutionPlan: )?(?P<name>[A-Za-z_][A-Za-z0-9_ ]*?)(?:[:,]|$)")


class ExplainStatistics(msgspec.Struct, frozen=True, kw_only=True):
    rows: int | None
    bytes: int | None
    exact: bool


def operator_counts(plan_text: str) -> dict[str, int]:
    """Operator name -> occurrences in an indent-displayed plan, sorted by name."""
    counts: Counter[str] = Counter()
    for line in plan_text.splitlines():
        match = _OPERATOR.match(line)
        if match and line.strip():
            counts[match.group("name").strip()] += 1
    return dict(sorted(counts.items()))


def explain_statistics(explain: Mapping[str, list[Any]]) -> ExplainStatistics:
    """Row/byte statistics of the root of the physical plan in an EXPLAIN result."""
    plans = dict(zip(explain["plan_type"], explain["plan"], strict=True))
    physical = str(plans.get("physical_plan", ""))
    first = physical.splitlines()[0] if physical else ""
    match = _STATS.search(first)
    if match is None:
        return ExplainStatistics(rows=None, bytes=None, exact=False)
    rows = int(match.group("rows")) if match.group("rows") is not None else None
    size = int(match.group("bytes")) if match.group("bytes") is not None else None
    return ExplainStatistics(rows=rows, bytes=size, exact=match.group("rk") == "Exact")


class TableScanFact(msgspec.Struct, frozen=True, kw_only=True):
    dataset: str
    columns: tuple[str, ...]
    filters: tuple[str, ...]


def table_scans(plan: Any) -> list[TableScanFact]:
    """Every TableScan of a logical plan, with its projection and the filters on it.

    Filters are those pushed into the scan plus a ``Filter`` directly above it (Delta
    providers keep filters above the scan).  Scans of table functions, which DataFusion
    names ``fn()``, read no dataset and are left out, and so are the scans of a recursive
    CTE's own work table (``TableScan: r`` under ``RecursiveQuery`` ``r``).
    """
    found: list[TableScanFact] = []
    stack: list[tuple[Any, tuple[str, ...], frozenset[str]]] = [(plan, (), frozenset())]
    while stack:
        node, parent_filters, recursive = stack.pop()
        variant = node.to_variant()
        kind = type(variant).__name__
        if kind == "TableScan" and str(variant.table_name()).endswith("()"):
            continue  # a table function (range(), generate_series(), a UDTF): no dataset
        if kind == "TableScan" and str(variant.table_name()) in recursive:
            continue  # the recursive CTE reading its own previous iteration: no dataset
        if kind == "RecursiveQuery":
            recursive = recursive | {str(variant.name())}
        if kind == "TableScan":
            projection = variant.projection()
            columns = (
                tuple(name for _, name in projection) if projection else _scan_schema_names(variant)
            )
            pushed = tuple(expr.canonical_name() for expr in variant.filters())
            found.append(
                TableScanFact(
                    dataset=str(variant.table_name()),
                    columns=columns,
                    filters=tuple(sorted({*pushed, *parent_filters})),
                )
            )
            continue
        here = (variant.predicate().canonical_name(),) if kind == "Filter" else ()
        stack.extend((child, here, recursive) for child in reversed(node.inputs()))
    return found


def _scan_schema_names(scan: Any) -> tuple[str, ...]:
    """Column names of a TableScan's (projected) schema, table qualifier stripped.

    An optimized scan that needs no column (``SELECT 1 FROM t``, ``count(*)``) has an
    empty projection and an empty schema.  The schema is a ``DFSchema``, which is not
    iterable: read ``field_names()`` (``table.column``).
    """
    schema = scan.schema()
    if not hasattr(schema, "field_names"):
        return tuple(field.name for field in _schema_fields(schema))
    prefix = f"{scan.table_name()}."
    return tuple(
        name[len(prefix) :] if name.startswith(prefix) else name
        for name in map(str, schema.field_names())
    )


def _schema_fields(schema: Any) -> Iterable[Any]:
    return list(schema) if not hasattr(schema, "fields") else list(schema.fields)


def schema_fields(schema: Any) -> tuple[SchemaField, ...]:
    """A pyarrow schema as plain fields (field metadata, e.g. Delta physicalName, dropped)."""
    return tuple(
        SchemaField(name=field.name, type=str(field.type), nullable=bool(field.nullable))
        for field in schema
    )


def udf_calls(plan_text: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """Which of ``candidates`` a plan's text calls."""
    return tuple(
        sorted(
            name
            for name in set(candidates)
            # the substring test is a cheap filter; the regex decides (word boundary)
            if f"{name}(" in plan_text and re.search(rf"\b{re.escape(name)}\(", plan_text)
        )
    )


def mentions_call(plan_text: str, candidates: Iterable[str]) -> bool:
    """Whether ``plan_text`` holds ``name(`` for any of ``candidates``: the cheap test that
    :func:`udf_calls` and :func:`own_udf_calls` can only answer names that pass.  Each
    line of a plan's ``display_indent()`` begins its line of ``display_indent_schema()``,
    so no mention in P0 means none in the plan without schemas either."""
    return any(f"{name}(" in plan_text for name in candidates)


def own_udf_calls(
    plan_text: str, candidates: Iterable[str], upstream_views: Iterable[str]
) -> tuple[str, ...]:
    """Which of ``candidates`` a view calls itself, not through the views it reads.

    ``plan_text`` is the view's unoptimized logical plan without schemas
    (``display_indent()``): DataFusion inlines every view it reads as a ``SubqueryAlias``
    named after that view, and those subtrees are left out.  A column an upstream view
    computed without an alias keeps the call in its name, but every reference to it is
    qualified (``up.f(t.a)``), so a call counts only when no name or ``.`` precedes it.
    """
    names = set(candidates)
    if not mentions_call(plan_text, names):
        return ()  # what is kept below is lines of plan_text: no call there, none kept
    aliases = {f"SubqueryAlias: {view}" for view in upstream_views}
    kept: list[str] = []
    skip_deeper_than: int | None = None
    for line in plan_text.splitlines():
        depth = len(line) - len(line.lstrip(" "))
        if skip_deeper_than is not None and depth > skip_deeper_than:
            continue
        skip_deeper_than = None
        if line.strip() in aliases:
            skip_deeper_than = depth
            continue
        kept.append(line)
    own = "\n".join(kept)
    return tuple(
        sorted(
            name
            for name in names
            if f"{name}(" in own and re.search(rf"(?<![\w.]){re.escape(name)}\(", own)
        )
    )
