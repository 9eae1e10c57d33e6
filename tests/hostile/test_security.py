"""The security rules (README, "Security rules"), each enforced and each with a twin:

1. only query statements reach the engine, even past semantic compile;
2. locations stay inside the manifest's directory unless explicitly allowed;
3. UDF providers (and the bootstrap hook) are imported only from trusted places;
4. compile and validate execute nothing but planning.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Imported at module import, never inside a test: pytester restores sys.modules after each
# test, and deltalake's native module panics when it is initialized twice.
import deltalake
import msgspec
import pyarrow as pa
import pytest

from pytest_planguard.cli import main
from reference_impl.engine.runtime import build_runtime_profile
from reference_impl.engine.session import build_semantic_execution_context, query_only
from reference_impl.errors import ReferenceImplError
from reference_impl.pipeline import run_pipeline
from reference_impl.relspec.authority import build_execution_authority
from reference_impl.relspec.execution_plan import compile_execution_plan
from reference_impl.relspec.policy_validation import validate_policy_bundle
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
from tests.support.codes import CodeRecorder

CLEAN = (
    "[policy]\nsmall_input_rows = 0\n"
    "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n"
)


def project(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "t").exists():
        deltalake.write_deltalake(str(root / "t"), pa.table({"a": [1, 2, 3]}))
    path = root / "manifest.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


TABLE = '[datasets.t]\nformat = "delta"\nlocation = "t"\n'

# -- 1. only queries reach the engine --------------------------------------------------------

STATEMENTS = {
    "create-table-as": "CREATE TABLE evil AS SELECT 1 AS a",
    "select-into": "SELECT 1 AS a INTO evil",
    "create-view": "CREATE VIEW evil AS SELECT 1 AS a",
    "create-external-table": "CREATE EXTERNAL TABLE evil STORED AS CSV LOCATION '{root}'",
    "copy-to": "COPY (SELECT 1 AS a) TO '{root}/copied.csv'",
    "insert": "INSERT INTO t VALUES (4)",
    "drop": "DROP TABLE t",
    "set": "SET datafusion.execution.target_partitions = 1",
}


@pytest.mark.produces_codes("VIEW_PLANNING_FAILED")
@pytest.mark.parametrize("statement", list(STATEMENTS))
def test_the_engine_refuses_statements_that_slipped_past_semantic_compile(
    tmp_path: Path, statement: str, codes: CodeRecorder
) -> None:
    """Semantic compile refuses these (the corpus); this forges a compiled program that
    holds one anyway and checks that DataFusion, under ``query_only()``, refuses it too:
    no table created or dropped, no file written, no setting changed."""
    path = project(tmp_path, TABLE + CLEAN + '[views.v]\nsql = "SELECT a FROM t"\n')
    program = compile_semantic_program(load_manifest(path))
    sql = STATEMENTS[statement].format(root=tmp_path)
    (view,) = program.views
    forged = msgspec.structs.replace(program, views=(msgspec.structs.replace(view, sql=sql),))
    profile = build_runtime_profile(forged)
    semantic = build_semantic_execution_context(forged, profile)

    failure = semantic.view_failures["v"]
    assert failure.kind == "planning_error"
    assert "not supported" in failure.message, failure.message
    ctx = semantic.session
    assert not ctx.table_exist("evil")
    assert ctx.table_exist("t")
    assert not (tmp_path / "copied.csv").exists()
    settings = ctx.sql(
        "SELECT value FROM information_schema.df_settings "
        "WHERE name = 'datafusion.execution.target_partitions'"
    ).to_pydict()
    assert settings["value"] == ["4"]
    assert sorted(
        deltalake.DeltaTable(str(tmp_path / "t")).to_pyarrow_table()["a"].to_pylist()
    ) == [
        1,
        2,
        3,
    ]
    plan = compile_execution_plan(build_execution_authority(semantic))
    result = validate_policy_bundle(plan, runtime_profile=profile, udf_snapshot={})
    codes.expect_all((issue.code for issue in result.issues), ["VIEW_PLANNING_FAILED"])


def test_query_only_options_plan_every_kind_of_query() -> None:
    """Twin: queries of every shape pass the engine-level guard."""
    from datafusion import SessionContext

    ctx = SessionContext()
    for sql in (
        "SELECT 1 AS a",
        "VALUES (1), (2)",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "SELECT 1 AS a UNION ALL SELECT 2",
        "SELECT * FROM (SELECT 1 AS a) s WHERE a > 0 ORDER BY a LIMIT 1",
    ):
        assert ctx.sql(sql, options=query_only()).to_pydict()


# -- 2. locations are confined to the manifest's directory ----------------------------------


def outside_table(tmp_path: Path) -> Path:
    location = tmp_path / "outside" / "t"
    deltalake.write_deltalake(str(location), pa.table({"a": [7, 8]}))
    return location


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_allow_external_locations_is_the_explicit_way_out(tmp_path: Path, how: str) -> None:
    """Twin of the corpus' escaping locations: the same manifests plan once the policy
    allows external locations, and only then."""
    outside = outside_table(tmp_path)
    root = tmp_path / "project"
    root.mkdir()
    location = {"dotdot": "../outside/t", "absolute": str(outside), "symlink": "link"}[how]
    if how == "symlink":
        (root / "link").symlink_to(outside)
    text = (
        f'[datasets.t]\nformat = "delta"\nlocation = "{location}"\n'
        '[views.v]\nsql = "SELECT a FROM t"\n'
    )
    path = root / "manifest.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReferenceImplError) as info:
        load_manifest(path)
    assert info.value.code == "MANIFEST_LOCATION_ESCAPES_ROOT"
    path.write_text(text + "[policy]\nallow_external_locations = true\n", encoding="utf-8")
    run = run_pipeline(path, execute=False, mode="warn")
    assert run.authority.semantic_context.datasets["t"].location == str(outside)
    assert [node.status for node in run.plan.view_nodes] == ["planned"]


def test_a_symlink_that_stays_inside_the_root_is_fine(tmp_path: Path) -> None:
    root = tmp_path / "project"
    path = project(root, TABLE.replace('"t"', '"alias"') + '[views.v]\nsql = "SELECT a FROM t"\n')
    (root / "alias").symlink_to(root / "t")
    run = run_pipeline(path, execute=False, mode="warn")
    assert [node.status for node in run.plan.view_nodes] == ["planned"]


# -- 3. UDF providers come from trusted places only -----------------------------------------

SPY_MODULE = """
from pathlib import Path

import pyarrow as pa
from datafusion import udf

Path({marker!r}).write_text("imported")
spy = udf(lambda values: values, [pa.int64()], pa.int64(), "immutable", name="spy")
"""


@pytest.mark.produces_codes("UDF_PROVIDER_UNTRUSTED")
def test_an_untrusted_provider_is_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codes: CodeRecorder
) -> None:
    """A provider module importable from sys.path but neither next to the manifest nor
    trusted by the caller is refused before import: its top-level code never runs."""
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "imported.txt"
    module = "planguard_spy_provider"
    (site / f"{module}.py").write_text(SPY_MODULE.format(marker=str(marker)), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, module, raising=False)
    text = TABLE + CLEAN + f'[udfs.spy]\nprovider = "{module}:spy"\n'
    path = project(tmp_path / "project", text)
    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(path, execute=False)
    codes.expect(info.value.code, "UDF_PROVIDER_UNTRUSTED", info.value.render())
    assert info.value.field_path == "udfs.spy.provider"
    assert not marker.exists()
    assert module not in sys.modules

    # twin: trusted by the caller, the same provider is imported and registered
    run = run_pipeline(path, execute=False, trusted_modules=(module,))
    assert marker.read_text() == "imported"
    assert run.authority.semantic_context.registered_udfs == ("spy",)


# -- 4. compile and validate execute nothing but planning -----------------------------------

RECORDING_UDFS = """
from pathlib import Path

import pyarrow as pa
from datafusion import udf

CALLS = Path(__file__).with_name("calls.txt")


def _record(values):
    with CALLS.open("a") as handle:
        handle.write(f"{len(values)}\\n")
    return values


record = udf(_record, [pa.int64()], pa.int64(), "volatile", name="record")
"""


def test_validate_plans_but_executes_no_view(tmp_path: Path) -> None:
    """A UDF that records every call: validate (and compile --plan) never call it; run does
    (the twin)."""
    root = tmp_path / "project"
    text = (
        TABLE
        + CLEAN
        + '[views.v]\nsql = "SELECT record(a) AS a FROM t"\nudfs = ["record"]\n'
        + '[udfs.record]\nprovider = "recording_udfs:record"\n'
        + '[outputs.o]\nview = "v"\nlocation = "out/o"\n'
    )
    path = project(root, text)
    (root / "recording_udfs.py").write_text(RECORDING_UDFS, encoding="utf-8")
    assert main(["validate", str(path)]) == 0
    assert main(["compile", "--plan", str(path)]) == 0
    assert not (root / "calls.txt").exists()
    assert not (root / "out").exists()
    assert main(["run", str(path)]) == 0
    assert (root / "calls.txt").read_text().strip()
    assert deltalake.DeltaTable(str(root / "out" / "o")).version() == 0


def test_compile_imports_no_engine_and_no_provider(tmp_path: Path) -> None:
    """``planguard compile`` (semantic compile) is engine-free: neither DataFusion nor
    deltalake nor a UDF provider module is imported."""
    root = tmp_path / "project"
    text = TABLE + '[udfs.record]\nprovider = "recording_udfs:record"\n'
    path = project(root, text)
    (root / "recording_udfs.py").write_text("raise SystemExit('imported at compile')\n")
    script = (
        "import sys\n"
        "from pytest_planguard.cli import main\n"
        f"assert main(['compile', {str(path)!r}]) == 0\n"
        "loaded = {'datafusion', 'deltalake', 'recording_udfs'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
