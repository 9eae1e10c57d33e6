"""Stage *semantic compile*: the view DAG, coded errors, the fingerprint, engine-freedom."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
from reference_impl.semantics.program import SEMANTIC_CONTRACT_VERSION, SemanticProgramManifest

WriteManifest = Callable[..., Path]

SEMANTICS = Path(__file__).resolve().parents[2] / "reference_impl" / "semantics"
ENGINE_MODULES = ("datafusion", "deltalake", "pyarrow", "reference_impl.engine")
ENGINE_MODULES += ("reference_impl.relspec", "reference_impl.execution", "reference_impl.pipeline")

DATASETS = """
[datasets.orders]
format = "delta"
location = "data/orders"

[datasets.lineitem]
format = "parquet"
location = "data/lineitem"
"""


def compile_text(write_manifest: WriteManifest, text: str) -> SemanticProgramManifest:
    return compile_semantic_program(load_manifest(write_manifest(text)))


def compile_error(write_manifest: WriteManifest, text: str) -> ReferenceImplError:
    path = write_manifest(text)
    model = load_manifest(path)
    with pytest.raises(ReferenceImplError) as info:
        compile_semantic_program(model)
    err = info.value
    assert err.file == model.path, "a compile error names the manifest file"
    return err


# -- the view DAG ------------------------------------------------------------------------


def test_views_are_ordered_topologically_with_ties_broken_by_name(
    write_manifest: WriteManifest,
) -> None:
    manifest = compile_text(
        write_manifest,
        DATASETS
        + """
        [views.z_report]
        sql = "SELECT * FROM b_enriched JOIN a_base USING (o_orderkey)"

        [views.b_enriched]
        sql = "SELECT o_orderkey, l_qty FROM a_base JOIN lineitem ON l_orderkey = o_orderkey"

        [views.a_base]
        sql = "SELECT o_orderkey FROM orders"

        [views.c_alone]
        sql = "SELECT 1 AS one"
        """,
    )
    assert manifest.view_names() == ("a_base", "b_enriched", "c_alone", "z_report")
    enriched = manifest.view("b_enriched")
    assert enriched.depends_on == ("a_base", "lineitem")
    assert enriched.view_dependencies == ("a_base",)
    assert enriched.dataset_dependencies == ("lineitem",)
    assert manifest.view("z_report").depends_on == ("a_base", "b_enriched")
    assert manifest.view("c_alone").depends_on == ()
    position = {name: i for i, name in enumerate(manifest.view_names())}
    for view in manifest.views:
        assert all(position[dep] < position[view.name] for dep in view.view_dependencies)


def test_references_ignore_ctes_and_fold_unquoted_names(write_manifest: WriteManifest) -> None:
    manifest = compile_text(
        write_manifest,
        DATASETS
        + """
        [views.v]
        sql = '''
        WITH recent AS (SELECT * FROM ORDERS)
        SELECT * FROM recent WHERE EXISTS (SELECT 1 FROM public.lineitem)
        '''
        """,
    )
    assert manifest.view("v").depends_on == ("lineitem", "orders")


def test_the_program_carries_bindings_outputs_udfs_and_versions(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest(
        DATASETS
        + """
        [views.v]
        sql = "SELECT o_orderkey FROM orders"
        udfs = ["g", "f", "g"]

        [outputs.o]
        view = "v"
        location = "out/o"
        mode = "append"

        [udfs.g]
        provider = "pkg.mod:g"

        [udfs.f]
        provider = "pkg.mod:f"
        """
    )
    manifest = compile_semantic_program(load_manifest(path))
    root = path.parent.resolve()
    bindings = manifest.dataset_bindings
    assert bindings.names() == ("lineitem", "orders")
    assert bindings.require_location("orders") == str(root / "data" / "orders")
    assert bindings.binding("lineitem").format == "parquet"
    assert bindings.binding("lineitem").declared_location == "data/lineitem"
    assert manifest.view("v").declared_udfs == ("f", "g")
    assert [(u.name, u.provider) for u in manifest.udfs] == [("f", "pkg.mod:f"), ("g", "pkg.mod:g")]
    (output,) = manifest.outputs
    assert (output.view, output.mode, output.location) == ("v", "append", str(root / "out/o"))
    assert manifest.semantic_contract_version == SEMANTIC_CONTRACT_VERSION
    assert manifest.manifest_version == 1
    assert manifest.source_path == str(path.resolve())


def test_compiling_twice_gives_equal_programs(write_manifest: WriteManifest) -> None:
    path = write_manifest(DATASETS + '[views.v]\nsql = "SELECT * FROM orders"\n')
    assert compile_semantic_program(load_manifest(path)) == compile_semantic_program(
        load_manifest(path)
    )


# -- coded errors ------------------------------------------------------------------------


def test_a_cycle_is_reported_with_the_cycle_itself(write_manifest: WriteManifest) -> None:
    err = compile_error(
        write_manifest,
        """
        [views.a]
        sql = "SELECT * FROM b"
        [views.b]
        sql = "SELECT * FROM c"
        [views.c]
        sql = "SELECT * FROM a"
        [views.d]
        sql = "SELECT * FROM a"
        """,
    )
    assert err.code == ErrorCode.MANIFEST_CYCLE
    assert "a -> b -> c -> a" in err.message
    assert err.subjects == ("a", "b", "c")
    assert err.field_path == "views.a"
    assert "error[MANIFEST_CYCLE]" in err.render()


def test_the_reported_cycle_does_not_depend_on_declaration_order(
    write_manifest: WriteManifest,
) -> None:
    forward = '[views.a]\nsql = "SELECT * FROM b"\n[views.b]\nsql = "SELECT * FROM a"\n'
    backward = '[views.b]\nsql = "SELECT * FROM a"\n[views.a]\nsql = "SELECT * FROM b"\n'
    first = compile_error(write_manifest, forward)
    second = compile_error(write_manifest, backward)
    assert first.message == second.message == "views form a cycle: a -> b -> a"


def test_a_view_reading_itself_is_a_cycle(write_manifest: WriteManifest) -> None:
    err = compile_error(write_manifest, '[views.a]\nsql = "SELECT * FROM a"\n')
    assert err.code == ErrorCode.MANIFEST_CYCLE
    assert "a -> a" in err.message


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM nope", "SELECT * FROM other.orders", "SELECT * FROM cat.public.orders"],
    ids=["undeclared", "schema-qualified", "catalog-qualified"],
)
def test_an_unknown_reference_is_reported(write_manifest: WriteManifest, sql: str) -> None:
    err = compile_error(write_manifest, DATASETS + f'[views.v]\nsql = "{sql}"\n')
    assert err.code == ErrorCode.MANIFEST_UNKNOWN_REFERENCE
    assert err.field_path == "views.v.sql"
    assert err.subjects[0] == "v"


def test_a_quoted_name_must_match_exactly(write_manifest: WriteManifest) -> None:
    err = compile_error(write_manifest, DATASETS + "[views.v]\nsql = 'SELECT * FROM \"Orders\"'\n")
    assert err.code == ErrorCode.MANIFEST_UNKNOWN_REFERENCE
    assert err.subjects == ("v", "Orders")


def test_a_view_and_a_dataset_sharing_a_name_is_a_duplicate(
    write_manifest: WriteManifest,
) -> None:
    err = compile_error(write_manifest, DATASETS + '[views.orders]\nsql = "SELECT 1"\n')
    assert err.code == ErrorCode.MANIFEST_DUPLICATE_NAME
    assert err.field_path == "views.orders"
    assert err.subjects == ("orders",)


NOT_A_QUERY = {
    "create table": "CREATE TABLE x (a INT)",
    "create view": "CREATE VIEW x AS SELECT 1",
    "create external table": "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/tmp/x'",
    "drop": "DROP TABLE orders",
    "insert": "INSERT INTO orders VALUES (1)",
    "insert from cte": "WITH c AS (SELECT 1) INSERT INTO orders SELECT * FROM c",
    "update": "UPDATE orders SET a = 1",
    "delete": "DELETE FROM orders",
    "copy": "COPY (SELECT 1) TO '/tmp/out.csv'",
    "set": "SET datafusion.execution.batch_size = 1",
    "explain": "EXPLAIN SELECT 1",
    "show": "SHOW TABLES",
    "select into (creates a table)": "SELECT * INTO copied FROM orders",
    "select into inside a union": "SELECT 1 AS x UNION ALL SELECT 2 INTO copied",
    "delete in a cte": "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
    "two statements": "SELECT 1; SELECT 2",
    "a query then DDL": "SELECT 1; DROP TABLE orders",
}


@pytest.mark.parametrize("sql", NOT_A_QUERY.values(), ids=NOT_A_QUERY)
def test_a_statement_that_is_not_one_query_is_refused(
    write_manifest: WriteManifest, sql: str
) -> None:
    text = DATASETS + "[views.v]\nsql = " + json.dumps(sql) + "\n"
    err = compile_error(write_manifest, text)
    assert err.code == ErrorCode.MANIFEST_NOT_A_QUERY, err.render()
    assert err.field_path == "views.v.sql"
    assert err.subjects == ("v",)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT o_orderkey FROM orders;",
        "SELECT o_orderkey FROM orders; -- trailing comment",
        "SELECT o_orderkey FROM orders; /* trailing block comment */",
        "SELECT o_orderkey FROM orders;;",
        "; SELECT o_orderkey FROM orders",
        "-- leading comment\nSELECT o_orderkey FROM orders;\n\n",
    ],
    ids=["semicolon", "comment", "block-comment", "two-semicolons", "leading", "surrounded"],
)
def test_one_query_with_stray_semicolons_and_comments_is_a_query(
    write_manifest: WriteManifest, sql: str
) -> None:
    """DataFusion runs each of these as the one query it holds; so must compile accept it."""
    manifest = compile_text(write_manifest, DATASETS + "[views.v]\nsql = " + json.dumps(sql))
    assert manifest.view("v").depends_on == ("orders",)


@pytest.mark.parametrize(
    "sql",
    ["SELECT FROM WHERE", "SELECT (1", "SELECT 'unterminated", "-- only a comment"],
    ids=["keywords", "unbalanced", "unterminated-string", "no-statement"],
)
def test_invalid_sql_is_a_syntax_error(write_manifest: WriteManifest, sql: str) -> None:
    err = compile_error(write_manifest, "[views.v]\nsql = " + json.dumps(sql) + "\n")
    assert err.code == ErrorCode.MANIFEST_SQL_SYNTAX
    assert err.field_path == "views.v.sql"


def test_deeply_nested_sql_is_too_complex(write_manifest: WriteManifest) -> None:
    sql = "SELECT " + "(" * 100 + "1" + ")" * 100
    err = compile_error(write_manifest, f'[views.v]\nsql = "{sql}"\n')
    assert err.code == ErrorCode.MANIFEST_SQL_TOO_COMPLEX


def _nested_case(depth: int) -> str:
    return "SELECT " + "CASE WHEN true THEN " * depth + "1" + " END" * depth + " AS x"


def test_case_expressions_nest_at_most_32_deep(
    write_manifest: WriteManifest,
) -> None:
    """CASE nests without parentheses; its bound is checked on the tokens, so it does not
    depend on how deep the parser (sqlglot in Python, or compiled) recurses."""
    limit = 32
    compile_text(write_manifest, DATASETS + f"[views.v]\nsql = {json.dumps(_nested_case(limit))}\n")
    err = compile_error(
        write_manifest, DATASETS + f"[views.v]\nsql = {json.dumps(_nested_case(limit + 1))}\n"
    )
    assert err.code == ErrorCode.MANIFEST_SQL_TOO_COMPLEX
    assert err.message == f"view 'v' nests CASE expressions {limit + 1} deep; the limit is {limit}"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + " + ".join(["1"] * 20_000) + " AS x",
        "SELECT o_orderkey FROM orders WHERE "
        + " OR ".join(f"o_orderkey = {i}" for i in range(3_000)),
        "SELECT " + "CASE WHEN true THEN " * 300 + "1" + " END" * 300 + " AS x",
    ],
    ids=["long-sum", "long-or-chain", "nested-case"],
)
def test_a_deep_expression_without_parentheses_is_too_complex(
    write_manifest: WriteManifest, sql: str
) -> None:
    """Each operator nests the tree one level deeper; DataFusion's parser overflows its
    stack (the process dies with SIGSEGV) on a 10 000-term sum."""
    err = compile_error(write_manifest, DATASETS + "[views.v]\nsql = " + json.dumps(sql))
    assert err.code == ErrorCode.MANIFEST_SQL_TOO_COMPLEX
    assert err.field_path == "views.v.sql"


def test_a_long_but_shallow_query_is_fine(write_manifest: WriteManifest) -> None:
    """Twin: wide is not deep; a 5 000-item IN list and a 500-term sum compile."""
    in_list = ", ".join(str(i) for i in range(5_000))
    text = (
        DATASETS
        + f'[views.wide]\nsql = "SELECT * FROM orders WHERE o_orderkey IN ({in_list})"\n'
        + '[views.sum]\nsql = "SELECT '
        + " + ".join(["1"] * 500)
        + ' AS x"\n'
    )
    manifest = compile_text(write_manifest, text)
    assert manifest.view_names() == ("sum", "wide")


# -- the fingerprint ---------------------------------------------------------------------

FINGERPRINTED = """
[project]
name = "fp"

[datasets.orders]
format = "delta"
location = "data/orders"

[datasets.lineitem]
location = "data/lineitem"
format = "parquet"

[views.base]
sql = "SELECT o_orderkey FROM orders"
udfs = ["f", "g"]

[views.top]
executor = "datafusion"
sql = "SELECT * FROM base JOIN lineitem ON l_orderkey = o_orderkey"

[outputs.o]
view = "top"
location = "out/o"

[udfs.f]
provider = "pkg.mod:f"

[udfs.g]
provider = "pkg.mod:g"

[runtime]
target_partitions = 2
retain_plans = ["P2", "P0"]

[policy]
mode = "warn"

[policy.delta_support]
max_reader_version = 3
max_writer_version = 7
reader_features = ["timestampNtz", "deletionVectors"]
writer_features = ["invariants", "appendOnly"]
"""

REORDERED = """
[policy.delta_support]
writer_features = ["appendOnly", "invariants", "appendOnly"]
reader_features = ["deletionVectors", "timestampNtz"]
max_writer_version = 7
max_reader_version = 3

[policy]
mode = "warn"

[udfs.g]
provider = "pkg.mod:g"

[udfs.f]
provider = "pkg.mod:f"

[runtime]
retain_plans = ["P0", "P2"]
target_partitions = 2

[views.top]
sql = "SELECT * FROM base JOIN lineitem ON l_orderkey = o_orderkey"
executor = "datafusion"

[views.base]
udfs = ["g", "f"]
sql = "SELECT o_orderkey FROM orders"

[outputs.o]
location = "out/o"
view = "top"

[datasets.lineitem]
format = "parquet"
location = "data/lineitem"

[datasets.orders]
location = "data/orders"
format = "delta"

[project]
name = "fp"
"""


def fingerprint(path: Path) -> str:
    return compile_semantic_program(load_manifest(path)).fingerprint


def test_fingerprint_ignores_the_order_of_tables_keys_and_list_items(
    write_manifest: WriteManifest,
) -> None:
    first = fingerprint(write_manifest(FINGERPRINTED, name="a/manifest.toml"))
    second = fingerprint(write_manifest(REORDERED, name="b/manifest.toml"))
    assert len(first) == 64
    assert first == second


def test_fingerprint_is_the_same_for_toml_and_json_of_the_same_structure(
    write_manifest: WriteManifest,
) -> None:
    toml_path = write_manifest(FINGERPRINTED, name="a/manifest.toml")
    raw = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    reversed_json = json.dumps(_reverse_keys(raw), indent=1)
    json_path = write_manifest(reversed_json, name="b/manifest.json")
    assert fingerprint(toml_path) == fingerprint(json_path)


def test_fingerprint_does_not_depend_on_where_the_manifest_lives(
    write_manifest: WriteManifest,
) -> None:
    first = fingerprint(write_manifest(FINGERPRINTED, name="a/manifest.toml"))
    second = fingerprint(write_manifest(FINGERPRINTED, name="x/y/z/manifest.toml"))
    assert first == second


def test_explicit_defaults_and_omitted_defaults_fingerprint_alike(
    write_manifest: WriteManifest,
) -> None:
    omitted = fingerprint(write_manifest(DATASETS, name="a/manifest.toml"))
    explicit = fingerprint(
        write_manifest(
            DATASETS + '[runtime]\ntarget_partitions = 4\n[policy]\nmode = "error"\n',
            name="b/manifest.toml",
        )
    )
    assert omitted == explicit


SEMANTIC_EDITS = {
    "view-sql": (
        'sql = "SELECT o_orderkey FROM orders"',
        'sql = "SELECT o_orderkey AS k FROM orders"',
    ),
    "dataset-location": ('location = "data/orders"', 'location = "data/orders2"'),
    "udfs": ('udfs = ["f", "g"]', 'udfs = ["f"]'),
}
RUNTIME_POLICY_EDITS = {
    "runtime": ("target_partitions = 2", "target_partitions = 3"),
    "policy-mode": ('mode = "warn"', 'mode = "error"'),
    "delta-support": ('"timestampNtz", "deletionVectors"', '"timestampNtz"'),
}


def both_fingerprints(path: Path) -> tuple[str, str]:
    program = compile_semantic_program(load_manifest(path))
    return program.fingerprint, program.runtime_policy_fingerprint


@pytest.mark.parametrize(("old", "new"), SEMANTIC_EDITS.values(), ids=list(SEMANTIC_EDITS))
def test_fingerprint_changes_when_a_semantic_declaration_changes(
    write_manifest: WriteManifest, old: str, new: str
) -> None:
    assert FINGERPRINTED.count(old) == 1
    base = both_fingerprints(write_manifest(FINGERPRINTED, name="a/manifest.toml"))
    changed = both_fingerprints(
        write_manifest(FINGERPRINTED.replace(old, new), name="b/manifest.toml")
    )
    assert base[0] != changed[0]
    assert base[1] == changed[1]  # the runtime/policy half does not see semantics


@pytest.mark.parametrize(
    ("old", "new"), RUNTIME_POLICY_EDITS.values(), ids=list(RUNTIME_POLICY_EDITS)
)
def test_a_runtime_or_policy_edit_moves_only_the_runtime_policy_fingerprint(
    write_manifest: WriteManifest, old: str, new: str
) -> None:
    """Twin of the semantic edits (issue 17.5): ``[runtime]`` and ``[policy]`` are not
    semantics; they move the runtime/policy fingerprint and leave the semantic one."""
    assert FINGERPRINTED.count(old) == 1
    base = both_fingerprints(write_manifest(FINGERPRINTED, name="a/manifest.toml"))
    changed = both_fingerprints(
        write_manifest(FINGERPRINTED.replace(old, new), name="b/manifest.toml")
    )
    assert base[0] == changed[0]
    assert base[1] != changed[1]


def _reverse_keys(value: object) -> object:
    if isinstance(value, dict):
        return {key: _reverse_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(item) for item in value]
    return value


# -- engine-free ---------------------------------------------------------------------------


def engine_imports(source: str) -> list[str]:
    """The engine modules a Python source imports (``import x`` and ``from x import y``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        else:
            continue
        found.extend(
            name
            for name in names
            if any(name == mod or name.startswith(mod + ".") for mod in ENGINE_MODULES)
        )
    return found


def test_semantics_modules_import_no_engine_module_statically() -> None:
    files = sorted(SEMANTICS.glob("*.py"))
    assert {"compile.py", "load.py", "model.py", "program.py"} <= {f.name for f in files}
    offenders = {
        file.name: engine_imports(file.read_text(encoding="utf-8"))
        for file in files
        if engine_imports(file.read_text(encoding="utf-8"))
    }
    assert offenders == {}


def test_the_static_scan_detects_engine_imports_even_lazy_ones() -> None:
    source = "def f():\n    import datafusion\n    from reference_impl.engine.session import x\n"
    assert engine_imports(source) == ["datafusion", "reference_impl.engine.session"]


def engine_modules_loaded_by(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the engine modules loaded afterwards."""
    probe = f"""
import sys
{code}
print(",".join(sorted(
    name for name in sys.modules
    if any(name == mod or name.startswith(mod + ".") for mod in {ENGINE_MODULES!r})
)))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [name for name in done.stdout.strip().split(",") if name]


def test_loading_and_compiling_loads_no_engine_module_at_runtime(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest(DATASETS + '[views.v]\nsql = "SELECT * FROM orders"\n')
    code = f"""
import reference_impl.semantics.model, reference_impl.semantics.program
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
manifest = compile_semantic_program(load_manifest({str(path)!r}))
assert manifest.view_names() == ("v",)
"""
    assert engine_modules_loaded_by(code) == []


def test_the_runtime_probe_detects_an_engine_import() -> None:
    """Twin of the test above: the same probe reports an engine module once one is loaded."""
    loaded = engine_modules_loaded_by("import reference_impl.engine.runtime")
    assert "reference_impl.engine.runtime" in loaded
