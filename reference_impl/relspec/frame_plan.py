"""The one DataFusion bundle builder: a never-executed DataFrame -> its plan texts.

Both planners of the project plan through :func:`plan_frame`: the reference pipeline's
execution-plan stage (:mod:`reference_impl.relspec.execution_plan`) for the views of a
manifest, and planguard's session gate for the views registered in any
``datafusion.SessionContext``.  :func:`session_settings` and :func:`engine_versions` give
what a snapshot header records, for any session, whether or not it enables
``information_schema``.

:func:`plan_trace` reads one ``EXPLAIN VERBOSE`` of a registered view: the plan after
every planner stage and optimizer rule (the rule trace a snapshot records, which names
the stage where a changed plan first diverged).
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
    trace: tuple[tuple[str, str | None], ...] = ()
    """The rule trace (:func:`plan_trace`); empty when it was not asked for."""
    statistics: ExplainStatistics | None = None
    """The root's row and byte statistics, read off the same ``EXPLAIN VERBOSE`` as the
    trace (None without a trace)."""


class PlanTrace(msgspec.Struct, frozen=True, kw_only=True):
    """One ``EXPLAIN VERBOSE``: the stages and the root's statistics."""

    stages: tuple[tuple[str, str | None], ...]
    """(stage name, plan text) in planner order: ``initial_logical_plan``, ``logical_plan
    after <rule>`` ..., ``logical_plan``, ``initial_physical_plan``, ``physical_plan after
    <rule>`` ..., ``physical_plan``.  The text is None where the stage left the plan as
    the stage before it had it (DataFusion's ``SAME TEXT AS ABOVE``): only the stages that
    changed the plan carry text.  Displays of the same plan (``*_with_stats``,
    ``*_with_schema``) are left out, and so are operator statistics."""
    statistics: ExplainStatistics


_SAME = "SAME TEXT AS ABOVE"
_DISPLAYS = ("_with_stats", "_with_schema")
_STATISTICS = ", statistics=["


def plan_frame(frame: Any, *, trace_of: Any = None) -> FramePlan:
    """Plan ``frame`` (a ``datafusion.DataFrame``) without executing it.

    Physical planning first: it releases the GIL, so a planning budget can stop waiting
    for it, and it runs the logical optimizer too.  ``optimized_logical_plan()`` holds the
    GIL but costs no more than the physical planning that just finished.

    ``trace_of``: ``(ctx, view)``, the session and the name ``frame`` is registered under;
    the bundle then carries the view's rule trace and root statistics (:func:`plan_trace`).
    """
    physical = frame.execution_plan()
    p1 = frame.optimized_logical_plan()
    traced = plan_trace(*trace_of) if trace_of is not None else None
    return FramePlan(
        p0=frame.logical_plan().display_indent_schema(),
        p1=p1.display_indent(),
        p2=stable_plan_text(physical.display_indent()),
        partition_count=int(physical.partition_count),
        schema=schema_fields(frame.schema()),
        scans=tuple(table_scans(p1)),
        trace=traced.stages if traced is not None else (),
        statistics=traced.statistics if traced is not None else None,
    )


def plan_trace(ctx: Any, view: str) -> PlanTrace:
    """One ``EXPLAIN VERBOSE SELECT * FROM view``: every planner stage and optimizer rule,
    and the root's statistics (``physical_plan_with_stats``).

    Through the registered view, not its SQL text: the text may hold stray semicolons or
    comments that DataFusion accepts alone but not after ``EXPLAIN``.  Statistics are
    stripped from the stage texts whatever ``datafusion.explain.show_statistics`` says:
    they follow the data, the trace follows the planner."""
    quoted = ".".join('"' + part.replace('"', '""') + '"' for part in view.split("."))
    rows = ctx.sql(f"EXPLAIN VERBOSE SELECT * FROM {quoted}").to_pydict()
    stages: list[tuple[str, str | None]] = []
    with_stats = previous_row = previous_kept = ""
    above_kept = False  # was the row above a kept stage (whose cleaned text is previous_kept)?
    for kind, shown in zip(rows["plan_type"], rows["plan"], strict=True):
        name, text = str(kind), str(shown)
        same = text == _SAME
        if not same:
            previous_row = text
        if name == "physical_plan_with_stats" or (name == "physical_plan" and not with_stats):
            with_stats = previous_row
        if name.endswith(_DISPLAYS):
            above_kept = False
            continue
        plan = previous_kept if same and above_kept else _cleaned(previous_row)
        stages.append((name, None if plan == previous_kept else plan))
        previous_kept, above_kept = plan, True
    return PlanTrace(
        stages=tuple(stages),
        statistics=explain_statistics({"plan_type": ["physical_plan"], "plan": [with_stats]}),
    )


def _cleaned(text: str) -> str:
    text = stable_plan_text(text)
    return _without_statistics(text) if _STATISTICS in text else text


def _without_statistics(text: str) -> str:
    """``text`` without the ``, statistics=[...]`` of each operator (brackets nest)."""
    out: list[str] = []
    position = 0
    while (start := text.find(_STATISTICS, position)) != -1:
        depth, index = 0, start + len(_STATISTICS) - 1
        while index < len(text):
            depth += {"[": 1, "]": -1}.get(text[index], 0)
            if depth == 0:
                break
            index += 1
        out.append(text[position:start])
        position = index + 1
    out.append(text[position:])
    return "".join(out)


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
