"""``classify()`` and ``decide()`` directly: one row per change class, on snapshot texts.

Each row changes one thing in a well-formed snapshot and names the classes (in priority
order) and the schema changes the classifier must report.
"""

from __future__ import annotations

import json

import pytest

from pytest_planguard.config import CostLimit
from pytest_planguard.errors import PlanguardError
from pytest_planguard.gate.classify import classify, tree_diff, unified
from pytest_planguard.gate.plan_check import decide
from pytest_planguard.gate.policy import DEFAULT_GATE, ChangeClass, parse_gate_policy
from pytest_planguard.gate.report import SCHEMA_PATH, report_schema_text
from pytest_planguard.gate.snapshot import FORMAT_LINE

BASE = {
    "engine": "datafusion=55.0.0",
    "P0 logical": "Projection: t.a, t.b\n  TableScan: t",
    "P1 optimized": "TableScan: t projection=[a, b]",
    "P2 physical": "DataSourceExec: file_groups={1 group}",
    "schema": "a: int64 not null\nb: utf8 not null",
    "signals": "operator_total: 1\nrepartition_count: 0",
    "udfs": "f=1111111111111111",
}


def snap(**changes: str) -> str:
    """A well-formed snapshot of view ``v``: ``BASE`` with ``changes`` (``P0``, ``P1``,
    ``P2`` name the plan sections)."""
    names = {"P0": "P0 logical", "P1": "P1 optimized", "P2": "P2 physical"}
    parts = {**BASE, **{names.get(key, key): value for key, value in changes.items()}}
    lines = [
        FORMAT_LINE,
        "# view: v",
        f"# engine: {parts['engine']}",
        "# settings-hash: 0",
        "# normalizer: 2",
        *([f"# udfs: {parts['udfs']}"] if parts["udfs"] else []),
    ]
    for section in ("P0 logical", "P1 optimized", "P2 physical", "schema", "signals"):
        lines += ["", f"== {section}", parts[section]]
    return "\n".join(lines) + "\n"


S = ChangeClass
ROWS = [
    # (id, new snapshot, classes, schema changes)
    ("unchanged", snap(), (), ()),
    (
        "semantic",
        snap(P0="Projection: t.a, t.b\n  Filter: t.a > 1\n    TableScan: t"),
        (S.SEMANTIC,),
        (),
    ),
    ("optimizer", snap(P1="TableScan: t projection=[a, b], filter=[a > 1]"), (S.OPTIMIZER,), ()),
    ("physical", snap(P2="DataSourceExec: file_groups={2 groups}"), (S.PHYSICAL,), ()),
    ("cosmetic-header", snap(engine="datafusion=55.1.0"), (S.COSMETIC,), ()),
    ("udf", snap(udfs="f=2222222222222222"), (S.UDF,), ()),
    # a UDF only in one version has no code to compare (a new call changes P0 anyway)
    ("udf-called-newly", snap(udfs="f=1111111111111111, g=3"), (S.COSMETIC,), ()),
    ("udf-hashes-not-recorded-before", snap(udfs=""), (S.COSMETIC,), ()),
    (
        "semantic-and-udf",
        snap(P0="Projection: t.a, t.b\n  Filter: t.a > 1\n    TableScan: t", udfs="f=2"),
        (S.SEMANTIC, S.UDF),
        (),
    ),
    (
        "cosmetic-signals",
        snap(signals="operator_total: 1\nrepartition_count: 1"),
        (S.COSMETIC,),
        (),
    ),
    (
        "breaking-nullable",
        snap(schema="a: int64 not null\nb: utf8"),
        (S.SCHEMA_BREAKING,),
        ("column 'b' became nullable",),
    ),
    (
        "breaking-retyped",
        snap(schema="a: int32 not null\nb: utf8 not null"),
        (S.SCHEMA_BREAKING,),
        ("column 'a' retyped int64 -> int32",),
    ),
    (
        "breaking-removed",
        snap(schema="a: int64 not null"),
        (S.SCHEMA_BREAKING,),
        ("column 'b' removed",),
    ),
    (
        "breaking-reordered",
        snap(schema="b: utf8 not null\na: int64 not null"),
        (S.SCHEMA_BREAKING,),
        ("columns reordered",),
    ),
    (
        "additive-added",
        snap(schema="a: int64 not null\nb: utf8 not null\nc: double"),
        (S.SCHEMA_ADDITIVE,),
        ("column 'c' added",),
    ),
    (
        "semantic-and-breaking",
        snap(P0="Projection: t.a\n  TableScan: t", schema="a: int64 not null"),
        (S.SCHEMA_BREAKING, S.SEMANTIC),
        ("column 'b' removed",),
    ),
]


@pytest.mark.parametrize(
    ("new", "classes", "changes"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_classify_names_each_class(
    new: str, classes: tuple[ChangeClass, ...], changes: tuple[str, ...]
) -> None:
    found = classify(snap(), new, name="v")
    assert found.classes == classes
    assert found.schema_changes == changes
    assert found.damage == ()
    assert found.primary == (classes[0] if classes else None)
    assert bool(found.diffs) == bool(classes)


def test_a_column_becoming_not_null_is_additive() -> None:
    old = snap(schema="a: int64 not null\nb: utf8")
    found = classify(old, snap(), name="v")
    assert found.classes == (S.SCHEMA_ADDITIVE,)
    assert found.schema_changes == ("column 'b' became not null",)


def test_every_class_has_a_row() -> None:
    covered = {c for row in ROWS for c in row[2]} | {S.SCHEMA_ADDITIVE}
    assert covered == set(ChangeClass)


def test_change_classes_are_in_priority_order() -> None:
    assert list(ChangeClass)[:3] == [S.SCHEMA_BREAKING, S.SEMANTIC, S.UDF]
    assert list(ChangeClass)[-1] == S.COSMETIC
    assert {
        **dict.fromkeys(ChangeClass, "fail"),
        "cosmetic": "warn",
        "inherited": "fail",
    } == DEFAULT_GATE


# ----------------------------------------------------------------------------- decide()

NO_LIMITS: dict[str, CostLimit] = {}


def test_decide_fails_or_warns_by_the_policy() -> None:
    new = snap(P2="DataSourceExec: file_groups={2 groups}")
    failed = decide(snap(), new, DEFAULT_GATE, NO_LIMITS, view="v")
    assert (failed.status, failed.action, failed.codes) == ("changed", "fail", ("PLAN_CHANGED",))
    assert "class physical (gate: physical=fail)" in failed.message
    assert "--- P2 physical ---" in failed.message
    warned = decide(snap(), new, parse_gate_policy([("t", "physical=warn")]), NO_LIMITS)
    assert (warned.status, warned.action, warned.message) == ("changed", "warn", "")
    assert warned.primary == "physical"


def test_decide_without_a_snapshot_is_new_and_unchanged_is_unchanged() -> None:
    assert decide(None, snap(), DEFAULT_GATE, NO_LIMITS).codes == ("PLAN_NEW",)
    same = decide(snap(), snap(), DEFAULT_GATE, NO_LIMITS)
    assert (same.status, same.action, same.codes) == ("unchanged", "warn", ("PLAN_UNCHANGED",))


def test_decide_fails_a_damaged_snapshot_whatever_the_policy() -> None:
    damaged = snap() + "\n== extra\nsomething\n"
    policy = parse_gate_policy([("t", f"{c}=warn") for c in ChangeClass])
    outcome = decide(damaged, snap(), policy, NO_LIMITS)
    assert outcome.action == "fail"
    assert "the stored snapshot is damaged" in outcome.message


def test_decide_fails_a_cost_regression_even_when_the_policy_warns() -> None:
    limits = {"operator_total": CostLimit("operator_total", absolute=0, percent=None)}
    grown = snap(signals="operator_total: 3\nrepartition_count: 0")
    outcome = decide(snap(), grown, parse_gate_policy([("t", "cosmetic=warn")]), limits)
    assert outcome.action == "fail"
    assert outcome.codes == ("PLAN_CHANGED", "PLAN_COST_REGRESSION")
    assert "operator_total 1 -> 3 (limit +0)" in outcome.message


# -------------------------------------------------------------------------- the schema


def test_the_committed_report_schema_is_the_generated_one() -> None:
    assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) == json.loads(
        report_schema_text()
    ), (
        "pytest_planguard/gate/report_schema.json is stale: regenerate it with "
        "`python -m pytest_planguard.gate.report`"
    )


OLD_PLAN = """\
Projection: a, b
  Aggregate: groupBy=[[a]], aggr=[[sum(b)]]
    TableScan: t projection=[a, b]"""
NEW_PLAN = """\
Projection: a, b
  Filter: a > 1
    Aggregate: groupBy=[[a]], aggr=[[sum(b)]]
      TableScan: t projection=[a, b]"""


def test_a_new_filter_is_one_inserted_operator_in_the_tree_diff() -> None:
    """The unified diff removes and re-adds the re-indented subtree; the tree diff shows
    one added operator and the subtree as context in its new position."""
    tree = tree_diff(OLD_PLAN, NEW_PLAN, "P0 logical", "v")
    changed = [line for line in tree.splitlines()[2:] if line[:1] in "+-"]
    assert changed == ["+  Filter: a > 1"]
    assert "       TableScan: t projection=[a, b]" in tree.splitlines()
    raw = unified(OLD_PLAN, NEW_PLAN, "P0 logical", "v")
    assert "-    TableScan: t projection=[a, b]" in raw.splitlines()  # the noise it removes


def test_the_tree_diff_falls_back_to_the_text_for_a_change_in_nesting_only() -> None:
    """Same operators, nested differently: never an empty diff."""
    flat = "Union\n  TableScan: a\n  TableScan: b"
    nested = "Union\n  TableScan: a\n    TableScan: b"
    assert tree_diff(flat, nested, "P2 physical") == unified(flat, nested, "P2 physical")
    assert "+    TableScan: b" in tree_diff(flat, nested, "P2 physical")


def test_classification_uses_tree_diffs_for_plans_and_keeps_the_raw_ones() -> None:
    found = classify(snap(), snap(P1="Filter: a > 1\n  TableScan: t projection=[a, b]"), name="v")
    assert found.diffs["P1 optimized"].startswith("--- snapshot: v P1 optimized")
    assert "@@ operator" in found.diffs["P1 optimized"]
    assert found.raw_diffs is not None
    assert "@@ -" in found.raw_diffs["P1 optimized"]


# ------------------------------------------------------------- inherited changes


def test_an_inherited_change_warns_only_when_the_policy_says_so() -> None:
    new = snap(P0="Projection: t.a, t.b\n  Filter: t.a > 1\n    TableScan: t")
    warned = decide(snap(), new, parse_gate_policy([("t", "inherited=warn")]), NO_LIMITS,
                    view="v", inherited=True)  # fmt: skip
    assert (warned.action, warned.inherited, warned.message) == ("warn", True, "")
    # twin: the default policy fails it and says it is inherited
    failed = decide(snap(), new, DEFAULT_GATE, NO_LIMITS, view="v", inherited=True)
    assert failed.action == "fail"
    assert "(gate: semantic=fail; inherited, inherited=fail)" in failed.message
    # twin: a root change (not inherited) fails whatever the inherited entry says
    root = decide(snap(), new, parse_gate_policy([("t", "inherited=warn")]), NO_LIMITS, view="v")
    assert (root.action, root.inherited) == ("fail", False)


def test_inherited_warn_lets_neither_damage_nor_a_cost_breach_through() -> None:
    policy = parse_gate_policy([("t", "inherited=warn")])
    damaged = snap() + "\n== extra\nsomething\n"
    assert decide(damaged, snap(), policy, NO_LIMITS, inherited=True).action == "fail"
    limits = {"operator_total": CostLimit("operator_total", absolute=0, percent=None)}
    grown = snap(P2="X", signals="operator_total: 3\nrepartition_count: 0")
    outcome = decide(snap(), grown, policy, limits, inherited=True)
    assert outcome.action == "fail"
    assert outcome.codes == ("PLAN_CHANGED", "PLAN_COST_REGRESSION")


def test_the_inherited_gate_entry_is_parsed_like_a_class() -> None:
    assert parse_gate_policy([("t", "inherited = warn")])["inherited"] == "warn"
    assert parse_gate_policy([])["inherited"] == "fail"
    with pytest.raises(PlanguardError, match="inherited"):
        parse_gate_policy([("t", "inherited=sometimes")])
