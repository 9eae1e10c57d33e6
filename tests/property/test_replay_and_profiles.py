"""Replayable failures and the ci/dev/nightly settings profiles, through real pytest runs.

A deliberately failing property must leave exactly one case directory (the final, shrunk
example) that ``planguard compile`` accepts, and name it in the failure message.  The
profiles must be selectable with ``--hypothesis-profile`` and the environment, and
registering them must not import Hypothesis before it is needed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli

# A tiny search space: shrinking a full-size manifest takes minutes, not what is tested here.
TINY = 'max_datasets=1, max_columns=1, max_rows=0, udfs=False, manifest_formats=("toml",)'
REGISTER = (
    "from pytest_planguard.hypothesis_profiles import register_profiles\nregister_profiles()\n"
)

FAILING_PROPERTY = """
from hypothesis import Phase, given, settings
from pytest_planguard.strategies import {strategy}, replay_on_failure


@settings(phases={phases})
@given(case={strategy}({arguments}))
def test_fails(case):
    with replay_on_failure(case):
        assert {condition}
"""


def _failing_run(pytester: pytest.Pytester, **fields: str) -> tuple[pytest.RunResult, Path]:
    pytester.makeconftest(REGISTER)
    pytester.makepyfile(test_fuzz=FAILING_PROPERTY.format(**fields))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hypothesis-profile=ci")
    result.assert_outcomes(failed=1)
    written = sorted((pytester.path / ".planguard-failures").iterdir())
    assert len(written) == 1, written  # only the final, shrunk example
    return result, written[0]


def test_a_failing_valid_case_is_written_for_replay(pytester: pytest.Pytester) -> None:
    result, directory = _failing_run(
        pytester,
        strategy="manifests",
        arguments=TINY + ", max_views=3",
        condition="len(case.views) < 2",
        phases="tuple(Phase)",
    )
    result.stdout.fnmatch_lines(
        [f"*failing case written to {directory}*replay it with: planguard compile {directory}*"]
    )
    status, out, err = run_cli("compile", str(directory))
    assert status == 0, err
    assert out.count("\n  ") == 2  # the shrunk case: exactly two views
    assert run_cli("validate", str(directory), "--mode", "warn")[0] == 0


def test_a_failing_hostile_case_is_written_for_replay(pytester: pytest.Pytester) -> None:
    result, directory = _failing_run(
        pytester,
        strategy="hostile_manifests",
        arguments='mutations=("cycle",)',
        condition="False",
        phases="(Phase.generate,)",  # replay, not shrinking, is what this test is about
    )
    result.stdout.fnmatch_lines([f"*planguard compile {directory}*"])
    status, _, err = run_cli("compile", str(directory))
    assert status == 2
    assert err.startswith("error[MANIFEST_CYCLE] ")


def test_a_passing_property_writes_nothing(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(REGISTER)
    pytester.makepyfile(
        test_fuzz=FAILING_PROPERTY.format(
            strategy="manifests",
            arguments="max_views=1",
            condition="case.views",
            phases="tuple(Phase)",
        )
    )
    pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--hypothesis-profile=ci"
    ).assert_outcomes(passed=1)
    assert not (pytester.path / ".planguard-failures").exists()


def test_replay_outside_hypothesis_notes_the_exception(tmp_path: Path) -> None:
    from types import MappingProxyType

    from pytest_planguard.strategies import HostileCase, replay_on_failure

    case = HostileCase(
        mutation="cycle",
        description="v_1 reads itself",
        expected_codes=frozenset({"MANIFEST_CYCLE"}),
        manifest_name="manifest.toml",
        manifest=b'[views.v_1]\nsql = "SELECT * FROM v_1"\n',
        files=MappingProxyType({}),
    )
    with pytest.raises(AssertionError) as raised, replay_on_failure(case, tmp_path):
        raise AssertionError("boom")
    (directory,) = tmp_path.iterdir()
    assert any(str(directory) in note for note in raised.value.__notes__)
    assert (directory / case.manifest_name).read_bytes() == case.manifest


PRINT_PROFILE = """
from hypothesis import settings


def test_profile():
    current = settings()
    print("PROFILE", settings.get_current_profile_name(), current.max_examples,
          current.derandomize, current.database is None, current.deadline)
"""


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--hypothesis-profile=nightly"], {}, "*PROFILE nightly 1000 False False None"),
        (["--hypothesis-profile=dev"], {"CI": "true"}, "*PROFILE dev 50 False False 0:00:02"),
        ([], {"CI": "true"}, "*PROFILE ci 20 True True 0:00:05"),
        ([], {"PLANGUARD_HYPOTHESIS_PROFILE": "nightly"}, "*PROFILE nightly 1000 *"),
        ([], {}, "*PROFILE default 100 False False 0:00:00.200000"),
    ],
)
def test_profile_selection(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    for name in ("CI", "PLANGUARD_HYPOTHESIS_PROFILE", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makeconftest(REGISTER)
    pytester.makepyfile(test_profile=PRINT_PROFILE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([expected])


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environ = {
        k: v for k, v in os.environ.items() if k not in ("CI", "PLANGUARD_HYPOTHESIS_PROFILE")
    }
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
    )


@pytest.mark.parametrize(
    "module",
    [
        "pytest_planguard.strategies.profiles",  # what the plugin imports at start-up on CI
        "pytest_planguard.hypothesis_profiles",  # the old path, named in the README
        "pytest_planguard.strategies",  # the facade imports its modules on first use
    ],
)
def test_importing_the_profiles_module_does_not_import_hypothesis(module: str) -> None:
    done = _python(
        f"""
        import sys
        import {module}
        assert "hypothesis" not in sys.modules, "imported hypothesis"
        print("ok")
        """
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_register_is_idempotent_and_keeps_a_user_profile() -> None:
    done = _python(
        """
        from hypothesis import settings
        settings.register_profile("dev", max_examples=7)
        from pytest_planguard.hypothesis_profiles import register_profiles
        register_profiles()
        ci = settings.get_profile("ci")
        register_profiles()
        assert settings.get_profile("ci") is ci
        assert settings.get_profile("dev").max_examples == 7
        assert settings.get_profile("nightly").max_examples == 1000
        assert ci.derandomize and ci.database is None and ci.max_examples == 20
        print("ok")
        """
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_an_unknown_profile_in_the_environment_is_a_coded_error() -> None:
    done = _python(
        """
        from pytest_planguard.errors import PlanguardError
        from pytest_planguard.hypothesis_profiles import register_profiles
        try:
            register_profiles()
        except PlanguardError as exc:
            print(exc.code)
        """,
        PLANGUARD_HYPOTHESIS_PROFILE="bogus",
    )
    assert done.stdout.strip() == "CONFIG_ERROR", done.stderr


@pytest.fixture
def _restore_profile() -> Iterator[None]:
    from hypothesis import settings

    name = settings.get_current_profile_name()
    yield
    settings.load_profile(name)


@pytest.mark.usefixtures("_restore_profile")
def test_scaled_examples_follows_the_active_profile() -> None:
    from hypothesis import settings

    from pytest_planguard.hypothesis_profiles import register_profiles, scaled_examples

    register_profiles()
    settings.load_profile("ci")
    assert scaled_examples(0.5) == 10
    assert scaled_examples(0.01, minimum=5) == 5
    settings.load_profile("nightly")
    assert scaled_examples(0.5) == 500
