"""Data-source modes from the manifest (issue 17.4) and the split fingerprints (17.5),
through the real ``planguard`` command.

``[project] data_source_mode``: ``semantic-authority`` (default) takes every location from
the manifest and fails closed without one; ``runtime-bootstrap`` resolves a dataset or
output without ``location`` under ``runtime.fallback_root``.  ``planguard compile --json``
shows the semantic and the runtime/policy fingerprints.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import deltalake
import pyarrow as pa
import pytest

from tests.support.cli import run_planguard

WriteManifest = Callable[..., Path]

BODY = """
[datasets.t]
format = "delta"
{dataset_location}

[views.v]
sql = "SELECT a, a * 2 AS b FROM t"

[outputs.o]
view = "v"
{output_location}

[runtime]
fallback_root = "boot"

[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""


def manifest(
    write_manifest: WriteManifest,
    mode: str | None,
    *,
    dataset_location: str = "",
    output_location: str = "",
) -> Path:
    project = f'[project]\ndata_source_mode = "{mode}"\n' if mode else ""
    return write_manifest(
        project + BODY.format(dataset_location=dataset_location, output_location=output_location)
    )


def boot_table(tmp_path: Path) -> None:
    deltalake.write_deltalake(str(tmp_path / "boot" / "t"), pa.table({"a": [1, 2, 3]}))


def planguard(*args: str | Path) -> subprocess.CompletedProcess[str]:
    done = run_planguard(*args)
    assert "Traceback" not in done.stdout + done.stderr
    return done


def read(location: Path) -> dict[str, list[int]]:
    table: dict[str, list[int]] = (
        deltalake.DeltaTable(str(location)).to_pyarrow_table().sort_by("a").to_pydict()
    )
    return table


def test_runtime_bootstrap_reads_and_writes_under_the_fallback_root(
    tmp_path: Path, write_manifest: WriteManifest
) -> None:
    boot_table(tmp_path)
    path = manifest(write_manifest, "runtime-bootstrap")
    validated = planguard("validate", path, "--json")
    assert validated.returncode == 0, validated.stderr
    ran = planguard("run", path, "--json")
    assert ran.returncode == 0, ran.stderr
    written = json.loads(ran.stdout)["execution"]["outputs"]
    target = tmp_path / "boot" / "outputs" / "o"
    assert [(w["name"], w["location"], w["rows"]) for w in written] == [("o", str(target), 3)]
    assert read(target) == {"a": [1, 2, 3], "b": [2, 4, 6]}


def test_runtime_bootstrap_still_prefers_a_declared_location(
    tmp_path: Path, write_manifest: WriteManifest
) -> None:
    boot_table(tmp_path)
    deltalake.write_deltalake(str(tmp_path / "declared"), pa.table({"a": [7]}))
    path = manifest(
        write_manifest,
        "runtime-bootstrap",
        dataset_location='location = "declared"',
        output_location='location = "out/o"',
    )
    assert planguard("run", path).returncode == 0
    assert read(tmp_path / "out" / "o") == {"a": [7], "b": [14]}
    assert not (tmp_path / "boot" / "outputs").exists()


@pytest.mark.parametrize("mode", [None, "semantic-authority"], ids=["default", "explicit"])
def test_semantic_authority_fails_closed_without_a_location(
    tmp_path: Path, write_manifest: WriteManifest, mode: str | None
) -> None:
    """Twin: the same manifest and the same data under the fallback root, but the manifest
    is the authority: no fallback, exit 2, nothing written."""
    boot_table(tmp_path)
    path = manifest(write_manifest, mode, output_location='location = "out/o"')
    for command in ("validate", "run"):
        done = planguard(command, path)
        assert done.returncode == 2
        assert "error[MANIFEST_MISSING_FIELD]" in done.stderr
        assert "datasets.t.location" in done.stderr
        assert "semantic-authority" in done.stderr
    assert not (tmp_path / "out").exists()


def test_semantic_authority_fails_closed_on_a_missing_table(
    tmp_path: Path, write_manifest: WriteManifest
) -> None:
    boot_table(tmp_path)  # what runtime-bootstrap would fall back to is there
    path = manifest(
        write_manifest,
        "semantic-authority",
        dataset_location='location = "t"',
        output_location='location = "out/o"',
    )
    done = planguard("run", path)
    assert done.returncode == 2
    assert "error[DATASET_NOT_FOUND]" in done.stderr
    assert not (tmp_path / "out").exists()


def test_runtime_bootstrap_needs_a_fallback_root(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        '[project]\ndata_source_mode = "runtime-bootstrap"\n'
        '[datasets.t]\nformat = "delta"\n[views.v]\nsql = "SELECT a FROM t"\n'
    )
    done = planguard("validate", path)
    assert done.returncode == 2
    assert "error[MANIFEST_MISSING_FIELD]" in done.stderr
    assert "runtime.fallback_root" in done.stderr


def test_the_schema_documents_the_data_source_modes() -> None:
    schema = json.loads(planguard("schema").stdout)
    defs = schema["$defs"]
    mode = defs["ProjectSpec"]["properties"]["data_source_mode"]
    assert mode["enum"] == ["runtime-bootstrap", "semantic-authority"]
    assert mode["default"] == "semantic-authority"
    assert "fallback_root" in defs["RuntimeSpec"]["properties"]
    assert "location" not in defs["DatasetSpec"].get("required", [])
    assert "runtime-bootstrap" in json.dumps(defs["DatasetSpec"])


# -- the split fingerprints, through `planguard compile --json` ------------------------

FINGERPRINTED = """
[datasets.t]
format = "delta"
location = "t"

[views.v]
sql = "SELECT a FROM t"

[runtime]
target_partitions = 2

[policy]
mode = "warn"
"""


def fingerprints(path: Path, *extra: str) -> dict[str, str]:
    done = planguard("compile", path, "--json", *extra)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["fingerprint"] == payload["fingerprints"]["semantic"]
    found: dict[str, str] = payload["fingerprints"]
    return found


@pytest.mark.parametrize(
    ("old", "new"),
    [("target_partitions = 2", "target_partitions = 3"), ('mode = "warn"', 'mode = "error"')],
    ids=["runtime-only", "policy-only"],
)
def test_compile_keeps_the_semantic_fingerprint_across_runtime_or_policy_edits(
    write_manifest: WriteManifest, old: str, new: str
) -> None:
    base = fingerprints(write_manifest(FINGERPRINTED, "a/manifest.toml"))
    edited = fingerprints(write_manifest(FINGERPRINTED.replace(old, new), "b/manifest.toml"))
    assert edited["semantic"] == base["semantic"]
    assert edited["runtime_policy"] != base["runtime_policy"]


def test_twin_compile_moves_the_semantic_fingerprint_on_a_sql_edit(
    write_manifest: WriteManifest,
) -> None:
    base = fingerprints(write_manifest(FINGERPRINTED, "a/manifest.toml"))
    edited = fingerprints(
        write_manifest(FINGERPRINTED.replace("SELECT a FROM t", "SELECT a AS x FROM t"), "b/m.toml")
    )
    assert edited["semantic"] != base["semantic"]
    assert edited["runtime_policy"] == base["runtime_policy"]


def test_compile_plan_adds_the_session_runtime_fingerprint(
    tmp_path: Path, write_manifest: WriteManifest
) -> None:
    deltalake.write_deltalake(str(tmp_path / "t"), pa.table({"a": [1]}))
    path = write_manifest(FINGERPRINTED)
    done = planguard("compile", path, "--json", "--plan")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["fingerprints"]["runtime"] == payload["execution_plan"]["runtime_fingerprint"]
    assert payload["execution_plan"]["manifest_fingerprint"] == payload["fingerprints"]["semantic"]
