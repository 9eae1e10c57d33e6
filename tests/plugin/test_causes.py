"""``caused_by`` and inherited changes on snapshot texts (:mod:`pytest_planguard.gate.causes`).

The texts have the shape DataFusion gives them: a view that reads another view embeds that
view's unoptimized plan under ``SubqueryAlias: <view>``, one level deeper.
"""

from __future__ import annotations

from pytest_planguard.gate.causes import caused_by, is_inherited, own_plan, upstream_views
from pytest_planguard.gate.snapshot import FORMAT_LINE

TOTALS = "Aggregate: groupBy=[[o.c]] [c:Int64]\n  TableScan: orders [c:Int64, a:Float64]"
FILTERED = (
    "Aggregate: groupBy=[[o.c]] [c:Int64]\n"
    "  Filter: o.a > Int64(1) [c:Int64, a:Float64]\n"
    "    TableScan: orders [c:Int64, a:Float64]"
)


def reader(upstream_plan: str, *, own: str = "Projection: t.c [c:Int64]") -> str:
    """The P0 of a view ``SELECT c FROM totals t`` over ``totals`` planned as given."""
    block = "\n".join("      " + line for line in upstream_plan.splitlines())
    return f"{own}\n  SubqueryAlias: t [c:Int64]\n    SubqueryAlias: totals [c:Int64]\n{block}"


def snap(view: str, p0: str, *, udfs: str = "", depends_on: str = "") -> str:
    lines = [FORMAT_LINE, f"# view: {view}", "# normalizer: 3"]
    lines += [f"# depends-on: {depends_on}"] if depends_on else []
    lines += [f"# udfs: {udfs}"] if udfs else []
    for section, body in (
        ("P0 logical", p0),
        ("P1 optimized", "x"),
        ("P2 physical", "y"),
        ("schema", "c: int64"),
        ("signals", "operator_total: 1"),
    ):
        lines += ["", f"== {section}", body]
    return "\n".join(lines) + "\n"


OLD_UP = {"totals": snap("totals", TOTALS)}
NEW_UP = {"totals": snap("totals", FILTERED)}


def test_upstream_views_are_transitive_and_caused_by_keeps_the_changed_ones() -> None:
    dependencies = {"c": ("b",), "b": ("a",), "a": (), "d": ("c",)}
    assert upstream_views("d", dependencies) == {"a", "b", "c"}
    assert caused_by("d", dependencies, {"a", "d"}) == ("a",)
    assert caused_by("a", dependencies, {"a", "b"}) == ()  # a root change


def test_own_plan_replaces_exactly_the_upstream_plan_block() -> None:
    assert own_plan(reader(TOTALS), {"totals": TOTALS}) == (
        "Projection: t.c [c:Int64]\n  SubqueryAlias: t [c:Int64]\n    <view totals>"
    )
    # twin: a block that is not the upstream plan (a CTE named like the view, or the
    # view's plan of another version) stays, so its changes count as the view's own
    assert own_plan(reader(FILTERED), {"totals": TOTALS}) == reader(FILTERED)


def test_a_change_that_only_flows_in_from_upstream_is_inherited() -> None:
    old, new = snap("v", reader(TOTALS)), snap("v", reader(FILTERED))
    assert is_inherited(old, new, ("totals",), OLD_UP, NEW_UP)


def test_a_change_of_the_views_own_plan_is_not_inherited() -> None:
    own = "Projection: t.c [c:Int64]\n  Filter: t.c > Int64(0) [c:Int64]"
    old, new = snap("v", reader(TOTALS)), snap("v", reader(FILTERED, own=own))
    assert not is_inherited(old, new, ("totals",), OLD_UP, NEW_UP)


def test_no_cause_a_udf_change_a_missing_upstream_or_damage_is_not_inherited() -> None:
    old, new = snap("v", reader(TOTALS)), snap("v", reader(FILTERED))
    assert not is_inherited(old, new, (), OLD_UP, NEW_UP)
    calls_f = "Projection: f(t.c) [c:Int64]"
    assert not is_inherited(
        snap("v", reader(TOTALS, own=calls_f), udfs="f=1"),
        snap("v", reader(FILTERED, own=calls_f), udfs="f=2"),
        ("totals",),
        OLD_UP,
        NEW_UP,
    )
    assert not is_inherited(old, new, ("totals",), {"totals": None}, NEW_UP)
    assert not is_inherited(old + "== extra\n", new, ("totals",), OLD_UP, NEW_UP)
    # an empty P0 (not retained) proves nothing
    assert not is_inherited(snap("v", ""), snap("v", ""), ("totals",), OLD_UP, NEW_UP)


def test_a_udf_change_that_comes_through_an_upstream_view_is_inherited() -> None:
    """``totals`` calls f; the view reads ``totals`` and so executes f too, but its own
    plan does not call it."""
    calls_f = "Aggregate: groupBy=[[o.c]], aggr=[[f(o.a)]] [c:Int64]\n  TableScan: orders"
    old_up = {"totals": snap("totals", calls_f, udfs="f=1")}
    new_up = {"totals": snap("totals", calls_f, udfs="f=2")}
    old = snap("v", reader(calls_f), udfs="f=1")
    new = snap("v", reader(calls_f), udfs="f=2")
    assert is_inherited(old, new, ("totals",), old_up, new_up)
