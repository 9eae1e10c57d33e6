"""The review outputs of a gate run, written by the controller at the session's end: the
HTML report, the Markdown summary, and under GitHub Actions the step summary (the
annotations are printed with the terminal summary).  Built from the same data as the JSON
report (:func:`~.report.build_report`), so that every process's results are in it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.gate import github
from pytest_planguard.gate.html import render_html
from pytest_planguard.gate.markdown import render_markdown
from pytest_planguard.gate.report import UnusedSnapshot, build_report
from pytest_planguard.gate.results import ReportedResult
from pytest_planguard.gate.review import Review, review_from_report
from pytest_planguard.gate.snapshot import atomic_write

if TYPE_CHECKING:
    from pytest_planguard.config import PlanguardConfig


def wanted(config: PlanguardConfig, environ: Mapping[str, str]) -> bool:
    return config.html is not None or config.markdown is not None or github.active(environ)


def build_review(
    results: Sequence[ReportedResult],
    unused: Sequence[UnusedSnapshot],
    config: PlanguardConfig,
    accept: Callable[[str], str],
    locations: Mapping[str, str],
) -> Review:
    report = msgspec.to_builtins(build_report(results, unused, config))
    review = review_from_report(report, accept)
    views = [replace(v, location=locations.get(v.nodeid, "")) for v in review.views]
    return replace(review, views=views)


def write_outputs(review: Review, config: PlanguardConfig, environ: Mapping[str, str]) -> list[str]:
    """Write the HTML report, the Markdown summary and the GitHub step summary; the
    problems met, one line each (a report that cannot be written fails the run)."""
    problems = []
    try:
        if config.html is not None:
            atomic_write(config.html, render_html(review))
    except PlanguardError as exc:
        problems.append(exc.render())
    markdown = render_markdown(review) if config.markdown or github.active(environ) else ""
    try:
        if config.markdown is not None:
            atomic_write(config.markdown, markdown)
    except PlanguardError as exc:
        problems.append(exc.render())
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if github.active(environ) and summary:
        try:
            with Path(summary).open("a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")
        except OSError as exc:
            problems.append(
                f"error[{PlanguardCode.SNAPSHOT_WRITE_FAILED}] cannot append to "
                f"GITHUB_STEP_SUMMARY {summary!r}: {exc.strerror or exc}"
            )
    return problems
