"""pytest entry point of planguard (``pytest11``): options, markers, fixtures and hooks only.

Everything else lives in :mod:`pytest_planguard.session` and the modules it imports
lazily, so that an inactive plugin costs pytest almost nothing and imports neither
DataFusion nor ``reference_impl``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_planguard.config import INI_KEYS
from pytest_planguard.errors import PlanguardError
from pytest_planguard.gate.policy import add_gate_options
from pytest_planguard.markers import MARKERS
from pytest_planguard.session import DeterminismChecker, PlanguardSession, determinism_checker

if TYPE_CHECKING:
    from pytest_planguard.adapter import PipelineAdapter
    from pytest_planguard.invariants import CompileCounter, ResolverSpy
    from pytest_planguard.s3_server import S3Server

# Imports inside functions below are start-up cost: hypothesis and the invariant spies are
# imported only when a profile or a fixture asks for them.

SESSION_KEY = pytest.StashKey["PlanguardSession"]()
_HYPOTHESIS_PROFILES = ("ci", "dev", "nightly")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("planguard", "plan-regression gates and pipeline invariants")
    group.addoption(
        "--planguard",
        action="store_true",
        default=False,
        help="gate the configured pipelines (planguard_manifests, planguard_sessions, "
        "--planguard-manifest, --planguard-session): collect invariant, policy and "
        "per-view plan-bundle snapshot items",
    )
    group.addoption(
        "--planguard-manifest",
        action="append",
        default=[],
        metavar="PATH",
        help="gate this manifest instead of planguard_manifests (repeatable)",
    )
    group.addoption(
        "--planguard-session",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="gate the views of the datafusion.SessionContext this zero-argument factory "
        "returns, instead of planguard_sessions (repeatable)",
    )
    group.addoption(
        "--planguard-adapter",
        default=None,
        metavar="MODULE:FACTORY",
        help="pipeline adapter factory (default: planguard_adapter, else the reference pipeline)",
    )
    group.addoption(
        "--planguard-runs",
        type=int,
        default=None,
        metavar="N",
        help="in-process runs of the determinism check (default 2)",
    )
    group.addoption(
        "--planguard-processes",
        type=int,
        default=None,
        metavar="K",
        help="subprocesses, each with another PYTHONHASHSEED, of the determinism check (default 2)",
    )
    group.addoption(
        "--planguard-cache",
        default=None,
        metavar="DIR",
        help="plan cache directory: a view whose plan inputs are unchanged (its SQL and "
        "upstream views, the data it scans, UDFs, settings, engine versions) reuses its "
        "cached plan (default: planguard_cache_dir, else .planguard_cache under the rootdir)",
    )
    group.addoption(
        "--planguard-no-cache",
        action="store_true",
        default=False,
        help="plan every view afresh; read and write no plan cache",
    )
    group.addoption(
        "--planguard-cache-verify",
        type=int,
        default=None,
        metavar="N",
        help="re-plan N random views served from the plan cache and fail "
        "(PLAN_CACHE_UNSOUND) when a cached plan differs from the fresh one",
    )
    group.addoption(
        "--planguard-snapshot-dir",
        default=None,
        metavar="DIR",
        help="directory of plan-bundle snapshots (default: planguard_snapshot_dir or snapshots)",
    )
    group.addoption(
        "--planguard-report",
        default=None,
        metavar="PATH",
        help="write the JSON report (schema: pytest_planguard/gate/report_schema.json) to PATH",
    )
    group.addoption(
        "--planguard-html",
        default=None,
        metavar="PATH",
        help="write a self-contained HTML report of the plan changes to PATH (no network; "
        "a CI artifact)",
    )
    group.addoption(
        "--planguard-markdown",
        default=None,
        metavar="PATH",
        help="write the Markdown summary of the plan changes to PATH (for a PR comment)",
    )
    add_gate_options(group.addoption, prefix="planguard-", extra="; overrides planguard_gate")
    group.addoption(
        "--planguard-execute",
        action="store_true",
        default=False,
        help="really execute the pipelines and write their outputs (default: a dry run "
        "through every stage)",
    )
    group.addoption(
        "--planguard-only",
        action="store_true",
        default=False,
        help="run only the planguard items, deselecting the rest of the suite",
    )
    group.addoption(
        "--planguard-trust-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="allow UDF providers and bootstrap hooks to be imported from MODULE and below "
        "(repeatable; adds to planguard_trusted_modules and PLANGUARD_TRUSTED_MODULES, "
        "comma-separated); a manifest cannot grant trust itself",
    )
    for name, help_text, kind, default in INI_KEYS:
        parser.addini(name, help_text, type=kind, default=default)  # type: ignore[arg-type]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for spec in MARKERS:
        config.addinivalue_line("markers", spec.help)
    try:
        _register_hypothesis_profiles(config)
        session = PlanguardSession(config)
    except PlanguardError as err:
        raise pytest.UsageError(err.render()) from None
    config.stash[SESSION_KEY] = session
    if session.config.enabled:
        present = {Path(arg.split("::", 1)[0]).resolve() for arg in config.args}
        targets = dict.fromkeys(target.path for target in session.config.targets)
        config.args.extend(str(path) for path in targets if path not in present)
        config.pluginmanager.register(session.gate.hooks(), "planguard-gate")


def _register_hypothesis_profiles(config: pytest.Config) -> None:
    """Register ci/dev/nightly when they may be asked for, without importing hypothesis
    otherwise (it is not needed at start-up)."""
    wanted = config.getoption("hypothesis_profile", default=None)
    if (
        wanted in _HYPOTHESIS_PROFILES
        or os.environ.get("PLANGUARD_HYPOTHESIS_PROFILE")
        or os.environ.get("CI")  # our `ci` profile replaces Hypothesis' own on CI machines
        or "hypothesis" in sys.modules
    ):
        from pytest_planguard.strategies.profiles import register_profiles

        register_profiles()


def _session(config: pytest.Config) -> PlanguardSession:
    return config.stash[SESSION_KEY]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    session = _session(parent.config)
    if session.is_manifest(file_path):
        return session.gate.collect_file(file_path, parent)
    if session.is_session_module(file_path) and not _python_collects(file_path, parent):
        return session.gate.collect_session_module(file_path, parent)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    """A session factory's module that pytest would collect as a test module (named on
    the command line, or matching ``python_files``) holds the session's gate items
    instead: importing it the way pytest imports test modules would import it twice."""
    session = _session(parent.config)
    if session.is_session_module(module_path):
        return session.gate.collect_session_module(module_path, parent)
    return None


def _python_collects(path: Path, parent: pytest.Collector) -> bool:
    """Does pytest's python plugin collect ``path`` (and so ask for its module)?"""
    from _pytest.pathlib import fnmatch_ex

    if parent.session.isinitpath(path):
        return True
    return any(fnmatch_ex(pattern, path) for pattern in parent.config.getini("python_files"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = _session(config)
    if session.config.only:
        session.gate.keep_only_gate_items(config, items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    session = _session(item.config)
    if not session.is_guarded(item):
        return (yield)
    with session.guard(item):
        return (yield)


def pytest_report_header(config: pytest.Config) -> str | None:
    session = _session(config)
    if not session.config.enabled:
        return None
    return "planguard: " + ", ".join(
        target.spec or str(target.path) for target in session.config.targets
    )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    planguard = _session(session.config)
    if planguard.config.enabled:
        planguard.gate.finish(session)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    session = _session(config)
    if session.config.enabled:
        session.gate.terminal_summary(terminalreporter)


@pytest.fixture
def planguard_adapter(request: pytest.FixtureRequest) -> PipelineAdapter:
    """The configured pipeline adapter (the reference pipeline by default)."""
    return _session(request.config).adapter


@pytest.fixture
def planguard_compile_counter(request: pytest.FixtureRequest) -> Iterator[CompileCounter]:
    """Counts calls of the configured compile entrypoints while the test runs."""
    from pytest_planguard.invariants import count_compiles

    with count_compiles(_session(request.config).compile_targets()) as counter:
        yield counter


@pytest.fixture
def planguard_resolver_spy(request: pytest.FixtureRequest) -> Iterator[ResolverSpy]:
    """Records the resolver object each configured stage receives while the test runs."""
    from pytest_planguard.invariants import spy_resolver

    with spy_resolver(_session(request.config).resolver_stages()) as spy:
        yield spy


@pytest.fixture
def planguard_determinism(request: pytest.FixtureRequest) -> DeterminismChecker:
    """``planguard_determinism.check(manifest)`` runs the determinism check (runs and
    processes from the planguard_deterministic marker, else from the configuration)."""
    return determinism_checker(_session(request.config), request.node)


@pytest.fixture(scope="session")
def planguard_s3_server() -> Iterator[S3Server]:
    """A real S3 server (moto, from the ``moto[server]`` test dependency) on 127.0.0.1 at
    a free port, for the whole test session, with one access key it accepts
    (``.access_key_id``, ``.secret_access_key``) and authentication enforced.
    ``.storage_options()`` reaches it; ``.create_bucket(name)`` makes a bucket.  Started
    on first use, stopped at the end of the session; moto is imported only then."""
    from importlib.util import find_spec

    from pytest_planguard.s3_server import start_s3_server

    if find_spec("moto") is None or find_spec("boto3") is None:
        pytest.fail(
            "planguard_s3_server needs moto's server: pip install 'moto[server]'", pytrace=False
        )
    server = start_s3_server()
    try:
        yield server
    finally:
        server.stop()
