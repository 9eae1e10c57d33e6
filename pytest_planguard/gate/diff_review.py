"""``planguard diff BASE HEAD --html PATH``: the HTML report of two snapshot trees, from
what :func:`~pytest_planguard.diff_cli.diff_trees` found and the trees' texts.  The sides
are named ``base`` and ``head``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_planguard.gate.html import render_html
from pytest_planguard.gate.review import (
    TRACE_FIELDS,
    Review,
    ReviewView,
    section_diffs,
    trace_fields,
)
from pytest_planguard.gate.snapshot import atomic_write, parse_snapshot


def diff_review(
    base: str,
    head: str,
    *,
    base_tree: Mapping[str, str],
    head_tree: Mapping[str, str],
    changes: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    gate: Mapping[str, str],
) -> Review:
    known = {"code", "snapshot", "view", "status", "classes", "action", "diffs", "raw_diffs"}
    known |= {"caused_by", "inherited", *TRACE_FIELDS}
    views = [
        ReviewView(
            target=str(Path(change["snapshot"]).parent.as_posix()),
            view=change["view"],
            status=change["status"],
            classes=tuple(change["classes"]),
            action=change["action"],
            codes=(change["code"],),
            caused_by=tuple(change.get("caused_by", ())),
            inherited=bool(change.get("inherited")),
            **trace_fields(change),
            diffs=section_diffs(
                base_tree.get(change["snapshot"], ""),
                head_tree.get(change["snapshot"], ""),
                change["view"],
            ),
            extra={k: v for k, v in change.items() if k not in known and v not in ([], {}, "")},
            nodeid=change["snapshot"],
        )
        for change in changes
    ]
    changed = {change["snapshot"] for change in changes}
    by_class = ", ".join(f"{k} {v}" for k, v in summary.get("by_class", {}).items())
    return Review(
        title="planguard diff: plan changes between two snapshot trees",
        labels=("base", "head"),
        summary=[
            ("snapshots compared", str(summary.get("compared", 0))),
            ("unchanged", str(summary.get("unchanged", 0))),
            ("changed", f"{summary.get('changed', 0)}" + (f" ({by_class})" if by_class else "")),
            ("failing the gate", str(summary.get("failing", 0))),
        ],
        facts=[
            ("base", base),
            ("head", head),
            ("base engine", _engine(base_tree)),
            ("head engine", _engine(head_tree)),
            ("gate", ", ".join(f"{k}={v}" for k, v in sorted(gate.items())) or "default"),
        ],
        views=views,
        unchanged=[name for name in sorted(set(base_tree) | set(head_tree)) if name not in changed],
    )


def _engine(tree: Mapping[str, str]) -> str:
    engines = sorted({parse_snapshot(text).header.get("engine", "?") for text in tree.values()})
    return "; ".join(engines) or "no snapshots"


def write_diff_html(path: str, review: Review) -> None:
    atomic_write(Path(path), render_html(review))
