"""The gate sharded over CI jobs with pytest-split (``--splits N --group i``), and
``planguard report merge`` over the shards' JSON reports.

pytest-split deselects in ``pytest_collection_modifyitems`` (``trylast``); the gate decides
which targets were fully selected in ``pytest_collection_finish``, after every
``modifyitems``, so a shard sees its own final selection.  A shard that runs part of a
target never reports or deletes an unused snapshot of it; the same project without
sharding (or split into one group) does.  The merge of all shards' reports equals the
report of one unsharded run (items, findings, summary, unused snapshots); the merge of
some of them reports no unused snapshot and says which items ran nowhere.

The tests count no planned views: how much a shard plans is not theirs to say.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_planguard.gate.report import SCHEMA_PATH
from tests.support import gate as gates
from tests.support.cli import run_cli
from tests.support.gate import FAST
from tests.support.shop import edit, write_shop

VIEWS = ("big_spenders", "customer_totals", "event_counts", "order_totals")
ITEMS = 4 + len(VIEWS)  # three invariants, the policy, one item per view
SNAPS = Path("snaps/ex/manifest")
GONE = "ex/manifest/gone.plan"
XDIST = pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])


def gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return gates.gate(pytester, "--planguard-only", *args, options=FAST)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """The shop manifest at ``ex/``, accepted, plus ``gone.plan``, a snapshot of a view the
    manifest no longer has, and one ordinary test (``--planguard-only`` drops it)."""
    write_shop(pytester.path / "ex")
    pytester.makeini(
        "[pytest]\nplanguard_manifests = ex/manifest.toml\nplanguard_snapshot_dir = snaps\n"
    )
    pytester.makepyfile(test_other="def test_other():\n    assert 1 + 1 == 2\n")
    gate(pytester, "--snapshot-update").assert_outcomes(passed=ITEMS)
    gone = pytester.path / SNAPS / "gone.plan"
    gone.write_text((pytester.path / SNAPS / "event_counts.plan").read_text())
    return pytester.path


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def shard(pytester: pytest.Pytester, group: int, *args: str, splits: int = 2) -> Path:
    """Run group ``group`` of ``splits``; its JSON report."""
    report = pytester.path / f"shard{group}.json"
    result = gate(
        pytester,
        "--splits",
        str(splits),
        "--group",
        str(group),
        "--planguard-report",
        str(report),
        *args,
    )
    if "-n" not in args:  # under pytest-xdist, pytest-split splits in each worker
        assert "[pytest-split] Running group" in result.stdout.str()
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
    return report


@XDIST
@pytest.mark.parametrize("group", [1, 2])
def test_a_shard_neither_deletes_nor_reports_an_unused_snapshot(
    pytester: pytest.Pytester, project: Path, group: int, xdist: tuple[str, ...]
) -> None:
    report = shard(pytester, group, "--snapshot-update", *xdist)
    ran = {item["nodeid"] for item in load(report)["items"]}
    assert 0 < len(ran) < ITEMS  # a partial shard of the one target
    assert (project / SNAPS / "gone.plan").exists()
    assert load(report)["unused_snapshots"] == []
    # its target record names the engine and settings it planned with (also under xdist,
    # where a worker planned it): what the merge compares between shards
    (record,) = load(report)["targets"]
    assert record["header"]["engine"].startswith("datafusion=")
    assert record["items"] == sorted(record["items"])
    assert len(record["items"]) == ITEMS

    plain = gate(pytester, "--splits", "2", "--group", str(group), *xdist)
    assert plain.ret == pytest.ExitCode.OK, plain.stdout.str()
    assert not [line for line in plain.outlines if "UNUSED" in line or "gone.plan" in line]


@XDIST
@pytest.mark.parametrize("split", [(), ("--splits", "1", "--group", "1")], ids=["unsplit", "one"])
def test_twin_the_whole_target_in_one_run_deletes_the_unused_snapshot(
    pytester: pytest.Pytester, project: Path, split: tuple[str, ...], xdist: tuple[str, ...]
) -> None:
    reported = gate(pytester, *split, *xdist)
    assert reported.ret == pytest.ExitCode.TESTS_FAILED
    reported.stdout.fnmatch_lines([f"*UNUSED*snapshot {GONE}*"])

    deleted = gate(pytester, "--snapshot-update", *split, *xdist)
    assert deleted.ret == pytest.ExitCode.OK, deleted.stdout.str()
    deleted.stdout.fnmatch_lines([f"*DELETED*snapshot {GONE}*"])
    assert not (project / SNAPS / "gone.plan").exists()


def _canonical(report: dict[str, Any]) -> dict[str, Any]:
    """What a merge must reproduce of one run (findings in any order).  An invariant's
    message may say how this run established it (the plan cache's history), so it is
    left out; its status, outcome and codes are compared."""
    return {
        "items": [
            item if item["kind"] == "plan" else {**item, "message": None}
            for item in report["items"]
        ],
        "summary": report["summary"],
        "unused_snapshots": report["unused_snapshots"],
        "findings": sorted(json.dumps(f, sort_keys=True) for f in report["findings"]),
        "targets": report["targets"],
    }


@pytest.mark.parametrize("splits", [2, 3])
def test_the_merge_of_every_shard_is_the_report_of_one_run(
    pytester: pytest.Pytester, project: Path, splits: int
) -> None:
    """With a changed view (diffs, findings) and an unused snapshot that no shard reports."""
    edit(project / "ex" / "manifest.toml", "WHERE total > 100", "WHERE total > 200")
    whole = pytester.path / "whole.json"
    gate(pytester, "--planguard-report", str(whole)).assert_outcomes(passed=ITEMS - 1, failed=1)
    reports = [shard(pytester, group, splits=splits) for group in range(1, splits + 1)]
    assert all(load(r)["unused_snapshots"] == [] for r in reports)

    merged = pytester.path / "all.json"
    html = pytester.path / "all.html"
    code, out, err = run_cli(
        "report", "merge", *map(str, reports), "-o", str(merged), "--html", str(html)
    )
    assert code == 1, out + err  # the changed view fails, and so does gone.plan
    assert err == ""
    assert "unused snapshot" in out
    assert GONE in out
    assert "1 of 1 target(s) complete" in out
    assert _canonical(load(merged)) == _canonical(load(whole))
    jsonschema.validate(load(merged), json.loads(SCHEMA_PATH.read_text()))
    caches = [load(r)["cache"] for r in reports]
    assert all(caches)  # the plan cache is on by default
    cache = load(merged)["cache"]
    for counter in ("hits", "misses", "writes", "verified"):
        assert cache[counter] == sum(c[counter] for c in caches), counter
    assert cache["hits"] > 0  # the unsharded run filled it
    assert cache["hit_rate"] == round(cache["hits"] / (cache["hits"] + cache["misses"]), 4)
    assert [e["snapshot"] for e in load(merged)["unused_snapshots"]] == [GONE]
    page = html.read_text()
    assert f"merged from {splits} reports" in page
    assert "big_spenders" in page
    assert "semantic" in page


def test_twin_the_merge_of_some_shards_reports_no_unused_snapshot(
    pytester: pytest.Pytester, project: Path
) -> None:
    first = shard(pytester, 1)
    merged = pytester.path / "some.json"
    code, out, err = run_cli("report", "merge", str(first), "-o", str(merged))
    assert code == 1
    assert err.startswith("error[REPORT_MERGE_INCOMPLETE] ex/manifest.toml: ")
    assert "ran in no report" in err
    assert load(merged)["unused_snapshots"] == []
    assert GONE not in out

    code, _, err = run_cli("report", "merge", str(first), "-o", str(merged), "--allow-partial")
    assert code == 0
    assert err.startswith("warning[REPORT_MERGE_INCOMPLETE]")

    second = shard(pytester, 2)
    code, out, _ = run_cli(
        "report", "merge", str(first), str(second), "-o", str(merged), "--warn-unused"
    )
    assert code == 0, out
    assert [e["snapshot"] for e in load(merged)["unused_snapshots"]] == [GONE]


def test_planguard_only_drops_other_tests_before_pytest_split_divides(
    pytester: pytest.Pytester, project: Path
) -> None:
    """Our ``modifyitems`` runs before pytest-split's (``trylast``): the shards divide the
    gate items only, and together run each exactly once."""
    reports = [load(shard(pytester, group)) for group in (1, 2)]
    ran = [item["nodeid"] for report in reports for item in report["items"]]
    assert len(ran) == len(set(ran)) == ITEMS
    assert all(len(report["items"]) == ITEMS // 2 for report in reports)


def test_the_readme_commands_are_the_ones_that_exist() -> None:
    """Every ``planguard report merge`` and sharded ``pytest`` line of the README's
    section parses with today's options (a renamed option fails here)."""
    from pytest_planguard.cli import build_parser

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Sharding across CI jobs", 1)[1].split("\n## ", 1)[0]
    lines = " ".join(section.split(">\n")).replace("${{ matrix.group }}", "1").splitlines()
    commands = [line.strip().removeprefix("run: ") for line in lines]
    merges = [line for line in commands if line.startswith("planguard report merge")]
    shards = [line for line in commands if line.startswith("pytest --planguard")]
    assert len(merges) >= 2
    assert len(shards) >= 2
    for line in merges:
        args = build_parser().parse_args(line.split()[1:])
        assert args.output == "planguard.json"
        assert args.html == "planguard.html"
    for line in shards:
        assert "--splits 2 --group" in line
        assert "--planguard-report shard-" in line


def test_a_target_no_shard_could_collect_is_incomplete_in_the_merge(
    pytester: pytest.Pytester, project: Path
) -> None:
    """A manifest that does not compile is a collection error in every shard: each report
    records the target as not collected, and the merge does not pass it as complete."""
    edit(project / "ex" / "manifest.toml", "FROM orders GROUP BY", "FROM nowhere GROUP BY")
    reports = []
    for group in (1, 2):
        report = pytester.path / f"broken{group}.json"
        result = gate(
            pytester, "--splits", "2", "--group", str(group), "--planguard-report", str(report)
        )
        assert result.ret == pytest.ExitCode.INTERRUPTED  # the collection error
        (record,) = load(report)["targets"]
        assert record == {
            "manifest": "ex/manifest.toml",
            "views": [],
            "items": [],
            "unclaimed": [],
            "header": {},
            "collected": False,
        }
        reports.append(str(report))
    code, out, err = run_cli("report", "merge", *reports, "-o", str(pytester.path / "m.json"))
    assert code == 1, out
    assert err == "error[REPORT_MERGE_INCOMPLETE] ex/manifest.toml: no report collected it\n"
    assert "0 of 1 target(s) complete" in out
