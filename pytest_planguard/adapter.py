"""The adapter protocol: what planguard needs to know about "a pipeline".

A pipeline has five stages (compile, build context, plan, validate, execute), keeps its
dataset resolver somewhere at each stage (``resolver_stages``), and exposes fingerprints
and per-view plan bundles.  The reference pipeline is the default adapter
(:class:`pytest_planguard.reference_adapter.ReferenceAdapter`); point the
``planguard_adapter`` ini key at ``package.module:factory`` to plug in your own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from pytest_planguard.errors import PlanguardCode, PlanguardError

DEFAULT_ADAPTER = "pytest_planguard.reference_adapter:ReferenceAdapter"


@dataclass(frozen=True, slots=True)
class ResolverStage:
    """Where the resolver travels: ``target`` is called with it at ``path``.

    ``path`` is a parameter name, optionally followed by attributes:
    ``resolver`` or ``authority.semantic_context.dataset_resolver``.
    """

    name: str
    target: str
    path: str

    @property
    def parameter(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(self.path.split(".")[1:])

    def spec(self) -> str:
        return f"{self.name}={self.target}({self.path})"


@dataclass(frozen=True, slots=True)
class Finding:
    """One policy finding: a stable code, a severity and the subject it is about."""

    code: str
    severity: str
    subject: str
    message: str
    subject_kind: str = "view"
    """What ``subject`` names: ``view``, ``dataset``, ``scan_unit``, ``output``."""


@dataclass(frozen=True, slots=True)
class ValidationOutcome:
    ok: bool
    findings: tuple[Finding, ...]
    artifact: bytes
    """Serialized validation artifact; identical bytes for the same plan and runtime."""


@dataclass(frozen=True, slots=True)
class PipelineFingerprints:
    manifest: str
    plans: Mapping[str, str]
    runtime: str
    validation_artifact: bytes


@dataclass(frozen=True, slots=True)
class BundleView:
    """One view's plan bundle as the snapshot gate sees it."""

    view: str
    p0: str
    p1: str
    p2: str
    schema: tuple[tuple[str, str, bool], ...]
    """(name, type, nullable) per output column."""
    signals: Mapping[str, Any] = field(default_factory=dict)
    """Plan signals: ``operator_counts``, ``operator_total``, ``repartition_count``,
    ``estimated_rows`` and anything else worth recording."""
    status: str = "planned"
    """``planned``, or why no plan exists (``failed``, ``budget_exceeded``, ``skipped``)."""
    message: str = ""
    udfs: Mapping[str, str] = field(default_factory=dict)
    """Optional: for each UDF the view calls, a hash of the UDF's code (name -> hash).
    Recorded in the snapshot header (``udfs``), so that a change of a UDF's body fails
    the views that call it, as class ``udf``.  Leave it empty when the adapter cannot
    tell: the snapshot then records no UDF line."""
    trace: tuple[tuple[str, str | None], ...] = ()
    """Optional: the rule trace of the view's plan, from one ``EXPLAIN VERBOSE``: (stage
    name, plan text) per planner stage and optimizer rule in order, the text None where
    the stage left the plan as the stage before it had it
    (:func:`reference_impl.relspec.frame_plan.plan_frame` builds it for any DataFrame).
    Recorded as the snapshot's ``trace`` section, it names the stage where a changed plan
    first diverged.  Leave it empty when the adapter cannot tell: the snapshot then has
    no ``trace`` section."""


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """Engine versions and session settings, recorded (hashed) in snapshot headers."""

    versions: Mapping[str, str]
    settings: Mapping[str, str]
    """Every session setting, name -> value (the normalizer drops machine-dependent ones
    before hashing)."""
    locations: Mapping[str, str] = field(default_factory=dict)
    """Dataset name -> absolute location (plan texts print them; snapshots must not)."""
    stores: Mapping[str, str] = field(default_factory=dict)
    """Object store name -> its URL prefix (``s3://bucket/prefix``): snapshots name the
    store (``$name/...``), never the URL, endpoint or bucket.  The gate adds the stores
    of the ini key ``planguard_stores``."""


@runtime_checkable
class PipelineAdapter(Protocol):
    """A pipeline planguard can drive and watch."""

    compile_entrypoints: Sequence[str]
    """``module:function`` names counted by the single-compile invariant."""
    resolver_stages: Sequence[ResolverStage]
    """Stages whose resolver argument must be one object for a whole run."""

    def compile(self, manifest: Path) -> Any:
        """Load and compile a manifest (one call is one compile)."""

    def view_names(self, compiled: Any) -> Sequence[str]:
        """The compiled program's views, in the order items should run.

        Optional, not part of the protocol: ``view_dependencies(compiled)`` returning
        view -> the views it reads directly. With it, a changed view names the changed
        upstream views that explain it (``caused_by``)."""

    def build_context(self, compiled: Any) -> Any:
        """Create the engine session and register datasets, UDFs and views."""

    def plan(self, context: Any) -> Any:
        """Plan every view (never executing anything).

        Optional, not part of the protocol: ``for_fingerprints()`` returning an adapter
        for runs whose only output is fingerprints (the determinism check), which may skip
        what no fingerprint covers (the reference adapter skips the rule trace)."""

    def validate(self, plan: Any, context: Any) -> ValidationOutcome:
        """Check policies on the plan."""

    def execute(self, plan: Any, context: Any, *, dry_run: bool) -> Any:
        """Run the plan; with ``dry_run`` go through every stage but write nothing."""

    def fingerprints(
        self, compiled: Any, context: Any, plan: Any, validation: ValidationOutcome
    ) -> PipelineFingerprints:
        """The fingerprints that must not vary between runs of the same inputs."""

    def bundles(self, plan: Any) -> Mapping[str, BundleView]:
        """Per-view plan bundles (P0/P1/P2, schema, signals)."""

    def engine_info(self, context: Any) -> EngineInfo:
        """Engine versions and the session's settings."""


def import_target(
    target: str, *, code: PlanguardCode, field_path: str | None, kind: str
) -> tuple[Any, str, Callable[..., Any]]:
    """``package.module:attribute`` -> (module, attribute, the callable it names).

    Fails with ``code`` at ``field_path`` when ``target`` is malformed, does not import or
    names something that is not callable (``kind`` says what it should be).
    """
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise PlanguardError(
            code, f"{target!r} must look like 'package.module:{kind}'", field_path=field_path
        )
    try:
        module = importlib.import_module(module_name)
        found = getattr(module, attribute)
    except (ImportError, AttributeError) as exc:
        raise PlanguardError(
            code,
            f"cannot load {kind} {target!r}: {type(exc).__name__}: {exc}",
            field_path=field_path,
        ) from None
    if not callable(found):
        raise PlanguardError(code, f"{target!r} is not callable", field_path=field_path)
    return module, attribute, found


def load_adapter(spec: str | None, *, trusted_modules: Sequence[str] = ()) -> PipelineAdapter:
    """Instantiate ``package.module:factory`` (the default adapter when ``spec`` is None).

    ``trusted_modules`` (granted by whoever runs the tool) is handed to the reference
    adapter; an adapter of your own decides itself what code it imports."""
    target = spec or DEFAULT_ADAPTER
    _, _, factory = import_target(
        target,
        code=PlanguardCode.ADAPTER_ERROR,
        field_path="planguard_adapter",
        kind="factory",
    )
    adapter = (
        factory(trusted_modules=tuple(trusted_modules)) if target == DEFAULT_ADAPTER else factory()
    )
    if not isinstance(adapter, PipelineAdapter):
        missing = [
            name
            for name in (
                "compile_entrypoints", "resolver_stages", "compile", "view_names",
                "build_context", "plan", "validate", "execute", "fingerprints", "bundles",
                "engine_info",
            )
            if not hasattr(adapter, name)
        ]  # fmt: skip
        raise PlanguardError(
            PlanguardCode.ADAPTER_ERROR,
            f"adapter {target!r} lacks {', '.join(missing)} of the PipelineAdapter protocol",
            field_path="planguard_adapter",
        )
    return adapter


_Adapter = TypeVar("_Adapter")


def copy_with(adapter: _Adapter, **changes: Any) -> _Adapter:
    """A shallow copy of ``adapter`` (of a subclass too) with ``changes`` set: the variants
    the gate asks an adapter for (``with_plan_cache``, ``with_views``,
    ``for_fingerprints``)."""
    import copy

    copied = copy.copy(adapter)
    for name, value in changes.items():
        setattr(copied, name, value)
    return copied
