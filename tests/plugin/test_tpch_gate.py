"""The gate's promise on the bundled TPC-H example, end to end (issue "done when").

A copy of the example in one directory writes its snapshots; a copy of that copy in a
third directory passes them with one CPU and another PYTHONHASHSEED; an edited view then
fails the gate with exit 1 and the JSON report names the view, its class and the stage
where its plan first diverged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.gate import run_gate
from tests.support.tpch import copy_tpch


def gate(
    project: Path, *args: str, env: dict[str, str], cpus: set[int] | None = None
) -> subprocess.CompletedProcess[str]:
    options = ("-p", "no:cacheprovider", "--planguard-processes", "1")
    return run_gate(project, *options, *args, env={**os.environ, **env}, cpus=cpus)


def test_tpch_snapshots_travel_between_directories(tmp_path: Path, tpch_data: Path) -> None:
    writer = tmp_path / "writer"
    copy_tpch(writer, tpch_data)
    (writer / "pytest.ini").write_text("[pytest]\nplanguard_manifests = manifest.toml\n")
    first = gate(writer, "--snapshot-update", env={"PYTHONHASHSEED": "0"})
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    snapshots = sorted((writer / "snapshots" / "manifest").glob("*.plan"))
    assert len(snapshots) == 26

    third = tmp_path / "elsewhere" / "third"
    shutil.copytree(writer, third)
    second = gate(third, env={"PYTHONHASHSEED": "987"}, cpus={0})
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "26 snapshots passed" in second.stdout

    view = third / "views" / "q05.sql"
    view.write_text(view.read_text().replace("r_name = 'ASIA'", "r_name = 'EUROPE'"))
    failed = gate(third, "--planguard-report", "report.json", env={"PYTHONHASHSEED": "5"})
    assert failed.returncode == 1, failed.stdout[-3000:]
    report = json.loads((third / "report.json").read_text())
    (finding,) = [f for f in report["findings"] if f["code"] == "PLAN_CHANGED"]
    assert (finding["view"], finding["class"]) == ("q05", "semantic")
    # the rule trace names the stage: the view's SQL changed, so its very first plan did
    assert finding["first_divergence"] == "initial_logical_plan"
