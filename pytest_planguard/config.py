"""Options and ini keys of the plugin, read once into a frozen :class:`PlanguardConfig`.

Every option lives in the ``planguard`` group; every ini key can be set in ``pytest.ini``
or ``[tool.pytest.ini_options]``.  Relative paths in ini keys resolve against the ini
file's directory (the rootdir when there is none); paths given on the command line
resolve against the invocation directory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.gate.policy import ChangeClass, GateAction, parse_gate_policy
from pytest_planguard.trust import parse_trusted_modules, trusted_from_environment

COST_SIGNALS = ("operator_total", "repartition_count", "estimated_rows")

INI_KEYS: tuple[tuple[str, str, str, Any], ...] = (
    ("planguard_manifests", "manifests gated by --planguard (one path per line)", "linelist", []),
    (
        "planguard_sessions",
        "DataFusion sessions gated by --planguard: 'package.module:factory' per line, a "
        "zero-argument function returning a datafusion.SessionContext with the views "
        "registered",
        "linelist",
        [],
    ),
    (
        "planguard_session_views",
        "gate only these views of the sessions (names or shell patterns, one per line; "
        "default: every registered view)",
        "linelist",
        [],
    ),
    ("planguard_adapter", "pipeline adapter factory, 'package.module:factory'", "string", ""),
    (
        "planguard_compile_entrypoints",
        "compile entrypoints counted by planguard_single_compile ('module:function' per line)",
        "linelist",
        [],
    ),
    (
        "planguard_resolver_stages",
        "stages watched by planguard_resolver_identity, 'name=module:function(param.attr)'",
        "linelist",
        [],
    ),
    (
        "planguard_cache_dir",
        "directory of the plan cache (default .planguard_cache under the rootdir)",
        "string",
        "",
    ),
    ("planguard_cache_max_mb", "size bound of the plan cache in MB (default 256)", "string", ""),
    ("planguard_runs", "in-process runs of the determinism check (default 2)", "string", ""),
    ("planguard_processes", "subprocesses of the determinism check (default 2)", "string", ""),
    (
        "planguard_snapshot_dir",
        "directory of plan-bundle snapshots (default snapshots)",
        "string",
        "",
    ),
    (
        "planguard_gate",
        "gate policy per change class, 'class = fail|warn' per line (classes: "
        + ", ".join(ChangeClass)
        + ")",
        "linelist",
        [],
    ),
    (
        "planguard_cost_limits",
        "allowed growth per view, 'signal = +N' or '+N%' per line (signals: "
        + ", ".join(COST_SIGNALS)
        + ")",
        "linelist",
        [],
    ),
    ("planguard_report", "write the JSON report to this path", "string", ""),
    ("planguard_html", "write the HTML report of plan changes to this path", "string", ""),
    (
        "planguard_markdown",
        "write the Markdown summary of plan changes to this path (for a PR comment)",
        "string",
        "",
    ),
    (
        "planguard_trusted_modules",
        "packages UDF providers and bootstrap hooks may be imported from (one module per "
        "line; adds to --planguard-trust-module and PLANGUARD_TRUSTED_MODULES)",
        "linelist",
        [],
    ),
    (
        "planguard_stores",
        "object stores the gated plans read, one 'name = url' per line (e.g. "
        "'warehouse = s3://warehouse'): snapshots name the store ($warehouse/...), never "
        "its endpoint or bucket (a manifest's [storage.*] stores are known already)",
        "linelist",
        [],
    ),
    (
        "planguard_strict_settings",
        "keep target_partitions in the snapshots' settings hash (for teams that pin it; by "
        "default it is left out, with partition counts normalized in the plans)",
        "bool",
        False,
    ),
)


@dataclass(frozen=True, slots=True)
class CostLimit:
    signal: str
    absolute: float | None
    percent: float | None

    def allows(self, before: float, after: float) -> bool:
        """Is growing from ``before`` to ``after`` within this limit (both parts hold)?"""
        growth = after - before
        if growth <= 0:
            return True
        if self.absolute is not None and growth > self.absolute:
            return False
        if self.percent is None:
            return True
        if before <= 0:  # a percentage of nothing: only an absolute part can allow it
            return self.absolute is not None
        return growth / before * 100 <= self.percent

    def describe(self) -> str:
        parts = []
        if self.absolute is not None:
            parts.append(f"+{self.absolute:g}")
        if self.percent is not None:
            parts.append(f"+{self.percent:g}%")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class GateTarget:
    """One gated pipeline: a manifest file, or a session factory (``spec``) in a module
    file (``path``).  Its items are ``<path>::...`` or ``<path>::<factory>::...``."""

    path: Path
    spec: str | None = None
    """``package.module:factory`` of a session; None for a manifest."""

    @property
    def factory(self) -> str | None:
        return self.spec.rpartition(":")[2] if self.spec else None

    @property
    def key(self) -> str:
        """A string naming the target across processes (pytest-xdist)."""
        return f"{self.path}::{self.factory}" if self.spec else str(self.path)


@dataclass(frozen=True, slots=True)
class PlanguardConfig:
    enabled: bool
    manifests: tuple[Path, ...]
    adapter: str | None
    compile_entrypoints: tuple[str, ...]
    resolver_stages: tuple[str, ...]
    runs: int
    processes: int
    snapshot_dir: Path
    gate: Mapping[str, GateAction]
    cost_limits: Mapping[str, CostLimit]
    report: Path | None
    execute: bool
    only: bool
    rootpath: Path
    trusted_modules: tuple[str, ...] = ()
    """Granted by whoever runs pytest (ini, option, environment), never by a manifest."""
    strict_settings: bool = False
    """Keep ``target_partitions`` in the settings hash (``planguard_strict_settings``)."""
    sessions: tuple[GateTarget, ...] = ()
    """Session factories gated like manifests (``planguard_sessions``)."""
    session_views: tuple[str, ...] = ()
    """Names or patterns restricting the gated views of the sessions."""
    html: Path | None = None
    """Where to write the HTML report (``--planguard-html``, ``planguard_html``)."""
    markdown: Path | None = None
    """Where to write the Markdown summary (``--planguard-markdown``)."""
    stores: Mapping[str, str] = field(default_factory=dict)
    """Object store name -> URL prefix (``planguard_stores``), for the normalizer."""
    cache_dir: Path | None = None
    """The plan cache's directory; None: no cache (``--planguard-no-cache``)."""
    cache_max_mb: int = 256
    cache_verify: int = 0
    """Cached views re-planned and compared per run (``--planguard-cache-verify``)."""

    @property
    def targets(self) -> tuple[GateTarget, ...]:
        return (*(GateTarget(path) for path in self.manifests), *self.sessions)


MANIFEST_FILE_NAMES = ("manifest.toml", "manifest.json")


def manifest_file(path: Path) -> Path:
    """The manifest file ``path`` names (a directory names the manifest inside it).

    A gated manifest that does not exist is a configuration error: pytest would otherwise
    report a bare "file not found", or collect a directory as tests and gate nothing.
    """
    if path.is_dir():
        for name in MANIFEST_FILE_NAMES:
            if (path / name).is_file():
                return path / name
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"directory {str(path)!r} holds no {' or '.join(MANIFEST_FILE_NAMES)}",
            field_path="planguard_manifests",
        )
    if not path.is_file():
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"no such manifest file {str(path)!r}",
            field_path="planguard_manifests",
        )
    return path


def session_target(spec: str, base: Path, field_path: str) -> GateTarget:
    """``package.module:factory`` -> its target: the module's file, found without
    importing the module (only its parent packages).  A module that is not importable
    from ``sys.path`` is looked up once more with ``base`` (the ini file's directory) in
    front, as pytest's ``rootdir/conftest.py`` would put it there."""
    import importlib.util
    import sys

    module, sep, factory = spec.strip().partition(":")
    if not sep or not module or not factory.isidentifier():
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"session {spec!r} must look like 'package.module:factory'",
            field_path=field_path,
        )

    def find() -> Any:
        try:
            return importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None

    found = find()
    if found is None and str(base) not in sys.path:
        sys.path.insert(0, str(base))
        found = find()
    origin = getattr(found, "origin", None)
    if found is None or not origin or not origin.endswith(".py"):
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"session {spec!r}: no Python module {module!r} on sys.path (install the "
            "package, or set pytest's `pythonpath` ini key to the directory that holds it)",
            field_path=field_path,
        )
    path = Path(origin).resolve()
    if path.name == "__init__.py":
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"session {spec!r}: the factory must live in a module of its own, not in a "
            "package's __init__.py (its items are named after the module file)",
            field_path=field_path,
        )
    return GateTarget(path=path, spec=f"{module}:{factory}")


def ini_directory(config: pytest.Config) -> Path:
    """Where relative paths and modules in ini keys are resolved: the ini file's directory
    (the rootdir when there is none)."""
    return config.inipath.parent if config.inipath else config.rootpath


def load_config(config: pytest.Config) -> PlanguardConfig:
    """Read options and ini keys; coded ``CONFIG_ERROR`` on bad values."""
    ini_base = ini_directory(config)
    invocation = config.invocation_params.dir
    cli_manifests = [invocation / p for p in (config.getoption("planguard_manifest") or [])]
    ini_manifests = [ini_base / str(p) for p in config.getini("planguard_manifests")]
    manifests = tuple(p.resolve() for p in (cli_manifests or ini_manifests))
    cli_sessions = [str(s) for s in config.getoption("planguard_session") or []]
    ini_sessions = [str(s) for s in config.getini("planguard_sessions")]
    session_specs = cli_sessions or ([] if cli_manifests else ini_sessions)
    if cli_sessions and not cli_manifests:
        manifests = ()  # --planguard-session alone gates the sessions named, as -manifest
    if config.getoption("planguard") and not manifests and not session_specs:
        # gating something nobody configured (the bundled example) would pass or fail for
        # reasons that have nothing to do with the user's pipeline
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            "no manifests or sessions configured: set planguard_manifests or "
            "planguard_sessions in the pytest configuration (pytest.ini, or "
            "[tool.pytest.ini_options] in pyproject.toml), or pass --planguard-manifest "
            "PATH or --planguard-session MODULE:FACTORY",
            field_path="planguard_sessions",
        )
    sessions: tuple[GateTarget, ...] = ()
    if config.getoption("planguard"):
        manifests = tuple(manifest_file(path) for path in manifests)
        field = "--planguard-session" if cli_sessions else "planguard_sessions"
        sessions = tuple(
            dict.fromkeys(session_target(spec, ini_base, field) for spec in session_specs)
        )
    snapshot_opt = config.getoption("planguard_snapshot_dir")
    snapshot_ini = str(config.getini("planguard_snapshot_dir") or "")
    snapshot_dir = (
        invocation / snapshot_opt if snapshot_opt else ini_base / (snapshot_ini or "snapshots")
    )
    report_opt = config.getoption("planguard_report")
    report_ini = str(config.getini("planguard_report") or "")
    report = (
        invocation / report_opt if report_opt else (ini_base / report_ini if report_ini else None)
    )
    if config.getoption("planguard"):
        _check_output_paths(snapshot_dir, report)
    gate = parse_gate_policy(
        [
            *(("planguard_gate", str(line)) for line in config.getini("planguard_gate")),
            *(("--planguard-gate", line) for line in config.getoption("planguard_gate") or []),
        ]
    )
    limits = {}
    for line in config.getini("planguard_cost_limits"):
        limit = _cost_limit(str(line))
        limits[limit.signal] = limit
    return PlanguardConfig(
        enabled=bool(config.getoption("planguard")),
        manifests=tuple(dict.fromkeys(manifests)),
        adapter=config.getoption("planguard_adapter") or config.getini("planguard_adapter") or None,
        compile_entrypoints=tuple(str(x) for x in config.getini("planguard_compile_entrypoints")),
        resolver_stages=tuple(str(x) for x in config.getini("planguard_resolver_stages")),
        runs=_positive(
            config.getoption("planguard_runs") or config.getini("planguard_runs") or 2,
            "planguard_runs",
        ),
        processes=_count(
            config.getoption("planguard_processes")
            if config.getoption("planguard_processes") is not None
            else (config.getini("planguard_processes") or 2),
            "planguard_processes",
        ),
        snapshot_dir=snapshot_dir.resolve(),
        gate=gate,
        cost_limits=limits,
        report=report.resolve() if report else None,
        execute=bool(config.getoption("planguard_execute")),
        only=bool(config.getoption("planguard_only")),
        rootpath=config.rootpath,
        strict_settings=bool(config.getini("planguard_strict_settings")),
        sessions=sessions,
        session_views=tuple(str(x) for x in config.getini("planguard_session_views")),
        trusted_modules=_trusted_modules(config),
        html=_output_path(config, "planguard_html", ini_base),
        markdown=_output_path(config, "planguard_markdown", ini_base),
        stores=_stores(config),
        cache_dir=_cache_dir(config, invocation),
        cache_max_mb=_positive(
            config.getini("planguard_cache_max_mb") or 256, "planguard_cache_max_mb"
        ),
        cache_verify=_count(
            config.getoption("planguard_cache_verify") or 0, "--planguard-cache-verify"
        ),
    )


def _cache_dir(config: pytest.Config, invocation: Path) -> Path | None:
    """``--planguard-cache DIR``, else ``planguard_cache_dir``, else ``.planguard_cache``
    under the rootdir; None under ``--planguard-no-cache``."""
    if config.getoption("planguard_no_cache"):
        return None
    option = config.getoption("planguard_cache")
    if option:
        return (invocation / str(option)).resolve()
    ini = str(config.getini("planguard_cache_dir") or "")
    return (ini_directory(config) / ini).resolve() if ini else config.rootpath / ".planguard_cache"


_STORE_LINE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<url>[a-z][a-z0-9+.-]*://\S+)")


def _stores(config: pytest.Config) -> dict[str, str]:
    """``planguard_stores``: ``name = scheme://bucket[/prefix]`` per line."""
    stores: dict[str, str] = {}
    for line in config.getini("planguard_stores"):
        match = _STORE_LINE.fullmatch(str(line).strip())
        if match is None:
            raise PlanguardError(
                PlanguardCode.CONFIG_ERROR,
                f"planguard_stores line {str(line)!r} is not 'name = scheme://bucket/prefix'",
                field_path="planguard_stores",
            )
        stores[match["name"]] = match["url"].rstrip("/")
    return stores


def _output_path(config: pytest.Config, key: str, ini_base: Path) -> Path | None:
    """An output file from its option (against the invocation directory) or its ini key
    (against the ini file's directory); a directory is refused before anything runs."""
    option = config.getoption(key)
    ini = str(config.getini(key) or "")
    path = config.invocation_params.dir / option if option else (ini_base / ini if ini else None)
    if path is not None and config.getoption("planguard") and path.is_dir():
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"{key} path {str(path)!r} is a directory; name a file",
            field_path=key,
        )
    return path.resolve() if path is not None else None


def _trusted_modules(config: pytest.Config) -> tuple[str, ...]:
    ini = parse_trusted_modules(
        [str(x) for x in config.getini("planguard_trusted_modules")],
        source="planguard_trusted_modules",
    )
    option = parse_trusted_modules(
        config.getoption("planguard_trust_module") or [], source="--planguard-trust-module"
    )
    return tuple(sorted({*ini, *option, *trusted_from_environment()}))


def _check_output_paths(snapshot_dir: Path, report: Path | None) -> None:
    """Refuse, before anything runs, a snapshot directory that is a file and a report path
    that is a directory: both would otherwise fail only after the whole gate ran."""
    if snapshot_dir.exists() and not snapshot_dir.is_dir():
        raise PlanguardError(
            PlanguardCode.SNAPSHOT_WRITE_FAILED,
            f"snapshot directory {str(snapshot_dir)!r} exists and is not a directory",
            field_path="planguard_snapshot_dir",
        )
    if report is not None and report.is_dir():
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"report path {str(report)!r} is a directory; name a file",
            field_path="planguard_report",
        )


def _pair(line: str, key: str) -> tuple[str, str]:
    name, sep, value = line.partition("=")
    if not sep:
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR, f"{line!r} must look like 'name = value'", field_path=key
        )
    return name.strip(), value.strip()


def _cost_limit(line: str) -> CostLimit:
    signal, value = _pair(line, "planguard_cost_limits")
    if signal not in COST_SIGNALS:
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"cost limit {line!r}: signal must be one of {', '.join(COST_SIGNALS)}",
            field_path="planguard_cost_limits",
        )
    absolute = percent = None
    for part in value.replace(",", " ").split():
        text = part.lstrip("+")
        try:
            if text.endswith("%"):
                percent = float(text[:-1])
            else:
                absolute = float(text)
        except ValueError:
            raise PlanguardError(
                PlanguardCode.CONFIG_ERROR,
                f"cost limit {line!r}: {part!r} is not '+N' or '+N%'",
                field_path="planguard_cost_limits",
            ) from None
    if absolute is None and percent is None:
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"cost limit {line!r} gives no limit",
            field_path="planguard_cost_limits",
        )
    if not all(math.isfinite(v) and v >= 0 for v in (absolute, percent) if v is not None):
        # nan compares false with everything: it would silently disable the limit
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"cost limit {line!r}: the allowed growth must be a finite number >= 0",
            field_path="planguard_cost_limits",
        )
    return CostLimit(signal=signal, absolute=absolute, percent=percent)


def _positive(value: Any, key: str) -> int:
    number = _count(value, key)
    if number < 1:
        raise PlanguardError(PlanguardCode.CONFIG_ERROR, f"{key} must be >= 1", field_path=key)
    return number


def _count(value: Any, key: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise PlanguardError(
            PlanguardCode.CONFIG_ERROR,
            f"{key} must be a whole number, got {value!r}",
            field_path=key,
        ) from None
    if number < 0:
        raise PlanguardError(PlanguardCode.CONFIG_ERROR, f"{key} must be >= 0", field_path=key)
    return number
