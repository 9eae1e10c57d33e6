"""The JSON report of ``--planguard-report PATH``, as typed structs.

``report_schema.json`` is generated from :class:`Report` (``msgspec.json.schema``) and
committed; a test checks that it matches.  Regenerate it with::

    python -m pytest_planguard.gate.report

Every finding carries its ``code``, its ``manifest`` and its ``view`` (``null`` for
manifest-level checks).  ``schema_version`` changes whenever the structure does (3: each
changed view's unified diff per section, ``diffs``, and each target's ``header``;
``environment``, ``settings`` and ``targets`` were added with defaults, for
``planguard report merge``, :mod:`.merge`; 4: the rule trace's ``first_divergence``,
``rules_started``, ``rules_stopped`` and ``trace_disagreement`` on each changed view).
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import msgspec

from pytest_planguard import __version__
from pytest_planguard.gate.policy import ChangeClass, GateAction
from pytest_planguard.gate.results import Code, ReportedResult, Status
from pytest_planguard.gate.snapshot import atomic_write

if TYPE_CHECKING:
    from pytest_planguard.config import PlanguardConfig

SCHEMA_VERSION: Literal[4] = 4
"""4: changed-view findings carry first_divergence, rules_started, rules_stopped and
trace_disagreement (the rule trace, :mod:`.trace`)."""
CHECKED: tuple[Status, ...] = ("unchanged", "changed", "new", "updated", "unstable")
"""Plan statuses of a view whose bundle was built and compared with its snapshot; the
others (``unavailable``, ``error``) were not checked and are never counted as passed."""
SCHEMA_PATH = Path(__file__).with_name("report_schema.json")

Count = Annotated[int, msgspec.Meta(ge=0)]
CheckStatus = Literal["passed", "failed", "error"]
Severity = Literal["error", "warning", "info"]
FindingCheck = Literal[
    "plan", "policy", "single_compile", "resolver_identity", "determinism", "snapshot"
]


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class UnusedSnapshot(_Strict, frozen=True):
    """A snapshot of a fully selected manifest that no view uses."""

    code: Literal["SNAPSHOT_UNUSED"]
    snapshot: str
    """Its path relative to the snapshot directory."""
    view: str
    deleted: bool
    """Deleted by ``--snapshot-update``."""


class TargetRecord(_Strict, frozen=True):
    """What a run collected of one gated target (a manifest or a session factory),
    whether or not it ran all of it: ``planguard report merge`` tells from these whether
    the shards of a split suite together ran every item of the target."""

    manifest: str
    """The target's label, as its items' ``manifest``."""
    views: list[str]
    """Every view of the target (collected, selected or not)."""
    items: list[str]
    """The node ids of every gate item of the target."""
    unclaimed: Annotated[
        list[str],
        msgspec.Meta(
            description="planguard snapshot files in the target's directory that no view "
            "uses (relative to the snapshot dir): reported as unused only by a run, or a "
            "merge of runs, that ran every item of the target"
        ),
    ]
    header: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="the target's snapshot header (engine, settings hash, normalizer) "
            "when this run planned it"
        ),
    ] = msgspec.field(default_factory=dict)
    collected: bool = True
    """False when this run could not collect the target (its collection failed): it then
    has no views or items here."""


class ChangedSummary(_Strict, frozen=True):
    total: Count
    by_class: dict[str, Count]


class Summary(_Strict, frozen=True):
    views: Annotated[int, msgspec.Meta(ge=0, description="plan items that ran")]
    views_checked: Annotated[
        int,
        msgspec.Meta(
            ge=0, description="views whose bundle was built and compared with its snapshot"
        ),
    ]
    unchanged: Count
    changed: ChangedSummary
    new: Count
    updated: Count
    unstable: Count
    unavailable: Count
    errors: Count
    unused: Count
    checks: Annotated[
        dict[str, CheckStatus],
        msgspec.Meta(description="manifest::check -> passed | failed | error"),
    ]
    failed: Count


class Finding(_Strict, frozen=True):
    code: Code
    severity: Severity
    manifest: str | None
    view: str | None
    check: FindingCheck
    primary: str | None = msgspec.field(name="class")
    classes: tuple[ChangeClass, ...]
    message: str
    nodeid: str | None
    dataset: Annotated[
        str | None, msgspec.Meta(description="the dataset a policy finding is about")
    ] = None
    caused_by: tuple[str, ...] = ()
    """For a changed view: the changed upstream views that explain it."""
    inherited: bool = False
    """For a changed view: its change is fully explained by ``caused_by`` (its own plan is
    unchanged; the gate entry ``inherited = warn`` warns on such a change)."""
    first_divergence: Annotated[
        str | None,
        msgspec.Meta(
            description="for a changed view with rule traces: the first planner stage "
            "whose plan differs, e.g. 'initial_logical_plan' or 'physical_plan after "
            "join_selection'"
        ),
    ] = None
    rules_started: Annotated[
        tuple[str, ...],
        msgspec.Meta(description="effective rules that fire now and did not before"),
    ] = ()
    rules_stopped: Annotated[
        tuple[str, ...],
        msgspec.Meta(description="effective rules that fired before and do not now"),
    ] = ()
    trace_disagreement: Annotated[
        str,
        msgspec.Meta(
            description="why the rule trace and the changed sections name different plan "
            "layers ('' when they agree)"
        ),
    ] = ""


class CacheSummary(_Strict, frozen=True):
    """The plan cache in this run (``--planguard-cache``)."""

    directory: str
    hits: int
    misses: int
    writes: int
    corrupt: Annotated[int, msgspec.Meta(description="entries that did not decode (misses)")]
    verified: Annotated[int, msgspec.Meta(description="cached views re-planned and compared")]
    evicted: int
    entries: Annotated[int, msgspec.Meta(description="entries on disk after the run")]
    bytes: Annotated[int, msgspec.Meta(description="size on disk after the run")]
    hit_rate: float


class Report(_Strict, frozen=True):
    schema_version: Literal[4]
    planguard_version: str
    manifests: list[str]
    sessions: Annotated[
        list[str], msgspec.Meta(description="gated session factories, 'module:factory'")
    ]
    snapshot_dir: str
    gate: Annotated[dict[str, GateAction], msgspec.Meta(description="gate policy per class")]
    summary: Summary
    findings: list[Finding]
    items: list[ReportedResult]
    unused_snapshots: list[UnusedSnapshot]
    cache: CacheSummary | None = None
    environment: Annotated[
        dict[str, str],
        msgspec.Meta(description="python (major.minor) and engine package versions"),
    ] = msgspec.field(default_factory=dict)
    settings: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="the run's result-affecting configuration, paths relative to the "
            "rootdir (reports merge only when these are equal)"
        ),
    ] = msgspec.field(default_factory=dict)
    targets: list[TargetRecord] = msgspec.field(default_factory=list)
    """Every collected target, with its views and items (:class:`TargetRecord`)."""


def summarize(results: Sequence[ReportedResult], unused: Sequence[UnusedSnapshot]) -> Summary:
    plans = [r for r in results if r.kind == "plan"]
    statuses = Counter(r.status for r in plans)
    # every class of every changed view (a view can be semantic and schema_breaking at once)
    by_class = Counter(
        c for r in plans if r.status == "changed" for c in (r.classes or ("unknown",))
    )
    checks = {
        f"{r.manifest}::{r.check}": cast(CheckStatus, r.status) for r in results if r.kind != "plan"
    }
    return Summary(
        views=len(plans),
        views_checked=sum(statuses[status] for status in CHECKED),
        unchanged=statuses["unchanged"],
        changed=ChangedSummary(total=statuses["changed"], by_class=dict(sorted(by_class.items()))),
        new=statuses["new"],
        updated=statuses["updated"],
        unstable=statuses["unstable"],
        unavailable=statuses["unavailable"],
        errors=statuses["error"],
        unused=len(unused),
        checks=dict(sorted(checks.items())),
        failed=sum(1 for r in results if r.outcome == "failed"),
    )


def findings(results: Sequence[ReportedResult], unused: Sequence[UnusedSnapshot]) -> list[Finding]:
    out: list[Finding] = []
    for result in results:
        severity: Severity = (
            "error"
            if result.outcome == "failed"
            else ("warning" if result.action == "warn" else "info")
        )
        for code in result.codes:
            out.append(
                Finding(
                    code=code,
                    severity=severity,
                    manifest=result.manifest,
                    view=result.view,
                    check=result.check or "plan",
                    primary=result.primary,
                    classes=result.classes,
                    message=result.message,
                    nodeid=result.nodeid,
                    caused_by=result.caused_by,
                    inherited=result.inherited,
                    first_divergence=result.first_divergence,
                    rules_started=result.rules_started,
                    rules_stopped=result.rules_stopped,
                    trace_disagreement=result.trace_disagreement,
                )
            )
        for finding in result.findings:
            out.append(
                Finding(
                    code=finding.code,
                    severity=cast(Severity, finding.severity),
                    manifest=result.manifest,
                    view=finding.subject if finding.subject_kind == "view" else None,
                    dataset=finding.subject if finding.subject_kind == "dataset" else None,
                    check="policy",
                    primary=None,
                    classes=(),
                    message=finding.message,
                    nodeid=result.nodeid,
                )
            )
    for entry in unused:
        out.append(
            Finding(
                code=entry.code,
                severity="info" if entry.deleted else "error",
                manifest=None,
                view=entry.view,
                check="snapshot",
                primary=None,
                classes=(),
                message=("deleted " if entry.deleted else "unused ") + entry.snapshot,
                nodeid=None,
            )
        )
    return out


ENGINE_PACKAGES = ("datafusion", "deltalake", "pyarrow")


def environment() -> dict[str, str]:
    """Python's major.minor version (UDF code hashes depend on it) and the installed
    engine packages' versions (read from their metadata, nothing imported)."""
    versions = {"python": ".".join(platform.python_version_tuple()[:2])}
    for name in ENGINE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def settings(config: PlanguardConfig) -> dict[str, str]:
    """What of ``config`` can change a result, as text, paths relative to the rootdir."""

    def relative(path: Path) -> str:
        try:
            return path.relative_to(config.rootpath).as_posix()
        except ValueError:
            return str(path)

    return {
        "adapter": config.adapter or "",
        "cost_limits": ", ".join(
            f"{name} {limit.describe()}" for name, limit in sorted(config.cost_limits.items())
        ),
        "execute": str(config.execute).lower(),
        "gate": ", ".join(f"{k}={v}" for k, v in sorted(config.gate.items())),
        "manifests": ", ".join(relative(p) for p in config.manifests),
        "processes": str(config.processes),
        "runs": str(config.runs),
        "session_views": ", ".join(config.session_views),
        "sessions": ", ".join(str(t.spec) for t in config.sessions),
        "snapshot_dir": relative(config.snapshot_dir),
        "strict_settings": str(config.strict_settings).lower(),
        "trusted_modules": ", ".join(config.trusted_modules),
    }


def build_report(
    results: Sequence[ReportedResult],
    unused: Sequence[UnusedSnapshot],
    config: PlanguardConfig,
    *,
    cache: Mapping[str, Any] | None = None,
    targets: Sequence[TargetRecord] = (),
) -> Report:
    return Report(
        schema_version=SCHEMA_VERSION,
        planguard_version=__version__,
        manifests=[str(p) for p in config.manifests],
        sessions=[str(target.spec) for target in config.sessions],
        snapshot_dir=str(config.snapshot_dir),
        gate=dict(sorted(config.gate.items())),
        summary=summarize(results, unused),
        findings=findings(results, unused),
        items=sorted(results, key=lambda r: r.nodeid),
        unused_snapshots=list(unused),
        cache=msgspec.convert(cache, CacheSummary) if cache is not None else None,
        environment=environment(),
        settings=settings(config),
        targets=sorted(targets, key=lambda t: t.manifest),
    )


def write_report(
    path: Path,
    results: Sequence[ReportedResult],
    unused: Sequence[UnusedSnapshot],
    config: PlanguardConfig,
    *,
    cache: Mapping[str, Any] | None = None,
    targets: Sequence[TargetRecord] = (),
) -> None:
    dump_report(path, build_report(results, unused, config, cache=cache, targets=targets))


def dump_report(path: Path, report: Report | Mapping[str, Any]) -> None:
    """Write ``report`` as the gate does: sorted keys, indented, atomically."""
    data = msgspec.to_builtins(report)
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def report_json_schema() -> dict[str, Any]:
    """The JSON schema of the report, generated from :class:`Report`."""
    schema = msgspec.json.schema(Report)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://planguard.invalid/report-schema-v{SCHEMA_VERSION}.json",
        "title": f"planguard JSON report, schema_version {SCHEMA_VERSION}",
        **schema,
    }


def report_schema_text() -> str:
    return json.dumps(report_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(report_schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
