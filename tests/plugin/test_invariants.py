"""The three invariant markers on the reference pipeline and on deliberately broken ones.

Every check runs twice: it passes on the reference pipeline and fails, with the promised
message, on a pipeline broken in exactly the way the check exists to catch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BROKEN = '''
"""Deliberately broken pipelines (each violates one invariant)."""
import dataclasses

import msgspec

from reference_impl import run_pipeline
from reference_impl.engine.runtime import build_runtime_profile
from reference_impl.engine.session import build_semantic_execution_context
from reference_impl.execution import execute_plan
from reference_impl.relspec.authority import build_execution_authority
from reference_impl.relspec.execution_plan import compile_execution_plan
from reference_impl.relspec.scan_overrides import apply_scan_unit_overrides
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
from pytest_planguard.reference_adapter import ReferenceAdapter


def run_compiling_twice(path):
    """Validates the manifest with a compile of its own, then runs (which compiles again)."""
    compile_semantic_program(load_manifest(path))
    return run_pipeline(path)


def run_swapping_resolver(path):
    """Registers with the manifest's resolver but executes with a copy of it."""
    manifest = compile_semantic_program(load_manifest(path))
    authority = build_execution_authority(
        build_semantic_execution_context(manifest, build_runtime_profile(manifest))
    )
    plan = compile_execution_plan(authority)
    semantic = authority.semantic_context
    overrides = plan.scan_policy_overrides_by_key
    apply_scan_unit_overrides(semantic.session, semantic.dataset_resolver, overrides)
    stray = msgspec.structs.replace(semantic.dataset_resolver)
    swapped = dataclasses.replace(
        authority, semantic_context=dataclasses.replace(semantic, dataset_resolver=stray)
    )
    return execute_plan(plan, swapped)


class LeakyAdapter(ReferenceAdapter):
    """Fingerprints the manifest over a set of view names: iteration order leaks in."""

    def fingerprints(self, compiled, context, plan, validation):
        honest = super().fingerprints(compiled, context, plan, validation)
        leaked = "|".join({view.name for view in compiled.views})
        return dataclasses.replace(honest, manifest=leaked)
'''


@pytest.fixture
def broken(pytester: pytest.Pytester, shop: Path) -> Path:
    pytester.makepyfile(broken_pipeline=BROKEN)
    return shop


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


# ---------------------------------------------------------------- single compile


def test_single_compile_passes_on_one_run(pytester: pytest.Pytester, broken: Path) -> None:
    pytester.makepyfile(
        """
        import pytest
        from reference_impl import run_pipeline

        @pytest.mark.planguard_single_compile(max_compiles=1)
        def test_once():
            run_pipeline("manifest.toml")
        """
    )
    _run(pytester).assert_outcomes(passed=1)


def test_single_compile_fails_on_two_runs(pytester: pytest.Pytester, broken: Path) -> None:
    pytester.makepyfile(
        """
        import pytest
        from reference_impl import run_pipeline

        @pytest.mark.planguard_single_compile(max_compiles=1)
        def test_twice():
            run_pipeline("manifest.toml")
            run_pipeline("manifest.toml")
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*planguard_single_compile: 2 compiles in one test, at most 1 allowed",
            "*compile #1: reference_impl.semantics.compile:compile_semantic_program",
            "*test_single_compile_fails_on_two_runs.py:6 in test_twice",
            "*compile #2: reference_impl.semantics.compile:compile_semantic_program",
            "*test_single_compile_fails_on_two_runs.py:7 in test_twice",
        ]
    )


def test_single_compile_catches_a_pipeline_that_compiles_twice(
    pytester: pytest.Pytester, broken: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import broken_pipeline

        @pytest.mark.planguard_single_compile
        def test_run():
            broken_pipeline.run_compiling_twice("manifest.toml")
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*2 compiles in one test*", "*broken_pipeline.py:* in run_compiling_twice"]
    )


def test_compile_counter_fixture(pytester: pytest.Pytester, broken: Path) -> None:
    pytester.makepyfile(
        """
        from reference_impl import run_pipeline

        def test_counts(planguard_compile_counter):
            run_pipeline("manifest.toml", execute=False)
            assert planguard_compile_counter.count == 1
            # the innermost caller outside the pipeline's own stage chain is the test
            stack = planguard_compile_counter.calls[0].stack
            outside = [frame for frame in stack if "reference_impl" not in frame]
            assert "test_counts" in outside[-1], stack
        """
    )
    _run(pytester).assert_outcomes(passed=1)


# ---------------------------------------------------------------- resolver identity


def test_resolver_identity_holds_for_the_reference_run(
    pytester: pytest.Pytester, broken: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from reference_impl import run_pipeline

        @pytest.mark.planguard_resolver_identity
        def test_run():
            assert run_pipeline("manifest.toml").execution is not None
        """
    )
    _run(pytester).assert_outcomes(passed=1)


def test_resolver_identity_catches_a_swapped_resolver(
    pytester: pytest.Pytester, broken: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import broken_pipeline

        STAGES = ["registration", "scan_override", "execution"]

        @pytest.mark.planguard_resolver_identity(stages=STAGES)
        def test_run():
            broken_pipeline.run_swapping_resolver("manifest.toml")
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*stage 'execution' received resolver 0x* (DatasetBindings), a different object "
            "from the 0x* that stage 'registration' received",
            "*identities seen per stage:",
            "*registration*register_dataset(resolver): 0x*",
            "*scan_override*apply_scan_unit_overrides(resolver): 0x*",
            "*execution*execute_plan(authority.semantic_context.dataset_resolver): 0x*",
            "*stray object 0x* was created at:",
            "*broken_pipeline.py:*",
        ]
    )


def test_resolver_identity_fails_when_a_stage_is_never_reached(
    pytester: pytest.Pytester, broken: Path
) -> None:
    """No vacuous pass: a run that stops before execution cannot prove the invariant."""
    pytester.makepyfile(
        """
        import pytest
        from reference_impl import run_pipeline

        @pytest.mark.planguard_resolver_identity
        def test_plan_only():
            run_pipeline("manifest.toml", execute=False)

        @pytest.mark.planguard_resolver_identity(stages=["registration"])
        def test_registration_only():
            run_pipeline("manifest.toml", execute=False)
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        ["*stage(s) never reached during the test: scan_override, execution*"]
    )


def test_resolver_spy_fixture_in_a_users_test(pytester: pytest.Pytester, broken: Path) -> None:
    """The public ``planguard_resolver_spy`` fixture, asserted by a user's own test: one
    resolver through every stage of the reference run; the twin sees the stray one."""
    pytester.makepyfile(
        """
        import broken_pipeline
        from reference_impl import run_pipeline

        def test_one_resolver(planguard_resolver_spy):
            run_pipeline("manifest.toml")
            identities = planguard_resolver_spy.identities()
            assert set(identities) == {"registration", "scan_override", "execution"}
            assert {len(ids) for ids in identities.values()} == {1}, identities
            assert len({ids[0] for ids in identities.values()}) == 1, identities
            assert planguard_resolver_spy.failure() is None

        def test_swapped_resolver(planguard_resolver_spy):
            broken_pipeline.run_swapping_resolver("manifest.toml")
            stray = planguard_resolver_spy.stray()
            assert stray is None, planguard_resolver_spy.failure()
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*stage 'execution' received resolver 0x* (DatasetBindings), a different object "
            "from the 0x* that stage 'registration' received",
            "FAILED test_resolver_spy_fixture_in_a_users_test.py::test_swapped_resolver*",
        ]
    )


# ---------------------------------------------------------------- determinism


def test_determinism_holds_for_the_reference_pipeline(
    pytester: pytest.Pytester, broken: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.planguard_deterministic(runs=2, processes=2, manifest="manifest.toml")
        def test_deterministic():
            pass

        @pytest.mark.planguard_deterministic(runs=2, processes=1)
        def test_with_fixture(planguard_determinism):
            report = planguard_determinism.check("manifest.toml")
            assert [label for label, _ in report.runs] == [
                "in-process run 1", "in-process run 2", "subprocess PYTHONHASHSEED=1"
            ]
        """
    )
    _run(pytester).assert_outcomes(passed=2)


def test_determinism_catches_set_order_in_a_fingerprint(
    pytester: pytest.Pytester, broken: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.planguard_deterministic(
            runs=1, processes=2, manifest="manifest.toml", adapter="broken_pipeline:LeakyAdapter"
        )
        def test_leaky():
            pass
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*planguard_deterministic: manifest fingerprint differs between runs",
            "*in-process run 1: *",
            "*subprocess PYTHONHASHSEED=*: *",
        ]
    )


def test_invariant_markers_under_xdist(pytester: pytest.Pytester, broken: Path) -> None:
    pytester.makepyfile(
        """
        import pytest
        import broken_pipeline
        from reference_impl import run_pipeline

        @pytest.mark.planguard_single_compile
        @pytest.mark.planguard_resolver_identity
        def test_good():
            run_pipeline("manifest.toml")

        @pytest.mark.planguard_single_compile
        def test_twice():
            broken_pipeline.run_compiling_twice("manifest.toml")

        @pytest.mark.planguard_resolver_identity
        def test_swapped():
            broken_pipeline.run_swapping_resolver("manifest.toml")
        """
    )
    result = _run(pytester, "-n", "2")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random(
        ["*2 compiles in one test*", "*stage 'execution' received resolver*"]
    )
