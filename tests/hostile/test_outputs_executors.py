"""Hostile runs at the output boundary: an output table whose schema moved away from the
view, and a view naming an executor the run does not have.  Both are findings (exit 1),
never a traceback, and neither leaves a half-written set of outputs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import deltalake
import pyarrow as pa
import pytest

from pytest_planguard.cli import main
from tests.hostile.helpers import assert_no_traceback
from tests.support.codes import CodeRecorder

MANIFEST = """
[datasets.t]
format = "delta"
location = "t"

[views.a]
sql = "SELECT a FROM t"

[views.b]
sql = "SELECT a, a * 2 AS doubled FROM t"
executor = "{executor}"

[outputs.a_out]
view = "a"
location = "out/a"

[outputs.b_out]
view = "b"
location = "out/b"

[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""


def project(root: Path, executor: str = "datafusion") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    deltalake.write_deltalake(str(root / "t"), pa.table({"a": [1, 2, 3]}))
    path = root / "manifest.toml"
    path.write_text(textwrap.dedent(MANIFEST.format(executor=executor)), encoding="utf-8")
    return path


def versions(root: Path) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for name in ("a", "b"):
        location = root / "out" / name
        out[name] = deltalake.DeltaTable(str(location)).version() if location.exists() else None
    return out


@pytest.mark.produces_codes("OUTPUT_SCHEMA_MISMATCH")
@pytest.mark.parametrize("mode", ["error", "warn", "ignore"])
def test_an_output_table_with_another_schema_commits_no_output(
    tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str], codes: CodeRecorder
) -> None:
    manifest = project(tmp_path)
    # someone else rewrote b's table with a schema the view does not produce
    deltalake.write_deltalake(str(tmp_path / "out" / "b"), pa.table({"a": ["x"], "z": [1.5]}))
    assert main(["validate", str(manifest), "--json"]) == 1
    (issue,) = json.loads(capsys.readouterr().out)["validation"]["issues"]
    codes.expect(issue["code"], "OUTPUT_SCHEMA_MISMATCH", issue)
    assert issue["field_path"] == "outputs.b_out.schema_mode"
    assert "doubled" in issue["message"]
    assert "z" in issue["message"]

    assert main(["run", str(manifest), "--mode", mode, "--json"]) == 1
    out, err = capsys.readouterr()
    assert_no_traceback(out, err)
    payload = json.loads(out)
    assert payload["ok"] is False
    if mode != "error":  # error mode stops at validation; the others at the preflight
        (finding,) = payload["execution"]["findings"]
        codes.expect(finding["code"], "OUTPUT_SCHEMA_MISMATCH", finding)
        assert payload["execution"]["outputs"] == []
    assert versions(tmp_path) == {"a": None, "b": 0}


@pytest.mark.produces_codes("EXECUTOR_UNAVAILABLE")
@pytest.mark.parametrize("mode", ["warn", "ignore"])
def test_an_unavailable_executor_is_never_replaced_by_datafusion(
    tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str], codes: CodeRecorder
) -> None:
    manifest = project(tmp_path, executor="spark")
    assert main(["run", str(manifest), "--mode", mode, "--json"]) == 1
    out, err = capsys.readouterr()
    assert_no_traceback(out, err)
    (finding,) = json.loads(out)["execution"]["findings"]
    codes.expect(finding["code"], "EXECUTOR_UNAVAILABLE", finding)
    assert (finding["subject"], finding["field_path"]) == ("b_out", "views.b.executor")
    assert versions(tmp_path) == {"a": 0, "b": None}
