"""One JSON shape for every issue of ``compile``, ``validate`` and ``run --json`` (bad input,
policy findings and outputs a run did not write alike), documented by ``planguard schema
--issues``; and one path style for the manifest in everything ``compile`` prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import deltalake
import jsonschema
import pyarrow as pa
import pytest

from reference_impl.issues import display_path
from tests.support.cli import run_cli

TABLE = '[datasets.t]\nformat = "delta"\nlocation = "t"\n'
SUPPORT = (
    "[policy]\nsmall_input_rows = 0\n"
    "[policy.delta_support]\nmax_reader_version = 1\nmax_writer_version = 2\n"
)
UDFS = """
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import udf

plus_one = udf(lambda v: pc.add(v, 1), [pa.int64()], pa.int64(), "immutable", name="plus_one")
"""


def issue_schema() -> dict[str, Any]:
    code, out, err = run_cli("schema", "--issues")
    assert (code, err) == (0, "")
    schema: dict[str, Any] = json.loads(out)
    return schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = issue_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    deltalake.write_deltalake(str(root / "t"), pa.table({"a": [1, 2, 3]}))
    (root / "plus_udfs.py").write_text(UDFS, encoding="utf-8")
    return root


def write(root: Path, text: str) -> Path:
    path = root / "manifest.toml"
    path.write_text(text, encoding="utf-8")
    return path


def issues_of(
    validator: jsonschema.Draft202012Validator, root: Path, *args: str, exit_code: int
) -> list[dict[str, Any]]:
    """Run ``planguard ARGS --json`` in ``root``'s parent; every issue must fit the schema."""
    code, out, err = run_cli(*args, "--json", cwd=root.parent)
    assert code == exit_code, out + err
    payload = json.loads(out)
    issues: list[dict[str, Any]] = payload["issues"]
    for issue in issues:
        validator.validate(issue)
        # where: a field of a file, or at least the thing the issue is about
        assert issue["field_path"] or issue["subject"], issue
        assert issue["file"] == "shop/manifest.toml", issue  # the display path style
    return issues


def test_the_issue_schema_requires_every_key_and_allows_no_other() -> None:
    definition = issue_schema()["$defs"]["ReportedIssue"]
    assert set(definition["required"]) == {
        "code",
        "severity",
        "message",
        "file",
        "field_path",
        "subject",
        "subject_kind",
    }
    assert definition["additionalProperties"] is False


BAD_INPUT = {
    # load (engine-free): an unknown UDF name
    "load": (
        TABLE + '[views.v]\nsql = "SELECT a FROM t"\nudfs = ["plus_on"]\n'
        '[udfs.plus_one]\nprovider = "plus_udfs:plus_one"\n',
        "MANIFEST_UNKNOWN_REFERENCE",
        "views.v.udfs[0]",
    ),
    # compile (engine-free): an unknown table
    "compile": (
        TABLE + '[views.v]\nsql = "SELECT a FROM nope"\n',
        "MANIFEST_UNKNOWN_REFERENCE",
        "views.v.sql",
    ),
    # the engine: a dataset that is not there
    "engine": (
        '[datasets.t]\nformat = "delta"\nlocation = "missing"\n[views.v]\nsql = "SELECT 1"\n',
        "DATASET_NOT_FOUND",
        "datasets.t.location",
    ),
}


@pytest.mark.parametrize("command", ["compile", "validate", "run"])
@pytest.mark.parametrize("stage", list(BAD_INPUT))
def test_bad_input_is_one_issue_in_the_shared_shape(
    validator: jsonschema.Draft202012Validator, project: Path, command: str, stage: str
) -> None:
    text, code, field_path = BAD_INPUT[stage]
    write(project, text)
    args = (command, "shop", *(("--plan",) if command == "compile" else ()))
    (issue,) = issues_of(validator, project, *args, exit_code=2)
    assert (issue["code"], issue["field_path"], issue["severity"]) == (code, field_path, "error")
    assert (issue["subject"], issue["subject_kind"]) == (None, None)


def test_policy_findings_are_issues_in_the_same_shape(
    validator: jsonschema.Draft202012Validator, project: Path
) -> None:
    write(
        project,
        TABLE
        + "[policy]\nsmall_input_rows = 0\n"
        + '[views.v]\nsql = "SELECT plus_one(a) AS b FROM t"\n'
        + '[views.w]\nsql = "SELECT a FROM t"\nudfs = ["plus_one"]\nexecutor = "spark"\n'
        + '[udfs.plus_one]\nprovider = "plus_udfs:plus_one"\n',
    )
    for command in ("validate", "run"):
        issues = issues_of(validator, project, command, "shop", exit_code=1)
        assert {(i["code"], i["subject_kind"], i["subject"], i["field_path"]) for i in issues} == {
            ("DELTA_PROTOCOL_SUPPORT_UNCONFIGURED", "dataset", "t", "policy.delta_support"),
            ("UDF_UNDECLARED", "view", "v", "views.v.udfs"),
            ("UDF_DECLARED_UNUSED", "view", "w", "views.w.udfs"),
            ("EXECUTOR_UNAVAILABLE", "view", "w", "views.w.executor"),
        }
        assert {i["severity"] for i in issues if i["code"] == "UDF_DECLARED_UNUSED"} == {"warning"}


def test_outputs_a_run_did_not_write_are_issues_too(
    validator: jsonschema.Draft202012Validator, project: Path
) -> None:
    write(
        project,
        TABLE
        + SUPPORT
        + '[views.w]\nsql = "SELECT a FROM t"\nexecutor = "spark"\n'
        + '[outputs.o]\nview = "w"\nlocation = "out/o"\n',
    )
    code, out, _ = run_cli("run", "shop", "--mode", "warn", "--json", cwd=project.parent)
    assert code == 1
    payload = json.loads(out)
    issues = payload["issues"]
    for issue in issues:
        validator.validate(issue)
    # the plan-time finding (a warning in warn mode) and the output the run skipped
    assert [(i["code"], i["severity"], i["subject_kind"], i["subject"]) for i in issues] == [
        ("EXECUTOR_UNAVAILABLE", "warning", "view", "w"),
        ("EXECUTOR_UNAVAILABLE", "error", "output", "o"),
    ]
    assert len(payload["execution"]["findings"]) == 1


def test_a_clean_compile_has_an_empty_issue_list(
    validator: jsonschema.Draft202012Validator, project: Path
) -> None:
    write(project, TABLE + SUPPORT + '[views.v]\nsql = "SELECT a FROM t"\n')
    assert issues_of(validator, project, "compile", "shop", exit_code=0) == []
    assert issues_of(validator, project, "compile", "shop", "--plan", exit_code=0) == []
    assert issues_of(validator, project, "validate", "shop", exit_code=0) == []


# -- one path style -------------------------------------------------------------------------


def test_display_path_is_relative_inside_the_working_directory_else_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "inside").mkdir()
    monkeypatch.chdir(tmp_path / "inside")
    assert display_path("m.toml") == "m.toml"
    assert display_path(tmp_path / "inside" / "d" / "m.toml") == "d/m.toml"
    assert display_path("../m.toml") == str(tmp_path / "m.toml")
    assert display_path("d/../m.toml") == "m.toml"


@pytest.mark.parametrize(
    ("where", "given", "shown"),
    [
        ("project", ".", "manifest.toml"),
        ("project", "manifest.toml", "manifest.toml"),
        ("parent", "shop", "shop/manifest.toml"),
        ("parent", "shop/manifest.toml", "shop/manifest.toml"),
        ("elsewhere", "ABSOLUTE", "ABSOLUTE"),
    ],
)
def test_compile_prints_the_manifest_path_one_way_whatever_stage_speaks(
    project: Path, tmp_path: Path, where: str, given: str, shown: str
) -> None:
    """The summary line, a load error and a compile error all name the manifest file the
    same way: relative to the working directory when inside it, else absolute."""
    manifest = project / "manifest.toml"
    cwd = {"project": project, "parent": project.parent, "elsewhere": tmp_path / "elsewhere"}
    cwd["elsewhere"].mkdir()
    given = given.replace("ABSOLUTE", str(manifest))
    shown = shown.replace("ABSOLUTE", str(manifest))
    cases = {
        "summary": TABLE + '[views.v]\nsql = "SELECT a FROM t"\n',
        "load error": TABLE + '[views.v]\nsql = "SELECT a FROM t"\nudfs = ["f"]\n',
        "compile error": TABLE + '[views.v]\nsql = "SELECT a FROM nope"\n',
    }
    printed = {}
    for case, text in cases.items():
        write(project, text)
        _, out, err = run_cli("compile", given, cwd=cwd[where])
        printed[case] = (out or err).splitlines()[0]
    assert printed["summary"].startswith(f"manifest {shown}: 1 views"), printed
    assert printed["load error"].startswith(
        f"error[MANIFEST_UNKNOWN_REFERENCE] {shown}: views.v.udfs[0]: "
    ), printed
    assert printed["compile error"].startswith(
        f"error[MANIFEST_UNKNOWN_REFERENCE] {shown}: views.v.sql: "
    ), printed


def test_the_readme_documents_the_shape_it_prints(
    validator: jsonschema.Draft202012Validator,
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("**JSON output.**", 1)[1]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    validator.validate(json.loads(example))
    for key in issue_schema()["$defs"]["ReportedIssue"]["required"]:
        assert f"`{key}`" in section or f'"{key}"' in example, key
