"""The plan-bundle gate of one view: compare with the snapshot, classify, gate, write.

:func:`decide` is the pure part: from the stored text, the new text, the gate policy and
the cost limits it returns a :class:`PlanOutcome` (no pytest, no syrupy, no files).
:func:`check_plan_item` is the thin part around it that reads the run, talks to syrupy and
publishes the result:

* unchanged: the syrupy assertion matches (equal texts have equal signals, so no cost
  limit can be breached);
* changed: classified (see :mod:`.classify`); the gate policy says fail or warn per class;
  a failure shows where the rule trace first diverged ("first diverged at physical_plan
  after join_selection") and the rules that started or stopped firing, a unified diff per
  changed section, the classes and the exact command that accepts the change;
* ``--snapshot-update``: the bundle is planned a second time, independently, and written
  only when both agree; otherwise ``UNSTABLE_PLAN`` names the lines that differ;
* cost gates: growth of operator count, repartition count and estimated rows beyond the
  configured limits fails with ``PLAN_COST_REGRESSION``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.location import PyTestLocation

from pytest_planguard.errors import PlanguardCode
from pytest_planguard.gate.causes import caused_by as upstream_causes
from pytest_planguard.gate.causes import is_inherited
from pytest_planguard.gate.classify import Classification, classify
from pytest_planguard.gate.policy import INHERITED, ChangeClass, GateAction
from pytest_planguard.gate.results import (
    GateResult,
    Status,
    error_code,
    fail,
    manifest_label,
    publish,
    render_error,
    with_detail,
)
from pytest_planguard.gate.review import section_diffs
from pytest_planguard.gate.snapshot import (
    FILE_EXTENSION,
    PlanBundleSnapshotExtension,
    parse_signals,
    parse_snapshot,
    read_snapshot_text,
    render_snapshot,
    snapshot_header,
    valid_snapshot_name,
    view_header,
)

if TYPE_CHECKING:
    from pytest_planguard.adapter import BundleView
    from pytest_planguard.config import CostLimit
    from pytest_planguard.gate.state import GateState, ManifestRun

# ------------------------------------------------------------------------- pure decision


@dataclass(frozen=True, slots=True)
class PlanOutcome:
    """What the gate decides for one view, before any update (see :func:`decide`)."""

    status: Literal["unchanged", "changed", "new"]
    """``new``: there is no stored snapshot."""
    action: GateAction
    codes: tuple[str, ...]
    classification: Classification | None = None
    """Set when there was a stored snapshot and the texts differ."""
    message: str = ""
    """Why the view fails (without the command that accepts it); empty when it passes."""
    inherited: bool = False
    """The change is inherited from changed upstream views (:mod:`.causes`)."""

    @property
    def classes(self) -> tuple[ChangeClass, ...]:
        return self.classification.classes if self.classification else ()

    @property
    def primary(self) -> str:
        return (self.classification and self.classification.primary) or "unchanged"


def decide(
    old: str | None,
    new: str,
    policy: Mapping[str, GateAction],
    limits: Mapping[str, CostLimit],
    *,
    view: str = "",
    additive: bool | str | None = None,
    inherited: bool = False,
) -> PlanOutcome:
    """The gate's decision for a view whose stored snapshot is ``old`` (None: none yet)
    and whose current bundle renders as ``new``.

    ``additive``: the engine's verdict on a change that added columns (see
    :func:`needs_additive_proof`): True, the other columns are computed exactly as before
    and the change is ``schema_additive`` alone; a string, why that could not be shown
    (the classes stay as found, and the failure says why).

    ``inherited``: the change is fully explained by changed upstream views
    (:func:`.causes.is_inherited`); with the policy's ``inherited = warn`` its classes do
    not fail it (a damaged snapshot or a cost breach still does)."""
    if old is None:
        return PlanOutcome(
            status="new",
            action="fail",
            codes=(PlanguardCode.PLAN_NEW,),
            message=f"error[{PlanguardCode.PLAN_NEW}] no snapshot for view {view!r} yet",
        )
    if old == new:  # equal signals too: no cost limit can be breached
        return PlanOutcome("unchanged", "warn", (PlanguardCode.PLAN_UNCHANGED,))
    breach = cost_breach(limits, old, new)
    found = classify(old, new, name=view)
    if additive is True:  # what the plans show is additive alone; a UDF change stays
        kept = (ChangeClass.UDF, ChangeClass.SCHEMA_ADDITIVE)
        found = dataclasses.replace(found, classes=tuple(c for c in found.classes if c in kept))
    excused = inherited and policy.get(INHERITED, "fail") == "warn"
    failing: list[str] = [
        c for c in found.classes if policy.get(c, "fail") == "fail" and not excused
    ]
    if found.damage:
        failing.append("damaged snapshot")  # no gate policy lets a tampered file through
    codes = (PlanguardCode.PLAN_CHANGED,) + (
        (PlanguardCode.PLAN_COST_REGRESSION,) if breach else ()
    )
    if not failing and not breach:
        # warned: the snapshot stays
        return PlanOutcome("changed", "warn", codes, found, inherited=inherited)
    gate = ", ".join(f"{c}={policy.get(c, 'fail')}" for c in found.classes)
    if inherited:
        gate += f"; inherited, {INHERITED}={policy.get(INHERITED, 'fail')}"
    lines = [
        f"error[{PlanguardCode.PLAN_CHANGED}] view {view!r}: plan changed, "
        f"class {', '.join(found.classes) or 'unchanged'} (gate: {gate})",
    ]
    lines += divergence_lines(found)
    if found.damage:
        lines.append("the stored snapshot is damaged: " + "; ".join(found.damage))
    if found.schema_changes:
        lines.append("schema: " + "; ".join(found.schema_changes))
    if isinstance(additive, str):
        lines.append(f"not classified as schema_additive alone: {additive}")
    if found.udfs:
        lines.append(
            f"udf: the code of {', '.join(found.udfs)} changed (the plans may read the same)"
        )
    if breach:
        lines.append(breach)
    for section, diff in found.diffs.items():
        lines += ["", f"--- {section} ---", diff]
    return PlanOutcome("changed", "fail", codes, found, "\n".join(lines), inherited)


def divergence_lines(found: Classification) -> list[str]:
    """What the rule traces say about a change: where it first diverged, which rules
    started or stopped firing, and whether that disagrees with the changed sections."""
    lines = []
    if found.first_divergence:
        lines.append(f"first diverged at {found.first_divergence}")
    if found.rules_started:
        lines.append("rules started firing: " + ", ".join(found.rules_started))
    if found.rules_stopped:
        lines.append("rules stopped firing: " + ", ".join(found.rules_stopped))
    if found.trace_disagreement:
        lines.append(f"trace and sections disagree: {found.trace_disagreement}")
    return lines


def needs_additive_proof(outcome: PlanOutcome) -> bool:
    """A change that added columns and changed plan sections too: adding an output column
    always changes P0 (and usually P1/P2), so only the engine can tell whether the change
    is additive and nothing else."""
    found = outcome.classification
    return (
        found is not None
        and not found.damage
        and ChangeClass.SCHEMA_ADDITIVE in found.classes
        and ChangeClass.SCHEMA_BREAKING not in found.classes
        and len(found.classes) > 1
    )


def cost_breach(limits: Mapping[str, CostLimit], old: str, new: str) -> str | None:
    """``PLAN_COST_REGRESSION`` message when a signal grew beyond its limit, else None."""
    if not limits:
        return None
    before = parse_signals(parse_snapshot(old).sections.get("signals", ""))
    after = parse_signals(parse_snapshot(new).sections.get("signals", ""))
    breaches = []
    for signal, limit in sorted(limits.items()):
        a, b = _number(before.get(signal)), _number(after.get(signal))
        if a is None or b is None:
            continue
        if not limit.allows(a, b):
            breaches.append(f"{signal} {a:g} -> {b:g} (limit {limit.describe()})")
    if not breaches:
        return None
    return f"error[{PlanguardCode.PLAN_COST_REGRESSION}] " + "; ".join(breaches)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return None


# ------------------------------------------------------------------- syrupy and reporting


class PlanLocation(PyTestLocation):
    """A plan item's location for syrupy: named after the view alone.  (syrupy takes the
    node ids between file and item for a class name, which a session item's factory is
    not, and would warn that the snapshot file is not named ``<factory>.<view>``.)"""

    @property
    def classname(self) -> str | None:
        return None


def _result(item: pytest.Item, status: Status, codes: tuple[str, ...], **rest: Any) -> GateResult:
    return GateResult(
        kind="plan",
        manifest=manifest_label(item),
        nodeid=item.nodeid,
        view=item.name,
        status=status,
        codes=codes,
        **rest,
    )


def _fail(item: pytest.Item, message: str, status: Status, code: str, **rest: Any) -> NoReturn:
    fail(item, message, _result(item, status, (code,), **rest))


def check_plan_item(item: pytest.Function, state: GateState) -> None:
    view = item.name
    if not valid_snapshot_name(view):
        _fail(
            item,
            f"error[{PlanguardCode.SNAPSHOT_NAME_INVALID}] view name {view!r} cannot name a "
            "snapshot file (it would escape the snapshot directory)",
            "error",
            PlanguardCode.SNAPSHOT_NAME_INVALID,
        )
    option = item.config.option
    update = bool(option.update_snapshots)
    assertion = SnapshotAssertion(
        session=item.config._syrupy,  # type: ignore[attr-defined]
        extension_class=PlanBundleSnapshotExtension,
        test_location=PlanLocation(item),
        update_snapshots=update,
        update_new_snapshots_only=bool(option.update_new_snapshots_only),
    )
    location = Path(
        assertion.extension.get_location(test_location=assertion.test_location, index=0)
    )
    old = read_snapshot_text(location)
    # A view without a bundle never reaches syrupy: it was not checked, so it must not be
    # counted as a passed snapshot.  Its snapshot stays: unused-snapshot detection goes by
    # the manifest's views, not by the items that passed.
    run = state.manifest_run(item.target)  # type: ignore[attr-defined]
    if run.error is not None:
        code = PlanguardCode.ADAPTER_ERROR
        message = with_detail(item, render_error(run.error, code), run.error)
        _fail(item, message, "error", error_code(run.error, code))
    bundle = run.bundles.get(view)
    if bundle is not None and bundle.status == "skipped":
        # downstream of a view that failed: that view's item fails, this one is skipped
        message = f"view {view!r} was not planned: {bundle.message}"
        publish(
            item,
            _result(item, "unavailable", (PlanguardCode.PLAN_UNAVAILABLE,), message=message),
        )
        pytest.skip(message)
    if bundle is None or bundle.status != "planned":
        reason = bundle.message if bundle is not None else "the adapter returned no bundle"
        _fail(
            item,
            f"error[{PlanguardCode.PLAN_UNAVAILABLE}] view {view!r} has no plan: {reason}",
            "unavailable",
            PlanguardCode.PLAN_UNAVAILABLE,
        )
    cache = state.plan_cache()
    if cache is not None and view in cache.stats.unsound:
        _fail(
            item,
            f"error[{PlanguardCode.PLAN_CACHE_UNSOUND}] view {view!r}: its cached plan differs "
            "from a fresh plan of the same inputs (the entry was removed; the fresh plan is "
            "checked on the next run). Something the plan depends on is missing from the "
            "cache key: please report it, and run with --planguard-no-cache meanwhile",
            "error",
            PlanguardCode.PLAN_CACHE_UNSOUND,
        )
    text = render(state, run, bundle)
    causes = _caused_by(state, run, view) if old is not None and old != text else ()
    inherited = bool(causes) and _inherited(state, run, view, (old or "", text), causes)
    gate, limits = state.config.gate, state.config.cost_limits
    outcome = decide(old, text, gate, limits, view=view, inherited=inherited)
    if old is not None and needs_additive_proof(outcome):
        proof = prove_additive(state, run, view, old)
        outcome = decide(old, text, gate, limits, view=view, additive=proof, inherited=inherited)

    if outcome.status == "unchanged":
        _assert(assertion, text, item)
        publish(item, _result(item, "unchanged", outcome.codes))
        return

    if update or (option.update_new_snapshots_only and old is None):
        unstable = _instability(state, run, bundle, text)
        if unstable:
            _fail(item, unstable, "unstable", PlanguardCode.UNSTABLE_PLAN)
        _assert(assertion, text, item)
        publish(
            item,
            _result(
                item,
                "new" if old is None else "updated",
                (PlanguardCode.PLAN_NEW if old is None else PlanguardCode.PLAN_UPDATED,),
                classes=outcome.classes,
            ),
        )
        return

    command = state.accept_command(item)
    if outcome.status == "new":
        assertion == text  # noqa: B015 - records the missing snapshot with syrupy
        _fail(
            item,
            f"{outcome.message} ({location}).\nTo accept it: {command}",
            "new",
            PlanguardCode.PLAN_NEW,
            action="fail",
            diffs=section_diffs("", text, view),
        )
    caused_by = causes
    result = _result(
        item,
        "changed",
        outcome.codes,
        classes=outcome.classes,
        primary=outcome.primary,
        action=outcome.action,
        caused_by=caused_by,
        inherited=outcome.inherited,
        diffs=section_diffs(old or "", text, view),
        **_trace_fields(outcome.classification),
    )
    if outcome.action == "warn":
        publish(item, result)  # warned: the snapshot stays as it is
        return
    assertion == text  # noqa: B015 - records the mismatch with syrupy
    first, _, rest = outcome.message.partition("\n")
    if caused_by:
        first += f"\nchanged through upstream {', '.join(caused_by)}"
        if outcome.inherited:
            first += " (inherited: its own plan is unchanged)"
    fail(item, f"{first}\n{rest}\n\nTo accept this change: {command}", result)


def _trace_fields(found: Classification | None) -> dict[str, Any]:
    """The trace's fields of a changed view's result (none without a trace)."""
    if found is None or found.trace is None:
        return {}
    return {
        "first_divergence": found.first_divergence,
        "rules_started": found.rules_started,
        "rules_stopped": found.rules_stopped,
        "trace_disagreement": found.trace_disagreement,
    }


def prove_additive(state: GateState, run: ManifestRun, view: str, old: str) -> bool | str:
    """True when the old columns, selected from the new view, plan exactly as the stored
    snapshot's P1 and P2 (normalized alike): the change only added columns.  Otherwise
    why not, for the failure message."""
    before = parse_snapshot(old)
    columns = [
        line.partition(": ")[0]
        for line in before.sections.get("schema", "").splitlines()
        if ": " in line
    ]
    project = getattr(state.adapter(run.target), "project_view", None)
    if not callable(project) or not columns:
        return "the adapter cannot plan the old columns over the new view (no project_view)"
    try:
        projected = project(run.context, view, columns)
    except Exception as exc:  # the proof is optional: a failure only keeps the classes
        return f"planning the old columns over the new view failed: {exc}"
    after = parse_snapshot(render(state, run, projected)).sections
    if after.get("P2 physical") != before.sections.get("P2 physical"):
        return "the old columns over the new view plan differently (P2 physical)"
    p1 = after.get("P1 optimized", "")
    if before.sections.get("P1 optimized") not in (p1, _without_top_alias(p1, view)):
        return "the old columns over the new view optimize differently (P1 optimized)"
    return True


def _without_top_alias(plan: str, view: str) -> str:
    """``plan`` without a top ``SubqueryAlias: view`` line (what selecting from a view
    registered by name adds above the view's own plan), dedented."""
    lines = plan.splitlines()
    if not lines or lines[0].strip() != f"SubqueryAlias: {view}":
        return plan
    return "\n".join(line.removeprefix("  ") for line in lines[1:])


def _caused_by(state: GateState, run: ManifestRun, view: str) -> tuple[str, ...]:
    """The changed views among ``view``'s upstream views (direct or not), by name."""
    dependencies = state.dependencies.get(run.target, {})
    if not dependencies.get(view):
        return ()
    return upstream_causes(view, dependencies, _changed_views(state, run))


def _inherited(
    state: GateState,
    run: ManifestRun,
    view: str,
    texts: tuple[str, str],
    causes: tuple[str, ...],
) -> bool:
    """Is the change of ``view`` between ``texts`` (stored, current) inherited from
    ``causes`` (:func:`.causes.is_inherited`)?  The plans of its direct upstream views
    come from their stored snapshots and their current bundles."""
    directory = state.snapshot_dir(run.target)
    upstream = state.dependencies.get(run.target, {}).get(view, ())
    old_upstream: dict[str, str | None] = {}
    new_upstream: dict[str, str | None] = {}
    for name in upstream:
        bundle = run.bundles.get(name)
        ok = bundle is not None and bundle.status == "planned" and valid_snapshot_name(name)
        old_upstream[name] = (
            read_snapshot_text(directory / f"{name}.{FILE_EXTENSION}") if ok else None
        )
        new_upstream[name] = render(state, run, bundle) if ok and bundle is not None else None
    return is_inherited(*texts, causes, old_upstream, new_upstream)


def _changed_views(state: GateState, run: ManifestRun) -> frozenset[str]:
    """Views whose bundle differs from their stored snapshot, decided from the bundles
    themselves, so the answer does not depend on which items ran first (or on which
    pytest-xdist worker)."""
    if run.changed is None:
        directory = state.snapshot_dir(run.target)
        changed = set()
        for name, bundle in run.bundles.items():
            if bundle.status != "planned" or not valid_snapshot_name(name):
                continue
            old = read_snapshot_text(directory / f"{name}.{FILE_EXTENSION}")
            if old is not None and old != render(state, run, bundle):
                changed.add(name)
        run.changed = frozenset(changed)
    return run.changed


def render(state: GateState, run: ManifestRun, bundle: BundleView) -> str:
    """The snapshot text of ``bundle``; a view of the run is rendered once (a changed view
    renders every view of its run to find its causes, and each view's item renders it)."""
    own = run.bundles.get(bundle.view) is bundle
    if own and bundle.view in run.rendered:
        return run.rendered[bundle.view]
    text = _render(state, run, bundle)
    if own:
        run.rendered[bundle.view] = text
    return text


def _render(state: GateState, run: ManifestRun, bundle: BundleView) -> str:
    assert run.engine is not None
    if run.header is None:
        run.header = snapshot_header(run.engine, strict_settings=state.config.strict_settings)
    depends_on = state.dependencies.get(run.target, {}).get(bundle.view, ())
    return render_snapshot(
        bundle,
        {**run.header, **view_header(depends_on, bundle.udfs)},
        locations=run.engine.locations,
        roots={"MANIFEST": str(run.target.path.parent), "ROOT": str(state.config.rootpath)},
        stores={**state.config.stores, **run.engine.stores},
    )


def _assert(assertion: Any, data: str, item: pytest.Function) -> None:
    if assertion != data:
        result = assertion.executions.get(assertion.num_executions - 1)
        exc = getattr(result, "exception", None)
        code = PlanguardCode.SNAPSHOT_WRITE_FAILED
        message = render_error(exc, code) if exc is not None else "snapshot assertion failed"
        found = error_code(exc, code) if exc is not None else str(PlanguardCode.PLAN_CHANGED)
        _fail(item, message, "error", found)


def _instability(state: GateState, run: ManifestRun, bundle: BundleView, text: str) -> str | None:
    again = state.recheck_bundles(run).get(bundle.view)
    if again is None or again.status != "planned":
        return (
            f"error[{PlanguardCode.UNSTABLE_PLAN}] view {bundle.view!r} planned once but not "
            "on the second, independent build; not writing the snapshot"
        )
    second = render(state, run, again)
    if second == text:
        return None
    diff = "\n".join(
        difflib.unified_diff(
            text.splitlines(), second.splitlines(), "first build", "second build", lineterm=""
        )
    )
    return (
        f"error[{PlanguardCode.UNSTABLE_PLAN}] view {bundle.view!r}: two independent builds "
        "of the plan bundle differ; the snapshot was not written. Lines that differ:\n" + diff
    )
