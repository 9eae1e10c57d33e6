"""The rule trace of a plan bundle: which planner stage and which optimizer rules made the
plan what it is, and where two versions of it first diverged.

An adapter hands the gate the stages of one ``EXPLAIN VERBOSE`` (:attr:`BundleView.trace
<pytest_planguard.adapter.BundleView.trace>`).  The snapshot records them as its
``trace`` section, one line per stage in planner order::

    initial_logical_plan: 3f1c2a9b0d4e
    logical_plan after type_coercion: =
    logical_plan after push_down_filter: 9a0b1c2d3e4f
    ...

with a short hash of the stage's plan text, normalized like the plan sections (so the
trace does not depend on the machine either), or ``=`` where the stage left the plan as
the stage before it had it.  A stage with a hash of its own after ``after`` is an
*effective rule*.  A rule DataFusion runs more than once (the logical optimizer runs its
rules in passes; ``OutputRequirements`` opens and closes the physical optimizer) is
numbered from its second run on: ``logical_plan after push_down_filter #2``.

Comparing two traces (:func:`compare_traces`) names the first stage whose plan differs,
``first_divergence``, and the effective rules that started or stopped firing:

* ``initial_logical_plan``: the SQL or an upstream view changed;
* ``logical_plan after <rule>``: an analyzer or optimizer rule rewrites differently;
* ``initial_physical_plan``: the physical planner (settings such as target_partitions);
* ``physical_plan after <rule>``: a physical optimizer rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

TRACE_SECTION = "trace"
TRACE_HASH_CHARS = 12
"""Hex digits of a stage's hash (sha256 of its normalized plan text)."""
UNCHANGED = "="
_AFTER = " after "
_PHYSICAL = ("initial_physical_plan", "physical_plan")

Layer = Literal["semantic", "optimizer", "physical"]


@dataclass(frozen=True, slots=True)
class TraceComparison:
    """Where a base trace and a head trace part (see :func:`compare_traces`)."""

    first_divergence: str | None
    """The first stage whose plan differs (None: the traces agree stage for stage)."""
    rules_started: tuple[str, ...]
    """Effective rules of the head trace that were not effective in the base trace."""
    rules_stopped: tuple[str, ...]
    """Effective rules of the base trace that are no longer effective in the head."""

    @property
    def layer(self) -> Layer | None:
        return stage_layer(self.first_divergence) if self.first_divergence else None


def trace_lines(
    stages: Sequence[tuple[str, str | None]], normalize: Callable[[str], str]
) -> list[str]:
    """The ``trace`` section of a snapshot: ``stage: hash`` per stage, ``stage: =`` where
    the (normalized) plan is the stage before's.  ``stages`` is the adapter's trace: a
    stage's text is None where DataFusion printed ``SAME TEXT AS ABOVE``."""
    lines: list[str] = []
    seen: dict[str, int] = {}
    previous = ""
    for name, text in stages:
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name} #{seen[name]}"
        digest = previous if text is None else _digest(normalize(text))
        lines.append(f"{label}: {UNCHANGED if digest == previous else digest}")
        previous = digest
    return lines


def parse_trace(section: str) -> tuple[tuple[str, str], ...]:
    """A ``trace`` section as (stage, hash) pairs, ``=`` resolved to the hash before it.
    Lines that are not ``stage: value`` are left out."""
    out: list[tuple[str, str]] = []
    previous = ""
    for line in section.splitlines():
        stage, sep, value = line.rpartition(": ")
        if not sep or not stage.strip():
            continue
        value = value.strip()
        previous = previous if value == UNCHANGED else value
        out.append((stage.strip(), previous))
    return tuple(out)


def effective_rules(trace: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The rule stages (``... after <rule>``) of a parsed trace that changed the plan,
    in order, each once (its run number dropped)."""
    found: dict[str, None] = {}
    previous = ""
    for stage, digest in trace:
        if _AFTER in stage and digest != previous:
            found.setdefault(stage.split(" #", 1)[0])
        previous = digest
    return tuple(found)


def compare_traces(old_section: str, new_section: str) -> TraceComparison | None:
    """Compare two ``trace`` sections; None when either is absent or empty (a snapshot of
    an adapter that records no trace, or one written before traces existed)."""
    old, new = parse_trace(old_section), parse_trace(new_section)
    if not old or not new:
        return None
    first = next(
        (
            b_stage
            for (a_stage, a_hash), (b_stage, b_hash) in zip(old, new, strict=False)
            if a_stage != b_stage or a_hash != b_hash
        ),
        None,
    )
    if first is None and len(old) != len(new):
        first = (new if len(new) > len(old) else old)[min(len(old), len(new))][0]
    before, after = effective_rules(old), effective_rules(new)
    return TraceComparison(
        first_divergence=first,
        rules_started=tuple(rule for rule in after if rule not in before),
        rules_stopped=tuple(rule for rule in before if rule not in after),
    )


def stage_layer(stage: str) -> Layer:
    """Which plan layer a stage belongs to: ``semantic`` (the plan of the SQL as written),
    ``optimizer`` (the analyzer's and the logical optimizer's rules and their result) or
    ``physical`` (the physical planner and its optimizer)."""
    if stage.startswith(_PHYSICAL):
        return "physical"
    return "semantic" if stage == "initial_logical_plan" else "optimizer"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:TRACE_HASH_CHARS]
