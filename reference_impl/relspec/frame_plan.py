"""The one DataFusion bundle builder: a never-executed DataFrame -> its plan texts.

Both planners of the project plan through :func:`plan_frame`: the reference pipeline's
execution-plan stage (:mod:`reference_impl.relspec.execution_plan`) for the views of a
manifest, and planguard's session gate for the views registered in any
``datafusion.SessionContext``.  :func:`session_settings` and :func:`engine_versions` give
what a snapshot header records, for any session, whether or not it enables
``information_schema``.

:func:`plan_frame` plans a view once, with one ``EXPLAIN`` of its DataFrame: its plans, and
with ``trace=True`` (``EXPLAIN VERBOSE``) the plan after every planner stage and optimizer
rule too (the rule trace a snapshot records, which names the stage where a changed plan
first diverged).  An untraced planning given the frame's session asks the engine objects
instead (cheaper than printing and reading back the ``EXPLAIN`` table), with the same
texts: see :func:`plan_frame`.
"""

from __future__ import annotations

import io
import re
import sys
import threading
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
from reference_impl.relspec.plan_text import output_partitions, plan_scans

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
    """The rule trace: (stage name, plan text) in planner order, ``initial_logical_plan``,
    ``logical_plan after <rule>`` ..., ``logical_plan``, ``initial_physical_plan``,
    ``physical_plan after <rule>`` ..., ``physical_plan``.  The text is None where the
    stage left the plan as the stage before it had it (DataFusion's ``SAME TEXT AS
    ABOVE``): only the stages that changed the plan carry text.  Displays of the same plan
    (``*_with_stats``, ``*_with_schema``) are left out, and so are operator statistics."""
    statistics: ExplainStatistics | None = None
    """The root's row and byte statistics (``physical_plan_with_stats`` of the same
    ``EXPLAIN VERBOSE``)."""


_SAME = "SAME TEXT AS ABOVE"
_DISPLAYS = ("_with_stats", "_with_schema")
_STATISTICS = ", statistics=["


def plan_frame(
    frame: Any, *, trace: bool = False, statistics: bool = False, session: Any = None
) -> FramePlan:
    """Plan ``frame`` (a ``datafusion.DataFrame``) without executing it: one planning.

    One ``EXPLAIN`` of the frame itself (not of its name: ``SELECT * FROM view`` is
    another plan, whose optimizer drops the view's ``ORDER BY``) gives P1 (the final
    ``logical_plan``) and P2 (the final ``physical_plan``) from the same optimizer run.
    With ``trace`` or ``statistics`` it is an ``EXPLAIN VERBOSE``, which also gives the
    rule trace (:attr:`FramePlan.trace`) and the root's statistics
    (:attr:`FramePlan.statistics`); P1 and P2 are the same texts either way, so a traced
    and an untraced planning of a view have the same fingerprints.  P0 and the schema
    need no planning.  The table scans and the output partition count are read off P1 and
    P2 (:mod:`reference_impl.relspec.plan_text`); only where the texts do not tell (a
    name the text cannot delimit, a scan operator that does not print its partitions,
    such as Delta's) does the engine object answer, at the cost of a second planning for
    that view alone.

    ``session``: the ``SessionContext`` the frame was created in, with the settings it was
    created under.  An untraced planning (neither ``trace`` nor ``statistics``) then asks
    the engine objects (:func:`_plan_objects`), which gives the same P1 and P2 texts as
    the ``EXPLAIN`` for less.
    """
    verbose = trace or statistics
    if session is not None and not verbose:
        return _plan_objects(frame, session)
    rows = explain_plans(frame, verbose=verbose)
    final = _final_plans(rows)
    p1 = final.get("logical_plan")
    p2 = final.get("physical_plan")
    if p1 is None or p2 is None:  # pragma: no cover - DataFusion always prints both
        raise ValueError("EXPLAIN printed no final logical or physical plan")
    scans = plan_scans(p1)
    if scans is None:
        scans = tuple(table_scans(frame.optimized_logical_plan()))
    partitions = output_partitions(p2)
    if partitions is None:
        partitions = int(frame.execution_plan().partition_count)
    stages, root = _trace(rows) if verbose else ((), None)
    return FramePlan(
        p0=frame.logical_plan().display_indent_schema(),
        p1=p1,
        p2=stable_plan_text(p2),
        partition_count=partitions,
        schema=schema_fields(frame.schema()),
        scans=scans,
        trace=stages if trace else (),
        statistics=root,
    )


def _plan_objects(frame: Any, session: Any) -> FramePlan:
    """An untraced :func:`plan_frame` from the engine objects, with the ``EXPLAIN``'s texts.

    The optimizer numbers the aliases it generates (``__common_expr_N``,
    ``__scalar_sq_N`` ...) with a counter that a DataFrame keeps across its plannings and
    that each new DataFrame of a session starts afresh.  The ``EXPLAIN`` prints P1 and
    P2 of the frame's first optimization.  Here P2 is the frame's first optimization too
    (its physical plan, planned first: the engine releases the GIL there, so the
    planning budget can stop waiting) and P1 is the first optimization of a new
    DataFrame of the same unoptimized plan in the same session, numbered from the same
    start.  Asking the frame twice would number P1's aliases on from P2's."""
    physical = frame.execution_plan()
    p2 = physical.display_indent()
    optimized = session.create_dataframe_from_logical_plan(
        frame.logical_plan()
    ).optimized_logical_plan()
    p1 = optimized.display_indent()
    scans = plan_scans(p1)
    return FramePlan(
        p0=frame.logical_plan().display_indent_schema(),
        p1=p1,
        p2=stable_plan_text(p2),
        partition_count=int(physical.partition_count),
        schema=schema_fields(frame.schema()),
        scans=scans if scans is not None else tuple(table_scans(optimized)),
    )


def explain_plans(frame: Any, *, verbose: bool = True) -> list[tuple[str, str]]:
    """The rows of ``EXPLAIN [VERBOSE]`` of ``frame`` as (plan_type, plan).

    ``DataFrame.explain`` is the only way to explain a DataFrame (rather than SQL text)
    and it prints: its table is read back from what it writes to ``sys.stdout``.  Operator
    statistics are left to ``physical_plan_with_stats`` whatever the session's
    ``datafusion.explain.show_statistics`` says."""
    buffer = io.StringIO()
    router = _ThreadRouter(sys.stdout, buffer)
    sys.stdout = router
    try:
        frame.explain(verbose=verbose, show_statistics=False)
    finally:
        # Put it back only if it is still ours: a planning abandoned at its budget ends
        # in the background, after the caller (pytest's capture, say) may have moved on.
        if sys.stdout is router:
            sys.stdout = router.fallback
    return _table_rows(buffer.getvalue())


class _ThreadRouter:
    """``sys.stdout`` while one thread explains: that thread's writes go to its buffer,
    every other thread's to the stream that was there (a planning abandoned at its budget
    goes on in the background while the caller prints its results)."""

    def __init__(self, fallback: Any, buffer: io.StringIO) -> None:
        self.fallback = fallback
        self.buffer = buffer
        self.thread = threading.get_ident()

    def write(self, text: str) -> int:
        if threading.get_ident() == self.thread:
            return self.buffer.write(text)
        return int(self.fallback.write(text))

    def flush(self) -> None:
        if threading.get_ident() != self.thread:
            self.fallback.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


def _final_plans(rows: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each plan type's text, ``SAME TEXT AS ABOVE`` resolved to the text above it."""
    out: dict[str, str] = {}
    previous = ""
    for name, text in rows:
        previous = previous if text == _SAME else text
        out[name] = previous
    return out


def _table_rows(printed: str) -> list[tuple[str, str]]:
    """The (plan_type, plan) rows of the two-column table arrow prints::

        +------------+------------+
        | plan_type  | plan       |
        +------------+------------+
        | stage      | line 1     |
        |            |   line 2   |
        +------------+------------+

    The first column is ASCII (stage names), so its width is the header rule's; the
    second is everything after it up to the closing ``" |"``, padding stripped."""
    lines = printed.splitlines()
    rules = [index for index, line in enumerate(lines) if line.startswith("+-")]
    if len(rules) < 3:
        raise ValueError("EXPLAIN printed no plan table")
    width = lines[rules[0]].index("+", 1) - 3
    rows: list[tuple[str, list[str]]] = []
    for line in lines[rules[1] + 1 : rules[-1]]:
        kind = line[2 : 2 + width].strip()
        text = line[2 + width + 3 : -2].rstrip()
        if kind:
            rows.append((kind, [text]))
        elif rows:
            rows[-1][1].append(text)
    return [(kind, "\n".join(text)) for kind, text in rows]


def _trace(
    rows: Iterable[tuple[str, str]],
) -> tuple[tuple[tuple[str, str | None], ...], ExplainStatistics]:
    """The rule trace of ``EXPLAIN VERBOSE`` rows and the root's statistics (see
    :attr:`FramePlan.trace`)."""
    stages: list[tuple[str, str | None]] = []
    with_stats = previous_row = previous_kept = ""
    above_kept = False  # was the row above a kept stage (whose cleaned text is previous_kept)?
    for name, text in rows:
        same = text == _SAME
        if not same:
            previous_row = text
        if name == "physical_plan_with_stats":
            with_stats = previous_row
        if name.endswith(_DISPLAYS):
            above_kept = False
            continue
        plan = previous_kept if same and above_kept else _cleaned(previous_row)
        stages.append((name, None if plan == previous_kept else plan))
        previous_kept, above_kept = plan, True
    statistics = explain_statistics({"plan_type": ["physical_plan"], "plan": [with_stats]})
    return tuple(stages), statistics


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
