"""Classifying the difference between a stored plan-bundle snapshot and a new one.

Classes (a change may have several; the gate fails when any of them is set to fail):

* ``semantic``: P0, the unoptimized logical plan, changed;
* ``optimizer``: P1 changed while P0 did not;
* ``physical``: only P2 changed;
* ``schema_breaking``: an output column was removed, retyped, reordered or became
  nullable;
* ``udf``: the code of a UDF the view calls, in both versions, changed (the hashes of its
  ``udfs`` header line differ);
* ``schema_additive``: columns were only added (or became not-null);
* ``cosmetic``: every section is equal (after normalization); only the header (engine
  versions, settings hash, normalizer version), the signals or the rule trace differ.

When both snapshots carry a rule trace (:mod:`.trace`), a changed plan also names the
stage where it first diverged and the rules that started or stopped firing, and the trace
is evidence for the plan class: a change that first diverges at an optimizer rule with P0
unchanged is ``optimizer``.  Where the trace and the sections disagree (the sections show
P2 alone changed, the trace a logical rule), both classes are kept and
``trace_disagreement`` says so.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from pytest_planguard.gate.policy import ChangeClass
from pytest_planguard.gate.snapshot import (
    OPTIONAL_SECTIONS,
    SECTIONS,
    ParsedSnapshot,
    header_udfs,
    parse_snapshot,
    snapshot_damage,
)
from pytest_planguard.gate.trace import TRACE_SECTION, TraceComparison, compare_traces


@dataclass(frozen=True, slots=True)
class Classification:
    classes: tuple[ChangeClass, ...]
    """In priority order (:class:`ChangeClass`); empty when nothing differs."""
    diffs: Mapping[str, str]
    """Per changed section: plan sections as a tree diff (:func:`tree_diff`), the others
    as a unified diff."""
    schema_changes: tuple[str, ...]
    damage: tuple[str, ...] = ()
    """Where the stored snapshot departs from the format: such a change always fails."""
    raw_diffs: Mapping[str, str] | None = None
    """Per changed section, the plain unified diff of the text."""
    udfs: tuple[str, ...] = ()
    """The UDFs whose code changed (class ``udf``)."""
    trace: TraceComparison | None = None
    """Where the rule traces part, when both snapshots carry one."""
    trace_disagreement: str = ""
    """Why the trace's first divergence and the changed sections name different layers
    (empty when they agree or there is no trace to compare)."""

    @property
    def first_divergence(self) -> str | None:
        return self.trace.first_divergence if self.trace else None

    @property
    def rules_started(self) -> tuple[str, ...]:
        return self.trace.rules_started if self.trace else ()

    @property
    def rules_stopped(self) -> tuple[str, ...]:
        return self.trace.rules_stopped if self.trace else ()

    @property
    def primary(self) -> ChangeClass | None:
        return self.classes[0] if self.classes else None


def classify(old_text: str, new_text: str, *, name: str = "") -> Classification:
    """Compare two snapshot texts section by section."""
    old, new = parse_snapshot(old_text), parse_snapshot(new_text)
    damage = snapshot_damage(old_text)
    known = (*SECTIONS, *OPTIONAL_SECTIONS)
    extra = sorted((set(old.sections) | set(new.sections)) - set(known))
    changed = tuple(
        s for s in (*known, *extra) if old.sections.get(s, "") != new.sections.get(s, "")
    )
    raw_diffs = {
        section: unified(
            old.sections.get(section, ""), new.sections.get(section, ""), section, name
        )
        for section in changed
    }
    diffs = {
        section: tree_diff(
            old.sections.get(section, ""), new.sections.get(section, ""), section, name
        )
        if section in PLAN_SECTIONS
        else raw_diffs[section]
        for section in changed
    }
    schema_changes, breaking, additive = _schema_changes(old, new)
    classes: set[ChangeClass] = set()
    plan_class = next((cls for section, cls in _PLAN_CLASSES if section in changed), None)
    if plan_class is not None:
        classes.add(plan_class)
    trace = compare_traces(old.sections.get(TRACE_SECTION, ""), new.sections.get(TRACE_SECTION, ""))
    disagreement = ""
    if trace is not None and plan_class is not None:
        disagreement = _disagreement(trace, plan_class)
        if trace.layer is not None:
            classes.add(ChangeClass(trace.layer))  # the same class when they agree
    udfs = udf_changes(old, new)
    if udfs:
        classes.add(ChangeClass.UDF)
    if breaking:
        classes.add(ChangeClass.SCHEMA_BREAKING)
    elif additive:
        classes.add(ChangeClass.SCHEMA_ADDITIVE)
    plan_or_schema = {"P0 logical", "P1 optimized", "P2 physical", "schema"}
    if not classes and (changed or old.header != new.header) and not plan_or_schema & set(changed):
        classes.add(ChangeClass.COSMETIC)
    header_diff = [
        f"{key}: {old.header.get(key, '-')} -> {new.header.get(key, '-')}"
        for key in sorted(set(old.header) | set(new.header))
        if old.header.get(key) != new.header.get(key)
    ]
    if header_diff:
        diffs = {**diffs, "header": "\n".join(header_diff)}
    return Classification(
        classes=tuple(c for c in ChangeClass if c in classes),
        diffs=diffs,
        schema_changes=tuple(schema_changes),
        damage=damage,
        raw_diffs=raw_diffs,
        udfs=udfs,
        trace=trace,
        trace_disagreement=disagreement,
    )


PLAN_SECTIONS = ("P0 logical", "P1 optimized", "P2 physical")
_PLAN_CLASSES = (
    ("P0 logical", ChangeClass.SEMANTIC),
    ("P1 optimized", ChangeClass.OPTIMIZER),
    ("P2 physical", ChangeClass.PHYSICAL),
)


def _disagreement(trace: TraceComparison, plan_class: ChangeClass) -> str:
    """Why the trace and the changed sections name different layers, or ``""``."""
    if trace.first_divergence is None:
        return (
            f"the sections show a {plan_class} change but the rule traces are equal stage for stage"
        )
    if trace.layer == plan_class:
        return ""
    return (
        f"the sections show a {plan_class} change but the trace first diverged at "
        f"{trace.first_divergence} ({trace.layer}); both classes are kept"
    )


def udf_changes(old: ParsedSnapshot, new: ParsedSnapshot) -> tuple[str, ...]:
    """The UDFs, called in both versions, whose code hash differs.  A UDF the view starts
    or stops calling changes P0 (``semantic``); a snapshot written before UDF hashes were
    recorded has no ``udfs`` line, and so no UDF whose code could be compared."""
    before, after = header_udfs(old.header.get("udfs")), header_udfs(new.header.get("udfs"))
    return tuple(
        sorted(name for name in before.keys() & after.keys() if before[name] != after[name])
    )


def tree_diff(old: str, new: str, section: str, name: str = "", context: int = 3) -> str:
    """A diff of two indented plan texts, operator by operator.

    Operators are compared without their indentation: a node inserted above a subtree
    (a new filter) shows as one added line, and the subtree below it, only re-indented,
    as unchanged context in its new position, not as removed and re-added.  The format
    is a unified diff's, with ``@@ operator N @@`` hunk headers."""
    before, after = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(
        None, [line.strip() for line in before], [line.strip() for line in after], autojunk=False
    )
    label = f"{name} {section}".strip()
    out = [f"--- snapshot: {label}", f"+++ current: {label} (operators, indentation aside)"]
    for group in matcher.get_grouped_opcodes(context):
        out.append(f"@@ operator {group[0][3] + 1} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in after[j1:j2]]
                continue
            out += ["-" + line for line in before[i1:i2]]
            out += ["+" + line for line in after[j1:j2]]
    if len(out) == 2:  # the same operators, only nested differently: show the text diff
        return unified(old, new, section, name)
    return "\n".join(out)


def unified(old: str, new: str, section: str, name: str = "") -> str:
    label = f"{name} {section}".strip()
    return "\n".join(
        difflib.unified_diff(
            old.splitlines(),
            new.splitlines(),
            fromfile=f"snapshot: {label}",
            tofile=f"current: {label}",
            lineterm="",
        )
    )


def _schema(snapshot: ParsedSnapshot) -> dict[str, tuple[str, bool]]:
    columns: dict[str, tuple[str, bool]] = {}
    for line in snapshot.sections.get("schema", "").splitlines():
        name, sep, rest = line.partition(": ")
        if not sep:
            continue
        not_null = rest.endswith(" not null")
        columns[name] = (rest.removesuffix(" not null"), not not_null)
    return columns


def _schema_changes(old: ParsedSnapshot, new: ParsedSnapshot) -> tuple[list[str], bool, bool]:
    before, after = _schema(old), _schema(new)
    changes: list[str] = []
    breaking = additive = False
    for name, (dtype, nullable) in before.items():
        if name not in after:
            changes.append(f"column {name!r} removed")
            breaking = True
            continue
        new_type, new_nullable = after[name]
        if new_type != dtype:
            changes.append(f"column {name!r} retyped {dtype} -> {new_type}")
            breaking = True
        if new_nullable and not nullable:
            changes.append(f"column {name!r} became nullable")
            breaking = True
        elif nullable and not new_nullable:
            changes.append(f"column {name!r} became not null")
            additive = True
    for name in after:
        if name not in before:
            changes.append(f"column {name!r} added")
            additive = True
    if not breaking and list(before) != [n for n in after if n in before]:
        changes.append("columns reordered")
        breaking = True
    return changes, breaking, additive
