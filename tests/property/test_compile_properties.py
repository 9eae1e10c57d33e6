"""Engine-free properties of load + semantic compile, over generated manifests.

* a valid case always compiles, and the compiler finds exactly the references the
  generator put in each view, in a topological order;
* a hostile case fails only with one of the coded manifest errors it names (never any
  other exception), and ``planguard compile`` exits 2 with that code and no traceback;
* the fingerprint does not change when keys, declarations and order-free lists are
  reordered, or when the same manifest is written as JSON instead of TOML.

Each check is a function that takes the compile step as a parameter, so that its twin
test can feed it a broken compiler and watch it fail.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_planguard.hypothesis_profiles import scaled_examples
from pytest_planguard.strategies import (
    MUTATIONS,
    HostileCase,
    ManifestCase,
    TableCase,
    ViewCase,
    hostile_manifests,
    manifest_case,
    manifests,
    replay_on_failure,
)
from reference_impl.errors import ReferenceImplError
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
from reference_impl.semantics.program import SemanticProgramManifest
from tests.support.cli import run_cli

Compile = Callable[[Path], SemanticProgramManifest]

# Generating a manifest draws a few hundred values; on a loaded 2-core CI machine that
# can trip the too_slow health check although each example stays well under a second.
GENERATION = [HealthCheck.too_slow]


def reference_compile(path: Path) -> SemanticProgramManifest:
    return compile_semantic_program(load_manifest(path))


# ------------------------------------------------------------------------- checks


def check_valid_compiles(case: ManifestCase, path: Path, compile_: Compile) -> None:
    manifest = compile_(path)
    assert len(manifest.fingerprint) == 64
    compiled = {view.name: view for view in manifest.views}
    assert set(compiled) == {view.name for view in case.views}
    for view in case.views:
        assert compiled[view.name].depends_on == view.depends_on, view.sql
    position = {name: index for index, name in enumerate(manifest.view_names())}
    for view in manifest.views:
        for dependency in view.view_dependencies:
            assert position[dependency] < position[view.name], (dependency, view.name)


def check_hostile_fails_with_code(case: HostileCase, path: Path, compile_: Compile) -> str:
    with pytest.raises(ReferenceImplError) as raised:
        compile_(path)
    code = str(raised.value.code)
    assert code in case.expected_codes, (
        f"{case.mutation} ({case.description}): got {code} ({raised.value.message}), "
        f"expected one of {sorted(case.expected_codes)}"
    )
    return code


def check_cli_rejects(path: Path, code: str) -> None:
    status, _, err = run_cli("compile", str(path))
    assert status == 2, err
    assert err.startswith(f"error[{code}] "), err
    assert "Traceback" not in err
    assert "INTERNAL_ERROR" not in err


def check_same_fingerprint(first: Path, second: Path, compile_: Compile) -> None:
    assert compile_(first).fingerprint == compile_(second).fingerprint


# --------------------------------------------------------------------- regressions

SELECT_INTO = HostileCase(
    mutation="not_a_query",
    description="SELECT ... INTO creates a table as a side effect of planning it",
    expected_codes=frozenset({"MANIFEST_NOT_A_QUERY"}),
    manifest_name="manifest.toml",
    manifest=b'[datasets.t_1]\nformat = "parquet"\nlocation = "data/t_1"\n\n'
    b'[views.v_1]\nsql = "SELECT * INTO evil FROM t_1"\n',
    files=MappingProxyType({}),
)
SELECT_INTO_IN_CTE = HostileCase(
    mutation="not_a_query",
    description="SELECT ... INTO inside a CTE",
    expected_codes=frozenset({"MANIFEST_NOT_A_QUERY", "MANIFEST_SQL_SYNTAX"}),
    manifest_name="manifest.json",
    manifest=b'{"datasets": {"t_1": {"format": "delta", "location": "t"}}, "views": {"v_1": '
    b'{"sql": "WITH x AS (SELECT * INTO evil FROM t_1) SELECT * FROM x"}}}',
    files=MappingProxyType({}),
)


EMPTY_NAMES = HostileCase(
    mutation="unicode",
    description="a view named '' and an output writing it",
    expected_codes=frozenset({"MANIFEST_INVALID_VALUE"}),
    manifest_name="manifest.toml",
    manifest=b'[datasets.t_0]\nformat = "parquet"\nlocation = ""\n\n'
    b'[views.""]\nsql = "SELECT * FROM t_0"\n\n[outputs.t_0]\nview = ""\nlocation = "out/t_0"\n',
    files=MappingProxyType({}),
)
"""Fuzzing found it: an empty string where a non-empty one is required (a location, an
output's view) was reported as MANIFEST_TYPE_ERROR although its type is right."""


# ----------------------------------------------------------------------- properties


@settings(max_examples=scaled_examples(2.0), suppress_health_check=GENERATION)
@given(case=manifests())
def test_valid_manifest_compiles(case: ManifestCase, case_dir: Callable[[], Path]) -> None:
    path = case.write(case_dir(), data=False)
    with replay_on_failure(case):
        check_valid_compiles(case, path, reference_compile)


@settings(max_examples=scaled_examples(3.0), suppress_health_check=GENERATION)
@given(case=hostile_manifests())
@example(case=SELECT_INTO)
@example(case=SELECT_INTO_IN_CTE)
@example(case=EMPTY_NAMES)
def test_hostile_manifest_fails_only_with_its_code(
    case: HostileCase, case_dir: Callable[[], Path]
) -> None:
    path = case.write(case_dir())
    with replay_on_failure(case):
        code = check_hostile_fails_with_code(case, path, reference_compile)
        check_cli_rejects(path, code)


@pytest.mark.parametrize("mutation", MUTATIONS)
@settings(max_examples=scaled_examples(0.25, minimum=3), suppress_health_check=GENERATION)
@given(data=st.data())
def test_each_mutation_fails_only_with_its_code(
    mutation: str, data: st.DataObject, case_dir: Callable[[], Path]
) -> None:
    case = data.draw(hostile_manifests(mutations=(mutation,)), label="case")
    path = case.write(case_dir())
    with replay_on_failure(case):
        code = check_hostile_fails_with_code(case, path, reference_compile)
        check_cli_rejects(path, code)


@settings(max_examples=scaled_examples(2.0), suppress_health_check=GENERATION)
@given(case=manifests(), rng=st.randoms(use_true_random=False), as_json=st.booleans())
def test_fingerprint_ignores_key_and_declaration_order(
    case: ManifestCase, rng: random.Random, as_json: bool, case_dir: Callable[[], Path]
) -> None:
    twin = case.reordered(rng).with_manifest_format("json" if as_json else "toml")
    first = case.write(case_dir(), data=False)
    second = twin.write(case_dir(), data=False)
    with replay_on_failure(case):
        check_same_fingerprint(first, second, reference_compile)


# ---------------------------------------------------------- the checks can fail


def _small_case() -> ManifestCase:
    tables = [
        TableCase(name="t_1", format="parquet", location="data/t_1", columns=(), rows=()),
        TableCase(name="t_2", format="delta", location="data/t_2", columns=(), rows=()),
    ]
    views = [
        ViewCase(name="v_1", sql="SELECT * FROM t_1", depends_on=("t_1",)),
        ViewCase(name="v_2", sql="SELECT * FROM v_1, t_2", depends_on=("t_2", "v_1")),
    ]
    return manifest_case(tables, views, sections={"runtime": {"retain_plans": ["P2", "P0"]}})


def test_valid_check_fails_when_a_reference_is_missed(tmp_path: Path) -> None:
    case = _small_case()
    path = case.write(tmp_path, data=False)
    check_valid_compiles(case, path, reference_compile)

    def forgetful(p: Path) -> SemanticProgramManifest:
        import msgspec

        manifest = reference_compile(p)
        views = tuple(
            msgspec.structs.replace(v, depends_on=v.depends_on[:-1]) for v in manifest.views
        )
        return msgspec.structs.replace(manifest, views=views)

    with pytest.raises(AssertionError):
        check_valid_compiles(case, path, forgetful)


def test_hostile_check_fails_on_uncoded_crash_wrong_code_or_acceptance(tmp_path: Path) -> None:
    path = SELECT_INTO.write(tmp_path)

    def crashes(p: Path) -> SemanticProgramManifest:
        raise KeyError("views")

    def wrong_code(p: Path) -> SemanticProgramManifest:
        from reference_impl.errors import ErrorCode

        raise ReferenceImplError(ErrorCode.MANIFEST_SQL_SYNTAX, "nope")

    def accepts(p: Path) -> SemanticProgramManifest:
        return reference_compile(_small_case().write(tmp_path / "ok", data=False))

    with pytest.raises(KeyError):
        check_hostile_fails_with_code(SELECT_INTO, path, crashes)
    with pytest.raises(AssertionError, match="MANIFEST_SQL_SYNTAX"):
        check_hostile_fails_with_code(SELECT_INTO, path, wrong_code)
    with pytest.raises(pytest.fail.Exception):
        check_hostile_fails_with_code(SELECT_INTO, path, accepts)


def test_cli_check_fails_on_a_valid_manifest(tmp_path: Path) -> None:
    path = _small_case().write(tmp_path, data=False)
    with pytest.raises(AssertionError):
        check_cli_rejects(path, "MANIFEST_NOT_A_QUERY")


def test_fingerprint_check_fails_for_an_order_sensitive_fingerprint(tmp_path: Path) -> None:
    case = _small_case()
    twin = next(
        t
        for seed in range(100)
        if (t := case.reordered(random.Random(seed))).manifest_bytes() != case.manifest_bytes()
    )
    first, second = case.write(tmp_path / "a", data=False), twin.write(tmp_path / "b", data=False)
    check_same_fingerprint(first, second, reference_compile)

    def by_bytes(p: Path) -> SemanticProgramManifest:
        import hashlib

        import msgspec

        manifest = reference_compile(p)
        return msgspec.structs.replace(
            manifest, fingerprint=hashlib.sha256(p.read_bytes()).hexdigest()
        )

    with pytest.raises(AssertionError):
        check_same_fingerprint(first, second, by_bytes)
