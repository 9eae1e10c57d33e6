"""Behaviours that a mutation run showed no test would notice breaking (issue 20).

Each test here was seen failing against the one-line mutation named in its docstring:

* the determinism subprocesses inherit the parent's ``PYTHONHASHSEED``;
* ``--planguard-execute`` executes although the policy failed;
* a cost limit's boundary (``growth > N`` turned into ``>=``), percentage limits and a
  zero baseline;
* the determinism comparison ignores the validation artifact bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_planguard.config import CostLimit
from tests.support.gate import FAST
from tests.support.shop import edit

ADAPTERS = '''
"""Adapters broken in one way each, for the determinism check."""
import dataclasses
import uuid

from pytest_planguard.reference_adapter import ReferenceAdapter


class SeededAdapter(ReferenceAdapter):
    """The manifest fingerprint depends on the interpreter's hash seed, nothing else."""

    def fingerprints(self, compiled, context, plan, validation):
        honest = super().fingerprints(compiled, context, plan, validation)
        return dataclasses.replace(honest, manifest=str(hash("planguard")))


class ArtifactAdapter(ReferenceAdapter):
    """Only the validation artifact differs from run to run."""

    def fingerprints(self, compiled, context, plan, validation):
        honest = super().fingerprints(compiled, context, plan, validation)
        artifact = honest.validation_artifact + uuid.uuid4().hex.encode()
        return dataclasses.replace(honest, validation_artifact=artifact)
'''

MARKED = """
import pytest


@pytest.mark.planguard_deterministic(
    runs={runs}, processes={processes}, manifest="manifest.toml", adapter="{adapter}"
)
def test_determinism():
    pass
"""


@pytest.fixture
def adapters(pytester: pytest.Pytester, shop: Path) -> Path:
    pytester.makepyfile(broken_adapters=ADAPTERS)
    return shop


def test_subprocesses_run_with_another_hash_seed_than_the_parent(
    pytester: pytest.Pytester, adapters: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation: ``_spawn`` leaves the parent's PYTHONHASHSEED in the child's environment.
    With the parent's seed pinned, only a child with another seed can tell."""
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    pytester.makepyfile(
        test_seeded=MARKED.format(runs=1, processes=1, adapter="broken_adapters:SeededAdapter")
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*planguard_deterministic: manifest fingerprint differs between runs",
            "*subprocess PYTHONHASHSEED=1: *",
        ]
    )


def test_twin_the_seeded_adapter_is_stable_within_one_process(
    pytester: pytest.Pytester, adapters: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    pytester.makepyfile(
        test_seeded=MARKED.format(runs=3, processes=0, adapter="broken_adapters:SeededAdapter")
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_difference_only_in_the_validation_artifact_is_nondeterministic(
    pytester: pytest.Pytester, adapters: Path
) -> None:
    """Mutation: the comparison skips the validation artifact bytes."""
    pytester.makepyfile(
        test_artifact=MARKED.format(runs=2, processes=0, adapter="broken_adapters:ArtifactAdapter")
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*planguard_deterministic: validation artifact bytes differs between runs"]
    )


@pytest.mark.parametrize("policy_fails", [True, False], ids=["policy fails", "twin: passes"])
def test_execute_writes_outputs_only_when_the_policy_passes(
    pytester: pytest.Pytester, shop: Path, policy_fails: bool
) -> None:
    """Mutation: ``--planguard-execute`` runs the pipeline whatever validation said."""
    if policy_fails:  # tables written by deltalake need writer version 2
        edit(shop / "manifest.toml", "max_writer_version = 7", "max_writer_version = 1")
    result = pytester.runpytest_subprocess(
        *FAST, "--planguard", "--planguard-execute", "--snapshot-update"
    )
    output = shop / "out" / "big_spenders" / "_delta_log"
    if policy_fails:
        result.stdout.fnmatch_lines(["*policy validation failed*"])
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert not output.exists(), "executed although the policy failed"
    else:
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        assert output.is_dir()


@pytest.mark.parametrize(
    ("limit", "before", "after", "allowed"),
    [
        # absolute: growth up to N is allowed, N + anything is not (the boundary itself)
        (CostLimit("operator_total", 5, None), 10, 15, True),
        (CostLimit("operator_total", 5, None), 10, 16, False),
        (CostLimit("operator_total", 0, None), 10, 10, True),
        (CostLimit("operator_total", 0, None), 10, 11, False),
        (CostLimit("operator_total", 5, None), 10, 3, True),  # shrinking is always fine
        # percentage of the baseline, boundary included
        (CostLimit("estimated_rows", None, 50), 10, 15, True),
        (CostLimit("estimated_rows", None, 50), 10, 15.01, False),
        (CostLimit("estimated_rows", None, 0), 10, 10, True),
        # a zero baseline: a percentage of nothing allows no growth ...
        (CostLimit("estimated_rows", None, 50), 0, 1, False),
        (CostLimit("estimated_rows", None, 50), 0, 0, True),
        # ... unless an absolute part allows it
        (CostLimit("estimated_rows", 5, 50), 0, 5, True),
        (CostLimit("estimated_rows", 5, 50), 0, 6, False),
        # both parts must hold
        (CostLimit("operator_total", 5, 10), 100, 105, True),
        (CostLimit("operator_total", 5, 10), 100, 106, False),
        (CostLimit("operator_total", 5, 10), 10, 15, False),
    ],
)
def test_cost_limit_boundaries(
    limit: CostLimit, before: float, after: float, allowed: bool
) -> None:
    """Mutations: ``growth > N`` -> ``>=``; the percentage or zero-baseline branches."""
    assert limit.allows(before, after) is allowed
