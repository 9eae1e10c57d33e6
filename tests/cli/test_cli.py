"""The ``planguard`` command line, run as a real subprocess: exit codes (0 clean,
1 findings, 2 bad input or usage), ``error[CODE] file: field.path: message`` on stderr and
never a traceback."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import deltalake
import pytest

from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
from tests.support.cli import run_planguard

WriteManifest = Callable[..., Path]
DeltaTableFactory = Callable[..., Path]

EXAMPLES = Path(__file__).resolve().parents[2] / "reference_impl" / "examples"
ERROR_LINE = re.compile(r"^error\[(?P<code>[A-Z_]+)\] (?P<rest>.+)$", re.MULTILINE)


def planguard(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = run_planguard(*args, cwd=cwd)
    for stream in (done.stdout, done.stderr):
        assert "Traceback" not in stream, stream
    return done


def error_code(done: subprocess.CompletedProcess[str]) -> str:
    match = ERROR_LINE.search(done.stderr)
    assert match is not None, done.stderr
    return match["code"]


@pytest.fixture(scope="module")
def tpch_plan_json(tpch_module_manifest: Path) -> dict[str, Any]:
    done = planguard("compile", tpch_module_manifest, "--plan", "--json")
    assert done.returncode == 0, done.stderr
    payload: dict[str, Any] = json.loads(done.stdout)
    return payload


@pytest.fixture
def dv_manifest(tmp_path: Path) -> Path:
    target = tmp_path / "dv" / "manifest.toml"
    target.parent.mkdir()
    shutil.copy2(EXAMPLES / "dv_incompatible" / "manifest.toml", target)
    return target


# -- schema ---------------------------------------------------------------------------------


def test_schema_prints_a_json_schema_of_the_manifest_format() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    done = planguard("schema")
    assert done.returncode == 0
    assert done.stderr == ""
    schema = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    example = tomllib.loads((EXAMPLES / "tpch" / "manifest.toml").read_text(encoding="utf-8"))
    assert list(validator.iter_errors(example)) == []
    typo = {**example, "runtime": {**example["runtime"], "target_partition": 4}}
    assert list(validator.iter_errors(typo)), "unknown keys are errors in the schema too"


# -- compile -------------------------------------------------------------------------------


def test_compile_json_lists_views_in_topological_order(tpch_module_manifest: Path) -> None:
    done = planguard("compile", tpch_module_manifest, "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    names = [view["name"] for view in payload["views"]]
    assert len(names) >= 22
    seen: set[str] = set()
    for view in payload["views"]:
        assert set(view["depends_on"]) <= seen | {d["name"] for d in payload["datasets"]}
        seen.add(view["name"])
    assert {d["name"] for d in payload["datasets"]} == {
        "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
    }  # fmt: skip
    expected = compile_semantic_program(load_manifest(tpch_module_manifest)).fingerprint
    assert payload["fingerprint"] == expected
    assert "execution_plan" not in payload


def test_compile_text_summarizes_the_program(tpch_module_manifest: Path) -> None:
    done = planguard("compile", tpch_module_manifest)
    assert done.returncode == 0, done.stderr
    assert "26 views, 8 datasets, fingerprint" in done.stdout
    assert "  q03 <- customer, lineitem, orders" in done.stdout


def test_compile_plan_json_has_view_nodes_and_compatible_scan_units(
    tpch_plan_json: dict[str, Any],
) -> None:
    plan = tpch_plan_json["execution_plan"]
    assert len(plan["view_nodes"]) >= 22
    assert len(plan["scan_units"]) >= 8
    assert {unit["dataset_name"] for unit in plan["scan_units"]} == {
        "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
    }  # fmt: skip
    for unit in plan["scan_units"]:
        assert unit["protocol_compatibility"]["compatible"] is True, unit["key"]
    assert not {"tasks", "scan_policies"} & set(plan)
    udfs = tpch_plan_json["capabilities"]["udf_snapshot"]
    assert sorted(udfs) == ["net_price", "price_band"]
    assert udfs["net_price"]["parameter_types"] == ["Float64", "Float64"]


BAD_MANIFESTS: dict[str, tuple[str, str, str]] = {
    "unknown key": ("[runtime]\ntarget_partition = 4\n", "MANIFEST_UNKNOWN_KEY", "runtime"),
    "cycle": (
        '[views.a]\nsql = "SELECT * FROM b"\n[views.b]\nsql = "SELECT * FROM a"\n',
        "MANIFEST_CYCLE",
        "views.a",
    ),
    "unknown reference": (
        '[views.a]\nsql = "SELECT * FROM nowhere"\n',
        "MANIFEST_UNKNOWN_REFERENCE",
        "views.a.sql",
    ),
    "not a query": (
        "[views.a]\nsql = \"COPY (SELECT 1) TO '/tmp/x.csv'\"\n",
        "MANIFEST_NOT_A_QUERY",
        "views.a.sql",
    ),
    "syntax": ('[views.a]\nsql = "SELECT (1"\n', "MANIFEST_SQL_SYNTAX", "views.a.sql"),
    "duplicate name": (
        '[datasets.a]\nformat = "delta"\nlocation = "a"\n[views.a]\nsql = "SELECT 1"\n',
        "MANIFEST_DUPLICATE_NAME",
        "views.a",
    ),
    "parse error": ("[views.a\n", "MANIFEST_PARSE_ERROR", ""),
}


def assert_coded_failure(
    done: subprocess.CompletedProcess[str], path: Path, code: str, field: str
) -> None:
    assert done.returncode == 2
    assert error_code(done) == code
    match = ERROR_LINE.search(done.stderr)
    assert match is not None
    assert match["rest"].startswith((f"{path}: ", f"{path.resolve()}: "))
    if field:
        assert f": {field}" in match["rest"]
    assert done.stdout == ""


@pytest.mark.parametrize(("text", "code", "field"), BAD_MANIFESTS.values(), ids=BAD_MANIFESTS)
def test_compile_bad_input_exits_2_with_a_coded_error_line(
    write_manifest: WriteManifest, text: str, code: str, field: str
) -> None:
    path = write_manifest(text)
    assert_coded_failure(planguard("compile", path), path, code, field)


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", ["unknown key", "cycle"])
def test_validate_and_run_bad_input_exit_2_with_a_coded_error_line(
    write_manifest: WriteManifest, command: str, case: str
) -> None:
    text, code, field = BAD_MANIFESTS[case]
    path = write_manifest(text)
    assert_coded_failure(planguard(command, path), path, code, field)


def test_a_view_deep_enough_to_crash_the_engine_is_refused_not_run(
    write_manifest: WriteManifest,
) -> None:
    """DataFusion's SQL parser dies with SIGSEGV on a 10 000-term sum; validate must
    refuse it in semantic compile (exit 2, a code) instead of handing it to the engine."""
    sql = "SELECT " + " + ".join(["1"] * 12_000) + " AS x"
    path = write_manifest("[views.v]\nsql = " + json.dumps(sql) + "\n")
    done = planguard("validate", path)
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])
    assert error_code(done) == "MANIFEST_SQL_TOO_COMPLEX"


def test_compile_json_reports_bad_input_as_json_too(write_manifest: WriteManifest) -> None:
    path = write_manifest('[views.a]\nsql = "DROP TABLE x"\n')
    done = planguard("compile", path, "--json")
    assert done.returncode == 2
    assert error_code(done) == "MANIFEST_NOT_A_QUERY"
    payload = json.loads(done.stdout)
    assert payload["ok"] is False
    assert payload["error"]["code"] == "MANIFEST_NOT_A_QUERY"
    assert payload["error"]["field_path"] == "views.a.sql"


def test_a_missing_manifest_exits_2(tmp_path: Path) -> None:
    done = planguard("validate", tmp_path / "nope.toml")
    assert done.returncode == 2
    assert error_code(done) == "MANIFEST_NOT_FOUND"


@pytest.mark.parametrize(
    "args",
    [(), ("frobnicate",), ("compile",), ("validate", "x.toml", "--mode", "strict")],
    ids=["no-command", "unknown-command", "missing-manifest-arg", "bad-mode"],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    done = planguard(*args)
    assert done.returncode == 2
    assert error_code(done) == "USAGE"


# -- validate ------------------------------------------------------------------------------


def test_validate_the_tpch_example_exits_0(tpch_module_manifest: Path) -> None:
    done = planguard("validate", tpch_module_manifest)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 error(s) (mode error)" in done.stdout


def test_validate_the_dv_example_exits_1_with_the_incompatible_code(dv_manifest: Path) -> None:
    done = planguard("validate", dv_manifest)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error[DELTA_PROTOCOL_INCOMPATIBLE] dataset events: " in done.stdout
    assert "deletionVectors" in done.stdout


def test_validate_json_carries_a_code_on_every_issue(dv_manifest: Path) -> None:
    done = planguard("validate", dv_manifest, "--json")
    assert done.returncode == 1
    payload = json.loads(done.stdout)
    assert payload["ok"] is False
    issues = payload["validation"]["issues"]
    assert [issue["code"] for issue in issues] == ["DELTA_PROTOCOL_INCOMPATIBLE"]
    assert payload["validation"]["codes"] == ["DELTA_PROTOCOL_INCOMPATIBLE"]


def test_validate_warn_mode_reports_but_exits_0(dv_manifest: Path) -> None:
    done = planguard("validate", dv_manifest, "--mode", "warn")
    assert done.returncode == 0
    assert "warning[DELTA_PROTOCOL_INCOMPATIBLE]" in done.stdout


def test_validate_an_unreadable_dataset_exits_2_with_its_code(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    (tmp_path / "p.parquet").write_bytes(b"not parquet at all")
    path = write_manifest(
        '[datasets.p]\nformat = "parquet"\nlocation = "p.parquet"\n'
        '[views.v]\nsql = "SELECT * FROM p"\n'
    )
    done = planguard("validate", path)
    assert done.returncode == 2
    assert error_code(done) == "DATASET_UNREADABLE"
    assert "INTERNAL_ERROR" not in done.stderr


# -- run -------------------------------------------------------------------------------------


def test_run_writes_the_tpch_output_table(tpch_manifest: Path) -> None:
    done = planguard("run", tpch_manifest)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tpch_manifest.parent / "out" / "net_value_by_band"
    assert f"wrote net_value_by_band (3 rows, overwrite) -> {out} version 0" in done.stdout
    table = deltalake.DeltaTable(str(out))
    assert table.version() == 0
    assert sorted(table.to_pyarrow_table().column("band").to_pylist()) == [
        "large",
        "medium",
        "small",
    ]


def test_run_the_dv_example_exits_1_and_writes_nothing(dv_manifest: Path) -> None:
    done = planguard("run", dv_manifest, "--json")
    assert done.returncode == 1
    payload = json.loads(done.stdout)
    assert payload["ok"] is False
    assert "execution" not in payload
    assert not (dv_manifest.parent / "out").exists()


def test_run_the_dv_example_in_warn_mode_writes_its_output(dv_manifest: Path) -> None:
    done = planguard("run", dv_manifest, "--mode", "warn", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    (output,) = payload["execution"]["outputs"]
    assert (output["name"], output["rows"], output["delta_version"]) == ("amount_by_kind", 3, 0)


FAILING_UDF = """
import pyarrow as pa
from datafusion import udf

def _explode(values: pa.Array) -> pa.Array:
    raise RuntimeError("injected failure")

explode = udf(_explode, [pa.int64()], pa.int64(), "volatile", name="explode")
"""


def test_a_failing_run_exits_2_without_a_traceback(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("t", {"a": [1, 2, 3]})
    path = write_manifest(
        """
        [datasets.t]
        format = "delta"
        location = "t"
        [views.v]
        sql = "SELECT explode(a) AS a FROM t"
        udfs = ["explode"]
        [outputs.o]
        view = "v"
        location = "out/o"
        [udfs.explode]
        provider = "cli_failing_udfs:explode"
        [policy]
        mode = "warn"
        """
    )
    (path.parent / "cli_failing_udfs.py").write_text(textwrap.dedent(FAILING_UDF), "utf-8")
    done = planguard("run", path)  # asserts no "Traceback" anywhere
    assert done.returncode == 2
    # the view fails while outputs are collected, before any commit (preflight)
    assert error_code(done) == "EXECUTION_FAILED"
    assert f"{path}: views.v: 'v': " in done.stderr
    assert "injected failure" in done.stderr
    assert not (path.parent / "out").exists()


def test_run_append_twice_reports_the_new_version(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("t", {"a": [1, 2, 3]})
    path = write_manifest(
        """
        [datasets.t]
        format = "delta"
        location = "t"
        [views.v]
        sql = "SELECT a FROM t"
        [outputs.o]
        view = "v"
        location = "out/o"
        mode = "append"
        [policy]
        mode = "warn"
        """
    )
    assert planguard("run", path).returncode == 0
    done = planguard("run", path)
    assert done.returncode == 0
    assert "wrote o (6 rows, append)" in done.stdout
    assert deltalake.DeltaTable(str(path.parent / "out" / "o")).version() == 1
