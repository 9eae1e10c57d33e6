"""Every ``ErrorCode`` triggered by a real situation, through the public entry points.

One scenario per code; ``test_every_error_code_has_a_scenario`` fails as soon as a code
is added to :class:`reference_impl.errors.ErrorCode` without a scenario here.  Each
scenario must raise a :class:`ReferenceImplError` with its code, naming the file it
concerns, and rendering as ``error[CODE] file: field.path: message``.
"""

from __future__ import annotations

import contextlib
import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import deltalake
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pytest_planguard.errors import PlanguardCode, PlanguardError
from reference_impl.errors import COMMAND_LINE_CODES, CodedError, ErrorCode, ReferenceImplError
from reference_impl.pipeline import run_pipeline
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import MAX_SQL_BYTES, load_manifest

Scenario = Callable[..., None]


def manifest(root: Path, text: str, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (root / name).write_text(textwrap.dedent(content), encoding="utf-8")
    path = root / "manifest.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def delta(root: Path, name: str = "t", rows: int = 10) -> Path:
    location = root / name
    deltalake.write_deltalake(str(location), pa.table({"a": list(range(rows))}))
    return location


TABLE_T = """
[datasets.t]
format = "delta"
location = "t"
"""


def compile_only(path: Path) -> None:
    compile_semantic_program(load_manifest(path))


def plan_only(path: Path) -> None:
    run_pipeline(path, execute=False)


# -- scenarios ---------------------------------------------------------------------------


def manifest_not_found(root: Path) -> None:
    load_manifest(root / "missing.toml")


def manifest_parse_error(root: Path) -> None:
    load_manifest(manifest(root, "[views.v\n"))


def manifest_type_error(root: Path) -> None:
    load_manifest(manifest(root, "[runtime]\ntarget_partitions = 'four'\n"))


def manifest_unknown_key(root: Path) -> None:
    load_manifest(manifest(root, "[runtime]\ntarget_partition = 4\n"))


def manifest_missing_field(root: Path) -> None:
    load_manifest(manifest(root, "[datasets.t]\nformat = 'delta'\n"))


def manifest_conflicting_fields(root: Path) -> None:
    load_manifest(manifest(root, "[views.v]\nsql = 'SELECT 1'\nsql_file = 'v.sql'\n"))


def manifest_invalid_value(root: Path) -> None:
    load_manifest(manifest(root, "[policy]\nmode = 'strict'\n"))


def manifest_invalid_name(root: Path) -> None:
    load_manifest(manifest(root, "[views.Revenue]\nsql = 'SELECT 1'\n"))


def manifest_reserved_name(root: Path) -> None:
    load_manifest(manifest(root, "[views.public]\nsql = 'SELECT 1'\n"))


def manifest_duplicate_name(root: Path) -> None:
    compile_only(manifest(root, TABLE_T + "[views.t]\nsql = 'SELECT 1'\n"))


def manifest_unknown_reference(root: Path) -> None:
    compile_only(manifest(root, "[views.v]\nsql = 'SELECT * FROM nowhere'\n"))


def manifest_cycle(root: Path) -> None:
    text = "[views.a]\nsql = 'SELECT * FROM b'\n[views.b]\nsql = 'SELECT * FROM a'\n"
    compile_only(manifest(root, text))


def manifest_not_a_query(root: Path) -> None:
    compile_only(manifest(root, TABLE_T + "[views.v]\nsql = 'DELETE FROM t'\n"))


def manifest_sql_syntax(root: Path) -> None:
    compile_only(manifest(root, "[views.v]\nsql = 'SELECT (1'\n"))


def manifest_sql_too_complex(root: Path) -> None:
    sql = "SELECT " + "(" * 80 + "1" + ")" * 80
    compile_only(manifest(root, f"[views.v]\nsql = '{sql}'\n"))


def manifest_sql_file_unreadable(root: Path) -> None:
    load_manifest(manifest(root, "[views.v]\nsql_file = 'v.sql'\n", **{"v.sql": "  \n"}))


def manifest_location_escapes_root(root: Path) -> None:
    load_manifest(manifest(root, "[datasets.t]\nformat = 'delta'\nlocation = '../t'\n"))


def manifest_limit_exceeded(root: Path) -> None:
    big = "SELECT 1" + " " * MAX_SQL_BYTES
    load_manifest(manifest(root, "[views.v]\nsql_file = 'v.sql'\n", **{"v.sql": big}))


def dataset_location_unresolved(root: Path) -> None:
    from reference_impl.engine.data_source import register_dataset
    from reference_impl.engine.runtime import build_runtime_profile
    from reference_impl.engine.session import new_session

    delta(root)
    program = compile_semantic_program(load_manifest(manifest(root, TABLE_T)))
    ctx = new_session(build_runtime_profile(program))
    # semantic-authority (the default) fails closed on a name the manifest does not bind
    register_dataset(ctx, program.dataset_bindings, "undeclared")


def dataset_not_found(root: Path) -> None:
    plan_only(manifest(root, TABLE_T))


def dataset_not_delta(root: Path) -> None:
    (root / "t" / "_delta_log").mkdir(parents=True)  # the marker, but no table version
    plan_only(manifest(root, TABLE_T))


def dataset_format_mismatch(root: Path) -> None:
    (root / "t").mkdir(parents=True)  # declared delta, no _delta_log
    plan_only(manifest(root, TABLE_T))


def dataset_unreadable(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "p.parquet").write_bytes(b"PAR1 this is not a parquet file")
    plan_only(manifest(root, "[datasets.p]\nformat = 'parquet'\nlocation = 'p.parquet'\n"))


def delta_protocol_unsupported(root: Path) -> None:
    log = delta(root) / "_delta_log" / "00000000000000000000.json"
    text = log.read_text(encoding="utf-8").replace('"minReaderVersion":1', '"minReaderVersion":9')
    assert '"minReaderVersion":9' in text
    log.write_text(text, encoding="utf-8")
    plan_only(manifest(root, TABLE_T))


def delta_log_corrupt(root: Path) -> None:
    log = delta(root) / "_delta_log" / "00000000000000000000.json"
    log.write_text("this is not JSON\n", encoding="utf-8")
    plan_only(manifest(root, TABLE_T))


def bootstrap_failed(root: Path) -> None:
    text = "[project]\nbootstrap = 'boot_fails:make'\n" + TABLE_T
    hook = "def make(root):\n    raise OSError('disk full')\n"
    plan_only(manifest(root, text, **{"boot_fails.py": hook}))


def udf_provider_untrusted(root: Path) -> None:
    delta(root)
    plan_only(manifest(root, TABLE_T + "[udfs.getcwd]\nprovider = 'os:getcwd'\n"))


def udf_provider_import_error(root: Path) -> None:
    delta(root)
    text = TABLE_T + "[udfs.f]\nprovider = 'broken_udfs:f'\n"
    plan_only(manifest(root, text, **{"broken_udfs.py": "import no_such_module_anywhere\n"}))


def udf_provider_invalid(root: Path) -> None:
    delta(root)
    text = TABLE_T + "[udfs.f]\nprovider = 'not_udfs:f'\n"
    plan_only(manifest(root, text, **{"not_udfs.py": "f = 42\n"}))


def execution_failed(root: Path) -> None:
    delta(root)
    text = (
        TABLE_T
        + """
        [views.v]
        sql = "SELECT no_such_column FROM t"
        [outputs.o]
        view = "v"
        location = "out/o"
        """
    )
    # warn mode lets execution start; the output's view was never planned
    run_pipeline(manifest(root, text), mode="warn")


def output_write_failed(root: Path) -> None:
    delta(root)
    (root / "out").write_text("a file where the output directory should be\n")
    text = (
        TABLE_T
        + """
        [views.v]
        sql = "SELECT a FROM t"
        [outputs.o]
        view = "v"
        location = "out/o"
        """
    )
    # the output's parent is a file: the table cannot be created there (a schema that
    # does not match is refused earlier, as OUTPUT_SCHEMA_MISMATCH, before any commit)
    run_pipeline(manifest(root, text), mode="warn")


def init_target_exists(root: Path) -> None:
    from reference_impl.scaffold import scaffold_project

    delta(root)
    (root / "pytest.ini").write_text("[pytest]\n")  # someone's own: never overwritten
    scaffold_project(root)


def manifest_location_not_allowed(root: Path) -> None:
    load_manifest(manifest(root, "[datasets.t]\nformat = 'delta'\nlocation = 's3://lake/t'\n"))


def manifest_secret_literal(root: Path) -> None:
    text = "[storage.lake]\nurl = 's3://lake'\noptions = { AWS_SECRET_ACCESS_KEY = 'x' }\n"
    load_manifest(manifest(root, text))


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def store_manifest(root: Path, endpoint: str, bucket: str = "lake") -> Path:
    return manifest(
        root,
        f"""
        [storage.lake]
        url = "s3://{bucket}"
        options = {{ AWS_ENDPOINT_URL = "{endpoint}", AWS_ALLOW_HTTP = "true" }}
        secrets = {{ AWS_ACCESS_KEY_ID = "PG_KEY", AWS_SECRET_ACCESS_KEY = "PG_SECRET" }}

        [datasets.t]
        format = "delta"
        location = "s3://{bucket}/t"
        """,
    )


def store_secret_missing(root: Path) -> None:
    os.environ.pop("PG_SECRET", None)
    with environment(PG_KEY="scenario-key"):
        plan_only(store_manifest(root, "http://127.0.0.1:9"))


def store_unreachable(root: Path) -> None:
    from pytest_planguard.s3_server import free_port

    with environment(PG_KEY="scenario-key", PG_SECRET="scenario-secret"):
        plan_only(store_manifest(root, f"http://127.0.0.1:{free_port()}"))


def store_access_denied(root: Path, server: Any) -> None:
    server.create_bucket("lake")
    with environment(PG_KEY=server.access_key_id, PG_SECRET="wrong"):
        plan_only(store_manifest(root, server.endpoint))


def store_bucket_not_found(root: Path, server: Any) -> None:
    secret = server.secret_access_key
    with environment(PG_KEY=server.access_key_id, PG_SECRET=secret):
        plan_only(store_manifest(root, server.endpoint, bucket="no-such-bucket"))


NEEDS_SERVER = frozenset({store_access_denied, store_bucket_not_found})
"""Scenarios that take the loopback S3 server (``planguard_s3_server``) as well."""


SCENARIOS: dict[ErrorCode, Scenario] = {
    ErrorCode.MANIFEST_NOT_FOUND: manifest_not_found,
    ErrorCode.MANIFEST_PARSE_ERROR: manifest_parse_error,
    ErrorCode.MANIFEST_TYPE_ERROR: manifest_type_error,
    ErrorCode.MANIFEST_UNKNOWN_KEY: manifest_unknown_key,
    ErrorCode.MANIFEST_MISSING_FIELD: manifest_missing_field,
    ErrorCode.MANIFEST_CONFLICTING_FIELDS: manifest_conflicting_fields,
    ErrorCode.MANIFEST_INVALID_VALUE: manifest_invalid_value,
    ErrorCode.MANIFEST_INVALID_NAME: manifest_invalid_name,
    ErrorCode.MANIFEST_RESERVED_NAME: manifest_reserved_name,
    ErrorCode.MANIFEST_DUPLICATE_NAME: manifest_duplicate_name,
    ErrorCode.MANIFEST_UNKNOWN_REFERENCE: manifest_unknown_reference,
    ErrorCode.MANIFEST_CYCLE: manifest_cycle,
    ErrorCode.MANIFEST_NOT_A_QUERY: manifest_not_a_query,
    ErrorCode.MANIFEST_SQL_SYNTAX: manifest_sql_syntax,
    ErrorCode.MANIFEST_SQL_TOO_COMPLEX: manifest_sql_too_complex,
    ErrorCode.MANIFEST_SQL_FILE_UNREADABLE: manifest_sql_file_unreadable,
    ErrorCode.MANIFEST_LOCATION_ESCAPES_ROOT: manifest_location_escapes_root,
    ErrorCode.MANIFEST_LIMIT_EXCEEDED: manifest_limit_exceeded,
    ErrorCode.DATASET_LOCATION_UNRESOLVED: dataset_location_unresolved,
    ErrorCode.DATASET_NOT_FOUND: dataset_not_found,
    ErrorCode.DATASET_NOT_DELTA: dataset_not_delta,
    ErrorCode.DATASET_FORMAT_MISMATCH: dataset_format_mismatch,
    ErrorCode.DATASET_UNREADABLE: dataset_unreadable,
    ErrorCode.DELTA_LOG_CORRUPT: delta_log_corrupt,
    ErrorCode.DELTA_PROTOCOL_UNSUPPORTED: delta_protocol_unsupported,
    ErrorCode.BOOTSTRAP_FAILED: bootstrap_failed,
    ErrorCode.UDF_PROVIDER_UNTRUSTED: udf_provider_untrusted,
    ErrorCode.UDF_PROVIDER_IMPORT_ERROR: udf_provider_import_error,
    ErrorCode.UDF_PROVIDER_INVALID: udf_provider_invalid,
    ErrorCode.EXECUTION_FAILED: execution_failed,
    ErrorCode.OUTPUT_WRITE_FAILED: output_write_failed,
    ErrorCode.INIT_TARGET_EXISTS: init_target_exists,
    ErrorCode.MANIFEST_LOCATION_NOT_ALLOWED: manifest_location_not_allowed,
    ErrorCode.MANIFEST_SECRET_LITERAL: manifest_secret_literal,
    ErrorCode.STORE_SECRET_MISSING: store_secret_missing,
    ErrorCode.STORE_UNREACHABLE: store_unreachable,
    ErrorCode.STORE_ACCESS_DENIED: store_access_denied,
    ErrorCode.STORE_BUCKET_NOT_FOUND: store_bucket_not_found,
}


def test_every_error_code_has_a_scenario() -> None:
    # the command line's own codes are printed, not raised: tests/hostile produces them
    assert set(SCENARIOS) == set(ErrorCode) - COMMAND_LINE_CODES


@pytest.mark.parametrize(
    "error",
    [
        ReferenceImplError(ErrorCode.MANIFEST_CYCLE, "a cycle", file="m.toml"),
        PlanguardError(PlanguardCode.CONFIG_ERROR, "bad", field_path="planguard_adapter"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_both_root_errors_are_coded_errors(error: Exception) -> None:
    assert isinstance(error, CodedError)
    assert error.render().startswith(f"error[{error.code}] ")
    assert error.to_dict()["code"] == str(error.code)


def test_an_error_without_a_code_is_no_coded_error() -> None:
    assert not isinstance(ValueError("plain"), CodedError)


@pytest.mark.parametrize("code", list(SCENARIOS), ids=str)
def test_the_scenario_raises_its_code(
    tmp_path: Path, code: ErrorCode, request: pytest.FixtureRequest
) -> None:
    root = tmp_path / "project"
    scenario = SCENARIOS[code]
    server = (request.getfixturevalue("planguard_s3_server"),) if scenario in NEEDS_SERVER else ()
    with pytest.raises(ReferenceImplError) as info:
        scenario(root, *server)
    err = info.value
    assert err.code == code, err.render()
    assert err.file is not None, "every error names the file it concerns"
    rendered = err.render()
    assert rendered.startswith(f"error[{code}] {err.file}: ")
    if err.field_path is not None:
        assert f": {err.field_path}: " in rendered
    assert "Traceback" not in rendered
    assert "\n" not in rendered


def test_a_delta_dataset_located_at_a_plain_file_is_a_format_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "t").write_text("not a table", encoding="utf-8")
    with pytest.raises(ReferenceImplError) as info:
        plan_only(manifest(root, TABLE_T))
    assert info.value.code == ErrorCode.DATASET_FORMAT_MISMATCH
    assert info.value.field_path == "datasets.t.format"


def test_an_empty_parquet_directory_is_not_found(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "p").mkdir(parents=True)
    with pytest.raises(ReferenceImplError) as info:
        plan_only(manifest(root, "[datasets.p]\nformat = 'parquet'\nlocation = 'p'\n"))
    assert info.value.code == ErrorCode.DATASET_NOT_FOUND
    assert info.value.field_path == "datasets.p.location"


def test_a_readable_parquet_directory_registers(tmp_path: Path) -> None:
    """Twin of the parquet failures: the same manifest over real files plans cleanly."""
    root = tmp_path / "project"
    (root / "p").mkdir(parents=True)
    pq.write_table(pa.table({"a": [1, 2, 3]}), root / "p" / "part-0.parquet")
    run = run_pipeline(
        manifest(root, "[datasets.p]\nformat = 'parquet'\nlocation = 'p'\n"), execute=False
    )
    assert run.authority.semantic_context.datasets["p"].format == "parquet"
