"""Trust comes from the person running the tool, never from the manifest (README, "Security
rules", "Code is imported only from trusted places").

A manifest that still sets ``runtime.trusted_modules`` is refused at load, before any
import: ``os:abort`` cannot kill the process and a ``shutil:rmtree`` bootstrap cannot
delete the manifest's directory.  The allowlist is given by ``planguard --trust-module``,
the ``PLANGUARD_TRUSTED_MODULES`` environment variable (comma-separated), or the pytest ini
key ``planguard_trusted_modules`` / ``--planguard-trust-module``; the determinism
subprocesses receive the same allowlist.  Each test has its twin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

# Imported at module import, never inside a test: pytester restores sys.modules after each
# test, and deltalake's native module panics when it is initialized twice.
import deltalake
import pyarrow as pa
import pytest

from pytest_planguard.cli import main
from reference_impl.errors import ReferenceImplError
from reference_impl.pipeline import run_pipeline
from tests.hostile.helpers import ERROR_LINE, assert_no_traceback, shown
from tests.support.cli import run_planguard
from tests.support.codes import CodeRecorder

ENV = "PLANGUARD_TRUSTED_MODULES"
MODULE = "planguard_trust_spy"
TABLE = '[datasets.t]\nformat = "delta"\nlocation = "t"\n'
CLEAN = (
    "[policy]\nsmall_input_rows = 0\n"
    "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n"
)
SPY = """
from pathlib import Path

import pyarrow as pa
from datafusion import udf

Path({marker!r}).write_text("imported")
spy = udf(lambda values: values, [pa.int64()], pa.int64(), "immutable", name="spy")
"""
SPY_MANIFEST = (
    TABLE
    + CLEAN
    + '[views.v]\nsql = "SELECT spy(a) AS a FROM t"\nudfs = ["spy"]\n'
    + f'[udfs.spy]\nprovider = "{MODULE}:spy"\n'
)


def project(root: Path, text: str, *, table: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if table:
        deltalake.write_deltalake(str(root / "t"), pa.table({"a": [1, 2, 3]}))
    path = root / "manifest.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def planguard(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A real ``planguard`` process: a provider that aborts cannot take the test with it."""
    return run_planguard(*args, cwd=cwd, env=env, unset=(ENV,))


@pytest.fixture
def spy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A provider module importable from sys.path (and PYTHONPATH), outside the manifest's
    directory; returns (its directory, the marker file its import writes)."""
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "imported.txt"
    (site / f"{MODULE}.py").write_text(SPY.format(marker=str(marker)), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    monkeypatch.delenv(ENV, raising=False)
    return site, marker


def first_error(stderr: str) -> tuple[str, str]:
    match = ERROR_LINE.search(stderr)
    assert match is not None, stderr
    return match["code"], match["rest"]


# -- a manifest cannot grant itself trust ---------------------------------------------------


@pytest.mark.produces_codes("MANIFEST_UNKNOWN_KEY")
@pytest.mark.parametrize("command", ["validate", "run", "compile"])
def test_a_manifest_trusting_os_cannot_abort_the_process(
    tmp_path: Path, command: str, codes: CodeRecorder
) -> None:
    root = tmp_path / "project"
    path = project(
        root,
        TABLE + '[udfs.abort]\nprovider = "os:abort"\n' + '[runtime]\ntrusted_modules = ["os"]\n',
    )
    result = planguard(command, path, cwd=tmp_path)
    assert result.returncode == 2, (result.returncode, result.stderr)  # not -6 (SIGABRT)
    assert_no_traceback(result.stdout, result.stderr)
    code, rest = first_error(result.stderr)
    codes.expect(code, "MANIFEST_UNKNOWN_KEY", result.stderr)
    assert rest.startswith(f"{shown(path, tmp_path)}: runtime.trusted_modules: "), rest
    for hint in ("--trust-module", "planguard_trusted_modules", ENV):
        assert hint in rest, rest


@pytest.mark.produces_codes("MANIFEST_UNKNOWN_KEY")
def test_a_manifest_trusting_shutil_cannot_delete_its_directory(
    tmp_path: Path, codes: CodeRecorder
) -> None:
    root = tmp_path / "project"
    path = project(
        root,
        '[project]\nbootstrap = "shutil:rmtree"\n'
        + '[datasets.t]\nformat = "delta"\nlocation = "missing"\n'
        + '[runtime]\ntrusted_modules = ["shutil"]\n',
    )
    result = planguard("validate", path, cwd=tmp_path)
    assert root.is_dir(), "the bootstrap hook deleted the manifest directory"
    assert path.is_file()
    assert result.returncode == 2, (result.returncode, result.stderr)
    code, rest = first_error(result.stderr)
    codes.expect(code, "MANIFEST_UNKNOWN_KEY", result.stderr)
    assert rest.startswith(f"{shown(path, tmp_path)}: runtime.trusted_modules: "), rest

    # twin: the same bootstrap without the key is still refused, as untrusted, before import
    path.write_text(path.read_text().split("[runtime]")[0], encoding="utf-8")
    result = planguard("validate", path, cwd=tmp_path)
    assert root.is_dir()
    assert (result.returncode, first_error(result.stderr)[0]) == (2, "UDF_PROVIDER_UNTRUSTED")


def test_a_json_manifest_cannot_grant_itself_trust_either(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    path = root / "manifest.json"
    path.write_text('{"runtime": {"trusted_modules": ["os"]}}', encoding="utf-8")
    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(path, execute=False, trusted_modules=("os",))
    assert (info.value.code, info.value.field_path) == (
        "MANIFEST_UNKNOWN_KEY",
        "runtime.trusted_modules",
    )


# -- the person running the tool grants it --------------------------------------------------


@pytest.mark.produces_codes("UDF_PROVIDER_UNTRUSTED")
def test_trust_from_the_command_line(
    tmp_path: Path,
    spy: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    codes: CodeRecorder,
) -> None:
    _, marker = spy
    path = project(tmp_path / "project", SPY_MANIFEST)
    monkeypatch.chdir(tmp_path)

    # twin first: the allowlist names another module; the provider is refused before import
    assert main(["validate", str(path), "--trust-module", "json"]) == 2
    code, rest = first_error(capsys.readouterr().err)
    codes.expect(code, "UDF_PROVIDER_UNTRUSTED")
    assert rest.startswith(f"{shown(path, tmp_path)}: udfs.spy.provider: "), rest
    assert "--trust-module" in rest, rest
    assert not marker.exists()
    assert MODULE not in sys.modules

    assert main(["validate", str(path), "--trust-module", "json", "--trust-module", MODULE]) == 0
    assert marker.read_text() == "imported"
    assert "0 error(s)" in capsys.readouterr().out


@pytest.mark.produces_codes("UDF_PROVIDER_IMPORT_ERROR")
def test_a_trusted_module_that_does_not_exist_is_an_import_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], codes: CodeRecorder
) -> None:
    path = project(
        tmp_path / "project", TABLE + '[udfs.f]\nprovider = "planguard_absent_pkg.udfs:f"\n'
    )
    assert main(["validate", "--trust-module", "planguard_absent_pkg", str(path)]) == 2
    code, rest = first_error(capsys.readouterr().err)
    codes.expect(code, "UDF_PROVIDER_IMPORT_ERROR")
    assert rest.startswith(f"{path}: udfs.f.provider: "), rest


def test_trust_from_the_command_line_on_compile_plan_and_run(
    tmp_path: Path, spy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = project(
        tmp_path / "project", SPY_MANIFEST + '[outputs.o]\nview = "v"\nlocation = "out"\n'
    )
    assert main(["compile", "--plan", str(path)]) == 2
    assert first_error(capsys.readouterr().err)[0] == "UDF_PROVIDER_UNTRUSTED"
    assert main(["compile", "--plan", "--trust-module", MODULE, str(path)]) == 0
    assert main(["run", str(path)]) == 2
    assert not (path.parent / "out").exists()
    assert main(["run", "--trust-module", MODULE, str(path)]) == 0
    assert (path.parent / "out" / "_delta_log").is_dir()


def test_trust_from_the_environment(tmp_path: Path, spy: tuple[Path, Path]) -> None:
    site, marker = spy
    path = project(tmp_path / "project", SPY_MANIFEST)
    env = {"PYTHONPATH": str(site)}
    refused = planguard("validate", path, cwd=tmp_path, env={**env, ENV: "json, shutil"})
    assert (refused.returncode, first_error(refused.stderr)[0]) == (2, "UDF_PROVIDER_UNTRUSTED")
    assert not marker.exists()

    accepted = planguard("validate", path, cwd=tmp_path, env={**env, ENV: f"json, {MODULE},"})
    assert accepted.returncode == 0, accepted.stderr
    assert marker.read_text() == "imported"


@pytest.mark.produces_codes("CONFIG_ERROR")
def test_a_malformed_allowlist_entry_is_a_usage_error(
    tmp_path: Path,
    spy: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    codes: CodeRecorder,
) -> None:
    path = project(tmp_path / "project", SPY_MANIFEST)
    with pytest.raises(SystemExit) as info:
        main(["validate", str(path), "--trust-module", "../evil"])
    assert info.value.code == 2
    assert "error[USAGE]" in capsys.readouterr().err
    monkeypatch.setenv(ENV, f"{MODULE};rm -rf")
    assert main(["validate", str(path)]) == 2
    code, rest = first_error(capsys.readouterr().err)
    codes.expect(code, "CONFIG_ERROR")
    assert rest.startswith(f"{ENV}: "), rest
    assert not spy[1].exists()


def test_a_dotted_entry_trusts_that_module_and_below_only(
    tmp_path: Path, spy: tuple[Path, Path]
) -> None:
    path = project(tmp_path / "project", SPY_MANIFEST)
    with pytest.raises(ReferenceImplError) as info:
        run_pipeline(path, execute=False, trusted_modules=(f"{MODULE}.sub", f"{MODULE}x"))
    assert info.value.code == "UDF_PROVIDER_UNTRUSTED"
    assert not spy[1].exists()
    run = run_pipeline(path, execute=False, trusted_modules=(MODULE,))
    assert run.authority.semantic_context.registered_udfs == ("spy",)


def test_trust_from_the_pytest_ini_reaches_the_determinism_subprocesses(
    pytester: pytest.Pytester, spy: tuple[Path, Path]
) -> None:
    _, marker = spy
    path = project(pytester.path / "project", SPY_MANIFEST)
    fast = ("-p", "no:cacheprovider", "--planguard-runs", "1", "--planguard-processes", "1")
    ini = f"[pytest]\nplanguard_manifests = {path}\nplanguard_snapshot_dir = snaps\n"

    # twin: without trust every item of the manifest fails with the coded error
    pytester.makeini(ini)
    refused = pytester.runpytest_subprocess(*fast, "--planguard", "--snapshot-update")
    assert refused.ret == 2  # bad input, found after collection
    refused.stdout.fnmatch_lines(["*error[[]UDF_PROVIDER_UNTRUSTED[]]*udfs.spy.provider*"])
    assert not marker.exists()

    pytester.makeini(ini + f"planguard_trusted_modules =\n    json\n    {MODULE}\n")
    accepted = pytester.runpytest_subprocess(*fast, "--planguard", "--snapshot-update")
    accepted.assert_outcomes(passed=5)  # determinism ran a subprocess: it was trusted too
    assert marker.read_text() == "imported"
    assert (pytester.path / "snaps").is_dir()

    # the option works alike
    pytester.makeini(ini)
    again = pytester.runpytest_subprocess(*fast, "--planguard", "--planguard-trust-module", MODULE)
    again.assert_outcomes(passed=5)


def test_the_schema_has_no_trust_key(capsys: pytest.CaptureFixture[str]) -> None:
    """``planguard schema`` no longer offers ``runtime.trusted_modules`` to editors."""
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    runtime = schema["$defs"]["RuntimeSpec"]
    assert "retain_plans" in runtime["properties"]
    assert "trusted_modules" not in runtime["properties"]
    assert runtime.get("additionalProperties") is False
