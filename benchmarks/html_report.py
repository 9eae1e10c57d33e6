"""Size and open time of the HTML report for ``dag_2000`` with 100 changed views (issue 14).

    python benchmarks/html_report.py [--views 2000] [--changed 100] [--workdir DIR] [--json PATH]

Writes the synthetic 2,000-view DAG (``benchmarks/dag.py``), accepts its snapshots with the
gate, edits the SQL of ``--changed`` views of the last layer (nothing reads them, so exactly
that many change: each gains a filter, class ``semantic``), runs the gate again with
``--planguard-html``, and opens the report in headless Chromium (Debian's ``chromium``).

Reported, never asserted (targets: under 5 MB, open in under 2 s):

* ``html_bytes``: the report's size;
* ``ready_ms``: the page's own ``performance.now()`` once its script ran and the layout was
  forced (``data-ready-ms``, read from ``--dump-dom``): the time from navigation to a usable
  page;
* ``chromium_wall_s`` / ``blank_wall_s``: Chromium's whole run on the report and on an empty
  page (start-up included), best of ``--reps``;
* ``render_s``: the renderer alone (the JSON report's data -> review -> HTML) in this
  process, best of ``--reps``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.dag import LAYERS, generate_views, write_datasets, write_manifest
from tests.support.browser import SEALED, chromium

FAST = ["-p", "no:cacheprovider", "--planguard-processes", "0", "--planguard-runs", "1"]


def _gate(project: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", *FAST, "--planguard", "-q", "-n", "2", *args],
        cwd=project,
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - started


def _chromium(url: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        done = subprocess.run(
            [chromium(), *SEALED, f"--user-data-dir={tmp}", "--dump-dom", url],
            capture_output=True,
            text=True,
            check=True,
        )
        return time.perf_counter() - started, done.stdout


def _run_gates(project: Path, report: Path, size: int, changed: int) -> tuple[float, float]:
    """Accept the DAG's snapshots, edit ``changed`` views of the last layer, gate again."""
    write_datasets(project / "data")
    manifest = write_manifest(project / "manifest.toml", size)
    (project / "pytest.ini").write_text("[pytest]\nplanguard_manifests = manifest.toml\n")
    accept_s = _gate(project, "--snapshot-update")

    views = generate_views(size)
    last = [v for v in views if v.name.startswith(f"l{LAYERS - 1}_")][:changed]
    text = manifest.read_text()
    for view in last:
        text = text.replace(
            f'[views.{view.name}]\nsql = "', f'[views.{view.name}]\nsql = "SELECT * FROM (', 1
        )
        head, sep, rest = text.partition(f"[views.{view.name}]\n")
        line, newline, tail = rest.partition("\n")
        text = head + sep + line[:-1] + ') AS changed WHERE k >= 0"' + newline + tail
    manifest.write_text(text)
    gate_s = _gate(project, "--planguard-html", str(report), "--planguard-report", "report.json")
    return accept_s, gate_s


def _rerender(project: Path, report: Path) -> None:
    from pytest_planguard.gate.html import render_html
    from pytest_planguard.gate.review import review_from_report

    data = json.loads((project / "report.json").read_text())
    report.write_text(render_html(review_from_report(data)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=2000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse --workdir's gate run: render report.html again from its report.json "
        "(to measure a renderer change without the gate runs)",
    )
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="planguard-html-bench-"))
    project = work / f"dag_{args.views}"
    report = project / "report.html"
    if args.reuse:
        accept_s = gate_s = 0.0
        _rerender(project, report)
    else:
        accept_s, gate_s = _run_gates(project, report, args.views, args.changed)

    html = report.read_text()
    changed = len(re.findall(r"<section class=view ", html))
    blank = work / "blank.html"
    blank.write_text("<!DOCTYPE html><title>blank</title>")
    walls, blanks, ready = [], [], []
    for _ in range(args.reps):
        wall, dom = _chromium(report.as_uri())
        walls.append(wall)
        found = re.search(r'data-ready-ms="(\d+)"', dom)
        ready.append(int(found.group(1)) if found else -1)
        blanks.append(_chromium(blank.as_uri())[0])

    from pytest_planguard.gate.html import render_html
    from pytest_planguard.gate.review import review_from_report

    data = json.loads((project / "report.json").read_text())
    render = []
    for _ in range(args.reps):
        started = time.perf_counter()
        render_html(review_from_report(data))
        render.append(time.perf_counter() - started)

    result = {
        "views": args.views,
        "changed_views_in_report": changed,
        "html_bytes": report.stat().st_size,
        "ready_ms": min(ready),
        "chromium_wall_s": round(min(walls), 3),
        "blank_wall_s": round(min(blanks), 3),
        "render_s": round(min(render), 4),
        "gate_accept_s": round(accept_s, 1),
        "gate_html_s": round(gate_s, 1),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
