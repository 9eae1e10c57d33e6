"""The test items of ``pytest --planguard``.

Per manifest (a :class:`ManifestFile`): ``invariant[single_compile]``,
``invariant[resolver_identity]``, ``invariant[determinism]``, ``policy[validation]`` (each
a :class:`GateItem`), then one :class:`PlanItem` per view, named after the view.  Every
item receives the process's :class:`~.state.GateState` when it is collected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_planguard.errors import PlanguardCode
from pytest_planguard.gate.plan_check import check_plan_item
from pytest_planguard.gate.results import (
    Check,
    GateResult,
    PolicyFinding,
    call_adapter,
    error_code,
    fail,
    manifest_label,
    publish,
    render_error,
    with_detail,
)
from pytest_planguard.markers import GATE_ITEM

if TYPE_CHECKING:
    from pytest_planguard.gate.state import GateState, ManifestRun

INVARIANTS: tuple[Check, ...] = ("single_compile", "resolver_identity", "determinism")
_VIOLATION = {
    "single_compile": PlanguardCode.SINGLE_COMPILE_VIOLATION,
    "resolver_identity": PlanguardCode.RESOLVER_IDENTITY_VIOLATION,
    "determinism": PlanguardCode.NONDETERMINISTIC,
    "policy": PlanguardCode.POLICY_FAILED,
}


class ManifestFile(pytest.File):
    """A gated manifest: its invariant, policy and per-view items."""

    def __init__(self, *, state: GateState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state

    def collect(self) -> Iterator[pytest.Item]:
        gate = self.state
        gate.check_snapshot_paths(self.path)
        compiled = gate.compile_manifest(self.path)
        views = tuple(call_adapter(gate.session.adapter.view_names, compiled))
        gate.check_snapshot_paths(self.path, views)
        dependencies = getattr(gate.session.adapter, "view_dependencies", None)
        if callable(dependencies):
            found = call_adapter(dependencies, compiled)
            gate.dependencies[self.path] = {v: tuple(found.get(v, ())) for v in views}
        items: list[pytest.Item] = [
            GateItem.from_parent(self, name=f"invariant[{check}]", check=check, state=gate)
            for check in INVARIANTS
        ]
        items.append(
            GateItem.from_parent(self, name="policy[validation]", check="policy", state=gate)
        )
        items += [
            PlanItem.from_parent(self, name=view, callobj=plan_bundle_gate, state=gate)
            for view in views
        ]
        for item in items:
            item.add_marker(GATE_ITEM.name)
        gate.collected_manifest(self.path, views, items)
        yield from items

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if hasattr(excinfo.value, "render"):
            return render_error(excinfo.value, PlanguardCode.ADAPTER_ERROR)
        return str(super().repr_failure(excinfo))


class GateItem(pytest.Item):
    """An invariant or the policy check of one manifest."""

    def __init__(self, *, check: Check, state: GateState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.state = state

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{manifest_label(self)}::{self.name}"

    def runtest(self) -> None:
        run = self.state.manifest_run(self.path)
        if run.error is not None:
            fallback = PlanguardCode.ADAPTER_ERROR
            fail(
                self,
                with_detail(self, render_error(run.error, fallback), run.error),
                self._result("error", (error_code(run.error, fallback),)),
            )
        message = getattr(self, f"_check_{self.check}")(run)
        # each policy finding keeps its subject (view, dataset, scan unit) and message in the
        # report, whether the item failed or passed with warnings
        findings = (
            tuple(
                PolicyFinding(
                    code=f.code, severity=f.severity, subject=f.subject, message=f.message
                )
                for f in run.validation.findings
            )
            if self.check == "policy" and run.validation is not None
            else ()
        )
        if message:
            codes = (str(_VIOLATION[self.check]),)
            fail(self, message, self._result("failed", codes, findings=findings))
        publish(self, self._result("passed", (), findings=findings))

    def _result(self, status: Any, codes: tuple[str, ...], **rest: Any) -> GateResult:
        return GateResult(
            kind="policy" if self.check == "policy" else "invariant",
            manifest=manifest_label(self),
            nodeid=self.nodeid,
            check=self.check,
            status=status,
            codes=codes,
            **rest,
        )

    def _check_single_compile(self, run: ManifestRun) -> str | None:
        return run.counter.failure(1)

    def _check_resolver_identity(self, run: ManifestRun) -> str | None:
        message = run.spy.failure()
        if message and run.execution_error is not None:
            message += "\n  execution did not complete: " + render_error(
                run.execution_error, PlanguardCode.ADAPTER_ERROR
            )
        return message

    def _check_determinism(self, run: ManifestRun) -> str | None:
        started = self.state.started.pop(self.path, None)
        report = self.state.session.determinism(self.path, first=run.fingerprints, started=started)
        return report.failure()

    def _check_policy(self, run: ManifestRun) -> str | None:
        assert run.validation is not None
        if run.validation.ok:
            return None
        errors = [f for f in run.validation.findings if f.severity == "error"]
        named = ", ".join(f"{f.code} {f.subject}" for f in errors[:3])
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        lines = [f"policy validation failed: {len(errors)} error(s): {named}{more}"]
        for finding in run.validation.findings:
            lines.append(
                f"  {finding.severity}[{finding.code}] {finding.subject}: {finding.message}"
            )
        return "\n".join(lines)


def plan_bundle_gate() -> None:
    """Marker object for syrupy: plan-bundle gate items are driven by PlanItem.runtest."""


class PlanItem(pytest.Function):
    """The plan-bundle gate of one view (a Function, so syrupy tracks its snapshot)."""

    def __init__(self, *, state: GateState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{manifest_label(self)}::{self.name}"

    def runtest(self) -> None:
        check_plan_item(self, self.state)


def is_gate_item(item: pytest.Item) -> bool:
    return isinstance(item, GateItem | PlanItem)
