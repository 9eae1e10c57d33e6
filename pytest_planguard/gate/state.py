"""The per-process state of ``pytest --planguard``: collection, shared runs, results.

Manifests become test items (:mod:`.items`) that share one instrumented run.  Collection
compiles the manifest (once per process, so once per pytest-xdist worker); the first item
to run drives the adapter on from that compile through context -> plan -> validate ->
execute (a dry run unless ``--planguard-execute``) with the compile counter and the
resolver spy active; every item reads that run.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_planguard.config import GateTarget
from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.gate import github
from pytest_planguard.gate.items import ManifestFile, SessionModule, is_gate_item
from pytest_planguard.gate.report import TargetRecord, UnusedSnapshot, write_report
from pytest_planguard.gate.results import (
    PROPERTY,
    ReportedResult,
    call_adapter,
    manifest_label,
    received,
)
from pytest_planguard.gate.selection import determinism_last, partial_targets, xdist_share
from pytest_planguard.gate.snapshot import (
    snapshot_directory,
    snapshot_header,
    stale_temporaries,
    unused_snapshots,
)
from pytest_planguard.gate.starts import DeterminismStarts
from pytest_planguard.gate.terminal import render_summary
from pytest_planguard.invariants import (
    CompileCounter,
    ResolverSpy,
    count_compiles,
    spy_resolver,
)

if TYPE_CHECKING:
    from pytest_planguard.adapter import (
        BundleView,
        EngineInfo,
        PipelineAdapter,
        PipelineFingerprints,
        ValidationOutcome,
    )
    from pytest_planguard.determinism_processes import Incremental
    from pytest_planguard.gate.plan_cache import PlanCacheStore
    from pytest_planguard.gate.review import Review
    from pytest_planguard.session import PlanguardSession

_WORKER_OUTPUT = "planguard_collected"
"""``workeroutput`` key: what a pytest-xdist worker collected and selected, per target."""
_WORKER_HEADERS = "planguard_headers"
"""``workeroutput`` key: the snapshot header of each target a worker planned."""
_WORKER_CACHE = "planguard_cache"
"""``workeroutput`` key: a pytest-xdist worker's plan cache counts."""

_CACHE_COUNTS = ("hits", "misses", "writes", "corrupt", "verified", "evicted", "entries", "bytes")


@dataclass(slots=True)
class CollectedManifest:
    """What collection found for one manifest: its views and the node ids of its items.
    ``complete`` (every item selected) is known once collection finishes."""

    views: tuple[str, ...]
    nodeids: frozenset[str]
    complete: bool = False
    label: str = ""
    """The target's label, as its items' ``manifest`` (the reports' target records)."""


@dataclass(slots=True)
class ManifestRun:
    """One instrumented run of a gated pipeline (a manifest or a session), shared by its
    items: the compile done at collection, then context, plan, validation and a
    (dry-run) execution."""

    target: GateTarget
    counter: CompileCounter
    spy: ResolverSpy
    compiled: Any = None
    context: Any = None
    plan: Any = None
    validation: ValidationOutcome | None = None
    execution_error: BaseException | None = None
    error: BaseException | None = None
    bundles: Mapping[str, BundleView] = field(default_factory=dict)
    engine: EngineInfo | None = None
    fingerprints: PipelineFingerprints | None = None
    recheck: Mapping[str, BundleView] | None = None
    header: Mapping[str, str] | None = None
    """The snapshot header (engine versions, settings hash): computed once per run."""
    changed: frozenset[str] | None = None
    """Views whose bundle differs from their snapshot: computed once, when a view changed."""
    cache_keys: frozenset[str] | None = None
    """The plan cache keys of this run's view plans (None: no cache)."""
    rendered: dict[str, str] = field(default_factory=dict)
    """View -> its snapshot text, rendered once per run."""


class GateState:
    """Collection, the shared runs and the results of the plan gate (per process)."""

    def __init__(self, session: PlanguardSession) -> None:
        self.session = session
        self.config = session.config
        self.runs: dict[GateTarget, ManifestRun] = {}
        self.compiles: dict[GateTarget, tuple[Any, CompileCounter]] = {}
        self.adapters: dict[GateTarget, PipelineAdapter] = {}
        self._snapshot_dirs: dict[GateTarget, Path] = {}
        self.starts = DeterminismStarts(self.config, session.pytest_config)
        self.results: list[ReportedResult] = []
        self.unused: list[UnusedSnapshot] = []
        self.collected: dict[GateTarget, CollectedManifest] = {}
        """Targets whose collection succeeded in this process (in a worker: its own)."""
        self.dependencies: dict[GateTarget, Mapping[str, tuple[str, ...]]] = {}
        """Target -> view -> the views it reads (when the adapter tells)."""
        self.reported: list[dict[str, CollectedManifest]] = []
        """On the pytest-xdist controller: what each worker that finished collected."""
        self.workers_down = 0
        self.worker_headers: dict[str, dict[str, str]] = {}
        """On the pytest-xdist controller: the snapshot header of each target a worker
        planned (for the reports' target records)."""
        self.started_at = time.time()
        self.deleted: list[Path] = []
        self.locations: dict[str, str] = {}
        """Node id -> ``file:line`` of the item's view (its ``reportinfo()``)."""
        self.review: Review | None = None
        self.review_problems: list[str] = []
        self._cache: PlanCacheStore | None = None
        self.wanted: dict[GateTarget, frozenset[str]] = {}
        """Targets whose run plans only these views (:func:`.selection.partial_targets`)."""
        self.cache_counts: Counter[str] = Counter()
        """Plan cache counts of this run (under pytest-xdist: summed over the workers)."""

    # --------------------------------------------------------------------- collection

    def collect_file(self, path: Path, parent: pytest.Collector) -> ManifestFile:
        return ManifestFile.from_parent(parent, path=path, state=self, target=GateTarget(path))

    def collect_session_module(self, path: Path, parent: pytest.Collector) -> SessionModule:
        targets = tuple(t for t in self.config.sessions if t.path == path.resolve())
        return SessionModule.from_parent(parent, path=path, state=self, targets=targets)

    def adapter(self, target: GateTarget) -> PipelineAdapter:
        """The manifests' adapter, or the session adapter of a session target."""
        if target.spec is None:
            return self.session.adapter
        if target not in self.adapters:
            from pytest_planguard.session_adapter import SessionAdapter

            self.adapters[target] = SessionAdapter(target.spec, views=self.config.session_views)
        return self.adapters[target]

    def collected_manifest(
        self, target: GateTarget, views: tuple[str, ...], items: list[pytest.Item]
    ) -> None:
        self.collected[target] = CollectedManifest(
            views=views,
            nodeids=frozenset(item.nodeid for item in items),
            label=manifest_label(items[0]) if items else "",
        )

    def snapshot_dir(self, target: GateTarget) -> Path:
        """``<snapshot dir>/<manifest dir>/<manifest stem>`` for a manifest,
        ``<snapshot dir>/<module dir>/<module stem>/<factory>`` for a session."""
        directory = self._snapshot_dirs.get(target)
        if directory is None:
            directory = snapshot_directory(
                self.config.snapshot_dir, self.config.rootpath, target.path
            )
            if target.factory:
                directory = directory / target.factory
            self._snapshot_dirs[target] = directory
        return directory

    def check_snapshot_paths(self, target: GateTarget, views: tuple[str, ...] = ()) -> None:
        """``SNAPSHOT_PATH_COLLISION`` when another configured target maps to the same
        snapshot directory, or two views to the same file, on a file system that ignores
        case (where ``Q1.plan`` and ``q1.plan`` are one file) as on any other."""
        mine = str(self.snapshot_dir(target)).casefold()
        others = [
            other
            for other in self.config.targets
            if other != target and str(self.snapshot_dir(other)).casefold() == mine
        ]
        if others:
            raise PlanguardError(
                PlanguardCode.SNAPSHOT_PATH_COLLISION,
                f"{_describe(target)} and {_describe(others[0])} map to the same snapshot "
                f"directory {str(self.snapshot_dir(target))!r}: rename or move one of them",
            )
        seen: dict[str, str] = {}
        for view in views:
            first = seen.setdefault(view.casefold(), view)
            if first != view:
                raise PlanguardError(
                    PlanguardCode.SNAPSHOT_PATH_COLLISION,
                    f"views {first!r} and {view!r} differ only in case: their snapshot files "
                    "would be one file on a case-insensitive file system; rename one",
                    file=str(target.path),
                )

    def collection_finished(self, session: pytest.Session) -> None:
        """Which manifests had every one of their items selected (after ``-k``, ``-m``,
        node ids, ``--deselect``, ``--lf``, ``--sw``, sharding plugins): only those take
        part in unused-snapshot detection."""
        selected = {item.nodeid for item in session.items}
        for collected in self.collected.values():
            collected.complete = collected.nodeids <= selected
        partial = not (hasattr(session.config, "workerinput") or self.config.execute)
        self.wanted = (
            partial_targets(session.items, self.collected, self.dependencies) if partial else {}
        )
        worker_output = getattr(session.config, "workeroutput", None)
        if worker_output is not None:
            worker_output[_WORKER_OUTPUT] = json.dumps(
                {
                    target.key: {
                        "views": list(entry.views),
                        "complete": entry.complete,
                        "label": entry.label,
                        "items": sorted(entry.nodeids),
                    }
                    for target, entry in self.collected.items()
                }
            )

    def worker_finished(self, node: Any) -> None:
        """pytest-xdist controller: keep what a worker collected (each worker collects and
        selects the same items, so any one of them tells; all must agree)."""
        self.workers_down += 1
        headers = getattr(node, "workeroutput", {}).get(_WORKER_HEADERS)
        for key, header in json.loads(headers or "{}").items():
            self.worker_headers.setdefault(key, header)
        counts = getattr(node, "workeroutput", {}).get(_WORKER_CACHE)
        if counts is not None:
            self.cache_counts.update(json.loads(counts))
        payload = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
        if payload is None:
            return
        self.reported.append(
            {
                path: CollectedManifest(
                    views=tuple(entry["views"]),
                    nodeids=frozenset(entry["items"]),
                    complete=entry["complete"],
                    label=entry["label"],
                )
                for path, entry in json.loads(payload).items()
            }
        )

    def run_determinism_last(self, items: list[pytest.Item]) -> None:
        """See :func:`.selection.determinism_last` (not under pytest-xdist)."""
        if not hasattr(self.session.pytest_config, "workerinput"):
            determinism_last(items)

    def keep_only_gate_items(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        kept = [item for item in items if is_gate_item(item)]
        dropped = [item for item in items if not is_gate_item(item)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    # --------------------------------------------------------------------- the run

    def plan_cache(self) -> PlanCacheStore | None:
        """The plan cache of this process (None under ``--planguard-no-cache``)."""
        if self._cache is None and self.config.cache_dir is not None:
            from pytest_planguard.gate.plan_cache import PlanCacheStore, choose_verified

            views = {view for entry in self.collected.values() for view in entry.views}
            self._cache = PlanCacheStore(
                self.config.cache_dir,
                max_bytes=self.config.cache_max_mb * 1024 * 1024,
                verify=choose_verified(views, self.config.cache_verify),
                share=xdist_share(self.session.pytest_config),
                on_miss=self.starts.start_pending,
            )
        return self._cache

    def run_adapter(self, target: GateTarget) -> PipelineAdapter:
        """The adapter of the gate's run: planning through the plan cache when the adapter
        can (``with_plan_cache``).  The determinism check and the stability re-check
        always plan afresh, with :meth:`adapter`."""
        adapter = self._partial(target, self.adapter(target))
        cache = self.plan_cache()
        with_cache = getattr(adapter, "with_plan_cache", None)
        if cache is None or with_cache is None:
            return adapter
        return with_cache(cache)  # type: ignore[no-any-return]

    def _partial(self, target: GateTarget, adapter: PipelineAdapter) -> PipelineAdapter:
        """``adapter`` planning only the views this run's items need, when it can
        (``with_views``)."""
        views = self.wanted.get(target)
        with_views = getattr(adapter, "with_views", None)
        if views is None or with_views is None:
            return adapter
        return with_views(views)  # type: ignore[no-any-return]

    def compile_target(self, target: GateTarget) -> Any:
        """Compile ``target`` once per process, counting compiles (collection calls this);
        a session's compile is its factory call."""
        if target not in self.compiles:
            adapter = self.adapter(target)
            with_cache = getattr(adapter, "with_plan_cache", None)
            if with_cache is not None and self.config.cache_dir is not None:
                # the compile keeps its SQL analyses in the cache (the run's store, made
                # once every target is collected, picks the views to verify)
                from pytest_planguard.gate.plan_cache import PlanCacheStore

                adapter = with_cache(PlanCacheStore(self.config.cache_dir))
            with count_compiles(self.compile_targets(target)) as counter:
                compiled = call_adapter(adapter.compile, target.path)
            self.compiles[target] = (compiled, counter)
        return self.compiles[target][0]

    def compile_targets(self, target: GateTarget) -> tuple[str, ...]:
        if target.spec is None:
            return self.session.compile_targets()
        return self.config.compile_entrypoints

    def resolver_stages(self, target: GateTarget) -> tuple[Any, ...]:
        if target.spec is None or self.config.resolver_stages:
            return self.session.resolver_stages()
        return ()

    def manifest_run(self, target: GateTarget) -> ManifestRun:
        run = self.runs.get(target)
        if run is None:
            self.starts.start(target)
            # Tracing allocations (where a stray resolver was created) slows the run down
            # severalfold: a dry run is traced only when it shows a stray, by running the
            # stages again.  A real run (--planguard-execute) writes: it is traced at once.
            trace = self.config.execute
            run = self.runs[target] = self._instrumented_run(target, trace_origins=trace)
            if not trace and run.spy.stray() is not None:
                traced = self._instrumented_run(target, trace_origins=True).spy
                if traced.stray() is not None:
                    run.spy = traced
            if run.error is not None:
                self.starts.drop(target)
        return run

    @property
    def incremental(self) -> Incremental | None:
        """The determinism check over the plan cache (None under --planguard-no-cache)."""
        return self.starts.incremental

    def _instrumented_run(self, target: GateTarget, *, trace_origins: bool = True) -> ManifestRun:
        """Stages after the compile, with the counter and the spy active.  The compile
        happened at collection (also counted); the two windows together are the run."""
        adapter = self.run_adapter(target)
        compiled = self.compile_target(target)
        with (
            count_compiles(self.compile_targets(target)) as counter,
            spy_resolver(self.resolver_stages(target), trace_origins=trace_origins) as spy,
        ):
            counter.calls.extend(self.compiles[target][1].calls)
            run = ManifestRun(target=target, counter=counter, spy=spy, compiled=compiled)
            try:
                run.context = call_adapter(adapter.build_context, run.compiled)
                store = self.plan_cache()
                keys = store.record() if store is not None else None
                run.plan = call_adapter(adapter.plan, run.context)
                run.cache_keys = frozenset(keys) if keys is not None else None
                run.validation = call_adapter(adapter.validate, run.plan, run.context)
                run.bundles = call_adapter(adapter.bundles, run.plan)
                run.engine = call_adapter(adapter.engine_info, run.context)
                run.fingerprints = call_adapter(
                    adapter.fingerprints, run.compiled, run.context, run.plan, run.validation
                )
            except Exception as exc:  # coded by call_adapter
                run.error = exc
                return run
            if target in self.wanted and not self.config.execute:
                return run  # part of the views: no item here reads a dry run of them
            if self.config.execute and not run.validation.ok:
                run.execution_error = PlanguardError(
                    PlanguardCode.POLICY_FAILED,
                    "execution skipped: policy validation failed (see policy[validation])",
                )
                return run
            try:
                call_adapter(
                    adapter.execute, run.plan, run.context, dry_run=not self.config.execute
                )
            except Exception as exc:  # coded by call_adapter
                run.execution_error = exc
        return run

    def recheck_bundles(self, run: ManifestRun) -> Mapping[str, BundleView]:
        """A second, independent plan of the same compiled program (stability check)."""
        if run.recheck is None:
            adapter = self._partial(run.target, self.adapter(run.target))
            context = call_adapter(adapter.build_context, run.compiled)
            run.recheck = call_adapter(adapter.bundles, call_adapter(adapter.plan, context))
        return run.recheck

    # --------------------------------------------------------------------- results

    def hooks(self) -> GateHooks:
        return GateHooks(self)

    def record(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == PROPERTY and (report.when == "call" or report.failed):
                self.results.append(received(value, report.outcome))
                path, line, _ = report.location
                self.locations[report.nodeid] = path + (f":{line + 1}" if line is not None else "")

    def finish(self, session: pytest.Session) -> None:
        self.starts.finish()
        if self._cache is not None:
            self.cache_counts.update(self._cache.stats.counts())
        worker_output = getattr(session.config, "workeroutput", None)
        if worker_output is not None:
            worker_output[_WORKER_CACHE] = json.dumps(dict(self.cache_counts))
            worker_output[_WORKER_HEADERS] = json.dumps(self._headers())
        if hasattr(session.config, "workerinput"):
            return  # the controller reports for pytest-xdist workers
        self._trim_cache()
        if session.exitstatus == pytest.ExitCode.TESTS_FAILED and any(
            result.status == "error" for result in self.results
        ):
            # Bad input (a manifest the adapter could not compile, register or plan, a view
            # that cannot name a snapshot, an unwritable snapshot) exits 2, as everywhere.
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        self.unused = self._unused_snapshots(session)
        if self.config.report is not None:
            write_report(
                self.config.report,
                self.results,
                self.unused,
                self.config,
                cache=self.cache_summary,
                targets=self._target_records(),
            )
        self._write_reviews(session)

    def _trim_cache(self) -> None:
        """Keep the plan cache within its bound; note its size for the summary."""
        if self.config.cache_dir is None or not self.cache_counts:
            return
        from pytest_planguard.gate.plan_cache import PlanCacheStore

        store = PlanCacheStore(
            self.config.cache_dir, max_bytes=self.config.cache_max_mb * 1024 * 1024
        )
        self.cache_counts["evicted"] += store.trim()
        entries, size = store.size()
        self.cache_counts["entries"], self.cache_counts["bytes"] = entries, size

    @property
    def cache_summary(self) -> dict[str, Any] | None:
        """The plan cache's counts for the reports (None when no view went through it)."""
        counts = self.cache_counts
        if self.config.cache_dir is None or not (counts["hits"] + counts["misses"]):
            return None
        looked = counts["hits"] + counts["misses"]
        return {
            "directory": str(self.config.cache_dir),
            **{name: int(counts[name]) for name in _CACHE_COUNTS},
            "hit_rate": round(counts["hits"] / looked, 4),
        }

    def _write_reviews(self, session: pytest.Session) -> None:
        """The HTML report, the Markdown summary and the GitHub outputs (:mod:`.outputs`)."""
        from pytest_planguard.gate import outputs

        if not outputs.wanted(self.config, os.environ):
            return
        config = session.config
        self.review = outputs.build_review(
            self.results,
            self.unused,
            self.config,
            lambda nodeid: self.accept_command_for(config, nodeid),
            self.locations,
        )
        self.review_problems = outputs.write_outputs(self.review, self.config, os.environ)
        if self.review_problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _complete_targets(self, session: pytest.Session) -> dict[GateTarget, tuple[str, ...]]:
        """Target -> views, for the targets whose items were all collected and selected
        in this session (under pytest-xdist: by every worker that reported)."""
        if hasattr(session.config, "workerinput"):
            return {}
        if self.reported or self.workers_down:
            expected = getattr(session.config.option, "numprocesses", None)
            if len(self.reported) != self.workers_down or (
                isinstance(expected, int) and self.workers_down < expected
            ):
                return {}  # a worker died or did not say what it collected: not complete
            targets = {target.key: target for target in self.config.targets}
            complete: dict[GateTarget, tuple[str, ...]] = {}
            for name, entry in self.reported[0].items():
                reports = [report.get(name) for report in self.reported]
                if name in targets and all(
                    r is not None and r.complete and r.views == entry.views for r in reports
                ):
                    complete[targets[name]] = entry.views
            return complete
        return {target: e.views for target, e in self.collected.items() if e.complete}

    def _headers(self) -> dict[str, dict[str, str]]:
        """Target key -> the snapshot header (engine, settings hash, normalizer) of each
        target planned in this process (under pytest-xdist: by a worker)."""
        headers = dict(self.worker_headers)
        for target, run in self.runs.items():
            if run.engine is not None:
                strict = self.config.strict_settings
                headers[target.key] = dict(
                    run.header or snapshot_header(run.engine, strict_settings=strict)
                )
        return headers

    def _target_records(self) -> list[TargetRecord]:
        """What this run collected of each target, selected or not, with the snapshots no
        view of it uses: a merge of shards' reports reports those as unused only when
        the shards together ran every item of the target."""
        collected: dict[str, CollectedManifest] = {
            target.key: entry for target, entry in self.collected.items()
        }
        if self.reported:  # pytest-xdist: every worker collected the same
            collected = self.reported[0]
        targets = {target.key: target for target in self.config.targets}
        headers = self._headers()
        records = [
            TargetRecord(
                manifest=_label(target, self.config.rootpath),
                views=[],
                items=[],
                unclaimed=[],
                collected=False,
            )
            for key, target in targets.items()
            if key not in collected
        ]
        for key, entry in collected.items():
            if key not in targets:
                continue
            directory = self.snapshot_dir(targets[key])
            records.append(
                TargetRecord(
                    manifest=entry.label,
                    views=list(entry.views),
                    items=sorted(entry.nodeids),
                    header=headers.get(key, {}),
                    unclaimed=sorted(
                        _relative(location, self.config.snapshot_dir)
                        for location in unused_snapshots(directory, set(entry.views))
                    ),
                )
            )
        return records

    def _unused_snapshots(self, session: pytest.Session) -> list[UnusedSnapshot]:
        """Snapshots of fully selected manifests that no view uses; deleted (and each path
        listed) under ``--snapshot-update``.  Only planguard's own ``*.plan`` files are
        candidates, never another file in the directory; a run that was interrupted or
        selected part of a manifest deletes nothing and reports nothing for it."""
        option = session.config.option
        if getattr(option, "disable_unused_snapshots", False):
            return []
        update = bool(getattr(option, "update_snapshots", False))
        delete = (
            update
            and not getattr(option, "no_cleanup", False)
            and session.exitstatus != pytest.ExitCode.INTERRUPTED
            and not session.shouldstop
        )
        root = self.config.snapshot_dir
        out = []
        complete = self._complete_targets(session)
        for target in sorted(complete, key=lambda t: t.key):
            views = complete[target]
            directory = self.snapshot_dir(target)
            if update:
                for stale in stale_temporaries(directory, self.started_at):
                    stale.unlink(missing_ok=True)
            for location in unused_snapshots(directory, set(views)):
                if delete:
                    location.unlink(missing_ok=True)
                    self.deleted.append(location)
                out.append(
                    UnusedSnapshot(
                        code="SNAPSHOT_UNUSED",
                        snapshot=_relative(location, root),
                        view=location.stem,
                        deleted=delete,
                    )
                )
        if (
            out
            and not delete
            and not update
            and not getattr(option, "warn_unused_snapshots", False)
            and session.exitstatus == pytest.ExitCode.OK
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return sorted(out, key=lambda entry: entry.snapshot)

    def terminal_summary(self, reporter: pytest.TerminalReporter) -> None:
        if hasattr(reporter.config, "workerinput") or not (self.results or self.unused):
            return
        for line in render_summary(self.results, self.unused, self.cache_summary):
            reporter.write_line(line)
        for line in self.review_problems:
            reporter.write_line(line, red=True)
        if self.review is not None and github.active(os.environ):
            plugin = reporter.config.pluginmanager.has_plugin(github.PLUGIN)
            commands = github.workflow_commands(
                self.review,
                plugin_annotates_failures=plugin,
                root=self.config.rootpath,
                workspace=os.environ.get("GITHUB_WORKSPACE"),
            )
            for line in commands:
                reporter.write_line(line)

    def accept_command(self, item: pytest.Item) -> str:
        return self.accept_command_for(item.config, item.nodeid)

    def accept_command_for(self, config: pytest.Config, nodeid: str) -> str:
        parts = ["pytest", "--planguard", "--snapshot-update"]
        for manifest in config.getoption("planguard_manifest") or []:
            parts += ["--planguard-manifest", str(manifest)]
        for spec in config.getoption("planguard_session") or []:
            parts += ["--planguard-session", spec]
        if self.config.adapter and config.getoption("planguard_adapter"):
            parts += ["--planguard-adapter", self.config.adapter]
        parts.append(f"'{nodeid}'")
        return " ".join(parts)


class GateHooks:
    """Registered as a plugin while the gate is on: gathers item results."""

    def __init__(self, state: GateState) -> None:
        self._state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._state.record(report)

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Generator[None]:
        # after every other plugin: a sharding plugin (pytest-split) divides the items in
        # their collected order, and each shard then runs its determinism item last
        yield
        self._state.run_determinism_last(items)

    @pytest.hookimpl(tryfirst=True)  # before pytest-xdist tells the controller
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._state.starts.at_collection_end(session.items, self._state.compiles)
        self._state.collection_finished(session)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        self._state.worker_finished(node)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        self._state.starts.configure_node(node)


def _describe(target: GateTarget) -> str:
    return f"session {target.spec!r}" if target.spec else f"manifest {str(target.path)!r}"


def _label(target: GateTarget, root: Path) -> str:
    """A target's label as its items would have it (its collector's node id)."""
    path = _relative(target.path, root)
    return f"{path}::{target.factory}" if target.factory else path


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
