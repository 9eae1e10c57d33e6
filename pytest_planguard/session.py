"""The plugin's session object: everything the thin entry module delegates to.

It holds the parsed configuration, loads the adapter lazily, guards marked tests with the
invariant spies, and (with ``--planguard``) turns manifests into test items, shares one
instrumented pipeline run per manifest among them, and gathers results for the reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_planguard.config import PlanguardConfig, load_config
from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.markers import (
    DETERMINISTIC,
    RESOLVER_IDENTITY,
    SINGLE_COMPILE,
    as_tuple,
    marker_arguments,
)

if TYPE_CHECKING:
    from pytest_planguard.adapter import PipelineAdapter, ResolverStage
    from pytest_planguard.gate.state import GateState
    from pytest_planguard.invariants import DeterminismReport

# Every pytest start-up imports this module, ``--planguard`` or not: the adapter, the
# invariant spies and the gate (syrupy, msgspec) are imported inside the methods that use
# them, for start-up cost.


class PlanguardSession:
    """Per-process state of the plugin (one per pytest run, one per xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.pytest_config = config
        self.config: PlanguardConfig = load_config(config)
        self._adapter: PipelineAdapter | None = None
        self._gate: GateState | None = None

    # ----------------------------------------------------------------- adapter & targets

    @property
    def adapter(self) -> PipelineAdapter:
        if self._adapter is None:
            from pytest_planguard.adapter import load_adapter

            self._adapter = load_adapter(
                self.config.adapter, trusted_modules=self.config.trusted_modules
            )
        return self._adapter

    def compile_targets(self, override: tuple[str, ...] = ()) -> tuple[str, ...]:
        return (
            override or self.config.compile_entrypoints or tuple(self.adapter.compile_entrypoints)
        )

    def resolver_stages(self, override: tuple[str, ...] = ()) -> tuple[ResolverStage, ...]:
        from pytest_planguard.invariants import parse_stage

        configured = [parse_stage(spec) for spec in self.config.resolver_stages]
        known = {stage.name: stage for stage in (configured or self.adapter.resolver_stages)}
        if not override:
            return tuple(known.values())
        return tuple(parse_stage(spec, known) for spec in override)

    # ------------------------------------------------------------------ marked tests

    @staticmethod
    def is_guarded(item: pytest.Item) -> bool:
        return any(
            item.get_closest_marker(spec.name) is not None
            for spec in (SINGLE_COMPILE, RESOLVER_IDENTITY, DETERMINISTIC)
        )

    @contextmanager
    def guard(self, item: pytest.Item) -> Iterator[None]:
        """Spy during the test call; fail it afterwards when an invariant broke."""
        from pytest_planguard.invariants import count_compiles, spy_resolver

        try:
            single = marker_arguments(item, SINGLE_COMPILE)
            identity = marker_arguments(item, RESOLVER_IDENTITY)
            deterministic = marker_arguments(item, DETERMINISTIC)
            targets = (
                self.compile_targets(as_tuple(single.get("entrypoints")))
                if single is not None
                else ()
            )
            stages = (
                self.resolver_stages(as_tuple(identity.get("stages")))
                if identity is not None
                else ()
            )
        except PlanguardError as err:
            pytest.fail(err.render(), pytrace=False)
        with ExitStack() as stack:
            counter = stack.enter_context(count_compiles(targets)) if single is not None else None
            spy = stack.enter_context(spy_resolver(stages)) if identity is not None else None
            yield
        failures = []
        if counter is not None and single is not None:
            failures.append(counter.failure(int(single.get("max_compiles", 1))))
        if spy is not None:
            failures.append(spy.failure())
        if deterministic is not None and (
            deterministic.get("manifest") is not None or deterministic.get("session")
        ):
            with _coded_failure():
                report = self.determinism_of(deterministic)
            failures.append(report.failure())
        messages = [message for message in failures if message]
        if messages:
            pytest.fail("\n\n".join(messages), pytrace=False)

    def determinism_of(self, arguments: dict[str, Any]) -> DeterminismReport:
        """The determinism check a marker or the fixture asks for: of ``manifest`` (with
        ``adapter``), or of ``session``, a ``module:factory`` of a SessionContext."""
        runs, processes = arguments.get("runs"), arguments.get("processes")
        spec = arguments.get("session")
        if spec is None:
            return self.determinism(
                Path(arguments["manifest"]),
                runs=runs,
                processes=processes,
                adapter=arguments.get("adapter"),
            )
        if arguments.get("manifest") is not None or arguments.get("adapter") is not None:
            raise PlanguardError(
                PlanguardCode.MARKER_ARGUMENT,
                "planguard_deterministic: pass session='module:factory' alone, or manifest= "
                "(with adapter=), not both",
            )
        from pytest_planguard.config import ini_directory, session_target

        target = session_target(str(spec), ini_directory(self.pytest_config), "session")
        return self.determinism(target.path, runs=runs, processes=processes, session=target.spec)

    def determinism(
        self,
        manifest: Path,
        *,
        runs: int | None = None,
        processes: int | None = None,
        adapter: str | None = None,
        first: Any = None,
        started: Any = None,
        session: str | None = None,
        incremental: Any = None,
    ) -> DeterminismReport:
        """The determinism check of a manifest, or (``session``: its ``module:factory``,
        ``manifest`` its module) of a session target."""
        from pytest_planguard.adapter import load_adapter
        from pytest_planguard.invariants import check_determinism

        spec = adapter or self.config.adapter
        trusted = self.config.trusted_modules
        chosen: PipelineAdapter
        if session is not None:
            from pytest_planguard.session_adapter import SessionAdapter

            chosen, spec, trusted = SessionAdapter(session), None, ()
        else:
            chosen = load_adapter(spec, trusted_modules=trusted) if adapter else self.adapter
        return check_determinism(
            chosen,
            spec,
            manifest,
            runs=runs if runs is not None else self.config.runs,
            processes=processes if processes is not None else self.config.processes,
            first=first,
            started=started,
            trusted_modules=trusted,
            session=session,
            incremental=incremental,
        )

    # ------------------------------------------------------------------ the plan gate

    @property
    def gate(self) -> GateState:
        if self._gate is None:
            from pytest_planguard.gate.state import GateState

            self._gate = GateState(self)
        return self._gate

    def is_manifest(self, path: Path) -> bool:
        return self.config.enabled and path.resolve() in self.config.manifests

    def is_session_module(self, path: Path) -> bool:
        return self.config.enabled and any(
            target.path == path.resolve() for target in self.config.sessions
        )


class DeterminismChecker:
    """What the ``planguard_determinism`` fixture returns."""

    def __init__(self, session: PlanguardSession, marker: dict[str, Any] | None) -> None:
        self._session = session
        self._marker = marker or {}

    def check(self, manifest: str | Path | None = None, **overrides: Any) -> DeterminismReport:
        """Run the check on ``manifest`` (or ``session='module:factory'``); fail the test
        with the first difference."""
        unknown = set(overrides) - {"runs", "processes", "adapter", "session"}
        if unknown:
            raise PlanguardError(
                PlanguardCode.MARKER_ARGUMENT,
                "check() takes runs, processes, adapter, session; got "
                + ", ".join(sorted(unknown)),
            )
        inherited = {k: v for k, v in self._marker.items() if k not in ("manifest", "session")}
        options = {**inherited, **overrides, "manifest": manifest}
        if manifest is None and not overrides.get("session"):
            raise PlanguardError(
                PlanguardCode.MARKER_ARGUMENT,
                "check() needs a manifest, or session='module:factory'",
            )
        with _coded_failure():
            report = self._session.determinism_of(options)
        message = report.failure()
        if message:
            pytest.fail(message, pytrace=False)
        return report


def determinism_checker(session: PlanguardSession, item: pytest.Item) -> DeterminismChecker:
    return DeterminismChecker(session, marker_arguments(item, DETERMINISTIC))


_MANIFEST_HINT = (
    "hint: the determinism check compiles `manifest` with the adapter: with the reference "
    "pipeline it must be a planguard manifest (TOML or JSON); for a DataFusion session of "
    "your own pass session='module:factory' (a zero-argument SessionContext factory), or "
    "adapter='module:Factory' (a PipelineAdapter)"
)


@contextmanager
def _coded_failure() -> Iterator[None]:
    """Fail the test with a coded error's one line and a hint, never its traceback."""
    try:
        yield
    except Exception as exc:
        render = getattr(exc, "render", None)
        if not callable(render):
            raise
        pytest.fail(f"{render()}\n{_MANIFEST_HINT}", pytrace=False)
