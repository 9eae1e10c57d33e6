"""The invariants' verdicts and messages on exact observations (issue 20): the compile
counter's limit, the resolver spy's identity table and stray detection, the stage parser,
and the determinism comparison field by field.  The end-to-end tests in
tests/plugin/test_invariants.py drive these through real pipelines; here each decision is
pinned where a mutant of it lived."""

from __future__ import annotations

import inspect
import json
import os
import tracemalloc
from pathlib import Path

import pytest

from pytest_planguard.adapter import PipelineFingerprints, ResolverStage
from pytest_planguard.determinism_processes import (
    Checked,
    DeterminismProcesses,
    Incremental,
    _hash_seeds,
)
from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.invariants import (
    STACK_DEPTH,
    UNRECORDED,
    CompileCall,
    CompileCounter,
    DeterminismDifference,
    DeterminismReport,
    ResolverSpy,
    StageObservation,
    _first_difference,
    _record,
    parse_stage,
)

# -------------------------------------------------------------------- compile counter


def test_no_compile_names_every_watched_target() -> None:
    counter = CompileCounter(targets=("a.b:compile", "c.d:build"))
    assert counter.failure() == (
        "planguard_single_compile: no compile observed; watched a.b:compile, c.d:build"
        " (is the pipeline compiled through another entrypoint?)"
    )


def test_compiles_up_to_the_limit_pass_and_one_more_fails_with_every_stack() -> None:
    calls = [
        CompileCall("m:compile", ("test.py:3 in test_x", "lib.py:9 in run")),
        CompileCall("m:compile", ("test.py:4 in test_x",)),
    ]
    counter = CompileCounter(targets=("m:compile",), calls=calls[:1])
    assert counter.count == 1
    assert counter.failure() is None
    counter.calls.append(calls[1])
    assert counter.failure(max_compiles=2) is None
    assert counter.failure() == (
        "planguard_single_compile: 2 compiles in one test, at most 1 allowed\n"
        "  compile #1: m:compile\n"
        "      test.py:3 in test_x\n"
        "      lib.py:9 in run\n"
        "  compile #2: m:compile\n"
        "      test.py:4 in test_x"
    )


# ------------------------------------------------------------------------ resolver spy

STAGES = (
    ResolverStage("compile", "pkg.mod:compile", "resolver"),
    ResolverStage("plan", "pkg.mod:plan", "context.resolver"),
)


def obs(
    stage: str, object_id: int, stack: tuple[str, ...] = ("t.py:1 in test",)
) -> StageObservation:
    return StageObservation(stage=stage, object_id=object_id, type_name="Resolver", stack=stack)


def test_identities_list_each_object_once_per_stage_in_order() -> None:
    spy = ResolverSpy(
        stages=STAGES, observations=[obs("compile", 2), obs("compile", 1), obs("compile", 2)]
    )
    assert spy.identities() == {"compile": [2, 1], "plan": []}


def test_the_same_object_at_every_stage_passes() -> None:
    spy = ResolverSpy(stages=STAGES, observations=[obs("compile", 16), obs("plan", 16)])
    assert spy.stray() is None
    assert spy.failure() is None


def test_a_stage_never_reached_is_named_with_the_table() -> None:
    spy = ResolverSpy(stages=STAGES, observations=[obs("compile", 255)])
    assert spy.failure() == (
        "planguard_resolver_identity: stage(s) never reached during the test: plan\n"
        "  identities seen per stage:\n"
        "    compile          pkg.mod:compile(resolver): 0xff\n"
        "    plan             pkg.mod:plan(context.resolver): (not reached)"
    )


def test_errors_come_before_anything_else() -> None:
    spy = ResolverSpy(stages=STAGES, errors=["first", "second"])
    assert spy.failure() == "planguard_resolver_identity: first; second"


def test_a_stray_resolver_is_named_with_where_it_was_made_and_passed() -> None:
    spy = ResolverSpy(
        stages=STAGES,
        observations=[
            obs("compile", 16),
            obs("plan", 16),
            obs("plan", 32, ("t.py:7 in test", "p.py:2 in plan")),
            obs("compile", 48),
        ],
        origins={32: ("f.py:1", "g.py:2")},
    )
    stray = spy.stray()
    assert stray is not None
    assert (stray.stage, stray.object_id) == ("plan", 32)
    assert spy.failure() == (
        "planguard_resolver_identity: stage 'plan' received resolver 0x20 (Resolver), a "
        "different object from the 0x10 that stage 'compile' received\n"
        "  identities seen per stage:\n"
        "    compile          pkg.mod:compile(resolver): 0x10, 0x30\n"
        "    plan             pkg.mod:plan(context.resolver): 0x10, 0x20\n"
        "  stray object 0x20 was created at:\n"
        "      f.py:1\n"
        "      g.py:2\n"
        "  and passed to 'plan' from:\n"
        "      t.py:7 in test\n"
        "      p.py:2 in plan"
    )


def test_a_stray_without_a_known_origin_says_so() -> None:
    spy = ResolverSpy(stages=STAGES[:1], observations=[obs("compile", 1), obs("compile", 2)])
    message = spy.failure()
    assert message is not None
    assert "  stray object 0x2 was created at:\n      (unknown)\n" in message
    assert ResolverSpy(stages=STAGES).stray() is None


class _Context:
    def __init__(self, resolver: object) -> None:
        self.resolver = resolver


def _plan(context: _Context, *, flag: bool = False) -> None:
    del context, flag


def test_record_reads_the_resolver_at_its_path_once_per_object() -> None:
    stage = STAGES[1]
    signature = inspect.signature(_plan)
    resolver = object()
    spy = ResolverSpy(stages=STAGES, traced=False)
    _record(spy, stage, signature, (_Context(resolver),), {})
    _record(spy, stage, signature, (), {"context": _Context(resolver)})
    assert [(o.stage, o.object_id, o.type_name) for o in spy.observations] == [
        ("plan", id(resolver), "object"),
        ("plan", id(resolver), "object"),
    ]
    assert spy.objects == {id(resolver): resolver}
    assert spy.origins == {id(resolver): ("(not traced)",)}
    assert spy.errors == []


def test_record_of_an_object_made_before_tracing_says_so() -> None:
    spy = ResolverSpy(stages=STAGES, traced=True)
    resolver = object()
    _record(spy, STAGES[1], inspect.signature(_plan), (_Context(resolver),), {})
    assert spy.origins[id(resolver)] == (UNRECORDED,)
    assert "unknown" in UNRECORDED  # no guess at where it came from


def test_record_of_a_missing_attribute_is_an_error_not_an_observation() -> None:
    spy = ResolverSpy(stages=STAGES, traced=False)
    _record(spy, STAGES[1], inspect.signature(_plan), (object(),), {})
    assert spy.observations == []
    assert spy.errors == [
        "stage 'plan': cannot read 'context.resolver': 'object' object has no attribute 'resolver'"
    ]
    _record(spy, STAGES[1], inspect.signature(_plan), (), {"wrong": 1})
    assert len(spy.errors) == 2
    assert spy.errors[1].startswith("stage 'plan': cannot read 'context.resolver': ")


# ------------------------------------------------------------------------ parse_stage


def test_a_stage_spec_parses_into_name_target_and_path() -> None:
    stage = parse_stage("  plan = pkg.mod:plan( context.resolver ) ")
    assert stage == ResolverStage("plan", "pkg.mod:plan", "context.resolver")


def test_a_known_stage_name_is_that_stage() -> None:
    assert parse_stage(" compile ", {"compile": STAGES[0]}) is STAGES[0]


@pytest.mark.parametrize(
    "spec",
    ["pkg.mod:plan(resolver)", "plan=pkg.mod:plan", "plan=pkg.mod:plan(resolver", "plan=plan(r)"],
)
def test_a_malformed_stage_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(PlanguardError) as raised:
        parse_stage(spec)
    assert raised.value.code is PlanguardCode.CONFIG_ERROR
    assert raised.value.field_path == "planguard_resolver_stages"
    assert raised.value.message == (
        f"resolver stage {spec!r} must look like 'name=package.module:function(param)'"
    )


def test_a_malformed_stage_spec_lists_the_known_names() -> None:
    known = {"compile": STAGES[0], "plan": STAGES[1]}
    with pytest.raises(PlanguardError) as raised:
        parse_stage("bogus", known)
    assert raised.value.message == (
        "resolver stage 'bogus' must look like 'name=package.module:function(param)'"
        " or be one of compile, plan"
    )


# ------------------------------------------------------------------------- determinism


def fp(
    manifest: str = "m",
    plans: dict[str, str] | None = None,
    runtime: str = "r",
    artifact: bytes = b"a",
) -> PipelineFingerprints:
    return PipelineFingerprints(
        manifest=manifest, plans=plans or {"v": "p"}, runtime=runtime, validation_artifact=artifact
    )


def test_identical_runs_have_no_difference() -> None:
    runs = [("one", fp()), ("two", fp()), ("three", fp())]
    assert _first_difference(runs) is None
    assert DeterminismReport(runs=tuple(runs), difference=None).failure() is None


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        (
            fp(manifest="m2"),
            DeterminismDifference("manifest fingerprint", "one", "m", "three", "m2"),
        ),
        (
            fp(plans={"v": "p", "w": "q"}),
            DeterminismDifference("plan fingerprint of view 'w'", "one", "(absent)", "three", "q"),
        ),
        (
            fp(plans={"a": "x", "v": "p"}),
            DeterminismDifference("plan fingerprint of view 'a'", "one", "(absent)", "three", "x"),
        ),
        (fp(runtime="r2"), DeterminismDifference("runtime hash", "one", "r", "three", "r2")),
        (
            fp(artifact=b"b\xff"),
            DeterminismDifference("validation artifact bytes", "one", "a", "three", "b\ufffd"),
        ),
    ],
)
def test_the_first_difference_names_the_field_and_the_run(
    other: PipelineFingerprints, expected: DeterminismDifference
) -> None:
    assert _first_difference([("one", fp()), ("two", fp()), ("three", other)]) == expected


def test_a_view_missing_from_the_baseline_is_absent_there() -> None:
    found = _first_difference([("one", fp(plans={"a": "x", "v": "p"})), ("two", fp())])
    assert found == DeterminismDifference(
        "plan fingerprint of view 'a'", "one", "x", "two", "(absent)"
    )


def test_fields_are_compared_in_order_manifest_plans_runtime_artifact() -> None:
    other = fp(manifest="m2", plans={"v": "p2"}, runtime="r2", artifact=b"b")
    found = _first_difference([("one", fp()), ("two", other)])
    assert found is not None
    assert found.field == "manifest fingerprint"
    found = _first_difference([("one", fp()), ("two", fp(plans={"v": "p2"}, runtime="r2"))])
    assert found is not None
    assert found.field == "plan fingerprint of view 'v'"


def test_the_determinism_failure_names_the_field_both_values_and_every_run() -> None:
    runs = (("in-process run 1", fp()), ("subprocess PYTHONHASHSEED=1", fp(runtime="r2")))
    difference = DeterminismDifference("runtime hash", "in-process run 1", "r", "sub", "r2")
    assert DeterminismReport(runs=runs, difference=difference).failure() == (
        "planguard_deterministic: runtime hash differs between runs\n"
        "  in-process run 1: r\n"
        "  sub: r2\n"
        "  (2 runs compared: in-process run 1, subprocess PYTHONHASHSEED=1)"
    )


def test_started_processes_match_only_the_same_check(tmp_path: Path) -> None:
    manifest = tmp_path / "m.toml"
    started = DeterminismProcesses(Checked("a:f", manifest, 0, ("x",)), tmp_path, [])
    assert started.matches(Checked("a:f", manifest, 0, ("x",)))
    assert not started.matches(Checked("a:g", manifest, 0, ("x",)))
    assert not started.matches(Checked("a:f", manifest.parent, 0, ("x",)))
    assert not started.matches(Checked("a:f", manifest, 1, ("x",)))
    assert not started.matches(Checked("a:f", manifest, 0, ()))
    assert not started.matches(Checked("a:f", manifest, 0, ("x",), "m:f"))
    sampled = Checked("a:f", manifest, 0, ("x",), None, Incremental(tmp_path, 7))
    assert not started.matches(sampled)
    assert sampled != Checked("a:f", manifest, 0, ("x",), None, Incremental(tmp_path, 8))


def test_what_a_check_covers_reads_back_as_written(tmp_path: Path) -> None:
    """Another worker reads it from the run's directory: it must compare equal there."""
    for checked in (
        Checked("a:f", tmp_path / "m.toml", 2, ("x", "y"), None, Incremental(tmp_path, 7)),
        Checked(None, tmp_path / "s.py", 1, (), "s:make", None),
    ):
        assert Checked.from_json(json.loads(json.dumps(checked.to_json()))) == checked


@pytest.mark.parametrize(("parent", "first"), [(None, "1"), ("1", "2"), ("2", "1"), ("0", "1")])
def test_hash_seeds_start_at_1_and_never_repeat_the_parents(
    monkeypatch: pytest.MonkeyPatch, parent: str | None, first: str
) -> None:
    if parent is None:
        monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    else:
        monkeypatch.setenv("PYTHONHASHSEED", parent)
    for _ in range(20):
        seeds = _hash_seeds(4)
        assert len(seeds) == 4
        assert len(set(seeds)) == 4
        assert seeds[0] == first
        assert parent not in seeds
        assert all(0 <= int(seed) < 2**32 - 1 for seed in seeds)  # valid PYTHONHASHSEEDs
    assert _hash_seeds(1) == [first]
    assert _hash_seeds(0) == []


def test_further_hash_seeds_are_drawn_at_random() -> None:
    """Seeds 1, 2, 3 iterate a two-element set alike: further seeds must vary."""
    assert len({tuple(_hash_seeds(3)) for _ in range(10)}) > 1


def _spied_plan(spy: ResolverSpy, context: _Context) -> None:
    """What the spy's wrapper does: record, from one frame below the caller."""
    _record(spy, STAGES[1], inspect.signature(_plan), (context,), {})


def test_record_names_where_a_traced_resolver_was_made_and_who_passed_it() -> None:
    spy = ResolverSpy(stages=STAGES, traced=True)
    tracemalloc.start(12)
    try:
        resolver = bytearray(8)  # allocated while tracing (and traceable on 3.11)
        made_at = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
        _spied_plan(spy, _Context(resolver))
        passed_at = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
    finally:
        tracemalloc.stop()
    here = os.path.relpath(__file__)
    origin = spy.origins[id(resolver)]
    assert origin[-1] == f"{here}:{made_at}"
    assert 1 <= len(origin) <= STACK_DEPTH
    (observation,) = spy.observations
    test_name = "test_record_names_where_a_traced_resolver_was_made_and_who_passed_it"
    assert observation.stack[-1] == f"{here}:{passed_at} in {test_name}"
    assert observation.type_name == "bytearray"


def test_a_stage_spec_splits_at_the_first_equals_sign_and_parenthesis() -> None:
    assert parse_stage("plan=pkg.mod:plan(context.resolver)") == STAGES[1]
    assert parse_stage("s=m:f(a=b)").path == "a=b"
    assert parse_stage("s=m:f(a(b))").path == "a(b)"
