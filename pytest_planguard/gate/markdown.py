"""The Markdown summary of plan changes (``--planguard-markdown``, ``$GITHUB_STEP_SUMMARY``),
rendered from a :class:`~.review.Review`: a table of the views to review with classes and
causes, the invariant results, and a collapsed diff per view, kept under a size limit
(GitHub takes at most 1 MiB of step summary)."""

from __future__ import annotations

from pytest_planguard.gate.review import Review

LIMIT = 1024 * 1024
"""GitHub's limit on one step's summary, in bytes."""
BUDGET = LIMIT - 64 * 1024
"""What the summary may take: the rest is left for what other steps append."""


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(review: Review, budget: int = BUDGET) -> str:
    lines = [f"## {review.title}", ""]
    lines.append(" · ".join(f"{key} **{_cell(value)}**" for key, value in review.summary))
    lines.append("")
    for key, value in review.facts:
        if key in ("engine", "settings hash"):
            lines.append(f"{key}: `{_cell(value)}`  ")
    lines.append("")
    if review.views:
        lines += ["| view | target | class | gate | caused by |", "| --- | --- | --- | --- | --- |"]
        for view in review.views:
            causes = ", ".join(view.caused_by) + (" (inherited)" if view.inherited else "")
            lines.append(
                f"| `{_cell(view.view)}` | `{_cell(view.target)}` | "
                f"{_cell(', '.join(view.classes or (view.status,)))} | {view.action} | "
                f"{_cell(causes)} |"
            )
        lines.append("")
    else:
        lines += ["No plan changes.", ""]
    if review.checks:
        lines += ["| check | status | codes |", "| --- | --- | --- |"]
        lines += [
            f"| `{_cell(check.name)}` | {check.status} | {_cell(' '.join(check.codes))} |"
            for check in review.checks
        ]
        lines.append("")
    text = "\n".join(lines)
    size = len(text.encode())
    omitted = 0
    blocks = []
    for view in review.views:
        body = "\n".join(view.diffs.values())
        fence = "````" if "```" in body else "```"
        block = (
            f"<details><summary>{view.view}: {', '.join(view.classes or (view.status,))}"
            f"</summary>\n\n{fence}diff\n{body}\n{fence}\n\n</details>\n"
        )
        if omitted or size + len(block.encode()) > budget - 200:
            omitted += 1
            continue
        blocks.append(block)
        size += len(block.encode())
    out = text + "\n" + "\n".join(blocks)
    if omitted:
        out += f"\n{omitted} more diff(s) left out to stay under GitHub's summary limit.\n"
    return out
