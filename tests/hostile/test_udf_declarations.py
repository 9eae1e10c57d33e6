"""What a view calls against what it declares, through the real ``planguard`` command line:
a call without a declaration is ``UDF_UNDECLARED`` (severity by mode), a declaration the
view never calls is ``UDF_DECLARED_UNUSED`` (a warning), and a declared name that no
``[udfs.*]`` provides is refused by ``compile`` before any engine work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.corpus import CLEAN, T, write_table
from tests.hostile.helpers import assert_no_traceback
from tests.support.cli import run_cli
from tests.support.codes import CodeRecorder

UDFS = """
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import udf

cents_to_eur = udf(
    lambda v: pc.divide(v, 100), [pa.int64()], pa.int64(), "immutable", name="cents_to_eur"
)
"""

PROVIDED = '[udfs.cents_to_eur]\nprovider = "shop_udfs:cents_to_eur"\n'


def project(tmp_path: Path, views: str) -> Path:
    write_table(tmp_path / "t")
    (tmp_path / "shop_udfs.py").write_text(UDFS, encoding="utf-8")
    path = tmp_path / "manifest.toml"
    path.write_text(T + CLEAN + PROVIDED + views, encoding="utf-8")
    return path


@pytest.mark.produces_codes("UDF_DECLARED_UNUSED")
def test_a_declared_udf_the_view_never_calls_is_a_warning(
    tmp_path: Path, codes: CodeRecorder
) -> None:
    path = project(tmp_path, '[views.v]\nsql = "SELECT a FROM t"\nudfs = ["cents_to_eur"]\n')
    exit_code, out, err = run_cli("validate", "--json", str(path), cwd=tmp_path)
    assert_no_traceback(out, err)
    assert exit_code == 0, out + err
    (issue,) = json.loads(out)["issues"]
    codes.expect(issue["code"], "UDF_DECLARED_UNUSED")
    assert (issue["severity"], issue["field_path"], issue["subject"]) == (
        "warning",
        "views.v.udfs",
        "v",
    )


@pytest.mark.produces_codes("UDF_UNDECLARED")
@pytest.mark.parametrize(
    ("mode", "exit_code", "severity"), [("error", 1, "error"), ("warn", 0, "warning")]
)
def test_an_undeclared_udf_call_is_reported_by_mode(
    tmp_path: Path, codes: CodeRecorder, mode: str, exit_code: int, severity: str
) -> None:
    path = project(tmp_path, '[views.v]\nsql = "SELECT cents_to_eur(a) AS eur FROM t"\n')
    done, out, err = run_cli("validate", "--mode", mode, str(path), cwd=tmp_path)
    assert_no_traceback(out, err)
    assert (done, err) == (exit_code, ""), out
    (line,) = [line for line in out.splitlines() if "[UDF_UNDECLARED]" in line]
    codes.expect(line.split("[", 1)[1].split("]", 1)[0], "UDF_UNDECLARED")
    assert line.startswith(f"{severity}[UDF_UNDECLARED] view v: ")
    assert 'udfs = ["cents_to_eur"]' in line


@pytest.mark.produces_codes("MANIFEST_UNKNOWN_REFERENCE")
def test_compile_refuses_a_misspelled_udf_declaration_without_an_engine(
    tmp_path: Path, codes: CodeRecorder
) -> None:
    path = project(
        tmp_path, '[views.v]\nsql = "SELECT cents_to_eur(a) FROM t"\nudfs = ["cents_to_euro"]\n'
    )
    exit_code, out, err = run_cli("compile", "--json", str(path), cwd=tmp_path)
    assert exit_code == 2
    (issue,) = json.loads(out)["issues"]
    codes.expect(issue["code"], "MANIFEST_UNKNOWN_REFERENCE")
    assert issue["field_path"] == "views.v.udfs[0]"
    assert "did you mean 'cents_to_eur'?" in issue["message"]
    assert err.startswith("error[MANIFEST_UNKNOWN_REFERENCE] manifest.toml: views.v.udfs[0]: ")
