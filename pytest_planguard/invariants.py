"""Measuring the pipeline invariants: single compile, resolver identity, determinism.

* :func:`count_compiles` spies on compile entrypoints (``module:function``) and records
  every call with a short stack.
* :func:`spy_resolver` spies on stage functions and records the identity of the resolver
  object each receives (a parameter, optionally followed by attributes), with the place
  each distinct object was allocated (tracemalloc).
* :func:`check_determinism` runs compile -> plan -> validate N times in-process and in K
  subprocesses with different ``PYTHONHASHSEED`` values and compares the fingerprints.

Spies replace the function on its module and everywhere it was imported by name (every
module attribute bound to the same object), and restore it on exit.  Each observation
object has a ``failure()`` method returning the message to show, or ``None``.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import traceback
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_planguard.adapter import (
    PipelineAdapter,
    PipelineFingerprints,
    ResolverStage,
    import_target,
)
from pytest_planguard.determinism_processes import (
    Checked,
    DeterminismProcesses,
    Incremental,
    start_determinism_processes,
)
from pytest_planguard.errors import PlanguardCode, PlanguardError

STACK_DEPTH = 6
_INTERNAL = (
    os.sep + "_pytest" + os.sep,
    os.sep + "pluggy" + os.sep,
    os.sep + "pytest_planguard" + os.sep + "invariants.py",
)


# --------------------------------------------------------------------------- patching


@contextmanager
def patched_everywhere(
    target: str, make_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Iterator[None]:
    """Replace ``target`` on its module and on every module that imported it by name."""
    module, attribute, original = import_target(
        target, code=PlanguardCode.CONFIG_ERROR, field_path=None, kind="function"
    )
    wrapper = make_wrapper(original)
    bindings = [(module.__dict__, attribute)]
    for other in list(sys.modules.values()):
        namespace = getattr(other, "__dict__", None)
        if namespace is None or other is module:
            continue
        for name, value in list(namespace.items()):
            if value is original:
                bindings.append((namespace, name))
    for namespace, name in bindings:
        namespace[name] = wrapper
    loaded = set(sys.modules)
    try:
        yield
    finally:
        for namespace, name in bindings:
            if namespace.get(name) is wrapper:
                namespace[name] = original
        # A module first imported while the patch was on bound the wrapper by name: left
        # there, it would keep reporting to this (finished) spy and hide its calls from
        # the next one.
        for module_name in [n for n in sys.modules if n not in loaded]:
            namespace = getattr(sys.modules.get(module_name), "__dict__", None) or {}
            for name, value in list(namespace.items()):
                if value is wrapper:
                    namespace[name] = original


def short_stack(skip: int = 2) -> tuple[str, ...]:
    """The caller's stack, innermost last, from where pytest/pluggy/planguard hand over."""
    frames = traceback.extract_stack()[:-skip]
    internal = [i for i, f in enumerate(frames) if any(part in f.filename for part in _INTERNAL)]
    # Keep what runs after the test framework hands over: the test and the code it calls.
    kept = frames[internal[-1] + 1 :] if internal else frames
    return tuple(f"{_shorten(f.filename)}:{f.lineno} in {f.name}" for f in kept[-STACK_DEPTH:])


def _shorten(filename: str) -> str:
    try:
        return os.path.relpath(filename)
    except ValueError:
        return filename


# ---------------------------------------------------------------------- single compile


@dataclass(frozen=True, slots=True)
class CompileCall:
    target: str
    stack: tuple[str, ...]


@dataclass(slots=True)
class CompileCounter:
    """Every call of the watched compile entrypoints while the counter was active."""

    targets: tuple[str, ...]
    calls: list[CompileCall] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.calls)

    def failure(self, max_compiles: int = 1) -> str | None:
        """A message when there were more than ``max_compiles`` compiles (or none)."""
        if self.count == 0:
            return (
                f"planguard_single_compile: no compile observed; watched {', '.join(self.targets)}"
                " (is the pipeline compiled through another entrypoint?)"
            )
        if self.count <= max_compiles:
            return None
        lines = [
            f"planguard_single_compile: {self.count} compiles in one test, at most "
            f"{max_compiles} allowed"
        ]
        for index, call in enumerate(self.calls, start=1):
            lines.append(f"  compile #{index}: {call.target}")
            lines.extend(f"      {frame}" for frame in call.stack)
        return "\n".join(lines)


@contextmanager
def count_compiles(targets: Sequence[str] | None = None) -> Iterator[CompileCounter]:
    """Count calls of ``targets`` (default: the reference pipeline's compile entrypoint)."""
    # only when defaulting to the reference pipeline (start-up cost: its adapter module is
    # the one that reaches into reference_impl)
    from pytest_planguard.reference_adapter import REFERENCE_COMPILE_ENTRYPOINTS

    watched = tuple(targets or REFERENCE_COMPILE_ENTRYPOINTS)
    counter = CompileCounter(targets=watched)

    def make(target: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def counted(*args: Any, **kwargs: Any) -> Any:
                counter.calls.append(CompileCall(target=target, stack=short_stack()))
                return original(*args, **kwargs)

            return counted

        return wrap

    with ExitStack() as stack:
        for target in watched:
            stack.enter_context(patched_everywhere(target, make(target)))
        yield counter


# -------------------------------------------------------------------- resolver identity


@dataclass(frozen=True, slots=True)
class StageObservation:
    stage: str
    object_id: int
    type_name: str
    stack: tuple[str, ...]


@dataclass(slots=True)
class ResolverSpy:
    """The resolver object each stage received while the spy was active."""

    stages: tuple[ResolverStage, ...]
    observations: list[StageObservation] = field(default_factory=list)
    objects: dict[int, Any] = field(default_factory=dict)
    """Strong references, so an id stays unique while the spy lives."""
    origins: dict[int, tuple[str, ...]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    traced: bool = True
    """Whether allocations were traced (tracemalloc), so ``origins`` are known."""

    def identities(self) -> dict[str, list[int]]:
        seen: dict[str, list[int]] = {stage.name: [] for stage in self.stages}
        for obs in self.observations:
            if obs.object_id not in seen[obs.stage]:
                seen[obs.stage].append(obs.object_id)
        return seen

    def failure(self) -> str | None:
        """A message naming the stage whose resolver was another object, or None."""
        if self.errors:
            return "planguard_resolver_identity: " + "; ".join(self.errors)
        identities = self.identities()
        unobserved = [name for name, ids in identities.items() if not ids]
        if unobserved:
            return (
                "planguard_resolver_identity: stage(s) never reached during the test: "
                + ", ".join(unobserved)
                + self._table(identities)
            )
        first = self.observations[0]
        stray = self.stray()
        if stray is None:
            return None
        lines = [
            f"planguard_resolver_identity: stage {stray.stage!r} received resolver "
            f"{_hex(stray.object_id)} ({stray.type_name}), a different object from the "
            f"{_hex(first.object_id)} that stage {first.stage!r} received",
            self._table(identities).lstrip("\n"),
            f"  stray object {_hex(stray.object_id)} was created at:",
            *(f"      {frame}" for frame in self.origins.get(stray.object_id, ("(unknown)",))),
            f"  and passed to {stray.stage!r} from:",
            *(f"      {frame}" for frame in stray.stack),
        ]
        return "\n".join(lines)

    def stray(self) -> StageObservation | None:
        """The first observation of another object than the first stage received."""
        if not self.observations:
            return None
        first = self.observations[0].object_id
        return next((o for o in self.observations if o.object_id != first), None)

    def _table(self, identities: Mapping[str, list[int]]) -> str:
        rows = ["", "  identities seen per stage:"]
        for stage in self.stages:
            ids = identities[stage.name]
            shown = ", ".join(_hex(i) for i in ids) if ids else "(not reached)"
            rows.append(f"    {stage.name:<16} {stage.target}({stage.path}): {shown}")
        return "\n".join(rows)


def _hex(object_id: int) -> str:
    return f"0x{object_id:x}"


@contextmanager
def spy_resolver(
    stages: Sequence[ResolverStage] | None = None, *, trace_origins: bool = True
) -> Iterator[ResolverSpy]:
    """Record the resolver object each stage receives (default: the reference stages).

    ``trace_origins`` traces allocations (tracemalloc) to tell where a stray resolver was
    created; it slows the code under the spy down severalfold, so a caller that can repeat
    the run may spy without it first and trace only a run that shows a stray.
    """
    # only when defaulting to the reference pipeline (start-up cost, as in count_compiles)
    from pytest_planguard.reference_adapter import REFERENCE_RESOLVER_STAGES

    watched = tuple(stages or REFERENCE_RESOLVER_STAGES)
    spy = ResolverSpy(stages=watched, traced=trace_origins)
    started = trace_origins and not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(12)

    def make(stage: ResolverStage) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            signature = inspect.signature(original)
            if stage.parameter not in signature.parameters:
                raise PlanguardError(
                    PlanguardCode.CONFIG_ERROR,
                    f"resolver stage {stage.name!r}: {stage.target} has no parameter "
                    f"{stage.parameter!r}",
                )

            @functools.wraps(original)
            def spied(*args: Any, **kwargs: Any) -> Any:
                _record(spy, stage, signature, args, kwargs)
                return original(*args, **kwargs)

            return spied

        return wrap

    try:
        with ExitStack() as stack:
            for stage in watched:
                stack.enter_context(patched_everywhere(stage.target, make(stage)))
            yield spy
    finally:
        if started:
            tracemalloc.stop()


UNRECORDED = (
    "(unknown: tracemalloc kept no record of its allocation; it was created before the spy "
    "started, by native code, or as an object this Python does not record, e.g. a class "
    "instance on 3.11)"
)
"""The origin shown when tracing ran but has nothing for the object: say so, never guess."""


def _record(
    spy: ResolverSpy,
    stage: ResolverStage,
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    try:
        value = signature.bind(*args, **kwargs).arguments[stage.parameter]
        for attribute in stage.attributes:
            value = getattr(value, attribute)
    except (TypeError, KeyError, AttributeError) as exc:
        spy.errors.append(f"stage {stage.name!r}: cannot read {stage.path!r}: {exc}")
        return
    object_id = id(value)
    if object_id not in spy.objects:
        spy.objects[object_id] = value
        origin = tracemalloc.get_object_traceback(value) if spy.traced else None
        spy.origins[object_id] = (
            tuple(
                f"{_shorten(frame.filename)}:{frame.lineno}"
                for frame in list(origin)[-STACK_DEPTH:]
            )
            if origin is not None
            else (UNRECORDED if spy.traced else "(not traced)",)
        )
    spy.observations.append(
        StageObservation(
            stage=stage.name,
            object_id=object_id,
            type_name=type(value).__name__,
            stack=short_stack(skip=3),
        )
    )


def parse_stage(spec: str, known: Mapping[str, ResolverStage] | None = None) -> ResolverStage:
    """``name=module:function(param.attr)``, or the name of a known stage."""
    spec = spec.strip()
    if known is not None and spec in known:
        return known[spec]
    name, sep, rest = spec.partition("=")
    target, paren, path = rest.strip().partition("(")
    if not sep or not paren or not path.endswith(")") or ":" not in target:
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"resolver stage {spec!r} must look like 'name=package.module:function(param)'"
            + (f" or be one of {', '.join(known)}" if known else ""),
            field_path="planguard_resolver_stages",
        )
    return ResolverStage(name=name.strip(), target=target.strip(), path=path[:-1].strip())


# ----------------------------------------------------------------------- determinism


@dataclass(frozen=True, slots=True)
class DeterminismDifference:
    field: str
    baseline_label: str
    baseline: str
    other_label: str
    other: str


@dataclass(frozen=True, slots=True)
class DeterminismReport:
    runs: tuple[tuple[str, PipelineFingerprints], ...]
    difference: DeterminismDifference | None

    def failure(self) -> str | None:
        diff = self.difference
        if diff is None:
            return None
        left, right = _around_first_mismatch(diff.baseline, diff.other)
        return (
            f"planguard_deterministic: {diff.field} differs between runs\n"
            f"  {diff.baseline_label}: {left}\n"
            f"  {diff.other_label}: {right}\n"
            f"  ({len(self.runs)} runs compared: "
            + ", ".join(label for label, _ in self.runs)
            + ")"
        )


def _around_first_mismatch(a: str, b: str, width: int = 160) -> tuple[str, str]:
    """Both values, cut to a window around where they start to differ when long."""
    if len(a) <= width and len(b) <= width:
        return a, b
    at = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    start = max(0, at - width // 4)

    def cut(text: str) -> str:
        body = text[start : start + width]
        return ("..." if start else "") + body + ("..." if start + width < len(text) else "")

    return cut(a), cut(b)


def fingerprints_once(adapter: PipelineAdapter, manifest: Path) -> PipelineFingerprints:
    narrowed = getattr(adapter, "for_fingerprints", None)
    if callable(narrowed):  # optional: the adapter plans more cheaply for fingerprints
        adapter = narrowed()
    compiled = adapter.compile(manifest)
    context = adapter.build_context(compiled)
    plan = adapter.plan(context)
    validation = adapter.validate(plan, context)
    return adapter.fingerprints(compiled, context, plan, validation)


def check_determinism(
    adapter: PipelineAdapter,
    adapter_spec: str | None,
    manifest: Path,
    *,
    runs: int = 3,
    processes: int = 2,
    first: PipelineFingerprints | None = None,
    started: DeterminismProcesses | None = None,
    trusted_modules: Sequence[str] = (),
    session: str | None = None,
    incremental: Incremental | None = None,
) -> DeterminismReport:
    """Run compile -> plan -> validate ``runs`` times here and once in each of
    ``processes`` subprocesses (distinct PYTHONHASHSEED), then compare.

    ``started``: the same subprocesses, already started (used when it matches).
    ``trusted_modules``: the allowlist ``adapter`` was given, handed to the subprocesses.
    ``incremental``: plan afresh only what no passing check established (see
    :class:`Incremental`); the caller establishes the plans once the check passed."""
    checked = Checked(
        adapter_spec, manifest, processes, tuple(trusted_modules), session, incremental
    )
    if started is not None and not started.matches(checked):
        started.close()
        started = None
    if started is None:
        started = start_determinism_processes(checked)
    try:
        with_cache = getattr(adapter, "with_plan_cache", None)
        if incremental is not None and with_cache is not None:
            adapter = with_cache(incremental.cache())
        results: list[tuple[str, PipelineFingerprints]] = []
        if first is not None:
            results.append(("in-process run 1", first))
        while len(results) < runs:
            label = f"in-process run {len(results) + 1}"
            results.append((label, fingerprints_once(adapter, manifest)))
        for seed, outcome in started.outcomes():
            if isinstance(outcome, str):
                raise PlanguardError(
                    PlanguardCode.ADAPTER_ERROR,
                    f"determinism subprocess (PYTHONHASHSEED={seed}) {outcome}",
                )
            results.append((f"subprocess PYTHONHASHSEED={seed}", outcome))
    finally:
        started.close()
    return DeterminismReport(runs=tuple(results), difference=_first_difference(results))


def _first_difference(
    results: Sequence[tuple[str, PipelineFingerprints]],
) -> DeterminismDifference | None:
    base_label, base = results[0]
    for label, other in results[1:]:
        for name, left, right in _fields(base, other):
            if left != right:
                return DeterminismDifference(name, base_label, left, label, right)
    return None


def _fields(a: PipelineFingerprints, b: PipelineFingerprints) -> Iterator[tuple[str, str, str]]:
    yield "manifest fingerprint", a.manifest, b.manifest
    for view in sorted(set(a.plans) | set(b.plans)):
        yield (
            f"plan fingerprint of view {view!r}",
            a.plans.get(view, "(absent)"),
            b.plans.get(view, "(absent)"),
        )
    yield "runtime hash", a.runtime, b.runtime
    yield (
        "validation artifact bytes",
        a.validation_artifact.decode("utf-8", "replace"),
        b.validation_artifact.decode("utf-8", "replace"),
    )
