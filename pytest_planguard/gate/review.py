"""What a reviewer is shown of a run: plain data for the HTML, Markdown and GitHub reports.

The measuring side (the gate's items, ``planguard diff``) produces results; this module
turns them into a :class:`Review` (no pytest, no engine, no files), which the renderers
(:mod:`.html`, :mod:`.markdown`, :mod:`.github`) take as it is.

* :func:`section_diffs`: per changed section of two snapshot texts, a unified diff with the
  whole section as context, so that a renderer can rebuild both sides (side-by-side, the
  plan tree) from the diff alone.  A gate item carries these to the pytest-xdist
  controller in its :class:`~.results.GateResult` (``diffs``), and the JSON report keeps
  them.
* :func:`review_from_report`: a :class:`Review` from the gate's JSON report (as built-in
  data), so every field a finding gains later is shown too (``extra``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_planguard.gate.snapshot import SECTIONS, parse_snapshot

HEADER = "header"
MAX_CONTEXT_CHARS = 256 * 1024
"""A section pair longer than this is diffed with 3 lines of context, not the whole text."""


def section_diffs(old: str, new: str, name: str = "") -> dict[str, str]:
    """Per section that differs between two snapshot texts (and ``header`` when the header
    lines differ): the unified diff of the stored text (``-``) against the current one
    (``+``), with the whole section as context."""
    before, after = parse_snapshot(old), parse_snapshot(new)
    pairs = {
        section: (before.sections.get(section, ""), after.sections.get(section, ""))
        for section in (*SECTIONS, *sorted(set(before.sections) | set(after.sections)))
    }
    pairs[HEADER] = (_header_text(before.header), _header_text(after.header))
    out = {}
    for section, (a, b) in pairs.items():
        if a == b:
            continue
        context = len(a) + len(b) if len(a) + len(b) <= MAX_CONTEXT_CHARS else 3
        lines = difflib.unified_diff(
            a.splitlines(),
            b.splitlines(),
            fromfile=f"{name} {section}".strip(),
            tofile=f"{name} {section}".strip(),
            n=context,
            lineterm="",
        )
        out[section] = "\n".join(lines)
    return out


def _header_text(header: Mapping[str, str]) -> str:
    return "\n".join(f"{key}: {value}" for key, value in header.items() if key != "view")


Row = tuple[str, str | None, str | None]
"""One side-by-side row: tag (``equal``, ``replace``, ``delete``, ``insert``, ``gap``),
the old line and the new line (None where that side has none)."""


def diff_rows(diff: str) -> Iterator[Row]:
    """The side-by-side rows of a unified diff: runs of removed lines are paired with the
    added lines that follow them."""
    removed: list[str] = []
    added: list[str] = []

    def flush() -> Iterator[Row]:
        for i in range(max(len(removed), len(added))):
            a = removed[i] if i < len(removed) else None
            b = added[i] if i < len(added) else None
            tag = (
                "replace"
                if a is not None and b is not None
                else "delete"
                if b is None
                else "insert"
            )
            yield tag, a, b
        removed.clear()
        added.clear()

    started = False
    for line in diff.splitlines():
        if line.startswith("@@"):
            yield from flush()
            if started:
                yield "gap", None, None
            started = True
        elif not started:
            continue  # the ---/+++ file lines
        elif line.startswith("-"):
            if added:
                yield from flush()
            removed.append(line[1:])
        elif line.startswith("+"):
            added.append(line[1:])
        else:
            yield from flush()
            text = line[1:] if line.startswith(" ") else line
            yield "equal", text, text
    yield from flush()


def sides(diff: str) -> tuple[list[str], list[str]]:
    """The old and the new text of a whole-context unified diff, as lines."""
    old: list[str] = []
    new: list[str] = []
    for tag, a, b in diff_rows(diff):
        if tag == "gap":
            continue
        if a is not None:
            old.append(a)
        if b is not None:
            new.append(b)
    return old, new


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One operator of a plan tree: its depth, its text and how it changed (``equal``,
    ``added``, ``removed``, ``changed``; ``was`` is the old text of a changed one)."""

    depth: int
    text: str
    status: str
    was: str = ""


def plan_tree(old: Sequence[str], new: Sequence[str]) -> list[TreeNode]:
    """The operators of the new plan in order, with the removed ones of the old plan at
    their old place: operators are compared without indentation (a node inserted above a
    subtree leaves the subtree unchanged)."""
    matcher = difflib.SequenceMatcher(
        None, [line.strip() for line in old], [line.strip() for line in new], autojunk=False
    )
    nodes: list[TreeNode] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            nodes += [TreeNode(_depth(line), line.strip(), "equal") for line in new[j1:j2]]
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            a, b = old[i1 + k], new[j1 + k]
            nodes.append(TreeNode(_depth(b), b.strip(), "changed", was=a.strip()))
        nodes += [TreeNode(_depth(a), a.strip(), "removed") for a in old[i1 + paired : i2]]
        nodes += [TreeNode(_depth(b), b.strip(), "added") for b in new[j1 + paired : j2]]
    return nodes


def _depth(line: str) -> int:
    return (len(line) - len(line.lstrip(" "))) // 2


# ---------------------------------------------------------------------------- the review


@dataclass(frozen=True, slots=True)
class ReviewView:
    """One view a reviewer should look at (changed, new, removed, failed)."""

    target: str
    view: str
    status: str
    classes: tuple[str, ...] = ()
    action: str = "fail"
    codes: tuple[str, ...] = ()
    caused_by: tuple[str, ...] = ()
    inherited: bool = False
    first_divergence: str | None = None
    """The rule trace's first planner stage whose plan differs (:mod:`.trace`)."""
    rules_started: tuple[str, ...] = ()
    rules_stopped: tuple[str, ...] = ()
    trace_disagreement: str = ""
    message: str = ""
    accept: str = ""
    diffs: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Further fields of the view's finding, shown as they are."""
    nodeid: str = ""
    location: str = ""
    """``file`` or ``file:line`` of the view's definition, when known."""

    @property
    def anchor(self) -> str:
        return "v-" + "".join(
            c if c.isalnum() or c == "_" else "-" for c in f"{self.target}-{self.view}"
        )


@dataclass(frozen=True, slots=True)
class CheckRow:
    name: str
    status: str
    codes: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class Review:
    """Everything the report renderers show."""

    title: str
    labels: tuple[str, str]
    """How the two sides are named: ``snapshot``/``current``, ``base``/``head``."""
    summary: Sequence[tuple[str, str]]
    facts: Sequence[tuple[str, str]]
    views: Sequence[ReviewView]
    unchanged: Sequence[str] = ()
    checks: Sequence[CheckRow] = ()
    findings: Sequence[Mapping[str, Any]] = ()
    """Other findings (policy, cost, unused snapshots), as the JSON report has them."""


_FINDING_KEYS = frozenset(
    {"code", "severity", "manifest", "view", "check", "class", "classes", "message", "nodeid"}
)
TRACE_FIELDS = ("first_divergence", "rules_started", "rules_stopped", "trace_disagreement")
"""A changed view's rule-trace fields (JSON report and ``planguard diff``), shown apart."""
_SHOWN_ELSEWHERE = frozenset({"caused_by", "inherited", "diffs", "dataset", *TRACE_FIELDS})
REVIEWED = ("changed", "new", "unstable", "unavailable", "error")


def trace_fields(finding: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`TRACE_FIELDS` of a report item or a diff change, typed for
    :class:`ReviewView` (absent ones at their defaults)."""
    return {
        "first_divergence": finding.get("first_divergence") or None,
        "rules_started": tuple(finding.get("rules_started") or ()),
        "rules_stopped": tuple(finding.get("rules_stopped") or ()),
        "trace_disagreement": str(finding.get("trace_disagreement") or ""),
    }


def review_from_report(
    report: Mapping[str, Any], accept: Callable[[str], str] | None = None, title: str = ""
) -> Review:
    """The :class:`Review` of a gate run from its JSON report (built-in data).
    ``accept(nodeid)`` is the command that accepts a view's change."""
    items = report.get("items", [])
    plan = [item for item in items if item.get("kind") == "plan"]
    by_node: dict[str, dict[str, Any]] = {}
    for finding in report.get("findings", []):
        if finding.get("nodeid") and finding.get("check") == "plan":
            by_node.setdefault(finding["nodeid"], {}).update(finding)
    views = []
    for item in plan:
        if item.get("status") not in REVIEWED:
            continue
        finding = by_node.get(item["nodeid"], {})
        extra = {
            key: value
            for key, value in finding.items()
            if key not in _FINDING_KEYS | _SHOWN_ELSEWHERE and value not in (None, [], {}, "")
        }
        views.append(
            ReviewView(
                target=item["manifest"],
                view=item.get("view") or "",
                status=item["status"],
                classes=tuple(item.get("classes", ())),
                action="fail" if item.get("outcome") == "failed" else "warn",
                codes=tuple(item.get("codes", ())),
                caused_by=tuple(item.get("caused_by", ())),
                inherited=bool(item.get("inherited")),
                **trace_fields({**item, **finding}),
                message=item.get("message", ""),
                accept=accept(item["nodeid"]) if accept and item["status"] != "error" else "",
                diffs=item.get("diffs", {}),
                extra=extra,
                nodeid=item["nodeid"],
            )
        )
    checks = [
        CheckRow(
            name=f"{item['manifest']}::{item.get('check')}",
            status=item["status"],
            codes=tuple(item.get("codes", ())),
            message=item.get("message", ""),
        )
        for item in items
        if item.get("kind") != "plan"
    ]
    others = [
        finding
        for finding in report.get("findings", [])
        if finding.get("check") in ("policy", "snapshot")
    ]
    cost = [
        {**finding, "check": "cost"}
        for finding in report.get("findings", [])
        if finding.get("code") == "PLAN_COST_REGRESSION"
    ]
    s = report.get("summary", {})
    changed = s.get("changed", {})
    by_class = ", ".join(f"{k} {v}" for k, v in changed.get("by_class", {}).items())
    summary = [
        ("views checked", f"{s.get('views_checked', 0)} of {s.get('views', 0)}"),
        ("unchanged", str(s.get("unchanged", 0))),
        ("changed", f"{changed.get('total', 0)}" + (f" ({by_class})" if by_class else "")),
        ("new", str(s.get("new", 0))),
        ("updated", str(s.get("updated", 0))),
        ("unused", str(s.get("unused", 0))),
        ("unavailable", str(s.get("unavailable", 0))),
        ("unstable", str(s.get("unstable", 0))),
        ("errors", str(s.get("errors", 0))),
        ("invariants", _checks_line(checks)),
        ("failed items", str(s.get("failed", 0))),
    ]
    headers: dict[str, str] = {}
    for item in items:
        for key, value in item.get("header", {}).items():
            headers.setdefault(key, value)
    facts = [
        ("engine", headers.get("engine", "unknown")),
        ("settings hash", headers.get("settings-hash", "unknown")),
        ("normalizer", headers.get("normalizer", "unknown")),
        ("planguard", str(report.get("planguard_version", ""))),
        ("snapshot dir", str(report.get("snapshot_dir", ""))),
        ("gate", ", ".join(f"{k}={v}" for k, v in report.get("gate", {}).items()) or "default"),
    ]
    return Review(
        title=title or "planguard: plan changes",
        labels=("snapshot", "current"),
        summary=summary,
        facts=facts,
        views=views,
        unchanged=[
            f"{item['manifest']}::{item.get('view')}"
            for item in plan
            if item.get("status") == "unchanged"
        ],
        checks=checks,
        findings=[*others, *cost],
    )


def _checks_line(checks: Sequence[CheckRow]) -> str:
    if not checks:
        return "none"
    passed = sum(1 for check in checks if check.status == "passed")
    return f"{passed} of {len(checks)} passed"
