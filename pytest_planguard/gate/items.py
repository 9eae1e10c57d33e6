"""The test items of ``pytest --planguard``.

Per manifest (a :class:`ManifestFile`): ``invariant[single_compile]``,
``invariant[resolver_identity]``, ``invariant[determinism]``, ``policy[validation]`` (each
a :class:`GateItem`), then one :class:`PlanItem` per view, named after the view.

Per session factory (a :class:`SessionFactory` inside the :class:`SessionModule` of its
module file, so items are ``<module path>::<factory>::<view>``): ``invariant[determinism]``
(and ``single_compile`` / ``resolver_identity`` when entrypoints or stages of the user's
own are configured), then one :class:`PlanItem` per view.  A session has no policies.

Every item receives the process's :class:`~.state.GateState` and its target when it is
collected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_planguard.determinism_processes import run_digest
from pytest_planguard.errors import PlanguardCode
from pytest_planguard.gate.locate import view_location
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
from pytest_planguard.gate.snapshot import snapshot_header
from pytest_planguard.markers import GATE_ITEM

if TYPE_CHECKING:
    from pytest_planguard.config import GateTarget
    from pytest_planguard.gate.state import GateState, ManifestRun

INVARIANTS: tuple[Check, ...] = ("single_compile", "resolver_identity", "determinism")
_VIOLATION = {
    "single_compile": PlanguardCode.SINGLE_COMPILE_VIOLATION,
    "resolver_identity": PlanguardCode.RESOLVER_IDENTITY_VIOLATION,
    "determinism": PlanguardCode.NONDETERMINISTIC,
    "policy": PlanguardCode.POLICY_FAILED,
}


def collect_target(
    collector: pytest.Collector, state: GateState, target: GateTarget
) -> list[pytest.Item]:
    """The items of one gated manifest or session (see module docs)."""
    state.check_snapshot_paths(target)
    compiled = state.compile_target(target)
    adapter = state.adapter(target)
    views = tuple(call_adapter(adapter.view_names, compiled))
    state.check_snapshot_paths(target, views)
    dependencies = getattr(adapter, "view_dependencies", None)
    if callable(dependencies):
        found = call_adapter(dependencies, compiled)
        state.dependencies[target] = {v: tuple(found.get(v, ())) for v in views}
    checks: tuple[Check, ...] = (*INVARIANTS, "policy")
    if target.spec is not None:
        config = state.config
        checks = (
            *(("single_compile",) if config.compile_entrypoints else ()),
            *(("resolver_identity",) if config.resolver_stages else ()),
            "determinism",
        )
    items: list[pytest.Item] = [
        GateItem.from_parent(
            collector,
            name="policy[validation]" if check == "policy" else f"invariant[{check}]",
            check=check,
            state=state,
            target=target,
        )
        for check in checks
    ]
    items += [
        PlanItem.from_parent(
            collector, name=view, callobj=plan_bundle_gate, state=state, target=target
        )
        for view in views
    ]
    for item in items:
        item.add_marker(GATE_ITEM.name)
    state.collected_manifest(target, views, items)
    return items


class _CodedCollector(pytest.Collector):
    """A collector whose coded errors (a manifest that does not compile, a session factory
    that raises) show as one line, with the user's frames under ``--tb=long``."""

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if hasattr(excinfo.value, "render"):
            message = render_error(excinfo.value, PlanguardCode.ADAPTER_ERROR)
            return with_detail(self, message, excinfo.value)
        return str(super().repr_failure(excinfo))


class _TargetCollector(_CodedCollector):
    """Collects the items of one target (see :func:`collect_target`)."""

    def __init__(self, *, state: GateState, target: GateTarget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.target = target

    def collect(self) -> Iterator[pytest.Item]:
        yield from collect_target(self, self.state, self.target)


class ManifestFile(_TargetCollector, pytest.File):
    """A gated manifest: its invariant, policy and per-view items."""


class SessionModule(pytest.File):
    """The module file of one or more gated session factories."""

    def __init__(self, *, state: GateState, targets: tuple[GateTarget, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.targets = targets

    def collect(self) -> Iterator[pytest.Collector]:
        for target in self.targets:
            assert target.factory is not None  # session targets name their factory
            yield SessionFactory.from_parent(
                self, name=target.factory, state=self.state, target=target
            )


class SessionFactory(_TargetCollector):
    """One gated session factory: its invariant and per-view items."""


class GateItem(pytest.Item):
    """An invariant or the policy check of one manifest or session."""

    def __init__(
        self, *, check: Check, state: GateState, target: GateTarget, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.state = state
        self.target = target
        self._header: dict[str, str] = {}
        self._note = ""

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{manifest_label(self)}::{self.name}"

    def runtest(self) -> None:
        run = self.state.manifest_run(self.target)
        if run.error is not None:
            fallback = PlanguardCode.ADAPTER_ERROR
            fail(
                self,
                with_detail(self, render_error(run.error, fallback), run.error),
                self._result("error", (error_code(run.error, fallback),)),
            )
        if run.engine is not None:  # the reports' summary names the engine and settings
            self._header = snapshot_header(
                run.engine, strict_settings=self.state.config.strict_settings
            )
        message = getattr(self, f"_check_{self.check}")(run)
        # each policy finding keeps its subject (view, dataset, scan unit) and message in the
        # report, whether the item failed or passed with warnings
        findings = (
            tuple(
                PolicyFinding(
                    code=f.code,
                    severity=f.severity,
                    subject=f.subject,
                    message=f.message,
                    subject_kind=f.subject_kind,
                )
                for f in run.validation.findings
            )
            if self.check == "policy" and run.validation is not None
            else ()
        )
        if message:
            codes = (str(_VIOLATION[self.check]),)
            fail(self, message, self._result("failed", codes, findings=findings))
        publish(self, self._result("passed", (), findings=findings, message=self._note))

    def _result(self, status: Any, codes: tuple[str, ...], **rest: Any) -> GateResult:
        return GateResult(
            kind="policy" if self.check == "policy" else "invariant",
            manifest=manifest_label(self),
            nodeid=self.nodeid,
            check=self.check,
            status=status,
            codes=codes,
            header=self._header,
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
        started = self.state.starts.take(self.target)
        incremental = self.state.incremental
        keys = (run.cache_keys or None) if incremental is not None else None
        checker = incremental.cache() if incremental is not None and keys is not None else None
        plans, fresh, sampled = checker.count(keys) if checker is not None and keys else (0, 0, 0)
        digest = run_digest(run.fingerprints, keys) if checker and keys else None
        if checker and digest and not fresh + sampled and checker.run_established(digest):
            # nothing to plan afresh, and a passing check saw this very run: the
            # subprocesses would only read the same plans back
            if started is not None:
                started.close()
            self._note = (
                f"0 of {plans} distinct plans checked afresh: an earlier passing check saw "
                "the same plans and fingerprints, so no run was repeated"
            )
            return None
        if started is not None and (checker is None or not keys or fresh):
            started.start_pending()  # a plan not established: every seed checks it
        report = self.state.session.determinism(
            self.target.path,
            first=run.fingerprints,
            started=started,
            session=self.target.spec,
            incremental=incremental if checker is not None else None,
        )
        failure = report.failure()
        if checker is not None and keys is not None:
            held = started.pending if started is not None else ()
            self._note = (
                f"{fresh} of {plans} distinct plans checked afresh in every run; the "
                "others were established by an earlier passing check for the same inputs"
                + (
                    f" (re-checked at random: {sampled}, without the subprocess of "
                    f"PYTHONHASHSEED={held[0]}, which planned them under that seed then)"
                    if held
                    else ""
                )
            )
            if failure is None:
                checker.establish(keys, run=digest)
        return failure

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

    def __init__(self, *, state: GateState, target: GateTarget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.target = target

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the view is defined: its SQL file, its manifest table or the line of its
        name in the session module (IDEs, ``-rA`` and GitHub annotations point there)."""
        path, line = view_location(self.path, self.name, session=self.target.spec is not None)
        return path, line, f"{manifest_label(self)}::{self.name}"

    @property
    def snapshot_directory(self) -> Path:
        return self.state.snapshot_dir(self.target)

    def runtest(self) -> None:
        check_plan_item(self, self.state)


def is_gate_item(item: pytest.Item) -> bool:
    return isinstance(item, GateItem | PlanItem)
