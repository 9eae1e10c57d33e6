"""The session gate: any ``datafusion.SessionContext`` gated with no adapter code.

A *session target* is ``package.module:factory``, a zero-argument function returning a
``SessionContext`` with the user's tables, UDFs and views registered (``planguard_sessions``
or ``--planguard-session``).  :class:`SessionAdapter` drives it through the same
:class:`~pytest_planguard.adapter.PipelineAdapter` stages as a manifest:

* *compile* calls the factory (once per run) and reads the views from the session's
  catalog, with their dependencies from the views inlined in each view's logical plan;
* *plan* plans every view on its own, in dependency order, through the project's one
  bundle builder (:func:`reference_impl.relspec.frame_plan.plan_frame`): a view that
  fails is one failed view, its downstream views are skipped, every other view is
  planned;
* nothing is validated or executed: a session has no policies and no outputs.

Most SQL mistakes make ``ctx.sql`` raise inside the factory, before any view is known.
The factory is then called once more with ``SessionContext.sql`` forgiving: a statement
that does not plan is recorded and yields an empty placeholder, so the factory finishes
and the failing view is named (with DataFusion's message) while the others are checked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pytest_planguard.adapter import (
    BundleView,
    EngineInfo,
    PipelineFingerprints,
    ResolverStage,
    ValidationOutcome,
    copy_with,
    import_target,
)
from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.session_identity import (
    catalog_tables,
    module_source,
    recording_tables,
    table_identities,
)

if TYPE_CHECKING:
    from reference_impl.relspec.plan_cache import PlanCache

_SHOW_STATISTICS = "datafusion.explain.show_statistics"
_CREATE_VIEW = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?P<name>[\"`]?[\w.]+[\"`]?)",
    re.IGNORECASE,
)
_TABLE_NOT_FOUND = re.compile(r"table '(?:[^'.]+\.)*(?P<name>[^'.]+)' not found")
_PLACEHOLDER = "SELECT 1 AS planguard_unplanned_view WHERE false"


@dataclass(frozen=True, slots=True)
class SessionProgram:
    """What the factory built: its session and the views registered in it."""

    spec: str
    context: Any = field(repr=False)
    views: tuple[str, ...]
    """Every view, planned or not, in dependency order (ties by name)."""
    dependencies: Mapping[str, tuple[str, ...]]
    """View -> the views its plan reads directly."""
    failed: Mapping[str, str]
    """Views whose SQL did not plan inside the factory -> DataFusion's message."""
    user_udfs: tuple[str, ...]
    fingerprint: str
    tables: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """What the factory registered each table from (:mod:`.session_identity`)."""


@dataclass(frozen=True, slots=True)
class SessionPlan:
    bundles: Mapping[str, BundleView]


class SessionAdapter:
    """The :class:`~pytest_planguard.adapter.PipelineAdapter` of one session factory.

    ``views``: names or shell patterns (``planguard_session_views``) restricting the gated
    views; empty gates them all.  ``compile_entrypoints`` and ``resolver_stages`` are
    empty: a session has no compile step or resolver of planguard's knowing (configure
    ``planguard_compile_entrypoints`` / ``planguard_resolver_stages`` to watch your own)."""

    compile_entrypoints: Sequence[str] = ()
    resolver_stages: Sequence[ResolverStage] = ()

    def __init__(
        self,
        spec: str,
        *,
        views: Sequence[str] = (),
        plan_cache: PlanCache | None = None,
        trace: bool = True,
    ) -> None:
        self.spec = spec
        self.patterns = tuple(views)
        self.plan_cache = plan_cache
        self.trace = trace
        """Give each bundle its rule trace (``EXPLAIN VERBOSE``; the same plans either
        way)."""
        self.chosen: frozenset[str] | None = None
        """Plan only these views (:meth:`with_views`); None plans every view."""

    def with_views(self, views: Collection[str]) -> Self:
        """A copy of this adapter planning only ``views`` (which include the views they
        read): for a run whose items read no other bundle, such as one shard's."""
        return copy_with(self, chosen=frozenset(views))

    def with_plan_cache(self, cache: PlanCache | None) -> Self:
        """A copy of this adapter planning through ``cache`` (see :mod:`.session_identity`)."""
        return copy_with(self, plan_cache=cache)

    def for_fingerprints(self) -> Self:
        """A copy of this adapter without the rule trace, for runs that only compare
        fingerprints (the determinism check): no fingerprint covers the trace."""
        return copy_with(self, trace=False)

    # ------------------------------------------------------------------ compile

    def compile(self, manifest: Path) -> SessionProgram:
        """Call the factory and read its catalog (``manifest`` is the factory's module)."""
        factory = self._factory()
        tables: dict[str, Any] = {}
        try:
            with recording_tables(tables):
                ctx = factory()
            failed: dict[str, str] = {}
        except Exception as exc:
            tables.clear()
            with recording_tables(tables):
                ctx, failed = self._forgiving(factory)
            if ctx is None:
                from pytest_planguard.gate.results import user_frames

                raise PlanguardError(
                    PlanguardCode.ADAPTER_ERROR,
                    f"session factory {self.spec!r} raised {type(exc).__name__}: "
                    + _first_line(exc),
                    detail=user_frames(exc),
                ) from None
        from datafusion import SessionContext

        if not isinstance(ctx, SessionContext):
            raise PlanguardError(
                PlanguardCode.ADAPTER_ERROR,
                f"session factory {self.spec!r} returned {type(ctx).__name__}, not a "
                "datafusion.SessionContext",
            )
        registered = catalog_tables(ctx, views=True)
        dependencies = {view: _view_dependencies(ctx, view, set(registered)) for view in registered}
        for view, message in failed.items():
            # a view over a view that did not plan fails on "table ... not found"
            missing = {m.group("name") for m in _TABLE_NOT_FOUND.finditer(message)}
            dependencies[view] = tuple(sorted(name for name in missing if name in failed))
        views = _dependency_order(dependencies)
        user_udfs = tuple(sorted(set(ctx.udfs()) - set(SessionContext().udfs())))
        return SessionProgram(
            spec=self.spec,
            context=ctx,
            views=views,
            dependencies=dependencies,
            failed=failed,
            user_udfs=user_udfs,
            tables=tables,
            fingerprint=_digest(
                {
                    "views": list(views),
                    "dependencies": {k: list(v) for k, v in dependencies.items()},
                    "failed": failed,
                    "udfs": list(user_udfs),
                }
            ),
        )

    def _factory(self) -> Callable[[], Any]:
        _, _, factory = import_target(
            self.spec,
            code=PlanguardCode.CONFIG_ERROR,
            field_path="planguard_sessions",
            kind="factory",
        )
        return factory

    def _forgiving(self, factory: Callable[[], Any]) -> tuple[Any, dict[str, str]]:
        """The factory once more with ``ctx.sql`` forgiving; (None, {}) when that does not
        help (it raises again, or no statement failed)."""
        failed: dict[str, str] = {}
        try:
            with _forgiving_sql(failed):
                ctx = factory()
        except Exception:
            return None, {}
        return (ctx, failed) if failed else (None, {})

    def view_names(self, compiled: SessionProgram) -> Sequence[str]:
        if not self.patterns:
            return compiled.views
        unmatched = [p for p in self.patterns if not any(_matches(p, v) for v in compiled.views)]
        if unmatched:
            import difflib

            near = difflib.get_close_matches(unmatched[0], compiled.views, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise PlanguardError(
                PlanguardCode.CONFIG_ERROR,
                f"planguard_session_views entry {unmatched[0]!r} matches no view of session "
                f"{self.spec!r}{hint}; its views: {', '.join(compiled.views) or '(none)'}",
                field_path="planguard_session_views",
            )
        return tuple(v for v in compiled.views if any(_matches(p, v) for p in self.patterns))

    def view_dependencies(self, compiled: SessionProgram) -> Mapping[str, tuple[str, ...]]:
        return compiled.dependencies

    # ------------------------------------------------------------------ the rest

    def build_context(self, compiled: SessionProgram) -> SessionProgram:
        return compiled

    def plan(self, context: SessionProgram) -> SessionPlan:
        from reference_impl.relspec.frame_plan import FramePlan, plan_frame
        from reference_impl.relspec.plan_cache import cached, share_order, view_key

        ctx = context.context
        keys = self._cache_keys(context) if self.plan_cache is not None else None

        def plan_view(view: str) -> FramePlan | str:
            """The view's plans, or why it could not be planned."""
            try:
                frame = _view_frame(ctx, view)
                fresh = partial(plan_frame, frame, trace=self.trace)
                if keys is None:
                    return fresh()
                key = view_key(keys[0], frame.logical_plan().display_indent_schema(), keys[1])
                hit = cached(self.plan_cache, key, fresh, FramePlan, label=view)
                # a traced run never takes an entry without its trace
                return fresh() if self.trace and not hit.trace else hit
            except Exception as exc:
                return _first_line(exc)

        # a process of several sharing the cache plans ahead from its own slice (see
        # share_order); the loop below then reads what it planned or found
        views = [v for v in context.views if self.chosen is None or v in self.chosen]
        ahead = {
            view: plan_view(view)
            for view in share_order(self.plan_cache, views)
            if view not in context.failed
        }
        planned: dict[str, FramePlan] = {}
        bundles: dict[str, BundleView] = {}
        for view in views:
            blocked = next(
                (
                    dep
                    for dep in context.dependencies[view]
                    if dep in bundles and bundles[dep].status != "planned"
                ),
                None,
            )
            if blocked is not None:
                bundles[view] = _unplanned(
                    view, "skipped", f"upstream view {blocked!r} was not planned"
                )
                continue
            if view in context.failed:
                bundles[view] = _unplanned(view, "failed", context.failed[view])
                continue
            outcome = ahead.pop(view) if view in ahead else plan_view(view)
            if isinstance(outcome, str):
                bundles[view] = _unplanned(view, "failed", outcome)
                continue
            planned[view] = outcome
            bundles[view] = BundleView(view=view, p0="", p1="", p2="", schema=())
        scans = {view: list(plan.scans) for view, plan in planned.items()}
        stats = _dataset_statistics(ctx, {scan.dataset for s in scans.values() for scan in s})
        for view, plan in planned.items():
            bundles[view] = _bundle(view, plan, scans[view], stats, context.user_udfs)
        return SessionPlan(bundles={view: bundles[view] for view in views})

    def _cache_keys(self, context: SessionProgram) -> tuple[str, dict[str, str]]:
        """The session's part of every view's cache key, and its tables' identities."""
        from reference_impl.relspec.frame_plan import engine_versions, session_settings
        from reference_impl.relspec.plan_cache import context_key

        ctx = context.context
        with _statistics_on(ctx):
            datasets = table_identities(ctx, catalog_tables(ctx, views=False), context.tables)
            settings = session_settings(ctx)
        udfs = {"names": list(context.user_udfs), "module": module_source(self.spec)}
        return context_key(versions=engine_versions(), settings=settings, udfs=udfs), datasets

    def validate(self, plan: SessionPlan, context: SessionProgram) -> ValidationOutcome:
        return ValidationOutcome(ok=True, findings=(), artifact=b"")

    def execute(self, plan: SessionPlan, context: SessionProgram, *, dry_run: bool) -> None:
        """Nothing to do: a session has no outputs of planguard's knowing."""

    def fingerprints(
        self,
        compiled: SessionProgram,
        context: SessionProgram,
        plan: SessionPlan,
        validation: ValidationOutcome,
    ) -> PipelineFingerprints:
        info = self.engine_info(context)
        return PipelineFingerprints(
            manifest=compiled.fingerprint,
            plans={
                view: _digest([b.status, b.message, b.p0, b.p1, b.p2, [list(f) for f in b.schema]])
                for view, b in plan.bundles.items()
            },
            runtime=_digest({"versions": dict(info.versions), "settings": dict(info.settings)}),
            validation_artifact=validation.artifact,
        )

    def bundles(self, plan: SessionPlan) -> Mapping[str, BundleView]:
        return plan.bundles

    def project_view(
        self, context: SessionProgram, view: str, columns: Sequence[str]
    ) -> BundleView:
        """``view``'s bundle with only ``columns`` selected (see :func:`projected_bundle`)."""
        return projected_bundle(context.context, view, columns)

    def engine_info(self, context: SessionProgram) -> EngineInfo:
        from reference_impl.relspec.frame_plan import engine_versions, session_settings

        return EngineInfo(versions=engine_versions(), settings=session_settings(context.context))


# ---------------------------------------------------------------------- helpers


def projected_bundle(ctx: Any, view: str, columns: Sequence[str]) -> BundleView:
    """The plans of ``SELECT columns FROM view`` in ``ctx``: how the gate proves that a
    view which gained columns computes its other columns exactly as before (the optimizer
    prunes what is not selected, so these plans equal the old view's own)."""
    from reference_impl.relspec.frame_plan import plan_frame

    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    table = ".".join(quote(part) for part in view.split("."))
    return _bundle_view(
        view, plan_frame(ctx.sql(f"SELECT {', '.join(map(quote, columns))} FROM {table}"))
    )


def _bundle_view(view: str, plan: Any, signals: Mapping[str, Any] | None = None) -> BundleView:
    """A :class:`~reference_impl.relspec.frame_plan.FramePlan` as the gate sees it."""
    return BundleView(
        view=view,
        p0=plan.p0,
        p1=plan.p1,
        p2=plan.p2,
        schema=tuple((f.name, f.type, f.nullable) for f in plan.schema),
        signals=signals or {},
        trace=plan.trace,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _digest(payload: Any) -> str:
    import msgspec

    return hashlib.sha256(msgspec.json.encode(payload, order="sorted")).hexdigest()


def _matches(pattern: str, view: str) -> bool:
    return view == pattern or fnmatchcase(view, pattern)


def _unplanned(view: str, status: str, message: str) -> BundleView:
    return BundleView(view=view, p0="", p1="", p2="", schema=(), status=status, message=message)


@contextmanager
def _forgiving_sql(failed: dict[str, str]) -> Iterator[None]:
    """``SessionContext.sql`` that records a statement that does not plan instead of
    raising, and ``register_view`` that records the view such a statement was for."""
    from datafusion import SessionContext

    original_sql = SessionContext.sql
    original_register = SessionContext.register_view
    placeholders: list[tuple[Any, str]] = []  # kept alive: matched by identity

    def sql(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return original_sql(self, query, *args, **kwargs)
        except Exception as exc:
            message = _first_line(exc)
            created = _CREATE_VIEW.match(query)
            frame = original_sql(self, _PLACEHOLDER)
            if created is not None:
                failed[created.group("name").strip('"`')] = message
            else:
                placeholders.append((frame, message))
            return frame

    def register_view(self: Any, name: str, df: Any) -> None:
        for frame, message in placeholders:
            if frame is df:
                failed[name] = message
                return
        original_register(self, name, df)

    SessionContext.sql = sql  # type: ignore[method-assign]
    SessionContext.register_view = register_view  # type: ignore[method-assign]
    try:
        yield
    finally:
        SessionContext.sql = original_sql  # type: ignore[method-assign]
        SessionContext.register_view = original_register  # type: ignore[method-assign]


def _view_frame(ctx: Any, view: str) -> Any:
    """The view's own plan as a DataFrame: ``ctx.table(view)`` without the
    ``SubqueryAlias: view`` DataFusion puts on top, so a session view's bundle has the shape
    of a manifest view's, and a view inlined into a downstream view's plan is, one level
    below its alias, exactly its own P0 (what inherited changes are recognized by)."""
    table = ctx.table(view)
    plan = table.logical_plan()
    variant = plan.to_variant()
    if type(variant).__name__ != "SubqueryAlias" or str(variant.alias()) != view:
        return table
    return ctx.create_dataframe_from_logical_plan(plan.inputs()[0])


def _view_dependencies(ctx: Any, view: str, views: set[str]) -> tuple[str, ...]:
    """The views ``view`` reads directly: DataFusion inlines a view it reads as a
    ``SubqueryAlias`` named after it (the outermost such alias on each path)."""
    found: set[str] = set()
    stack = list(ctx.table(view).logical_plan().inputs())  # below the view's own alias
    while stack:
        node = stack.pop()
        variant = node.to_variant()
        if type(variant).__name__ == "SubqueryAlias" and str(variant.alias()) in views:
            found.add(str(variant.alias()))
            continue
        stack.extend(node.inputs())
    return tuple(sorted(found))


def _dependency_order(dependencies: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Views so that each comes after the views it reads; ties (and cycles, which
    DataFusion cannot build) by name."""
    order: list[str] = []
    done: set[str] = set()
    remaining = sorted(dependencies)
    while remaining:
        ready = [
            v for v in remaining if all(d in done or d not in dependencies for d in dependencies[v])
        ]
        batch = ready or remaining[:1]
        for view in batch:
            order.append(view)
            done.add(view)
        remaining = [v for v in remaining if v not in done]
    return tuple(order)


def _dataset_statistics(ctx: Any, datasets: set[str]) -> Mapping[str, Any]:
    """Row and byte statistics per scanned dataset."""
    from reference_impl.relspec.frame_plan import dataset_statistics

    if not datasets:
        return {}
    with _statistics_on(ctx):
        return dataset_statistics(ctx, datasets)


@contextmanager
def _statistics_on(ctx: Any) -> Iterator[None]:
    """The session's statistics setting turned on, and put back as it was."""
    from reference_impl.relspec.frame_plan import session_settings

    before = session_settings(ctx).get(_SHOW_STATISTICS, "false")
    ctx.sql(f"SET {_SHOW_STATISTICS} = true").collect()
    try:
        yield
    finally:
        ctx.sql(f"SET {_SHOW_STATISTICS} = {before}").collect()


def _bundle(
    view: str,
    plan: Any,
    scans: Sequence[Any],
    stats: Mapping[str, Any],
    user_udfs: Sequence[str],
) -> BundleView:
    from reference_impl.relspec.plan_facts import operator_counts, udf_calls

    ops = operator_counts(plan.p2)
    datasets = sorted({scan.dataset for scan in scans})
    counts = [getattr(stats.get(scan.dataset), "rows", None) for scan in scans]
    rows = sum(n for n in counts if n is not None) if None not in counts else None
    return _bundle_view(
        view,
        plan,
        {
            "operator_counts": ops,
            "operator_total": sum(ops.values()),
            "repartition_count": ops.get("RepartitionExec", 0),
            "estimated_rows": rows,
            "estimated_rows_source": "explain:scan" if rows is not None else "unavailable",
            "required_udfs": list(udf_calls(plan.p0, user_udfs)),
            "scan_datasets": datasets,
        },
    )
