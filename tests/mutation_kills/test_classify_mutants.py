"""``classify()``, ``tree_diff()`` and ``unified()`` on the inputs the row table of
tests/plugin/test_classify.py leaves out (issue 20): missing and empty sections, extra
sections, header keys present on one side only, schema lines the parser must skip, and
the exact text of every diff, labels and hunk headers included."""

from __future__ import annotations

from pytest_planguard.gate.classify import classify, tree_diff, unified
from pytest_planguard.gate.policy import ChangeClass as S
from pytest_planguard.gate.snapshot import FORMAT_LINE

SECTIONS = {
    "P0 logical": "Projection: t.a, t.b\n  TableScan: t",
    "P1 optimized": "TableScan: t projection=[a, b]",
    "P2 physical": "DataSourceExec: file_groups={1 group}",
    "schema": "a: int64 not null\nb: utf8 not null",
    "signals": "operator_total: 1",
}
HEADER = {"engine": "datafusion=55.0.0", "settings-hash": "0", "normalizer": "2"}


def text(header: dict[str, str] | None = None, **sections: str | None) -> str:
    """A snapshot of view ``v``: ``SECTIONS`` with ``sections`` replaced (``None`` leaves
    a section out; keyword names use ``_`` for the space)."""
    body = {**SECTIONS, **{k.replace("_", " "): v for k, v in sections.items()}}
    lines = [FORMAT_LINE, "# view: v"] + [f"# {k}: {v}" for k, v in (header or HEADER).items()]
    for name, value in body.items():
        if value is not None:
            lines += ["", f"== {name}", value]
    return "\n".join(lines) + "\n"


def test_the_raw_diff_of_a_section_is_the_exact_unified_diff_with_its_labels() -> None:
    found = classify(text(), text(P1_optimized="TableScan: t projection=[a]"), name="v")
    assert found.classes == (S.OPTIMIZER,)
    assert found.raw_diffs == {
        "P1 optimized": "--- snapshot: v P1 optimized\n+++ current: v P1 optimized\n"
        "@@ -1 +1 @@\n-TableScan: t projection=[a, b]\n+TableScan: t projection=[a]"
    }
    assert found.diffs["P1 optimized"] == (
        "--- snapshot: v P1 optimized\n"
        "+++ current: v P1 optimized (operators, indentation aside)\n"
        "@@ operator 1 @@\n-TableScan: t projection=[a, b]\n+TableScan: t projection=[a]"
    )


def test_without_a_name_the_labels_are_the_section_alone() -> None:
    found = classify(text(), text(P2_physical="DataSourceExec: file_groups={2 groups}"))
    assert found.diffs["P2 physical"].splitlines()[:2] == [
        "--- snapshot: P2 physical",
        "+++ current: P2 physical (operators, indentation aside)",
    ]
    assert found.raw_diffs is not None
    assert found.raw_diffs["P2 physical"].startswith("--- snapshot: P2 physical\n")


def test_a_schema_diff_is_a_plain_unified_diff_not_a_tree_diff() -> None:
    found = classify(text(), text(schema="a: int64 not null"), name="v")
    assert found.diffs["schema"] == (
        "--- snapshot: v schema\n+++ current: v schema\n@@ -1,2 +1 @@\n a: int64 not null\n"
        "-b: utf8 not null"
    )


def test_a_plan_section_missing_from_the_stored_snapshot_diffs_against_nothing() -> None:
    found = classify(text(P2_physical=None), text(), name="v")
    assert found.damage  # a missing section is damage ...
    assert found.classes == (S.PHYSICAL,)  # ... and still classified
    assert found.diffs["P2 physical"].splitlines()[2:] == [
        "@@ operator 1 @@",
        "+DataSourceExec: file_groups={1 group}",
    ]
    assert found.raw_diffs is not None
    assert found.raw_diffs["P2 physical"].splitlines()[2:] == [
        "@@ -0,0 +1 @@",
        "+DataSourceExec: file_groups={1 group}",
    ]
    gone = classify(text(), text(P2_physical=None), name="v")
    assert gone.diffs["P2 physical"].splitlines()[3:] == ["-DataSourceExec: file_groups={1 group}"]
    assert gone.raw_diffs is not None
    assert gone.raw_diffs["P2 physical"].splitlines()[2:] == [
        "@@ -1 +0,0 @@",
        "-DataSourceExec: file_groups={1 group}",
    ]


def test_an_empty_section_is_the_same_as_a_missing_one() -> None:
    assert classify(text(signals=None), text(signals=""), name="v").diffs == {}
    assert classify(text(signals=""), text(signals=None), name="v").diffs == {}


def test_no_schema_section_on_either_side_is_no_schema_change() -> None:
    found = classify(text(schema=None), text(schema=None), name="v")
    assert (found.classes, found.schema_changes) == ((), ())


def test_a_section_only_the_new_snapshot_has_is_a_change() -> None:
    new = text() + "\n== extra\nsomething\n"
    found = classify(text(), new, name="v")
    assert found.diffs["extra"].endswith("@@ -0,0 +1 @@\n+something")
    assert found.classes == (S.COSMETIC,)


def test_a_schema_text_change_that_changes_no_column_is_no_class_at_all() -> None:
    """A changed schema section is never cosmetic, even when no column changed."""
    found = classify(text(), text(schema=SECTIONS["schema"] + "\n(no columns here)"), name="v")
    assert found.classes == ()
    assert "schema" in found.diffs


def test_schema_lines_without_a_column_are_skipped_not_the_end_of_the_schema() -> None:
    old = text(schema="(comment)\na: int64 not null\nb: utf8 not null")
    new = text(schema="(comment)\na: int64 not null\nb: utf8")
    assert classify(old, new).schema_changes == ("column 'b' became nullable",)


def test_a_column_type_containing_the_separator_is_split_at_the_first_one() -> None:
    old = text(schema="s: struct<x: int64> not null")
    new = text(schema="s: struct<x: int32> not null")
    assert classify(old, new).schema_changes == (
        "column 's' retyped struct<x: int64> -> struct<x: int32>",
    )


def test_every_removed_column_is_reported_not_only_the_first() -> None:
    old = text(schema="a: int64 not null\nb: utf8 not null\nc: utf8 not null")
    new = text(schema="c: utf8")
    assert classify(old, new).schema_changes == (
        "column 'a' removed",
        "column 'b' removed",
        "column 'c' became nullable",
    )


def test_the_header_diff_lists_every_changed_key_one_per_line() -> None:
    old = text(header={"engine": "datafusion=55.0.0", "settings-hash": "0"})
    new = text(header={"engine": "datafusion=55.1.0", "normalizer": "3"})
    found = classify(old, new, name="v")
    assert found.classes == (S.COSMETIC,)
    assert found.diffs == {
        "header": "engine: datafusion=55.0.0 -> datafusion=55.1.0\n"
        "normalizer: - -> 3\nsettings-hash: 0 -> -"
    }


# ----------------------------------------------------------------------- tree_diff()

TEN = [f"Op{i}: x" for i in range(10)]


def _indented(ops: list[str]) -> str:
    return "\n".join("  " * depth + op for depth, op in enumerate(ops))


def test_the_hunk_header_numbers_the_first_operator_shown_with_three_of_context() -> None:
    new = [*TEN[:7], "Filter: y", *TEN[7:]]
    diff = tree_diff(_indented(TEN), _indented(new), "P0 logical", "v")
    lines = diff.splitlines()
    assert lines[2] == "@@ operator 5 @@"
    assert [line.strip() for line in lines[3:]] == [
        *("Op4: x", "Op5: x", "Op6: x"),
        "+              Filter: y",
        *("Op7: x", "Op8: x", "Op9: x"),
    ]


def test_a_removed_operator_is_one_minus_line() -> None:
    diff = tree_diff(_indented(TEN), _indented(TEN[:1] + TEN[2:]), "P0 logical")
    changed = [line for line in diff.splitlines()[2:] if line[:1] in "+-"]
    assert changed == ["-  Op1: x"]


def test_the_text_fallback_keeps_the_name_in_its_labels() -> None:
    flat = "Union\n  TableScan: a\n  TableScan: b"
    nested = "Union\n  TableScan: a\n    TableScan: b"
    assert tree_diff(flat, nested, "P2 physical", "v").startswith(
        "--- snapshot: v P2 physical\n+++ current: v P2 physical\n"
    )


def test_long_plans_with_repeated_operators_are_diffed_without_junk_heuristics() -> None:
    """difflib's autojunk treats lines repeated in over 1% of a 200+ line text as junk;
    plans repeat operators, so the tree diff must not use it."""
    old = ["Projection: a"] * 300
    new = ["Projection: a"] * 150 + ["Filter: z"] + ["Projection: a"] * 150
    diff = tree_diff("\n".join(old), "\n".join(new), "P0 logical")
    changed = [line for line in diff.splitlines()[2:] if line[:1] in "+-"]
    assert changed == ["+Filter: z"]


def test_unified_is_exactly_difflibs_with_snapshot_and_current_labels() -> None:
    assert unified("a\nb", "a\nc", "schema", "v") == (
        "--- snapshot: v schema\n+++ current: v schema\n@@ -1,2 +1,2 @@\n a\n-b\n+c"
    )
    assert unified("a", "b", "schema").splitlines()[:2] == [
        "--- snapshot: schema",
        "+++ current: schema",
    ]
