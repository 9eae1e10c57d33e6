"""``planguard report merge`` over hostile and mismatched inputs: each refused with one
coded line and no traceback, nothing written; each refusal has a twin (the real shards'
reports, unmodified) that merges.

The reports are real: the shop manifest gated in two shards with pytest-split, once per
module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.helpers import ERROR_LINE, assert_no_traceback
from tests.support.cli import run_cli, run_planguard
from tests.support.codes import CodeRecorder
from tests.support.gate import FAST, clean_env, run_gate
from tests.support.shop import write_shop

Report = dict[str, Any]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The JSON reports of the two shards of the accepted shop project."""
    root = tmp_path_factory.mktemp("sharded")
    write_shop(root)
    (root / "pytest.ini").write_text("[pytest]\nplanguard_manifests = manifest.toml\n")
    accepted = run_gate(root, *FAST, "--planguard-only", "--snapshot-update", env=clean_env())
    assert accepted.returncode == 0, accepted.stdout
    reports = []
    for group in (1, 2):
        report = root / f"shard{group}.json"
        done = run_gate(
            root,
            *FAST,
            "--planguard-only",
            "--splits",
            "2",
            "--group",
            str(group),
            "--planguard-report",
            str(report),
            env=clean_env(),
        )
        assert done.returncode == 0, done.stdout
        reports.append(report)
    return reports[0], reports[1]


def load(path: Path) -> Report:
    data: Report = json.loads(path.read_text())
    return data


def variant(tmp_path: Path, source: Path, change: Callable[[Report], object]) -> Path:
    """A copy of ``source`` changed by ``change`` (which edits the report in place)."""
    report = load(source)
    change(report)
    path = tmp_path / f"changed-{source.name}"
    path.write_text(json.dumps(report))
    return path


def refused(tmp_path: Path, *args: str | Path) -> tuple[str, str]:
    """``planguard report merge ARGS -o OUT`` exits 2 with one coded line and writes
    nothing; the code and the line."""
    out = tmp_path / "merged.json"
    code, stdout, stderr = run_cli("report", "merge", *map(str, args), "-o", str(out))
    assert code == 2, stdout + stderr
    assert_no_traceback(stdout, stderr)
    assert not out.exists()
    match = ERROR_LINE.search(stderr)
    assert match is not None, stderr
    return match["code"], stderr


def merges(tmp_path: Path, *args: str | Path) -> int:
    code, stdout, stderr = run_cli(
        "report", "merge", *map(str, args), "-o", str(tmp_path / "ok.json")
    )
    assert_no_traceback(stdout, stderr)
    assert "error[" not in stderr, stderr
    return code


def test_twin_the_real_shards_merge(tmp_path: Path, shards: tuple[Path, Path]) -> None:
    assert merges(tmp_path, *shards) == 0


@pytest.mark.produces_codes("REPORT_INVALID")
@pytest.mark.parametrize(
    "kind", ["missing", "directory", "fifo", "not json", "a list", "no schema_version", "bad field"]
)
def test_a_file_that_is_not_a_gate_report_is_refused(
    tmp_path: Path, shards: tuple[Path, Path], kind: str, codes: CodeRecorder
) -> None:
    bad = tmp_path / "bad.json"
    if kind == "directory":
        bad.mkdir()
    elif kind == "fifo":
        os.mkfifo(bad)  # opening it would block: refused before
    elif kind == "not json":
        bad.write_text("{not json")
    elif kind == "a list":
        bad.write_text("[]")
    elif kind == "no schema_version":
        bad.write_text('{"items": []}')
    elif kind == "bad field":
        bad = variant(tmp_path, shards[1], lambda r: r["summary"].update(views=-1))
    code, line = refused(tmp_path, shards[0], bad)
    codes.expect(code, "REPORT_INVALID", line)
    assert f"error[REPORT_INVALID] {bad}: " in line
    if kind == "bad field":
        assert "$.summary.views" in line


def _schema_2(r: Report) -> None:
    r["schema_version"] = 2


def _old_writer(r: Report) -> None:
    for key in ("settings", "environment", "targets"):
        r.pop(key)


def _engine(r: Report) -> None:
    r["environment"]["datafusion"] = "54.0.0"


def _settings(r: Report) -> None:
    r["settings"]["gate"] = r["settings"]["gate"].replace("cosmetic=warn", "cosmetic=fail")


def _planguard(r: Report) -> None:
    r["planguard_version"] = "0.0.1"


def _header(r: Report) -> None:
    for record in r["targets"]:
        record["header"]["settings-hash"] = "0000000000000000"
    for item in r["items"]:
        if item.get("header"):
            item["header"]["settings-hash"] = "0000000000000000"


def _checkout(r: Report) -> None:
    r["targets"][0]["views"].append("extra_view")


INCOMPATIBLE = {
    "schema_version": (_schema_2, "schema_version 2"),
    "older writer": (_old_writer, "records no settings"),
    "engine version": (_engine, "'54.0.0'): they are not shards of one run"),
    "settings": (_settings, "differ in settings (gate:"),
    "planguard version": (_planguard, "differ in planguard_version"),
    "snapshot header": (_header, "settings-hash"),
    "checkout": (_checkout, "different views (only in the second: extra_view)"),
}


@pytest.mark.produces_codes("REPORT_MERGE_INCOMPATIBLE")
@pytest.mark.parametrize("case", list(INCOMPATIBLE))
def test_reports_that_are_not_shards_of_one_run_are_refused(
    tmp_path: Path, shards: tuple[Path, Path], case: str, codes: CodeRecorder
) -> None:
    change, expected = INCOMPATIBLE[case]
    source, other = shards[1], shards[0]
    assert all(record["header"] for record in load(source)["targets"])
    code, line = refused(tmp_path, other, variant(tmp_path, source, change))
    codes.expect(code, "REPORT_MERGE_INCOMPATIBLE", line)
    assert expected in line


def _restatus(r: Report) -> None:
    r["items"][0].update(status="changed", outcome="failed")


@pytest.mark.produces_codes("REPORT_MERGE_CONFLICT")
def test_one_item_with_two_results_is_a_conflict(
    tmp_path: Path, shards: tuple[Path, Path], codes: CodeRecorder
) -> None:
    first, second = shards
    # the same report twice is the same results twice: not a conflict
    assert merges(tmp_path, first, first, second) == 0
    changed = variant(tmp_path, first, _restatus)
    item = load(first)["items"][0]
    code, line = refused(tmp_path, first, changed, second)
    codes.expect(code, "REPORT_MERGE_CONFLICT", line)
    was = f"({item['status']}, {item['outcome']})"
    assert f"item {item['nodeid']!r} ran in {first} {was} and in {changed}" in line


def _unused(deleted: bool) -> Callable[[Report], object]:
    entry = {"code": "SNAPSHOT_UNUSED", "snapshot": "manifest/gone.plan", "view": "gone"}
    return lambda r: r["unused_snapshots"].append({**entry, "deleted": deleted})


@pytest.mark.produces_codes("REPORT_MERGE_CONFLICT")
def test_one_snapshot_deleted_by_one_report_and_kept_by_another_is_a_conflict(
    tmp_path: Path, shards: tuple[Path, Path], codes: CodeRecorder
) -> None:
    first, second = shards
    kept = variant(tmp_path, first, _unused(False))
    (tmp_path / "deleted").mkdir()
    deleted = variant(tmp_path / "deleted", second, _unused(True))
    again = variant(tmp_path / "deleted", first, _unused(False))
    assert merges(tmp_path, kept, second, "--warn-unused") == 0  # reported once: fine
    assert merges(tmp_path, kept, again, second, "--warn-unused") == 0  # twice, the same
    code, line = refused(tmp_path, kept, deleted)
    codes.expect(code, "REPORT_MERGE_CONFLICT", line)
    assert "snapshot 'manifest/gone.plan': " in line
    assert "deleted in one, kept in the other" in line


@pytest.mark.produces_codes("REPORT_MERGE_INCOMPLETE")
def test_a_missing_shard_fails_the_merge_unless_allowed(
    tmp_path: Path, shards: tuple[Path, Path], codes: CodeRecorder
) -> None:
    out = tmp_path / "partial.json"
    code, stdout, stderr = run_cli("report", "merge", str(shards[0]), "-o", str(out))
    assert code == 1
    assert_no_traceback(stdout, stderr)
    match = ERROR_LINE.search(stderr)
    assert match is not None, stderr
    codes.expect(match["code"], "REPORT_MERGE_INCOMPLETE", stderr)
    assert match["rest"].startswith("manifest.toml: 4 of 8 item(s) ran in no report (")
    assert load(out)["summary"]["views"] < 4  # written all the same, for the record

    code, _, stderr = run_cli("report", "merge", str(shards[0]), "-o", str(out), "--allow-partial")
    assert code == 0
    assert stderr.startswith("warning[REPORT_MERGE_INCOMPLETE] manifest.toml: ")


def test_the_console_script_merges_and_explains_itself(
    tmp_path: Path, shards: tuple[Path, Path]
) -> None:
    helped = run_planguard("report", "merge", "--help")
    assert helped.returncode == 0
    for word in ("REPORT_MERGE_CONFLICT", "REPORT_MERGE_INCOMPLETE", "--allow-partial", "-o"):
        assert word in helped.stdout
    done = run_planguard("report", "merge", *shards, "-o", tmp_path / "all.json")
    assert done.returncode == 0, done.stderr
    assert "1 of 1 target(s) complete" in done.stdout
    usage = run_planguard("report", "merge", *shards)
    assert usage.returncode == 2
    assert_no_traceback(usage.stdout, usage.stderr)
    assert "error[USAGE]" in usage.stderr
    assert "-o/--output" in usage.stderr
