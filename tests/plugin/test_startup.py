"""Start-up cost and configuration surface of the plugin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.gate import FAST

HEAVY = ("datafusion", "deltalake", "pyarrow", "reference_impl", "sqlglot")

PROBE = """
import json, sys

def test_probe():
    loaded = sorted(m for m in {heavy!r} if m in sys.modules)
    with open("loaded.json", "w") as handle:
        json.dump(loaded, handle)
"""


def _loaded(pytester: pytest.Pytester) -> list[str]:
    return list(json.loads((pytester.path / "loaded.json").read_text()))


def test_inactive_plugin_imports_no_engine(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_probe=PROBE.format(heavy=HEAVY))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert _loaded(pytester) == []


def test_probe_sees_the_engine_once_the_gate_runs(pytester: pytest.Pytester, shop: Path) -> None:
    """Twin: the same probe reports the engine when --planguard drives a pipeline first."""
    pytester.makepyfile(test_zz_probe=PROBE.format(heavy=HEAVY))
    result = pytester.runpytest_subprocess(*FAST, "--planguard", "--snapshot-update")
    result.assert_outcomes(passed=9)
    assert {"datafusion", "deltalake", "reference_impl"} <= set(_loaded(pytester))


def test_markers_are_listed_with_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    text = result.stdout.str()
    for name in (
        "planguard_single_compile",
        "planguard_resolver_identity",
        "planguard_deterministic",
    ):
        assert f"@pytest.mark.{name}(" in text


def test_options_have_one_group_with_help(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest_subprocess("--help").stdout.str()
    assert "plan-regression gates and pipeline invariants:" in text
    for option in ("--planguard ", "--planguard-manifest=PATH", "--planguard-report=PATH"):
        assert option in text
    for key in ("planguard_manifests", "planguard_adapter", "planguard_compile_entrypoints"):
        assert key in text


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("planguard_single_compile(max_compile=1)", "has no argument 'max_compile'"),
        ("planguard_single_compile(max_compiles=-1)", "expected a whole number >= 0"),
        ("planguard_resolver_identity('registration')", "takes keyword arguments only"),
        ("planguard_deterministic(runs=0)", "expected a whole number >= 1"),
    ],
)
def test_marker_arguments_are_checked(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_marked():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*error[[]MARKER_ARGUMENT[]]*{message}*"])


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nplanguard_gate = semantic = maybe\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*error[[]CONFIG_ERROR[]] planguard_gate*"])
    assert "Traceback" not in result.stderr.str()


def test_ini_keys_are_read_from_pyproject(pytester: pytest.Pytester) -> None:
    """planguard_compile_entrypoints from [tool.pytest.ini_options] redirects the counter."""
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        planguard_compile_entrypoints = ["mypipe:compile"]
        """
    )
    pytester.makepyfile(
        mypipe="""
        def compile(path):
            return path

        def run(path):
            compile(path)
            compile(path)
        """,
        test_user="""
        import pytest
        import mypipe

        @pytest.mark.planguard_single_compile
        def test_twice():
            mypipe.run("m")
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*2 compiles in one test*", "*compile #2: mypipe:compile*"])
