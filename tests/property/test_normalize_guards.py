"""The normalizer skips a substitution when a cheap test shows its pattern cannot match
(:mod:`pytest_planguard.gate.normalize`): skipping must never change a text, or every
snapshot's bytes would depend on the shortcut.  Each guarded step equals its bare
substitution on texts built from the parts the patterns look for."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from pytest_planguard.gate import normalize

PARTS = [
    "a", "Z", "0", "7", "12", "f", "E", "-", "_", "__", " ", "\n", "(", ")", ",", "=",
    "0123abcd", "89EF", "4567", "deadbeef0123", "-4567-", "-89ab-cdef-",
    "__common_expr_", "__scalar_sq_", "__correlated_sq_", "x__y_3", "_1", "__a_b_",
    "writer_features=[", "readerFeatures: [", "features = [", "b, a", "]",
    "123e4567-e89b-12d3-a456-426614174000", "col-", "Int64(-1)",
]  # fmt: skip

texts = st.lists(st.sampled_from(PARTS), max_size=40).map("".join)


def _bare_aliases(text: str) -> str:
    numbers: dict[tuple[str, str], int] = {}
    counts: dict[str, int] = {}

    def renumber(match: re.Match[str]) -> str:
        key = (match.group(1), match.group(2))
        if key not in numbers:
            counts[key[0]] = counts.get(key[0], 0) + 1
            numbers[key] = counts[key[0]]
        return f"{key[0]}{numbers[key]}"

    return normalize._GENERATED_ALIAS.sub(renumber, text)


@given(texts)
def test_a_guarded_substitution_equals_the_bare_one(text: str) -> None:
    assert normalize._uuids(text) == normalize._UUID.sub("<uuid>", text)
    assert normalize._features(text) == normalize._FEATURES.sub(normalize._sorted_features, text)
    assert normalize._renumber_aliases(text) == _bare_aliases(text)


def test_the_guards_let_what_they_guard_through() -> None:
    uuid = "part-123e4567-e89b-12d3-a456-426614174000.parquet"
    assert normalize._uuids(uuid) == "part-<uuid>.parquet"
    assert normalize._renumber_aliases("__common_expr_7 AS __common_expr_7, __scalar_sq_3") == (
        "__common_expr_1 AS __common_expr_1, __scalar_sq_1"
    )
    assert normalize._features("writer_features=[b, a]") == "writer_features=[a, b]"
