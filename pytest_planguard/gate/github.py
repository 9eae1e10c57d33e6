"""GitHub Actions workflow commands for plan changes (``GITHUB_ACTIONS=true``).

A failed gate item is annotated by ``pytest-github-actions-annotate-failures`` when that
plugin is installed (at the item's ``reportinfo()`` location: the view's SQL); this module
writes what it cannot: a ``::warning`` for each warned change, a ``::error`` for each
failed one only when that plugin is absent, and a last line saying how many were left out
past GitHub's limit (10 errors and 10 warnings are shown per step).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from pytest_planguard.gate.review import Review, ReviewView

PER_LEVEL = 10
"""GitHub shows at most 10 annotations of each level per step."""
PLUGIN = "pytest_github_actions_annotate_failures"


def active(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(
    level: str, message: str, *, file: str = "", line: int | None = None, title: str = ""
) -> str:
    props = [("file", file), ("line", str(line) if line else ""), ("title", title)]
    joined = ",".join(f"{key}={escape_property(value)}" for key, value in props if value)
    return f"::{level}{' ' + joined if joined else ''}::{escape_data(message)}"


def workflow_commands(
    review: Review,
    *,
    plugin_annotates_failures: bool,
    root: Path | None = None,
    workspace: str | None = None,
) -> Iterator[str]:
    """The workflow commands for the review's views, capped per level.  Locations are
    relative to ``root`` (pytest's rootdir); under ``workspace`` (``GITHUB_WORKSPACE``)
    they are made relative to it, as GitHub expects."""
    left_out = 0
    shown = {"error": 0, "warning": 0}
    for view in review.views:
        level = "error" if view.action == "fail" else "warning"
        if level == "error" and plugin_annotates_failures:
            continue
        if shown[level] >= PER_LEVEL:
            left_out += 1
            continue
        shown[level] += 1
        yield _annotation(level, view, _relocate(view.location, root, workspace))
    if left_out:
        yield command(
            "notice",
            f"planguard: {left_out} more plan change(s) not annotated (GitHub shows "
            f"{PER_LEVEL} per level and step); see the step summary or the HTML report",
        )


def _relocate(location: str, root: Path | None, workspace: str | None) -> str:
    if not location or root is None or not workspace:
        return location
    relative = os.path.relpath(root / location, workspace)
    return location if relative.startswith("..") else Path(relative).as_posix()


def _annotation(level: str, view: ReviewView, location: str) -> str:
    file, _, line = location.rpartition(":")
    if not line.isdigit():
        file, line = location, ""
    classes = ", ".join(view.classes or (view.status,))
    message = view.message or f"view {view.view!r}: plan {view.status} ({classes})"
    if view.caused_by:
        message += f"\nchanged through upstream {', '.join(view.caused_by)}"
    if view.accept:
        message += f"\nTo accept: {view.accept}"
    return command(
        level,
        message,
        file=file,
        line=int(line) if line.isdigit() else None,
        title=f"planguard: {view.view} {classes}",
    )
