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


# ------------------------------------ the same invariants through a split stage chain


def _adapter_run(path: Path, compiled: object | None = None) -> None:
    """The gate's way through the chain: compile at collection, the other stages later."""
    from pytest_planguard.reference_adapter import ReferenceAdapter

    adapter = ReferenceAdapter()
    compiled = adapter.compile(path) if compiled is None else compiled
    context = adapter.build_context(compiled)
    plan = adapter.plan(context)
    adapter.validate(plan, context)  # findings (no mode override here) do not stop this run
    adapter.execute(plan, context, dry_run=False)


def test_a_chain_started_from_a_compiled_program_compiles_once(tmp_path: Path) -> None:
    from reference_impl.pipeline import compile_program, execute_pipeline, plan_pipeline

    path = _written(tmp_path)
    with count_compiles() as counter, spy_resolver(trace_origins=False) as spy:
        planned = plan_pipeline(path, program=compile_program(path), mode="warn")
        execute_pipeline(planned.plan, planned.authority)
    assert counter.count == 1
    assert spy.failure() is None, spy.failure()
    with count_compiles() as counter, spy_resolver(trace_origins=False) as spy:
        _adapter_run(path)
    assert counter.count == 1
    assert spy.failure() is None, spy.failure()


def test_compile_count_fails_for_a_chain_that_ignores_the_compiled_program(
    tmp_path: Path,
) -> None:
    from reference_impl.pipeline import PipelineState, compile_program, run_stages

    path = _written(tmp_path)
    with count_compiles() as counter:
        program = compile_program(path)
        run_stages(PipelineState(path, program=program))  # from load: compiles again
    assert counter.count == 2
    assert counter.failure() is not None


def test_resolver_identity_fails_for_stages_fed_two_compiles(tmp_path: Path) -> None:
    from pytest_planguard.reference_adapter import ReferenceAdapter

    path = _written(tmp_path)
    adapter = ReferenceAdapter()
    with spy_resolver(trace_origins=False) as spy:
        adapter.build_context(adapter.compile(path))  # registers one program's resolver
        _adapter_run(path, adapter.compile(path))  # and runs with another's
    assert spy.failure() is not None
