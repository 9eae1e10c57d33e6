"""The plan-bundle gate of one view: compare with the snapshot, classify, gate, write.

* unchanged: the syrupy assertion matches; cost limits are still checked;
* changed: classified (see :mod:`pytest_planguard.classify`); the gate policy says fail
  or warn per class; a failure shows a unified diff per changed section, the classes and
  the exact command that accepts the change;
* ``--snapshot-update``: the bundle is planned a second time, independently, and written
  only when both agree; otherwise ``UNSTABLE_PLAN`` names the lines that differ;
* cost gates: growth of operator count, repartition count and estimated rows beyond the
  configured limits fails with ``PLAN_COST_REGRESSION``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_planguard.errors import PlanguardCode
from pytest_planguard.gate import fail, publish, render_error, valid_snapshot_name

if TYPE_CHECKING:
    from pytest_planguard.adapter import BundleView
    from pytest_planguard.gate import GateState, ManifestRun, PlanItem


def check_plan_item(item: PlanItem, state: GateState) -> None:
    from syrupy.assertion import SnapshotAssertion
    from syrupy.location import PyTestLocation

    from pytest_planguard.classify import classify
    from pytest_planguard.snapshot import PlanBundleSnapshotExtension, read_snapshot_text

    view = item.name
    base = {"kind": "plan", "view": view}
    if not valid_snapshot_name(view):
        fail(
            item,
            f"error[{PlanguardCode.SNAPSHOT_NAME_INVALID}] view name {view!r} cannot name a "
            "snapshot file (it would escape the snapshot directory)",
            **base,
            status="error",
            codes=[str(PlanguardCode.SNAPSHOT_NAME_INVALID)],
        )
    update = bool(item.config.option.update_snapshots)
    assertion = SnapshotAssertion(
        session=item.config._syrupy,  # type: ignore[attr-defined]
        extension_class=PlanBundleSnapshotExtension,
        test_location=PyTestLocation(item),
        update_snapshots=update,
        update_new_snapshots_only=bool(item.config.option.update_new_snapshots_only),
    )
    location = Path(
        assertion.extension.get_location(test_location=assertion.test_location, index=0)
    )
    old = read_snapshot_text(location)
    # A view without a bundle never reaches syrupy: it was not checked, so it must not be
    # counted as a passed snapshot.  Its snapshot stays: unused-snapshot detection goes by
    # the manifest's views, not by the items that passed.
    run = state.manifest_run(item.path)
    if run.error is not None:
        fail(item, render_error(run.error), **base, status="error", codes=[_code(run.error)])
    bundle = run.bundles.get(view)
    if bundle is None or bundle.status != "planned":
        reason = bundle.message if bundle is not None else "the adapter returned no bundle"
        fail(
            item,
            f"error[{PlanguardCode.PLAN_UNAVAILABLE}] view {view!r} has no plan: {reason}",
            **base,
            status="unavailable",
            codes=[str(PlanguardCode.PLAN_UNAVAILABLE)],
        )
    assert bundle is not None
    text = render(state, run, bundle)

    if old == text:
        _assert(assertion, text, item)
        breach = cost_breach(state, old, text)
        if breach:
            fail(
                item,
                breach,
                **base,
                status="failed",
                codes=[str(PlanguardCode.PLAN_COST_REGRESSION)],
            )
        publish(item, **base, status="unchanged", codes=[str(PlanguardCode.PLAN_UNCHANGED)])
        return

    classification = classify(old, text, name=view) if old is not None else None
    if update or (item.config.option.update_new_snapshots_only and old is None):
        unstable = _instability(state, run, bundle, text)
        if unstable:
            fail(
                item,
                unstable,
                **base,
                status="unstable",
                codes=[str(PlanguardCode.UNSTABLE_PLAN)],
            )
        _assert(assertion, text, item)
        publish(
            item,
            **base,
            status="new" if old is None else "updated",
            classes=list(classification.classes) if classification else [],
            codes=[str(PlanguardCode.PLAN_NEW if old is None else PlanguardCode.PLAN_UPDATED)],
        )
        return

    command = state.accept_command(item)
    if old is None:
        assertion == text  # noqa: B015 - records the missing snapshot with syrupy
        fail(
            item,
            f"error[{PlanguardCode.PLAN_NEW}] no snapshot for view {view!r} yet "
            f"({location}).\nTo accept it: {command}",
            **base,
            status="new",
            codes=[str(PlanguardCode.PLAN_NEW)],
            action="fail",
        )
    assert classification is not None
    assert old is not None
    gate = state.config.gate
    failing = [c for c in classification.classes if gate.get(c, "fail") == "fail"]
    if classification.damage:
        failing.append("damaged snapshot")  # no gate policy lets a tampered file through
    breach = cost_breach(state, old, text)
    result = {
        **base,
        "status": "changed",
        "classes": list(classification.classes),
        "class": classification.primary,
        "action": "fail" if failing or breach else "warn",
        "codes": [str(PlanguardCode.PLAN_CHANGED)]
        + ([str(PlanguardCode.PLAN_COST_REGRESSION)] if breach else []),
    }
    if not failing and not breach:
        publish(item, **result)  # warned: the snapshot stays as it is
        return
    assertion == text  # noqa: B015 - records the mismatch with syrupy
    policy = ", ".join(f"{c}={gate.get(c, 'fail')}" for c in classification.classes)
    lines = [
        f"error[{PlanguardCode.PLAN_CHANGED}] view {view!r}: plan changed, "
        f"class {', '.join(classification.classes) or 'unchanged'} (gate: {policy})",
    ]
    if classification.damage:
        lines.append("the stored snapshot is damaged: " + "; ".join(classification.damage))
    if classification.schema_changes:
        lines.append("schema: " + "; ".join(classification.schema_changes))
    if breach:
        lines.append(breach)
    for section, diff in classification.diffs.items():
        lines += ["", f"--- {section} ---", diff]
    lines += ["", f"To accept this change: {command}"]
    fail(item, "\n".join(lines), **result)


def render(state: GateState, run: ManifestRun, bundle: BundleView) -> str:
    from pytest_planguard.snapshot import render_snapshot, snapshot_header

    assert run.engine is not None
    if run.header is None:
        run.header = snapshot_header(run.engine)
    return render_snapshot(
        bundle,
        run.header,
        locations=run.engine.locations,
        roots={"MANIFEST": str(run.path.parent), "ROOT": str(state.config.rootpath)},
    )


def _assert(assertion: Any, data: str, item: PlanItem) -> None:
    if assertion != data:
        result = assertion.executions.get(assertion.num_executions - 1)
        exc = getattr(result, "exception", None)
        message = render_error(exc) if exc is not None else "snapshot assertion failed"
        code = _code(exc) if exc is not None else str(PlanguardCode.PLAN_CHANGED)
        fail(item, message, kind="plan", view=item.name, status="error", codes=[code])


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


def cost_breach(state: GateState, old: str, new: str) -> str | None:
    """``PLAN_COST_REGRESSION`` message when a signal grew beyond its limit, else None."""
    from pytest_planguard.snapshot import parse_signals, parse_snapshot

    limits = state.config.cost_limits
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


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "code", PlanguardCode.MANIFEST_ERROR))
