"""``planguard report merge``: one gate report from the JSON reports of a split suite's
shards (``pytest --planguard --splits N --group i --planguard-report shard-i.json``).

What the merge does, precisely:

* **Only shards of one run merge.** Every report must have this planguard's
  ``schema_version`` and be equal in ``planguard_version``, ``environment`` (Python
  major.minor and engine versions), ``settings`` (the result-affecting configuration,
  paths relative to the rootdir), ``gate`` and ``sessions``; each target's snapshot header
  (engine, settings hash, normalizer), wherever an item carries it, must be the same in
  every report; and a target recorded by several reports must have the same views and
  items in each.  Anything else is ``REPORT_MERGE_INCOMPATIBLE``.  A report written
  without these records (an older planguard) cannot be merged.
* **Items are a union.** An item (a view's plan check, an invariant, the policy) in two
  reports must be the same result in both (it ran in two shards); otherwise
  ``REPORT_MERGE_CONFLICT`` names it.  Findings are taken as they are from the report that
  holds their item, whatever fields they carry; the summary is recomputed from the
  merged items, never added up.
* **Unused snapshots need a complete target.** A shard reports unused snapshots only for
  a target whose items it ran all of.  The merge also reports as unused the snapshots a
  shard found without a view (``targets[].unclaimed``) for every target whose items the
  reports ran together, never for one they did not cover.  The merge deletes nothing.
* **Plan cache.** The run counters of the shards' ``cache`` summaries (hits, misses,
  writes, corrupt, verified, evicted) add up and the hit rate follows from them; entries and
  bytes on disk are the largest shard's (each shard has its own cache directory).
* **Coverage.** A target is complete when every item it has (as collected) has a result in
  some report.  :attr:`Merged.incomplete` names the others (``REPORT_MERGE_INCOMPLETE``).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.gate.report import (
    SCHEMA_VERSION,
    CacheSummary,
    Finding,
    Report,
    TargetRecord,
    UnusedSnapshot,
    findings,
    summarize,
)
from pytest_planguard.gate.results import ReportedResult

MAX_REPORT_BYTES = 1 << 30
"""A report larger than this is refused (read with this bound, never trusting its size)."""
SAME_FIELDS = ("planguard_version", "environment", "settings", "gate", "sessions")
"""Report fields that every merged report must have equal."""


@dataclass(frozen=True, slots=True)
class Shard:
    """One report to merge and the file it came from."""

    name: str
    report: Report


@dataclass(frozen=True, slots=True)
class Merged:
    report: Report
    incomplete: tuple[str, ...]
    """One line per target whose items the reports did not all run."""


def load_report(path: str) -> Shard:
    """The gate report in ``path``; ``REPORT_INVALID`` when it is missing, not a regular
    file, not JSON or not a gate report, ``REPORT_MERGE_INCOMPATIBLE`` when it has another
    ``schema_version``."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _invalid(path, f"cannot read it: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise _invalid(path, "not a regular file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise _invalid(path, f"cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_REPORT_BYTES:
        raise _invalid(path, f"larger than {MAX_REPORT_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _invalid(path, f"not JSON: {exc}") from None
    if not isinstance(data, dict) or "schema_version" not in data or "items" not in data:
        raise _invalid(
            path, "not a planguard gate report (write one with pytest --planguard-report PATH)"
        )
    version = data["schema_version"]
    if version != SCHEMA_VERSION:
        raise PlanguardError(
            PlanguardCode.REPORT_MERGE_INCOMPATIBLE,
            f"report schema_version {version!r}: this planguard merges schema_version "
            f"{SCHEMA_VERSION} (rerun the shards with this planguard)",
            file=path,
        )
    try:
        report = msgspec.convert(data, Report)
    except msgspec.ValidationError as exc:
        raise _invalid(path, f"not a valid gate report: {exc}") from None
    if not report.settings:
        raise PlanguardError(
            PlanguardCode.REPORT_MERGE_INCOMPATIBLE,
            "the report records no settings or targets (written by an older planguard): "
            "rerun the shards with this planguard",
            file=path,
        )
    return Shard(path, report)


def _invalid(path: str, message: str) -> PlanguardError:
    return PlanguardError(PlanguardCode.REPORT_INVALID, message, file=path)


def merge(shards: Sequence[Shard]) -> Merged:
    """One report from ``shards`` (see the module's documentation)."""
    if not shards:
        raise PlanguardError(PlanguardCode.REPORT_INVALID, "no report to merge")
    first = shards[0]
    for shard in shards[1:]:
        for name in SAME_FIELDS:
            _same(name, first, shard)
    _same_headers(shards)
    targets = _merge_targets(shards)

    items: dict[str, ReportedResult] = {}
    owner: dict[str, int] = {}
    for index, shard in enumerate(shards):
        for item in shard.report.items:
            seen = items.get(item.nodeid)
            if seen is None:
                items[item.nodeid] = item
                owner[item.nodeid] = index
            elif seen != item:
                raise PlanguardError(
                    PlanguardCode.REPORT_MERGE_CONFLICT,
                    f"item {item.nodeid!r} ran in {shards[owner[item.nodeid]].name} "
                    f"({seen.status}, {seen.outcome}) and in {shard.name} "
                    f"({item.status}, {item.outcome}) with different results: shards of one "
                    "run must not disagree (a view's plan is not deterministic across "
                    "machines, or the reports come from different checkouts)",
                )
    ran = set(items)
    unused = _unused(shards, targets, ran)
    merged_items = sorted(items.values(), key=lambda r: r.nodeid)
    kept: list[tuple[str, int, Finding]] = []
    for index, shard in enumerate(shards):
        for position, finding in enumerate(shard.report.findings):
            if finding.nodeid is not None and owner.get(finding.nodeid) == index:
                kept.append((finding.nodeid, position, finding))
    kept.sort(key=lambda entry: (entry[0], entry[1]))
    incomplete = tuple(
        _coverage_line(record, ran)
        for record in targets.values()
        if not record.collected or not set(record.items) <= ran
    )
    report = Report(
        schema_version=SCHEMA_VERSION,
        planguard_version=first.report.planguard_version,
        manifests=first.report.manifests,
        sessions=first.report.sessions,
        snapshot_dir=first.report.snapshot_dir,
        gate=first.report.gate,
        summary=summarize(merged_items, unused),
        findings=[entry[2] for entry in kept] + findings((), unused),
        items=merged_items,
        unused_snapshots=unused,
        cache=_cache([shard.report.cache for shard in shards]),
        environment=first.report.environment,
        settings=first.report.settings,
        targets=[targets[label] for label in sorted(targets)],
    )
    return Merged(report=report, incomplete=incomplete)


_RUN_COUNTS = ("hits", "misses", "writes", "corrupt", "verified", "evicted")


def _cache(summaries: Sequence[CacheSummary | None]) -> CacheSummary | None:
    """The shards' plan cache summaries as one (see the module's documentation)."""
    present = [summary for summary in summaries if summary is not None]
    if not present:
        return None
    counts = {name: sum(getattr(summary, name) for summary in present) for name in _RUN_COUNTS}
    looked = counts["hits"] + counts["misses"]
    return CacheSummary(
        directory=present[0].directory,
        **counts,
        entries=max(summary.entries for summary in present),
        bytes=max(summary.bytes for summary in present),
        hit_rate=round(counts["hits"] / looked, 4) if looked else 0.0,
    )


def _same(name: str, first: Shard, other: Shard) -> None:
    a, b = getattr(first.report, name), getattr(other.report, name)
    if a == b:
        return
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        shown = "; ".join(
            f"{key}: {a.get(key, '(none)')!r} vs {b.get(key, '(none)')!r}" for key in keys[:5]
        )
    else:
        shown = f"{a!r} vs {b!r}"
    raise PlanguardError(
        PlanguardCode.REPORT_MERGE_INCOMPATIBLE,
        f"{first.name} and {other.name} differ in {name} ({shown}): they are not shards of "
        "one run (run every shard with the same planguard, engine and configuration)",
    )


def _same_headers(shards: Sequence[Shard]) -> None:
    """Each target's snapshot header (engine, settings hash, normalizer) is one for all
    reports that carry it: on its invariant items, and on its target record in every
    report whose run planned it."""
    seen: dict[str, tuple[str, Mapping[str, str]]] = {}
    for shard in shards:
        carried = [(item.manifest, item.header) for item in shard.report.items]
        carried += [(record.manifest, record.header) for record in shard.report.targets]
        for target, header in carried:
            if not header:
                continue
            known = seen.setdefault(target, (shard.name, header))
            if known[1] != header:
                keys = sorted(
                    k for k in set(known[1]) | set(header) if known[1].get(k) != header.get(k)
                )
                shown = "; ".join(
                    f"{k}: {known[1].get(k, '(none)')!r} vs {header.get(k, '(none)')!r}"
                    for k in keys
                )
                raise PlanguardError(
                    PlanguardCode.REPORT_MERGE_INCOMPATIBLE,
                    f"{target}: {known[0]} and {shard.name} planned it with a different "
                    f"engine or settings ({shown})",
                )


def _merge_targets(shards: Sequence[Shard]) -> dict[str, TargetRecord]:
    """One record per target: the collected one (all reports that collected it agree on
    its views and items); its snapshots without a view as any report found them."""
    merged: dict[str, tuple[str, TargetRecord]] = {}
    for shard in shards:
        for record in shard.report.targets:
            known = merged.get(record.manifest)
            if known is None or (record.collected and not known[1].collected):
                merged[record.manifest] = (shard.name, record)
                continue
            if not record.collected:
                continue
            name, first = known
            for field in ("views", "items"):
                a, b = getattr(first, field), getattr(record, field)
                if a != b:
                    raise PlanguardError(
                        PlanguardCode.REPORT_MERGE_INCOMPATIBLE,
                        f"target {record.manifest!r}: {name} and {shard.name} collected "
                        f"different {field} ({_difference(a, b)}): the shards ran on "
                        "different checkouts",
                    )
            unclaimed = sorted(set(first.unclaimed) | set(record.unclaimed))
            header = first.header or record.header  # equal where both have one
            merged[record.manifest] = (
                name,
                msgspec.structs.replace(first, unclaimed=unclaimed, header=header),
            )
    return {label: record for label, (_, record) in merged.items()}


def _difference(a: Sequence[str], b: Sequence[str]) -> str:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    parts = []
    if only_a:
        parts.append("only in the first: " + ", ".join(only_a[:5]))
    if only_b:
        parts.append("only in the second: " + ", ".join(only_b[:5]))
    return "; ".join(parts) or "same names, another order"


def _unused(
    shards: Sequence[Shard], targets: Mapping[str, TargetRecord], ran: set[str]
) -> list[UnusedSnapshot]:
    """The unused snapshots the shards reported, plus the unclaimed ones of every target
    whose items the shards ran together (none of a target they did not cover)."""
    out: dict[str, tuple[str, UnusedSnapshot]] = {}
    for shard in shards:
        for entry in shard.report.unused_snapshots:
            known = out.setdefault(entry.snapshot, (shard.name, entry))
            if known[1] != entry:
                raise PlanguardError(
                    PlanguardCode.REPORT_MERGE_CONFLICT,
                    f"snapshot {entry.snapshot!r}: {known[0]} and {shard.name} report it "
                    "differently (deleted in one, kept in the other)",
                )
    for record in targets.values():
        if not record.collected or not set(record.items) <= ran:
            continue
        for snapshot in record.unclaimed:
            if snapshot not in out:
                entry = UnusedSnapshot(
                    code="SNAPSHOT_UNUSED",
                    snapshot=snapshot,
                    view=Path(snapshot).stem,
                    deleted=False,
                )
                out[snapshot] = ("", entry)
    return [out[key][1] for key in sorted(out)]


def _coverage_line(record: TargetRecord, ran: set[str]) -> str:
    if not record.collected:
        return f"{record.manifest}: no report collected it"
    missing = sorted(set(record.items) - ran)
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return (
        f"{record.manifest}: {len(missing)} of {len(record.items)} item(s) ran in no report "
        f"({shown})"
    )


def to_builtins(report: Report) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(report)
    return data
