"""The policy-validation artifact is byte-identical across processes with different
``PYTHONHASHSEED`` (it carries the plan hash, so the whole plan is covered too)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reference_impl.pipeline import run_pipeline

WriteManifest = Callable[..., Path]
DeltaTableFactory = Callable[..., Path]

PROBE = """
import sys
from reference_impl.pipeline import run_pipeline

run = run_pipeline(sys.argv[1], execute=False)
sys.stdout.write(run.validation.artifact().to_bytes().hex())
"""

FINDINGS = """
[datasets.events]
format = "delta"
location = "events"

[datasets.tiny]
format = "delta"
location = "tiny"

[views.by_kind]
sql = "SELECT kind, count(*) AS n FROM events GROUP BY kind"

[views.tiny_view]
sql = "SELECT k FROM tiny"
executor = "ray"

[views.broken]
sql = "SELECT missing FROM events"

[views.after_broken]
sql = "SELECT * FROM broken"

[views.needs_udfs]
sql = "SELECT kind FROM events"
udfs = ["zeta", "alpha", "mid"]

# declared, but UDFs are disabled: not imported, not in the session (UDF_MISSING)
[udfs.zeta]
provider = "nowhere:zeta"

[udfs.alpha]
provider = "nowhere:alpha"

[udfs.mid]
provider = "nowhere:mid"

[runtime]
enable_udfs = false

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""


def artifact_in_subprocess(manifest: Path, seed: str, prefix: tuple[str, ...] = ()) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [*prefix, sys.executable, "-c", PROBE, str(manifest)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return bytes.fromhex(done.stdout)


@pytest.fixture
def findings_manifest(write_manifest: WriteManifest, delta_table: DeltaTableFactory) -> Path:
    kinds = ["click", "view", "buy", "share", "save"]
    delta_table(
        "events",
        {"kind": [kinds[i % 5] for i in range(3000)], "id": list(range(3000))},
        configuration={"delta.enableDeletionVectors": "true"},
    )
    delta_table("tiny", {"k": ["a", "b", "c"]})
    return write_manifest(FINDINGS)


def test_a_findings_rich_artifact_is_identical_across_hash_seeds(findings_manifest: Path) -> None:
    first = artifact_in_subprocess(findings_manifest, "0")
    second = artifact_in_subprocess(findings_manifest, "4242")
    assert first == second
    for code in (b"DELTA_PROTOCOL_INCOMPATIBLE", b"EXECUTOR_UNAVAILABLE", b"UDF_MISSING"):
        assert code in first  # the artifact is not trivially empty
    in_process = run_pipeline(findings_manifest, execute=False).validation.artifact()
    assert in_process.to_bytes() == first


def test_the_tpch_artifact_is_identical_across_hash_seeds(tpch_module_manifest: Path) -> None:
    first = artifact_in_subprocess(tpch_module_manifest, "1")
    second = artifact_in_subprocess(tpch_module_manifest, "987654321")
    assert first == second
    assert b'"plan_hash"' in first


def test_the_artifact_changes_with_the_runtime(
    findings_manifest: Path, write_manifest: WriteManifest
) -> None:
    """Twin: the comparison can fail; a different pinned runtime gives different bytes."""
    base = run_pipeline(findings_manifest, execute=False).validation.artifact()
    other = write_manifest(
        FINDINGS.replace("[runtime]\n", "[runtime]\ntarget_partitions = 2\n"), name="runtime2.toml"
    )
    changed = run_pipeline(other, execute=False).validation.artifact()
    assert changed.runtime_hash != base.runtime_hash
    assert changed.to_bytes() != base.to_bytes()
    assert changed.codes == base.codes


def test_planning_twice_in_one_process_gives_the_same_plan(findings_manifest: Path) -> None:
    first = run_pipeline(findings_manifest, execute=False).plan
    second = run_pipeline(findings_manifest, execute=False).plan
    assert first.fingerprint == second.fingerprint
    assert first.runtime_fingerprint == second.runtime_fingerprint
    assert first == second


ONE_CPU = ("taskset", "-c", str(min(os.sched_getaffinity(0))))
CPU_PROBE = """
from datafusion import SessionConfig, SessionContext
ctx = SessionContext(SessionConfig({"datafusion.catalog.information_schema": "true"}))
rows = ctx.sql(
    "SELECT value FROM information_schema.df_settings "
    "WHERE name = 'datafusion.execution.target_partitions'"
).to_pydict()
print(rows["value"][0])
"""


def default_partitions(prefix: tuple[str, ...] = ()) -> str:
    done = subprocess.run(
        [*prefix, sys.executable, "-c", CPU_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


@pytest.mark.skipif(
    shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2,
    reason="needs taskset and at least two CPUs",
)
def test_the_artifact_does_not_depend_on_the_cpu_count(findings_manifest: Path) -> None:
    # the engine's own default follows the CPUs this process may use...
    assert default_partitions(ONE_CPU) == "1"
    assert default_partitions() != "1"
    # ...but the pinned profile does not
    all_cpus = artifact_in_subprocess(findings_manifest, "0")
    one_cpu = artifact_in_subprocess(findings_manifest, "0", ONE_CPU)
    assert one_cpu == all_cpus
