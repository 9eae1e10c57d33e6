"""The run invariants over generated manifests: one compile per run, one resolver object.

``run_pipeline`` runs with ``mode="warn"`` (so that validation passes and the run reaches
scan overrides and execution, where the resolver must still be the same object) on the
case without its ``[outputs]``: executing random SQL can fail for reasons that are not
under test here (an integer overflow in a generated sum, say).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings

from pytest_planguard.hypothesis_profiles import scaled_examples
from pytest_planguard.invariants import count_compiles, spy_resolver
from pytest_planguard.strategies import ManifestCase, manifests, replay_on_failure
from reference_impl.pipeline import run_pipeline

ENGINE = settings(
    max_examples=scaled_examples(0.5, minimum=5),
    deadline=None,
    # Each example writes real Delta/Parquet tables and runs the whole pipeline.
    suppress_health_check=[HealthCheck.too_slow],
)
SMALL = {"max_views": 3, "max_datasets": 2, "max_columns": 3, "max_rows": 3}


def without_outputs(case: ManifestCase) -> ManifestCase:
    document = {key: value for key, value in case.document.items() if key != "outputs"}
    return dataclasses.replace(case, document=MappingProxyType(document))


@ENGINE
@given(case=manifests(**SMALL))
def test_run_pipeline_compiles_exactly_once(
    case: ManifestCase, case_dir: Callable[[], Path]
) -> None:
    case = without_outputs(case)
    path = case.write(case_dir())
    with replay_on_failure(case):
        with count_compiles() as counter:
            run = run_pipeline(path, execute=True, mode="warn")
        assert run.execution is not None
        assert counter.failure() is None, counter.failure()
        assert counter.count == 1


@ENGINE
@given(case=manifests(**SMALL))
def test_resolver_identity_holds(case: ManifestCase, case_dir: Callable[[], Path]) -> None:
    case = without_outputs(case)
    path = case.write(case_dir())
    with replay_on_failure(case):
        with spy_resolver(trace_origins=False) as spy:
            run = run_pipeline(path, execute=True, mode="warn")
        assert run.execution is not None
        assert spy.failure() is None, spy.failure()


# ---------------------------------------------------------- the checks can fail


def _written(tmp_path: Path) -> Path:
    from pytest_planguard.strategies import TableCase, ViewCase, manifest_case

    table = TableCase(
        name="t_1", format="delta", location="data/t_1", columns=(("k_1", "int64"),), rows=((1,),)
    )
    view = ViewCase(name="v_1", sql="SELECT k_1 FROM t_1", depends_on=("t_1",))
    return manifest_case([table], [view]).write(tmp_path)


def test_compile_count_fails_for_a_second_compile(tmp_path: Path) -> None:
    from reference_impl.semantics import compile as compile_module
    from reference_impl.semantics.load import load_manifest

    path = _written(tmp_path)
    with count_compiles() as counter:
        run_pipeline(path, execute=True, mode="warn")
        compile_module.compile_semantic_program(load_manifest(path))  # a second compile
    assert counter.count == 2
    assert counter.failure() is not None


def test_resolver_identity_fails_for_a_copied_resolver(tmp_path: Path) -> None:
    import msgspec

    from reference_impl.engine import data_source

    path = _written(tmp_path)
    with spy_resolver(trace_origins=False) as spy:
        run = run_pipeline(path, execute=True, mode="warn")
        semantic = run.authority.semantic_context
        copy = msgspec.structs.replace(semantic.dataset_resolver)
        assert copy is not semantic.dataset_resolver
        data_source.register_dataset(semantic.session, copy, "t_1")  # a stray resolver
    assert spy.failure() is not None
