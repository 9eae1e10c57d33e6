"""Rendering the planguard section of pytest's terminal summary (no measuring here)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pytest_planguard.gate.report import UnusedSnapshot, summarize
from pytest_planguard.gate.results import ReportedResult


def render_summary(
    results: Sequence[ReportedResult],
    unused: Sequence[UnusedSnapshot],
    cache: Mapping[str, Any] | None = None,
) -> Iterator[str]:
    summary = summarize(results, unused)
    yield ""
    yield "=" * 24 + " planguard " + "=" * 24
    changed = summary.changed
    by_class = ", ".join(f"{name} {count}" for name, count in sorted(changed.by_class.items()))
    yield (
        f"views checked {summary.views_checked} of {summary.views}: "
        f"unchanged {summary.unchanged}, changed {changed.total}"
        + (f" ({by_class})" if by_class else "")
        + f", new {summary.new}, updated {summary.updated}, unused {summary.unused}, "
        f"unavailable {summary.unavailable}, unstable {summary.unstable}, "
        f"errors {summary.errors}"
    )
    if cache is not None:
        yield (
            f"plan cache: {cache['hits']} hits, {cache['misses']} misses "
            f"({cache['hit_rate']:.0%} hit rate), {cache['entries']} entries, "
            f"{cache['bytes'] / 1e6:.1f} MB in {cache['directory']}"
            + (f", {cache['verified']} verified" if cache["verified"] else "")
        )
    checks = Counter((r.check, r.status) for r in results if r.kind != "plan")
    if checks:
        yield "checks: " + ", ".join(
            f"{check} {status}" + (f" x{count}" if count > 1 else "")
            for (check, status), count in sorted(checks.items())
        )
    notable = {"changed", "unstable", "unavailable", "new", "updated", "error"}
    for result in results:
        if result.kind == "plan" and result.status in notable:
            if result.status == "changed":
                label = "FAILED" if result.outcome == "failed" else "WARNED"
            else:
                label = result.status.upper()
            classes = ", ".join(result.classes)
            through = f" (through {', '.join(result.caused_by)})" if result.caused_by else ""
            if result.inherited:
                classes += ", inherited"
            yield (f"  {label:<11} {result.nodeid}" + (f": {classes}" if classes else "") + through)
    for entry in unused:
        verb = "deleted" if entry.deleted else "unused"
        yield f"  {verb.upper():<11} snapshot {entry.snapshot}"
    kept = sum(1 for entry in unused if not entry.deleted)
    if kept:
        yield (
            f"{kept} unused snapshot(s): no view of a fully selected manifest or session uses them "
            "(delete them with --snapshot-update, or report without failing with "
            "--snapshot-warn-unused)"
        )
