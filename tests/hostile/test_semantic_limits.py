"""Corpus II, semantic-layer classes: what the corpus cases (tests/hostile/corpus.py) cannot
show on their own.

* deep CTE chains are analysed without recursion (no RecursionError at 3,000 CTEs, with
  the default recursion limit), and refused by a limit, not by an accident of the stack;
* the limits on inlined plans are exact: just under them compiles (and plans), just over
  them is refused before any engine work;
* a setting the engine refuses while building the session is a coded error naming the
  manifest field, even when it got past the load-time checks;
* a bounded recursive CTE plans and validates: its self-reference is not a dataset scan.
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import pytest
import sqlglot

from pytest_planguard.cli import main
from reference_impl.engine.runtime import runtime_profile_from_specs
from reference_impl.engine.session import new_session
from reference_impl.errors import ReferenceImplError
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.complexity import MAX_INLINED_DEPTH, MAX_INLINED_RELATIONS
from reference_impl.semantics.load import load_manifest
from reference_impl.semantics.model import PolicySpec, RuntimeSpec
from reference_impl.semantics.sql_analysis import expression_depth, scan_profile, tree_profile
from tests.hostile.corpus import CLEAN, T, cte_chain, view, view_chain, write_table
from tests.support.codes import CodeRecorder

TPCH_VIEWS = Path(__file__).resolve().parents[2] / "reference_impl" / "examples" / "tpch" / "views"


def _project(tmp_path: Path, manifest: str, *, table: bool = False) -> Path:
    (tmp_path / "manifest.toml").write_text(manifest, encoding="utf-8")
    if table:
        write_table(tmp_path / "t")
    return tmp_path / "manifest.toml"


def test_a_3000_cte_chain_is_analysed_without_recursion() -> None:
    tree = sqlglot.parse_one(cte_chain(3000))
    assert sys.getrecursionlimit() <= 1000 * 10  # the default (pytest may raise it a bit)
    counts, depth = scan_profile(tree)
    assert depth == 3000
    assert counts == {"": 3000}  # every CTE read once, no table


def test_scan_profile_keeps_the_multiplicity_of_shared_and_recursive_ctes() -> None:
    shared = "WITH c0 AS (SELECT a FROM t), c1 AS (SELECT a FROM c0 UNION ALL SELECT a FROM c0)"
    counts, depth = scan_profile(sqlglot.parse_one(shared + " SELECT a FROM c1 JOIN t ON true"))
    assert (dict(counts), depth) == ({"t": 3, "": 3}, 2)
    recursive = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r"
    counts, depth = scan_profile(sqlglot.parse_one(recursive))
    assert (dict(counts), depth) == ({"": 1, "r": 1}, 1)


# Shapes where the scopes of the scan profile differ: a CTE name taken again inside a
# subquery or another CTE's body (the first one found breadth-first is the one read),
# nested and recursive CTEs, a qualified table named like a CTE, statements inside queries.
PROFILE_SHAPES = [
    "WITH c0 AS (SELECT a FROM t), c1 AS (SELECT a FROM c0 UNION ALL SELECT a FROM c0) "
    "SELECT a FROM c1 JOIN t ON true",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
    "WITH a AS (SELECT 1 AS x) SELECT * FROM (WITH a AS (SELECT y FROM t) SELECT * FROM a) s "
    "JOIN a ON true",
    "SELECT * FROM (WITH a AS (SELECT y FROM t) SELECT * FROM a) s JOIN "
    "(WITH a AS (SELECT z FROM u JOIN u ON true) SELECT * FROM a, a) q ON true",
    "WITH o AS (WITH i AS (SELECT a FROM t) SELECT a FROM i, i), i AS (SELECT b FROM u) "
    "SELECT * FROM o, i, i",
    "WITH a AS (SELECT 1 AS x) SELECT * FROM s.a JOIN a ON true JOIN A ON true",
    'WITH "A" AS (SELECT 1 AS x) SELECT * FROM "A", a',
    "WITH d AS (SELECT * FROM t) SELECT * INTO n FROM d",
    "SELECT (SELECT max(a) FROM t WHERE t.b IN (SELECT b FROM u)) FROM v WHERE EXISTS "
    "(WITH w AS (SELECT 1) SELECT * FROM w)",
    "SELECT " + " + ".join(["a"] * 300) + " FROM t",
    cte_chain(60, "SELECT a FROM t"),
]


@pytest.mark.parametrize(
    "sql",
    [
        *PROFILE_SHAPES,
        *(path.read_text(encoding="utf-8") for path in sorted(TPCH_VIEWS.glob("*.sql"))),
    ],
)
def test_one_walk_profiles_a_tree_as_the_separate_walks_do(sql: str) -> None:
    """Semantic compile reads a view's expression depth, first statement node and scan
    profile in one walk (:func:`tree_profile`): the same answers as each on its own."""
    from reference_impl.semantics.sql_analysis import _STATEMENT_NODES

    tree = sqlglot.parse_one(sql)
    depth, statement, counts, cte_depth = tree_profile(tree, _STATEMENT_NODES)
    assert depth == expression_depth(tree)
    assert statement is next(
        (node for node in tree.walk() if isinstance(node, _STATEMENT_NODES)), None
    )
    assert (counts, cte_depth) == scan_profile(tree)


def test_just_under_the_inlining_limits_compiles(tmp_path: Path) -> None:
    # 398 chained views hold 79,799 relations; 399 (the corpus case) hold 80,199
    chain = compile_semantic_program(load_manifest(_project(tmp_path, T + view_chain(398))))
    assert len(chain.views) == 398
    assert MAX_INLINED_RELATIONS == 80_000
    deep = tmp_path / "deep"
    deep.mkdir()
    sql = cte_chain(MAX_INLINED_DEPTH, "SELECT a FROM t")
    program = compile_semantic_program(load_manifest(_project(deep, T + view(sql))))
    assert program.view_names() == ("v",)


@pytest.mark.produces_codes("MANIFEST_SQL_TOO_COMPLEX", "MANIFEST_LIMIT_EXCEEDED")
def test_just_over_the_inlining_limits_is_refused(tmp_path: Path, codes: CodeRecorder) -> None:
    sql = cte_chain(MAX_INLINED_DEPTH + 1, "SELECT a FROM t")
    with pytest.raises(ReferenceImplError) as deep:
        compile_semantic_program(load_manifest(_project(tmp_path, T + view(sql))))
    codes.expect(deep.value.code, "MANIFEST_SQL_TOO_COMPLEX")
    assert deep.value.field_path == "views.v.sql"
    wide = tmp_path / "wide"
    wide.mkdir()
    with pytest.raises(ReferenceImplError) as chain:
        compile_semantic_program(load_manifest(_project(wide, T + view_chain(399))))
    codes.expect(chain.value.code, "MANIFEST_LIMIT_EXCEEDED")
    assert chain.value.field_path == "views"
    assert "80199" in chain.value.message
    assert "v0398" in chain.value.message


def test_a_cte_chain_at_the_depth_limit_plans_and_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _project(
        tmp_path, T + CLEAN + view(cte_chain(MAX_INLINED_DEPTH, "SELECT a FROM t")), table=True
    )
    assert main(["validate", str(path)]) == 0, capsys.readouterr()
    assert "0 finding(s), 0 error(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (
            {"runtime_settings": {"datafusion.runtime.list_files_cache_ttl": "1m\n"}},
            "runtime.list_files_cache_ttl",
        ),
        (
            {"runtime_settings": {"datafusion.runtime.metadata_cache_limit": "1M' x"}},
            "runtime.metadata_cache_limit",
        ),
        (
            {"session_settings": {"datafusion.execution.batch_size": "-1"}},
            "runtime.batch_size",
        ),
    ],
    ids=["ttl", "size-with-a-quote", "session-setting"],
)
@pytest.mark.produces_codes("MANIFEST_INVALID_VALUE")
def test_a_setting_the_engine_refuses_is_a_coded_error_naming_the_field(
    settings: dict[str, dict[str, str]], field: str, codes: CodeRecorder
) -> None:
    """Past the load-time checks (a profile built by hand, or a check the engine is
    stricter than), the engine's refusal still names the manifest field."""
    profile = runtime_profile_from_specs(RuntimeSpec(), PolicySpec())
    changes = {key: {**getattr(profile, key), **values} for key, values in settings.items()}
    with pytest.raises(ReferenceImplError) as refused:
        new_session(msgspec.structs.replace(profile, **changes))
    codes.expect(refused.value.code, "MANIFEST_INVALID_VALUE")
    assert refused.value.field_path == field
    assert "engine refused" in refused.value.message


RECURSIVE = (
    T
    + CLEAN
    + view(
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
        "SELECT n FROM r"
    )
    + view(
        "WITH RECURSIVE r(n) AS (SELECT min(a) FROM t UNION ALL SELECT n + 1 FROM r "
        "WHERE n < 3) SELECT n, b FROM r, t",
        "w",
    )
)


def test_a_bounded_recursive_cte_plans_and_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _project(tmp_path, RECURSIVE, table=True)
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    assert "SCAN_DATASET_NOT_IN_MANIFEST" not in out
    assert "0 finding(s), 0 error(s)" in out
    assert main(["compile", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  v <- (nothing)" in out
    assert "  w <- t" in out


def test_the_plugin_writers_quote_a_name_with_a_trailing_newline() -> None:
    """The Hypothesis manifest writer and SQL generator match names in full too: a key
    ``"a\\n"`` written bare would make an unparsable manifest instead of the hostile one."""
    import tomllib

    from pytest_planguard.strategies._internal.serialization import _toml_dumps
    from pytest_planguard.strategies._internal.sqlgen import SAFE_PREFIXES, is_safe_name

    document = {"views": {"a\n": {"sql": "SELECT 1"}}}
    assert tomllib.loads(_toml_dumps(document)) == document
    assert is_safe_name(f"{SAFE_PREFIXES[0]}_1")
    assert not is_safe_name(f"{SAFE_PREFIXES[0]}_1\n")
