"""The one DataFusion bundle builder: a never-executed DataFrame -> its plan texts.

Both planners of the project plan through :func:`plan_frame`: the reference pipeline's
execution-plan stage (:mod:`reference_impl.relspec.execution_plan`) for the views of a
manifest, and planguard's session gate for the views registered in any
``datafusion.SessionContext``.  :func:`session_settings` and :func:`engine_versions` give
what a snapshot header records, for any session, whether or not it enables
``information_schema``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from reference_impl.relspec.contracts import SchemaField
from reference_impl.relspec.plan_facts import (
    ExplainStatistics,
    TableScanFact,
    explain_statistics,
    schema_fields,
    table_scans,
)

_FIELD_METADATA = re.compile(r', metadata: \{(?:"(?:[^"\\]|\\.)*": "(?:[^"\\]|\\.)*"(?:, )?)*\}')


class FramePlan(msgspec.Struct, frozen=True, kw_only=True):
    """A DataFrame's plans: P0 (unoptimized, with schema), P1 (optimized), P2 (physical).

    Plain data (no engine object), so that a plan cache can store it and give it back."""

    p0: str
    p1: str
    p2: str
    partition_count: int
    schema: tuple[SchemaField, ...]
    scans: tuple[TableScanFact, ...]
    """The optimized plan's table scans (they give lineage and scan units)."""


def plan_frame(frame: Any) -> FramePlan:
    """Plan ``frame`` (a ``datafusion.DataFrame``) without executing it.

    Physical planning first: it releases the GIL, so a planning budget can stop waiting
    for it, and it runs the logical optimizer too.  ``optimized_logical_plan()`` holds the
    GIL but costs no more than the physical planning that just finished.
    """
    physical = frame.execution_plan()
    p1 = frame.optimized_logical_plan()
    return FramePlan(
        p0=frame.logical_plan().display_indent_schema(),
        p1=p1.display_indent(),
        p2=stable_plan_text(physical.display_indent()),
        partition_count=int(physical.partition_count),
        schema=schema_fields(frame.schema()),
        scans=tuple(table_scans(p1)),
    )


def stable_plan_text(text: str) -> str:
    """Physical plan text without field metadata maps.

    DataFusion prints a field's metadata (e.g. in ``BoundedWindowAggExec``) in hash-map
    order, which changes from run to run, and Delta column mapping puts a random
    ``delta.columnMapping.physicalName`` in it: either makes P2 and every fingerprint over
    it nondeterministic.
    """
    return _FIELD_METADATA.sub("", text)


def dataset_statistics(ctx: Any, datasets: Iterable[str]) -> dict[str, ExplainStatistics]:
    """One ``EXPLAIN`` per dataset: its row and byte statistics (the session must have
    ``datafusion.explain.show_statistics`` on; a dataset that cannot be explained has
    none)."""
    out: dict[str, ExplainStatistics] = {}
    for name in sorted(set(datasets)):
        quoted = ".".join(f'"{part}"' for part in name.split("."))
        try:
            out[name] = explain_statistics(ctx.sql(f"EXPLAIN SELECT * FROM {quoted}").to_pydict())
        except Exception:
            out[name] = ExplainStatistics(rows=None, bytes=None, exact=False)
    return out


def session_settings(ctx: Any) -> dict[str, str]:
    """Every setting of ``ctx`` (name -> value), ``SET`` statements included.

    A session without ``information_schema`` is read through a session on a copy of its
    configuration with it turned on, so the user's session need not enable it and is left
    untouched.  Such a copy carries the configuration but not the runtime environment: the
    ``datafusion.runtime.*`` values (memory limit, cache sizes) then read as empty."""
    query = "SELECT name, value FROM information_schema.df_settings"
    try:
        rows = ctx.sql(query).to_pydict()
    except Exception:  # information_schema is off in this session
        from datafusion import SessionContext

        probe = SessionContext(ctx.copied_config().with_information_schema(True))
        rows = probe.sql(query).to_pydict()
    return {
        str(name): "" if value is None else str(value)
        for name, value in zip(rows["name"], rows["value"], strict=True)
    }


def engine_versions() -> dict[str, str]:
    """The versions of the engine libraries a plan depends on."""
    import datafusion
    import deltalake
    import pyarrow

    return {
        "datafusion": datafusion.__version__,
        "deltalake": deltalake.__version__,
        "pyarrow": pyarrow.__version__,
    }
