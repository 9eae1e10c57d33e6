"""Stage *load*: TOML and JSON manifests, typed decoding, coded errors with file and path.

Every failure must be a ``ReferenceImplError`` naming the file, the dotted field path of
the offending value and a stable ``ErrorCode``.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.load import MAX_SQL_BYTES, load_manifest
from reference_impl.semantics.model import ManifestDocument, SemanticModel

WriteManifest = Callable[..., Path]

MINIMAL = """
[datasets.t]
format = "delta"
location = "data/t"

[views.v]
sql = "SELECT a FROM t"
"""


def load_error(path: Path) -> ReferenceImplError:
    with pytest.raises(ReferenceImplError) as info:
        load_manifest(path)
    return info.value


# -- accepted input ----------------------------------------------------------------------


def test_toml_manifest_decodes_into_frozen_typed_structs(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        MINIMAL
        + """
        [views.w]
        sql_file = "views/w.sql"
        udfs = ["f"]
        [udfs.f]
        provider = "udfs:f"
        """
    )
    (path.parent / "views").mkdir()
    (path.parent / "views" / "w.sql").write_text("SELECT * FROM v\n", encoding="utf-8")

    model = load_manifest(path)

    assert isinstance(model, SemanticModel)
    assert isinstance(model.document, ManifestDocument)
    assert model.path == str(path.resolve())
    assert model.root == str(path.parent.resolve())
    assert model.view_sql == {"v": "SELECT a FROM t", "w": "SELECT * FROM v\n"}
    assert model.document.views["w"].udfs == ("f",)
    assert model.document.datasets["t"].format == "delta"
    assert model.document.runtime.target_partitions == 4  # documented default
    with pytest.raises(AttributeError):
        model.document.views["v"].sql = "SELECT 2"  # type: ignore[misc]


def test_json_manifest_with_the_same_structure_decodes_to_the_same_document(
    write_manifest: WriteManifest,
) -> None:
    toml_path = write_manifest(MINIMAL)
    raw = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    json_path = write_manifest(json.dumps(raw), name="json/manifest.json")

    assert load_manifest(json_path).document == load_manifest(toml_path).document


def test_a_directory_resolves_to_its_manifest_file(write_manifest: WriteManifest) -> None:
    path = write_manifest(MINIMAL, name="proj/manifest.toml")
    assert load_manifest(path.parent).path == str(path.resolve())


def test_a_directory_holding_only_manifest_json_resolves_to_it(
    write_manifest: WriteManifest,
) -> None:
    raw = tomllib.loads(MINIMAL)
    path = write_manifest(json.dumps(raw), name="proj/manifest.json")
    assert load_manifest(path.parent).path == str(path.resolve())


# -- coded errors ------------------------------------------------------------------------

# (manifest text, file name, expected code, expected field path)
CASES: dict[str, tuple[str, str, ErrorCode, str | None]] = {
    "unknown top-level key": (
        MINIMAL + "\n[extras]\nx = 1\n",
        "manifest.toml",
        ErrorCode.MANIFEST_UNKNOWN_KEY,
        "extras",
    ),
    "unknown key in a view (a typo)": (
        '[views.v]\nsqll = "SELECT 1"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_UNKNOWN_KEY,
        "views.v.sqll",
    ),
    "unknown key in a nested table": (
        "[policy.delta_support]\nmax_reader_version = 1\nmax_writer_version = 2\nreaders = []\n",
        "manifest.toml",
        ErrorCode.MANIFEST_UNKNOWN_KEY,
        "policy.delta_support.readers",
    ),
    "unknown key in JSON": (
        '{"runtime": {"target_partition": 4}}',
        "manifest.json",
        ErrorCode.MANIFEST_UNKNOWN_KEY,
        "runtime.target_partition",
    ),
    "wrong type": (
        '[runtime]\ntarget_partitions = "4"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_TYPE_ERROR,
        "runtime.target_partitions",
    ),
    "a section that is not a table": (
        "datasets = 3\n",
        "manifest.toml",
        ErrorCode.MANIFEST_TYPE_ERROR,
        "datasets",
    ),
    "a view that is a string": (
        '[views]\nv = "SELECT 1"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_TYPE_ERROR,
        "views.v",
    ),
    "JSON top level is an array": (
        "[1, 2]",
        "manifest.json",
        ErrorCode.MANIFEST_TYPE_ERROR,
        None,
    ),
    "missing required key": (
        '[datasets.t]\nformat = "delta"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_MISSING_FIELD,
        "datasets.t.location",
    ),
    "a view with neither sql nor sql_file": (
        '[views.v]\nexecutor = "datafusion"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_MISSING_FIELD,
        "views.v",
    ),
    "sql and sql_file together": (
        '[views.v]\nsql = "SELECT 1"\nsql_file = "v.sql"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_CONFLICTING_FIELDS,
        "views.v",
    ),
    "empty sql": (
        '[views.v]\nsql = "   "\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "views.v.sql",
    ),
    "empty executor": (
        '[views.v]\nsql = "SELECT 1"\nexecutor = ""\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "views.v.executor",
    ),
    "enum value out of range": (
        '[policy]\nmode = "strict"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "policy.mode",
    ),
    "dataset format out of range": (
        '[datasets.t]\nformat = "csv"\nlocation = "t"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "datasets.t.format",
    ),
    "integer below its minimum": (
        "[runtime]\ntarget_partitions = 0\n",
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "runtime.target_partitions",
    ),
    "integer beyond what the engine accepts": (
        "[runtime]\ntarget_partitions = 100000000000000000000000\n",
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "runtime.target_partitions",
    ),
    "huge integer in JSON": (
        '{"runtime": {"batch_size": 1208925819614629174706176}}',
        "manifest.json",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "runtime.batch_size",
    ),
    "planning budget beyond a day": (
        "[runtime]\nplanning_budget_ms = 9223372036854775807\n",
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "runtime.planning_budget_ms",
    ),
    "size without a unit": (
        '[runtime]\nlist_files_cache_limit = "lots"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "runtime.list_files_cache_limit",
    ),
    "unparsable duration": (
        '[runtime]\nlist_files_cache_ttl = "abc"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "runtime.list_files_cache_ttl",
    ),
    "zero duration": (
        '[runtime]\nlist_files_cache_ttl = "0s"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "runtime.list_files_cache_ttl",
    ),
    "unknown retained plan": (
        '[runtime]\nretain_plans = ["P3"]\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "runtime.retain_plans[0]",
    ),
    "malformed UDF provider": (
        '[udfs.f]\nprovider = "not a provider"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_VALUE,
        "udfs.f.provider",
    ),
    "URL location": (
        '[datasets.t]\nformat = "delta"\nlocation = "s3://bucket/t"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_LOCATION_NOT_ALLOWED,
        "datasets.t.location",
    ),
    "uppercase name": (
        '[datasets.T]\nformat = "delta"\nlocation = "t"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_NAME,
        "datasets.T",
    ),
    "invalid UDF name in a view": (
        '[views.v]\nsql = "SELECT 1"\nudfs = ["Bad-Name"]\n',
        "manifest.toml",
        ErrorCode.MANIFEST_INVALID_NAME,
        "views.v.udfs[0]",
    ),
    "reserved name": (
        '[datasets.information_schema]\nformat = "delta"\nlocation = "t"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_RESERVED_NAME,
        "datasets.information_schema",
    ),
    "output of an undeclared view": (
        '[outputs.o]\nview = "nope"\nlocation = "out/o"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_UNKNOWN_REFERENCE,
        "outputs.o.view",
    ),
    "dataset location escaping the manifest directory": (
        '[datasets.t]\nformat = "delta"\nlocation = "../elsewhere/t"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_LOCATION_ESCAPES_ROOT,
        "datasets.t.location",
    ),
    "output location escaping the manifest directory": (
        '[views.v]\nsql = "SELECT 1"\n[outputs.o]\nview = "v"\nlocation = "/tmp/o"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_LOCATION_ESCAPES_ROOT,
        "outputs.o.location",
    ),
    "sql_file escaping the manifest directory": (
        '[views.v]\nsql_file = "../v.sql"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_LOCATION_ESCAPES_ROOT,
        "views.v.sql_file",
    ),
    "missing sql_file": (
        '[views.v]\nsql_file = "views/missing.sql"\n',
        "manifest.toml",
        ErrorCode.MANIFEST_SQL_FILE_UNREADABLE,
        "views.v.sql_file",
    ),
    "duplicate key in a JSON object": (
        '{"datasets": {"t": {"format": "delta", "location": "a", "location": "b"}}}',
        "manifest.json",
        ErrorCode.MANIFEST_DUPLICATE_NAME,
        "datasets.t.location",
    ),
    "duplicate view in a JSON object": (
        '{"views": {"v": {"sql": "SELECT 1"}, "v": {"sql": "SELECT 2"}}}',
        "manifest.json",
        ErrorCode.MANIFEST_DUPLICATE_NAME,
        "views.v",
    ),
}


@pytest.mark.parametrize(("text", "name", "code", "field_path"), CASES.values(), ids=CASES)
def test_bad_manifest_raises_a_coded_error_naming_file_and_field(
    write_manifest: WriteManifest,
    text: str,
    name: str,
    code: ErrorCode,
    field_path: str | None,
) -> None:
    path = write_manifest(text, name=name)
    err = load_error(path)
    assert err.code == code, err.render()
    assert err.field_path == field_path, err.render()
    assert err.file == str(path)
    expected_where = f"{path}: {field_path}: " if field_path else f"{path}: "
    assert err.render().startswith(f"error[{code}] {expected_where}")


PARSE_CASES: dict[str, tuple[bytes, str]] = {
    "empty file": (b"", "manifest.toml"),
    "whitespace only": (b"  \n\t\n", "manifest.toml"),
    "invalid TOML": (b"[views.v\nsql = 1\n", "manifest.toml"),
    "TOML table declared twice": (b'[views.v]\nsql = "a"\n[views.v]\nsql = "b"\n', "m.toml"),
    "invalid JSON": (b'{"views": {},}', "manifest.json"),
    "binary file": (b"a\x00b", "manifest.toml"),
    "not UTF-8": (b"\xff\xfe[views]", "manifest.toml"),
}


@pytest.mark.parametrize(("data", "name"), PARSE_CASES.values(), ids=PARSE_CASES)
def test_unparsable_manifest_is_a_parse_error(tmp_path: Path, data: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    err = load_error(path)
    assert err.code == ErrorCode.MANIFEST_PARSE_ERROR
    assert err.file == str(path)


def test_missing_manifest_file_is_not_found(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope.toml")
    assert err.code == ErrorCode.MANIFEST_NOT_FOUND
    assert err.file == str(tmp_path / "nope.toml")


def test_directory_without_a_manifest_is_not_found(tmp_path: Path) -> None:
    err = load_error(tmp_path)
    assert err.code == ErrorCode.MANIFEST_NOT_FOUND
    assert "manifest.toml" in err.message


def test_oversized_view_sql_exceeds_the_limit(write_manifest: WriteManifest) -> None:
    path = write_manifest('[views.v]\nsql_file = "v.sql"\n')
    (path.parent / "v.sql").write_text("SELECT 1 " + " " * MAX_SQL_BYTES, encoding="utf-8")
    err = load_error(path)
    assert err.code == ErrorCode.MANIFEST_LIMIT_EXCEEDED
    assert err.field_path == "views.v.sql_file"


def test_external_locations_are_accepted_when_the_policy_allows_them(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest(
        """
        [datasets.t]
        format = "delta"
        location = "../elsewhere/t"

        [policy]
        allow_external_locations = true
        """
    )
    model = load_manifest(path)
    assert model.document.datasets["t"].location == "../elsewhere/t"


def test_a_symlink_pointing_outside_the_root_escapes_it(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = write_manifest(
        '[datasets.t]\nformat = "delta"\nlocation = "link"\n', name="proj/manifest.toml"
    )
    (path.parent / "link").symlink_to(outside)
    assert load_error(path).code == ErrorCode.MANIFEST_LOCATION_ESCAPES_ROOT


def test_an_error_in_a_directorys_manifest_names_the_manifest_file(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest("[runtime]\ntarget_partition = 4\n", name="proj/manifest.toml")
    err = load_error(path.parent)
    assert err.code == ErrorCode.MANIFEST_UNKNOWN_KEY
    assert err.file == str(path)


@pytest.mark.parametrize(
    ("text", "field_path", "says"),
    [
        (
            '[datasets.t]\nformat = "deltalake"\nlocation = "t"\n',
            "datasets.t.format",
            "(allowed: 'delta', 'parquet')",
        ),
        ('[policy]\nmode = "strict"\n', "policy.mode", "(allowed: 'error', 'ignore', 'warn')"),
        (
            '[datasets.t]\nformat = "delta"\nlocaton = "t"\n',
            "datasets.t.locaton",
            "did you mean 'location'?",
        ),
        (
            "[policy.delta_support]\nmax_reader_versio = 3\n",
            "policy.delta_support.max_reader_versio",
            "did you mean 'max_reader_version'?",
        ),
        ('[views.v]\nsql = "SELECT 1"\nexecuter = "x"\n', "views.v.executer", "'executor'"),
        (
            '[views.v]\nsql = "SELECT 1"\nudfs = ["cents_to_eur", "cents_to_euro"]\n'
            '[udfs.cents_to_eur]\nprovider = "udfs:cents_to_eur"\n',
            "views.v.udfs[1]",
            "did you mean 'cents_to_eur'?",
        ),
        (
            '[views.v]\nsql = "SELECT 1"\nudfs = ["f"]\n',
            "views.v.udfs[0]",
            "no [udfs.*] table provides (the manifest declares none)",
        ),
        (
            '[views.revenue]\nsql = "SELECT 1"\n[outputs.o]\nview = "revenu"\nlocation = "o"\n',
            "outputs.o.view",
            "did you mean 'revenue'?",
        ),
    ],
    ids=[
        "enum",
        "nested enum",
        "unknown key",
        "nested unknown key",
        "view key",
        "udf name",
        "udf with none declared",
        "output view",
    ],
)
def test_errors_say_what_would_have_been_right(
    write_manifest: WriteManifest, text: str, field_path: str, says: str
) -> None:
    """Enum errors list the allowed values; unknown keys get the closest known key."""
    error = load_error(write_manifest(text))
    assert error.field_path == field_path
    assert says in error.message, error.render()


def test_a_view_declaring_an_unprovided_udf_is_refused_at_load_without_an_engine(
    write_manifest: WriteManifest,
) -> None:
    """A static check: the name is compared with ``[udfs.*]`` when the manifest loads, so
    ``planguard compile`` (engine-free) refuses it, not only ``validate``."""
    error = load_error(
        write_manifest(MINIMAL + 'udfs = ["net_price"]\n[udfs.net_prise]\nprovider = "u:f"\n')
    )
    assert (error.code, error.field_path) == (
        ErrorCode.MANIFEST_UNKNOWN_REFERENCE,
        "views.v.udfs[0]",
    )
    assert error.subjects == ("v", "net_price")
    assert "did you mean 'net_prise'?" in error.message
