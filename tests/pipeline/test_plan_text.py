"""One planning per view (issue 18): :func:`plan_frame` reads P1, P2, the rule trace, the
table scans and the output partition count off ONE ``EXPLAIN VERBOSE``.  What it reads
off the texts must equal what the engine objects say, wherever the text reader answers,
and the reader must refuse (None) wherever the text does not determine the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_planguard.gate.normalize import normalize_plan_text
from reference_impl.relspec.frame_plan import _table_rows, explain_plans, plan_frame
from reference_impl.relspec.plan_facts import TableScanFact, table_scans
from reference_impl.relspec.plan_text import output_partitions, plan_scans
from tests.support.tpch import copy_tpch


@pytest.fixture(scope="module")
def tpch_state(tmp_path_factory: pytest.TempPathFactory, tpch_data: Path) -> Any:
    from reference_impl.pipeline import PipelineState, run_stages

    manifest = copy_tpch(tmp_path_factory.mktemp("tpch"), tpch_data)
    state = run_stages(PipelineState(manifest), last="context")
    assert state.semantic_context is not None
    return state  # it keeps the session, which the frames need, alive


def test_p1_p2_of_the_one_explain_are_the_engine_objects_displays(tpch_state: Any) -> None:
    answered = {"scans": 0, "partitions": 0}
    for name, frame in tpch_state.semantic_context.view_frames.items():
        planned = plan_frame(frame, trace=True)
        assert planned.trace
        # EXPLAIN, not VERBOSE: the same plans, no trace (generated aliases count on
        # within a session, so the texts are compared normalized)
        plain = plan_frame(frame)
        assert [normalize_plan_text(text) for text in (plain.p1, plain.p2)] == [
            normalize_plan_text(text) for text in (planned.p1, planned.p2)
        ], name
        assert (plain.scans, plain.partition_count, plain.trace) == (
            planned.scans,
            planned.partition_count,
            (),
        ), name
        physical = frame.execution_plan()
        optimized = frame.optimized_logical_plan()
        assert normalize_plan_text(planned.p1) == normalize_plan_text(optimized.display_indent())
        assert normalize_plan_text(planned.p2) == normalize_plan_text(physical.display_indent())
        assert planned.scans == tuple(table_scans(optimized)), name
        assert planned.partition_count == physical.partition_count, name
        final = dict(explain_plans(frame))
        read = plan_scans(final["logical_plan"])
        if read is not None:
            answered["scans"] += 1
            assert read == tuple(table_scans(optimized)), name
        partitions = output_partitions(final["physical_plan"])
        if partitions is not None:
            answered["partitions"] += 1
            assert partitions == physical.partition_count, name
    # the texts answer for most views: the engine objects are the exception
    assert answered["scans"] >= 20
    assert answered["partitions"] >= 20


def test_an_untraced_planning_from_the_engine_objects_has_the_explain_texts(
    tmp_path: Path, tpch_data: Path
) -> None:
    """Given its session, an untraced :func:`plan_frame` asks the engine objects, not the
    ``EXPLAIN``: the same P1 and P2 texts byte for byte, generated alias numbers included
    (the determinism check compares untraced fingerprints with the traced run's), the
    same scans and output partitions.  Each side plans frames no one planned before."""
    from reference_impl.pipeline import PipelineState, run_stages

    manifest = copy_tpch(tmp_path / "tpch", tpch_data)

    def fresh() -> tuple[Any, Any]:
        state = run_stages(PipelineState(manifest), last="context")
        return state, state.semantic_context

    keep_a, traced_side = fresh()
    keep_b, explain_side = fresh()
    keep_c, object_side = fresh()
    numbered = 0
    for name in traced_side.view_frames:
        traced = plan_frame(traced_side.view_frames[name], trace=True)
        explained = plan_frame(explain_side.view_frames[name])
        objects = plan_frame(object_side.view_frames[name], session=object_side.session)
        assert (objects.p0, objects.p1, objects.p2) == (traced.p0, traced.p1, traced.p2), name
        assert (objects.p1, objects.p2) == (explained.p1, explained.p2), name
        assert (objects.scans, objects.partition_count, objects.schema) == (
            traced.scans,
            traced.partition_count,
            traced.schema,
        ), name
        assert objects.trace == ()
        assert objects.statistics is None
        numbered += "__common_expr_" in objects.p1 or "_sq_" in objects.p1
    # views whose optimizer generates aliases: the numbering is what is compared
    assert numbered >= 3
    del keep_a, keep_b, keep_c


def test_p0_holds_every_line_of_the_plan_without_schemas(tpch_state: Any) -> None:
    """Why a UDF call missing from P0 is missing from the plan without schemas (the
    execution-plan stage then skips looking, :func:`mentions_call`): each line of
    ``display_indent()`` begins its line of ``display_indent_schema()``."""
    from reference_impl.relspec.plan_facts import mentions_call

    for name, frame in tpch_state.semantic_context.view_frames.items():
        plain = frame.logical_plan().display_indent().splitlines()
        with_schema = frame.logical_plan().display_indent_schema().splitlines()
        assert len(plain) == len(with_schema), name
        assert all(full.startswith(line) for line, full in zip(plain, with_schema, strict=True))
    assert mentions_call("Projection: price_band(t.a) AS b", ["net_price", "price_band"])
    assert not mentions_call("Projection: price_band AS b, net_price", ["price_band", "net_price"])


def test_an_ordered_view_keeps_its_sort() -> None:
    """``SELECT * FROM view`` drops a view's ORDER BY: the trace and P1/P2 come from the
    frame itself, so they keep it."""
    from datafusion import SessionContext

    ctx = SessionContext()
    ctx.sql("CREATE TABLE t AS VALUES (2, 'b'), (1, 'a')").collect()
    frame = ctx.sql("SELECT column1, column2 FROM t ORDER BY column1")
    ctx.register_view("v", frame)
    planned = plan_frame(frame, trace=True)
    assert planned.p1.startswith("Sort: t.column1 ASC NULLS LAST")
    assert "SortExec" in planned.p2
    stages = dict(planned.trace)
    assert "Sort" in (stages["initial_logical_plan"] or "")
    assert planned.partition_count == frame.execution_plan().partition_count


def test_scans_read_off_the_text() -> None:
    p1 = (
        "Projection: t.a\n"
        '  Filter: t.b = Utf8("x") AND t.c > Int64(1)\n'
        "    TableScan: t projection=[a, b, c], partial_filters=[t.a IS NOT NULL, "
        "f(t.b, t.c) > Int64(2)], fetch=5\n"
        "  TableScan: u projection=[d]"
    )
    assert plan_scans(p1) == (
        TableScanFact(
            dataset="t",
            columns=("a", "b", "c"),
            filters=(
                "f(t.b, t.c) > Int64(2)",
                "t.a IS NOT NULL",
                't.b = Utf8("x") AND t.c > Int64(1)',
            ),
        ),
        TableScanFact(dataset="u", columns=("d",), filters=()),
    )


@pytest.mark.parametrize(
    "p1",
    [
        # a literal holding plan syntax: its extent cannot be read off the text
        'Filter: t.b = Utf8("a, b")\n  TableScan: t projection=[b]',
        'TableScan: t projection=[b], full_filters=[t.b = Utf8("x\\"), y")]',
        # a subquery is displayed but is no input of the plan object
        "Filter: EXISTS (<subquery>)\n  Subquery:\n    TableScan: u projection=[a]\n"
        "  TableScan: t projection=[a]",
        # a recursive CTE's work table, a table function, no projection printed
        "RecursiveQuery: is_distinct=false\n  TableScan: t projection=[a]",
        "TableScan: range() projection=[value]",
        "TableScan: t",
        'TableScan: t projection=[a, "b c"]',
    ],
)
def test_scans_the_text_cannot_tell_are_left_to_the_engine(p1: str) -> None:
    assert plan_scans(p1) is None


@pytest.mark.parametrize(
    ("p2", "partitions"),
    [
        ("SortPreservingMergeExec: [a@0 ASC]\n  SortExec: expr=[a@0 ASC]", 1),
        (
            "ProjectionExec: expr=[a@0 as a]\n  RepartitionExec: partitioning=Hash([a@0], 7), "
            "input_partitions=3",
            7,
        ),
        (
            "FilterExec: a@0 > 1\n  RepartitionExec: partitioning=RoundRobinBatch(5), "
            "input_partitions=1\n    DataSourceExec: partitions=1, partition_sizes=[1]",
            5,
        ),
        (
            "HashJoinExec: mode=CollectLeft, join_type=Inner\n"
            "  DataSourceExec: partitions=1, partition_sizes=[1]\n"
            "  RepartitionExec: partitioning=RoundRobinBatch(3), input_partitions=1",
            3,
        ),
        ("SortExec: expr=[a@0 ASC], preserve_partitioning=[false]\n  X", 1),
        (
            "UnionExec\n  DataSourceExec: partitions=2, partition_sizes=[1, 1]\n"
            "  DataSourceExec: partitions=3, partition_sizes=[1, 1, 1]",
            5,
        ),
        # Delta's scan prints no partitions: the engine object answers
        ("FilterExec: a@0 > 1\n  FFI_ExecutionPlan: DeltaScanExec, number_of_children=1", None),
        ("SomeNewExec: x\n  DataSourceExec: partitions=2", None),
    ],
)
def test_output_partitions_read_off_the_text(p2: str, partitions: int | None) -> None:
    assert output_partitions(p2) == partitions


def test_the_printed_table_is_read_back_cell_by_cell() -> None:
    printed = (
        "DataFrame()\n"
        "+-----------------+---------------------+\n"
        "| plan_type       | plan                |\n"
        "+-----------------+---------------------+\n"
        "| logical_plan    | Projection: t.a |x| |\n"
        "|                 |   TableScan: t      |\n"
        "| physical_plan   | SAME TEXT AS ABOVE  |\n"
        "+-----------------+---------------------+\n"
    )
    assert _table_rows(printed) == [
        ("logical_plan", "Projection: t.a |x|\n  TableScan: t"),
        ("physical_plan", "SAME TEXT AS ABOVE"),
    ]


def test_a_traced_and_an_untraced_pipeline_plan_alike(tmp_path: Path, tpch_data: Path) -> None:
    """``PipelineOptions.trace`` adds the trace and changes nothing else: the bundles'
    fingerprints (raw P0/P1/P2, what the determinism check compares) are equal."""
    from reference_impl.pipeline import PipelineOptions, PipelineState, run_stages

    manifest = copy_tpch(tmp_path / "tpch", tpch_data)

    def plan(trace: bool) -> Any:
        state = run_stages(PipelineState(manifest, PipelineOptions(trace=trace)))
        assert state.plan is not None
        return state.plan

    traced_plan, plain_plan = plan(True), plan(False)
    assert traced_plan.fingerprint == plain_plan.fingerprint  # the validation's plan_hash
    traced, plain = traced_plan.plan_bundles_by_view, plain_plan.plan_bundles_by_view
    assert {v: b.fingerprint for v, b in traced.items()} == {
        v: b.fingerprint for v, b in plain.items()
    }
    assert all(bundle.trace for bundle in traced.values())
    assert not any(bundle.trace for bundle in plain.values())
