"""Snapshots do not depend on the machine, the directory or the run.

The same manifest built from two directories, with other pinned partition counts, on one
CPU and under other hash seeds, yields byte-identical snapshot files; each normalization
rule has a unit test and a twin showing what it must not hide.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytest_planguard.gate.normalize import normalize_plan_text, settings_hash
from tests.support import gate as gates
from tests.support.gate import FAST
from tests.support.shop import edit, write_shop


def run_gate(
    project: Path, *args: str, env: dict[str, str] | None = None, cpus: set[int] | None = None
) -> subprocess.CompletedProcess[str]:
    return gates.run_gate(
        project,
        *FAST,
        "--planguard-manifest",
        "manifest.toml",
        *args,
        env={**os.environ, **(env or {})},
        cpus=cpus,
    )


def snapshot_files(project: Path) -> dict[str, bytes]:
    root = project / "snapshots"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.plan"))}


def project(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    root.mkdir(parents=True)
    write_shop(root)
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


def test_same_manifest_from_two_directories_gives_identical_snapshots(tmp_path: Path) -> None:
    first, second = project(tmp_path, "first"), project(tmp_path / "deeper" / "still", "second")
    for root in (first, second):
        result = run_gate(root, "--snapshot-update")
        assert result.returncode == 0, result.stdout + result.stderr
    files = snapshot_files(first)
    assert len(files) == 4
    assert files == snapshot_files(second)
    event_counts = files["manifest/event_counts.plan"].decode()
    assert "files=[$events]" in event_counts  # the Parquet scan's paths became a token
    assert str(first).lstrip("/") not in event_counts


@pytest.mark.parametrize("partitions", [2, 8])
def test_pinned_partition_counts_normalize_away(tmp_path: Path, partitions: int) -> None:
    baseline, other = project(tmp_path, "baseline"), project(tmp_path, "other")
    edit(other / "manifest.toml", "target_partitions = 4", f"target_partitions = {partitions}")
    for root in (baseline, other):
        assert run_gate(root, "--snapshot-update").returncode == 0
    assert snapshot_files(baseline) == snapshot_files(other)


def test_one_cpu_and_another_hash_seed_pass_the_same_snapshots(tmp_path: Path) -> None:
    root = project(tmp_path, "shop")
    assert run_gate(root, "--snapshot-update", env={"PYTHONHASHSEED": "1"}).returncode == 0
    before = snapshot_files(root)
    result = run_gate(root, env={"PYTHONHASHSEED": "4242"}, cpus={0})
    assert result.returncode == 0, result.stdout + result.stderr
    assert snapshot_files(root) == before


def test_delta_column_mapping_physical_names_do_not_leak(tmp_path: Path) -> None:
    """Two column-mapping tables get different random physical names; snapshots agree."""
    import deltalake
    import pyarrow as pa

    roots = []
    for name in ("a", "b"):
        root = tmp_path / name
        deltalake.write_deltalake(
            str(root / "data" / "people"),
            pa.table({"id": [1, 2], "name": ["x", "y"]}),
            configuration={"delta.columnMapping.mode": "name"},
        )
        (root / "manifest.toml").write_text(
            '[datasets.people]\nformat = "delta"\nlocation = "data/people"\n'
            '[views.names]\nsql = "SELECT name, count(*) AS n FROM people GROUP BY name"\n'
            "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n"
            'reader_features = ["columnMapping"]\nwriter_features = ["columnMapping"]\n'
        )
        (root / "pytest.ini").write_text("[pytest]\n")
        result = run_gate(root, "--snapshot-update")
        assert result.returncode == 0, result.stdout + result.stderr
        roots.append(root)
    logs = [sorted((r / "data/people/_delta_log").glob("*.json"))[0].read_text() for r in roots]
    assert "col-" in logs[0]
    assert logs[0] != logs[1]  # the physical names really differ
    assert snapshot_files(roots[0]) == snapshot_files(roots[1])


# ------------------------------------------------------------------ the rules, one by one


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("RepartitionExec: partitioning=RoundRobinBatch(8), input_partitions=1",
         "RepartitionExec: partitioning=RoundRobinBatch(<N>), input_partitions=<N>"),
        ("partitioning=Hash([a@0, CAST(b@1 AS Int64)], 16), input_partitions=16",
         "partitioning=Hash([a@0, CAST(b@1 AS Int64)], <N>), input_partitions=<N>"),
        ("file_groups={2 groups: [[data/t/a.parquet:0..10, data/t/b.parquet], [data/t/a.parquet]]}",
         "files=[$t]"),
        ("file_groups={6 groups: [[data/t/a.parquet], [data/t/b.parquet], ...]}, x",
         "files=[$t], x"),
        ("metadata: delta.columnMapping.physicalName=col-0e9c8f1a-1234-4abc-9def-0123456789ab",
         "metadata: delta.columnMapping.physicalName=col-<uuid>"),
        ("reader_features=[variantType, deletionVectors]",
         "reader_features=[deletionVectors, variantType]"),
        ("scan of data/t and data/other", "scan of $t and $MANIFEST/other"),
        ("aggr=[sum(__common_expr_7)], x=__common_expr_3, y=__common_expr_7, __scalar_sq_4",
         "aggr=[sum(__common_expr_1)], x=__common_expr_2, y=__common_expr_1, __scalar_sq_1"),
    ],
)  # fmt: skip
def test_rule(raw: str, normalized: str) -> None:
    locations = {"t": "/data/t"}
    assert normalize_plan_text(raw, locations=locations, roots={"MANIFEST": "/data"}) == normalized


@pytest.mark.parametrize(
    "meaningful",
    [
        "SortExec: TopK(fetch=10), expr=[a@0 DESC]",
        "FilterExec: x@0 > 1995",
        "AggregateExec: mode=FinalPartitioned, gby=[g@0 as g]",
        "ProjectionExec: expr=[a@0 as a, 4 as four]",
    ],
)
def test_rules_leave_plan_content_alone(meaningful: str) -> None:
    """Twin of the rules: literals, limits and modes are not partition counts."""
    assert normalize_plan_text(meaningful) == meaningful


def test_settings_hash_ignores_machine_settings_only() -> None:
    base = {
        "datafusion.execution.target_partitions": "4",
        "datafusion.execution.batch_size": "8192",
    }
    other_machine = {**base, "datafusion.execution.target_partitions": "64"}
    other_setting = {**base, "datafusion.execution.batch_size": "1024"}
    assert settings_hash(base) == settings_hash(other_machine)
    assert settings_hash(base) != settings_hash(other_setting)


def test_strict_settings_keep_target_partitions_in_the_hash() -> None:
    base = {
        "datafusion.execution.target_partitions": "4",
        "datafusion.execution.planning_concurrency": "4",
    }
    more = {**base, "datafusion.execution.target_partitions": "8"}
    assert settings_hash(base, strict=True) != settings_hash(more, strict=True)
    other_machine = {**base, "datafusion.execution.planning_concurrency": "64"}
    assert settings_hash(base, strict=True) == settings_hash(other_machine, strict=True)


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "twin: default"])
def test_a_target_partitions_change_fails_only_under_strict_settings(
    pytester: pytest.Pytester, strict: bool
) -> None:
    """target_partitions 4 -> 8 is invisible by default (partition counts are normalized,
    the setting is left out of the settings hash); planguard_strict_settings shows it as a
    header change, which the gate policy can fail."""
    write_shop(pytester.path)
    pytester.makeini(
        "[pytest]\nplanguard_manifests = manifest.toml\nplanguard_gate = cosmetic = fail\n"
        + ("planguard_strict_settings = true\n" if strict else "")
    )
    gates.gate(pytester, "--snapshot-update").assert_outcomes(passed=8)
    edit(pytester.path / "manifest.toml", "target_partitions = 4", "target_partitions = 8")
    result = gates.gate(pytester)
    if strict:
        result.assert_outcomes(passed=4, failed=4)
        result.stdout.fnmatch_lines(["*class cosmetic*", "*settings-hash: * -> *"])
    else:
        result.assert_outcomes(passed=8)


# -- object stores ------------------------------------------------------------------


def test_object_keys_under_a_store_become_the_store_token() -> None:
    text = (
        "DataSourceExec: file_groups={2 groups: [[lake/raw/a.parquet:0..10], "
        "[lake/raw/b.parquet]]}, projection=[x]\n"
        "scan of s3://bucket-ci/lake/orders"
    )
    stores = {"warehouse": "s3://bucket-ci/lake"}
    out = normalize_plan_text(text, stores=stores)
    assert "files=[$warehouse/raw]" in out
    assert "scan of $warehouse/orders" in out
    assert "bucket-ci" not in out
    # a dataset on the store is named after the store, not after the dataset
    located = normalize_plan_text(
        text, stores=stores, locations={"orders": "s3://bucket-ci/lake/orders"}
    )
    assert "$warehouse/orders" in located
    # twin: without the store the key and the URL stay as printed
    bare = normalize_plan_text(text)
    assert "files=[lake/raw]" in bare
    assert "s3://bucket-ci/lake/orders" in bare


def test_keys_outside_every_store_prefix_are_left_alone() -> None:
    text = "DataSourceExec: file_groups={1 group: [[other/raw/a.parquet]]}"
    out = normalize_plan_text(text, stores={"warehouse": "s3://b/lake"})
    assert "files=[other/raw]" in out
    whole = normalize_plan_text(text, stores={"warehouse": "s3://b"})
    assert "files=[$warehouse/other/raw]" in whole
