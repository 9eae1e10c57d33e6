"""``normalize_plan_text`` and ``settings_hash`` rule by rule, on exact texts (issue 20).

tests/plugin/test_normalization.py checks the rules end to end on real plans; these pin
each rule's edges, where a mutant of the normalizer lived: boundaries of path matches,
nested brackets, unterminated calls, ellipses in file groups, alias numbering per prefix,
feature-list spelling, and which settings the hash leaves out."""

from __future__ import annotations

import hashlib
import json

import pytest

from pytest_planguard.gate.normalize import normalize_plan_text, settings_hash


def norm(text: str, **kwargs: dict[str, str]) -> str:
    return normalize_plan_text(text, **kwargs)


# ------------------------------------------------------------------------------ paths


def test_a_location_becomes_its_dataset_token_with_or_without_the_leading_slash() -> None:
    locations = {"events": "/data/lake/events/"}
    assert norm("scan data/lake/events/part-0.parquet", locations=locations) == (
        "scan $events/part-0.parquet"
    )
    assert norm("scan /data/lake/events", locations=locations) == "scan $events"


def test_the_longest_path_wins_and_roots_get_their_token() -> None:
    locations = {"events": "/m/data/events"}
    roots = {"MANIFEST": "/m/", "ROOT": "/"}
    text = "a=m/data/events/x b=m/other c=m"
    assert (
        norm(text, locations=locations, roots=roots) == "a=$events/x b=$MANIFEST/other c=$MANIFEST"
    )


def test_only_whole_path_components_are_replaced() -> None:
    locations = {"d": "/x/data"}
    assert norm("x/metadata x/data2 x/data.old x/data-1 ax/data x/data", locations=locations) == (
        "x/metadata x/data2 x/data.old x/data-1 ax/data $d"
    )
    assert norm("$x/data and .x/data and -x/data", locations=locations) == (
        "$x/data and .x/data and -x/data"
    )


def test_a_token_with_a_backslash_is_inserted_literally() -> None:
    assert norm("p x/y q", locations={"a\\1": "/x/y"}) == "p $a\\1 q"


def test_a_path_that_does_not_occur_changes_nothing() -> None:
    assert norm("scan a/b", locations={"z": "/c/d"}, roots={"ROOT": ""}) == "scan a/b"


# ---------------------------------------------------------------------- file groups


def test_file_groups_become_their_sorted_directories() -> None:
    text = (
        "DataSourceExec: file_groups={3 groups: [[b/x/2.parquet:0..10, a/1.parquet], "
        "[$t/p=1/3.parquet, $t/p=2/4.parquet], [plain.parquet, ...]]}, projection=[a]"
    )
    assert norm(text) == "DataSourceExec: files=[$t, a, b/x, plain.parquet], projection=[a]"


def test_two_file_group_lists_on_one_line_are_both_normalized() -> None:
    text = "A file_groups={1 group: [[d/1.parquet]]} B file_groups={1 group: [[e/2.parquet]]} C"
    assert norm(text) == "A files=[d] B files=[e] C"


def test_an_unterminated_file_group_list_is_left_as_it_is() -> None:
    assert (
        norm("X file_groups={1 group: [[d/1.parquet]]") == "X file_groups={1 group: [[d/1.parquet]]"
    )


# ---------------------------------------------------------------- hash partitioning


def test_hash_partitioning_keeps_the_expressions_and_hides_the_count() -> None:
    text = "RepartitionExec: partitioning=Hash([f(a@0, [1, 2]), b@1], 16), input_partitions=4"
    assert norm(text) == (
        "RepartitionExec: partitioning=Hash([f(a@0, [1, 2]), b@1], <N>), input_partitions=<N>"
    )


def test_every_hash_partitioning_on_a_line_is_normalized() -> None:
    text = "Hash([a@0], 8) then Hash([b@1], 12) end"
    assert norm(text) == "Hash([a@0], <N>) then Hash([b@1], <N>) end"


def test_an_unterminated_hash_call_is_left_as_it_is() -> None:
    assert norm("x Hash([a@0], 8") == "x Hash([a@0], 8"
    assert norm("x Hash([a@0, 8)") == "x Hash([a@0, 8)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RoundRobinBatch(12)", "RoundRobinBatch(<N>)"),
        ("input_partitions=3", "input_partitions=<N>"),
        ("partition_count=7", "partition_count=<N>"),
    ],
)
def test_partition_counts_are_hidden(text: str, expected: str) -> None:
    assert norm(text) == expected


# ---------------------------------------------------------------- uuids and aliases


def test_uuids_in_any_case_become_a_placeholder() -> None:
    text = "part-00000-0A1B2C3D-4e5f-6789-aBcD-0123456789ef-c000.parquet"
    assert norm(text) == "part-00000-<uuid>-c000.parquet"


def test_generated_aliases_are_renumbered_per_prefix_in_order_of_appearance() -> None:
    text = (
        "__common_expr_7 __correlated_sq_12 __common_expr_3 __common_expr_7 "
        "__scalar_sq_5 __correlated_sq_12 __correlated_sq_2"
    )
    assert norm(text) == (
        "__common_expr_1 __correlated_sq_1 __common_expr_2 __common_expr_1 "
        "__scalar_sq_1 __correlated_sq_1 __correlated_sq_2"
    )


# ------------------------------------------------------------------ delta features


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("readerFeatures: [b, a]", "readerFeatures: [a, b]"),
        ("writer_features=[z, , y]", "writer_features=[y, z]"),
        ("writerfeatures = [c,b ,a]", "writerfeatures = [a, b, c]"),
    ],
)
def test_feature_lists_are_sorted(text: str, expected: str) -> None:
    assert norm(text) == expected


def test_trailing_blanks_and_surrounding_blank_lines_go() -> None:
    assert norm("\n\nA   \n  B  \n\n") == "A\n  B"


# ---------------------------------------------------------------------- settings hash


def _expected(kept: list[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps(sorted(kept)).encode()).hexdigest()[:16]


SETTINGS = {
    "datafusion.execution.target_partitions": "8",
    "datafusion.execution.planning_concurrency": "8",
    "datafusion.runtime.temp_directory": "/tmp/x",
    "datafusion.optimizer.max_passes": "3",
    "datafusion.execution.batch_size": "8192",
}


def test_the_settings_hash_is_the_sha256_of_the_kept_settings() -> None:
    kept = [
        ("datafusion.execution.batch_size", "8192"),
        ("datafusion.optimizer.max_passes", "3"),
    ]
    assert settings_hash(SETTINGS) == _expected(kept)


def test_strict_keeps_target_partitions_only() -> None:
    kept = [
        ("datafusion.execution.batch_size", "8192"),
        ("datafusion.execution.target_partitions", "8"),
        ("datafusion.optimizer.max_passes", "3"),
    ]
    assert settings_hash(SETTINGS, strict=True) == _expected(kept)


def test_a_dataset_at_the_manifest_directory_keeps_the_dataset_token() -> None:
    """Equal paths: the dataset (listed first) wins, whatever the tokens' spelling."""
    assert norm("scan m/x", locations={"A": "/m"}, roots={"MANIFEST": "/m"}) == "scan $A/x"


def test_a_path_that_does_not_occur_does_not_stop_the_others() -> None:
    locations = {"long": "/not/here/at/all", "t": "/x"}
    assert norm("scan x/1", locations=locations) == "scan $t/1"


def test_only_the_leading_slash_is_stripped_from_a_path() -> None:
    assert norm("scan XY/t/1", locations={"t": "/XY/t"}) == "scan $t/1"


def test_the_first_line_keeps_its_indentation() -> None:
    assert norm("\n  A\n    B") == "  A\n    B"


def test_braces_and_brackets_before_a_list_do_not_count() -> None:
    text = "p={ file_groups={1 group: [[d/1.parquet]]} q=[ Hash([a@0], 8) r"
    assert norm(text) == "p={ files=[d] q=[ Hash([a@0], <N>) r"
