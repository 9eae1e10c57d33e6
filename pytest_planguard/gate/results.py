"""What a gate item publishes (:class:`GateResult`), how it fails, and how errors are coded.

Each item attaches one :class:`GateResult` to its report (``user_properties``, which
pytest-xdist carries to the controller); :class:`~pytest_planguard.gate.state.GateState`
gathers them with the item's outcome for :mod:`.report` and :mod:`.terminal`.
"""

from __future__ import annotations

import importlib.util
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, NoReturn, ParamSpec, TypeVar

import _pytest
import msgspec
import pluggy
import pytest
from _pytest.outcomes import OutcomeException

import pytest_planguard
from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.gate.policy import ChangeClass, GateAction

P = ParamSpec("P")
T = TypeVar("T")

ItemKind = Literal["plan", "invariant", "policy"]
Check = Literal["single_compile", "resolver_identity", "determinism", "policy"]
Status = Literal[
    "unchanged",
    "changed",
    "new",
    "updated",
    "unstable",
    "unavailable",
    "error",
    "passed",
    "failed",
]
Outcome = Literal["passed", "failed", "skipped"]
Code = Annotated[str, msgspec.Meta(pattern="^[A-Z][A-Z0-9_]*$")]
PROPERTY = "planguard"
"""The ``user_properties`` name a result travels under."""


class PolicyFinding(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One finding of the adapter's policy validation."""

    code: Code
    severity: str
    subject: str
    message: str
    subject_kind: str = "view"


class GateResult(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """The result of one gate item: a view's plan check, an invariant or the policy."""

    kind: ItemKind
    manifest: str
    """The manifest's node id (its path relative to the rootdir)."""
    nodeid: str
    status: Status
    codes: tuple[Code, ...]
    view: str | None = None
    check: Check | None = None
    classes: tuple[ChangeClass, ...] = ()
    primary: str | None = msgspec.field(default=None, name="class")
    """The first of ``classes`` (``unchanged`` when a changed text has none)."""
    action: GateAction | None = None
    message: str = ""
    """The first line of the failure message."""
    findings: tuple[PolicyFinding, ...] = ()
    caused_by: tuple[str, ...] = ()
    """Changed upstream views (from lineage) that explain this view's change."""
    inherited: bool = False
    """The change is fully explained by ``caused_by`` (its own plan is unchanged)."""
    diffs: dict[str, str] = msgspec.field(default_factory=dict)
    """A changed view: per changed section (and ``header``), the unified diff of the
    stored snapshot against the current text, whole-section context (:mod:`.review`)."""
    header: dict[str, str] = msgspec.field(default_factory=dict)
    """An invariant or policy item: the target's snapshot header (engine versions,
    settings hash, normalizer), for the reports' summary."""
    first_divergence: str | None = None
    """For a changed view whose snapshots both carry a rule trace: the first planner
    stage whose plan differs (``initial_logical_plan``, ``physical_plan after ...``)."""
    rules_started: tuple[str, ...] = ()
    """Effective rules that fire now and did not before."""
    rules_stopped: tuple[str, ...] = ()
    """Effective rules that fired before and do not now."""
    trace_disagreement: str = ""
    """Why the trace and the changed sections name different plan layers, if they do."""


class ReportedResult(GateResult, frozen=True, kw_only=True, omit_defaults=True):
    """A :class:`GateResult` with the outcome pytest reported for its item."""

    outcome: Outcome


def manifest_label(item: pytest.Item) -> str:
    """What an item gates: its manifest's path, or ``<module path>::<factory>``."""
    parent = item.parent
    return parent.nodeid if parent is not None and parent.nodeid else item.nodeid.split("::")[0]


def publish(item: pytest.Item, result: GateResult) -> None:
    """Attach ``result`` to the item's report (xdist carries it to the controller)."""
    item.user_properties.append((PROPERTY, msgspec.json.encode(result).decode()))


def fail(item: pytest.Item, message: str, result: GateResult) -> NoReturn:
    """Publish ``result`` with the message's first line, then fail the item with
    ``message`` and no traceback."""
    first = message.splitlines()[0] if message else ""
    publish(item, msgspec.structs.replace(result, message=first))
    pytest.fail(message, pytrace=False)


def received(value: object, outcome: str) -> ReportedResult:
    """The published result in ``value`` (a ``user_properties`` value), with ``outcome``."""
    result = msgspec.json.decode(str(value), type=GateResult)
    return ReportedResult(**msgspec.structs.asdict(result), outcome=_outcome(outcome))


def _outcome(outcome: str) -> Outcome:
    return "failed" if outcome == "failed" else ("skipped" if outcome == "skipped" else "passed")


# ------------------------------------------------------------------------------ codes


def is_coded(exc: BaseException) -> bool:
    """Does ``exc`` carry a stable code (``code`` and ``render()``, from either package)?"""
    return hasattr(exc, "code") and callable(getattr(exc, "render", None))


def render_error(exc: BaseException, fallback: PlanguardCode) -> str:
    """``error[CODE] ...`` for coded errors of any package, else ``fallback`` and the
    exception line."""
    if is_coded(exc):
        return str(exc.render())  # type: ignore[attr-defined]
    return f"error[{fallback}] {type(exc).__name__}: {exc}"


def error_code(exc: BaseException, fallback: PlanguardCode) -> str:
    return str(exc.code) if is_coded(exc) else str(fallback)  # type: ignore[attr-defined]


def call_adapter(method: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call an adapter ``method``; what it raises becomes a coded error naming it.

    A coded error (the pipeline's own, like a bad manifest) keeps its code.  Anything else
    is ``ADAPTER_ERROR``: an ``Exception``, and also another ``BaseException`` an engine or
    a user's code raises (DataFusion's ``PanicException`` would otherwise escape ``except
    Exception`` and show the tool's frames with no code).  An interrupt and pytest's own
    outcomes (skip, fail, exit) pass through."""
    try:
        return method(*args, **kwargs)
    except (KeyboardInterrupt, GeneratorExit, OutcomeException):
        raise
    except BaseException as exc:
        if is_coded(exc) and isinstance(exc, Exception):
            raise
        name = getattr(method, "__name__", "?")
        raise PlanguardError(
            PlanguardCode.ADAPTER_ERROR,
            f"adapter.{name} raised {type(exc).__name__}: {exc}",
            detail=user_frames(exc),
        ) from None


def _tool_dirs() -> tuple[str, ...]:
    """Where planguard, the reference pipeline, pytest and pluggy live (found without
    importing the reference pipeline)."""
    modules = (pytest_planguard, pluggy, _pytest)
    dirs = [Path(module.__file__).resolve().parent for module in modules if module.__file__]
    spec = importlib.util.find_spec("reference_impl")
    dirs += [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []
    return tuple(str(d) + os.sep for d in dirs)


def user_frames(exc: BaseException, limit: int = 10) -> str:
    """The traceback of ``exc`` without planguard's, pytest's and pluggy's own frames (the
    last ``limit``): where in the user's adapter or pipeline it was raised."""
    tool_dirs = _tool_dirs()
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not str(Path(frame.filename).resolve()).startswith(tool_dirs)
    ][-limit:]
    if not frames:
        return ""
    lines = ["Traceback (the adapter's own frames, most recent call last):"]
    lines += [line.rstrip("\n") for line in traceback.format_list(frames)]
    return "\n".join([*lines, f"{type(exc).__name__}: {exc}"])


def with_detail(item: pytest.Item | pytest.Collector, message: str, exc: BaseException) -> str:
    """``message``, plus the error's detail under ``--tb=long``."""
    detail = getattr(exc, "detail", "")
    if detail and item.config.option.tbstyle == "long":
        return f"{message}\n{detail}"
    return message
