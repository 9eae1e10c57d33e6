"""``planguard report merge A.json B.json ... -o ALL.json [--html ALL.html]``: one gate
report from the JSON reports of a split suite's shards (:mod:`.gate.merge` says exactly
how).  Exit 0 when the merged run is clean, 1 when it has failed items or unused
snapshots, or when the reports together did not run every item of every target
(``REPORT_MERGE_INCOMPLETE``; ``--allow-partial`` accepts that), 2 for bad input
(``REPORT_INVALID``, ``REPORT_MERGE_INCOMPATIBLE``, ``REPORT_MERGE_CONFLICT``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_planguard.errors import PlanguardCode
from pytest_planguard.gate.merge import load_report, merge, to_builtins
from pytest_planguard.gate.report import dump_report
from pytest_planguard.gate.terminal import render_summary


def run_merge(
    paths: Sequence[str],
    *,
    output: str,
    html: str | None = None,
    allow_partial: bool = False,
    warn_unused: bool = False,
) -> int:
    merged = merge([load_report(path) for path in paths])
    report = merged.report
    dump_report(Path(output), report)
    if html is not None:
        from pytest_planguard.gate.html import render_html
        from pytest_planguard.gate.review import review_from_report
        from pytest_planguard.gate.snapshot import atomic_write

        review = review_from_report(
            to_builtins(report),
            lambda nodeid: f"pytest --planguard --snapshot-update '{nodeid}'",
            title=f"planguard: plan changes (merged from {len(paths)} reports)",
        )
        atomic_write(Path(html), render_html(review))
    cache = to_builtins(report).get("cache")
    for line in render_summary(report.items, report.unused_snapshots, cache):
        if line:
            print(line)
    complete = len(report.targets) - len(merged.incomplete)
    print(
        f"merged {len(paths)} report(s) into {output}: {complete} of {len(report.targets)} "
        "target(s) complete"
    )
    for line in merged.incomplete:
        print(
            f"{'warning' if allow_partial else 'error'}[{PlanguardCode.REPORT_MERGE_INCOMPLETE}] "
            f"{line}",
            file=sys.stderr,
        )
    kept = [entry for entry in report.unused_snapshots if not entry.deleted]
    failed = (
        report.summary.failed > 0
        or (kept and not warn_unused)
        or (merged.incomplete and not allow_partial)
    )
    return 1 if failed else 0
