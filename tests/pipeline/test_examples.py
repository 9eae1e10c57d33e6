"""The bundled examples: the deletion-vector example's incompatible path runs for real,
and every example file ships in the package."""

from __future__ import annotations

import glob
import shutil
import tomllib
from pathlib import Path

import deltalake
import pytest
from datafusion import SessionContext

from reference_impl.examples.dv_incompatible import data as dv_data
from reference_impl.pipeline import run_pipeline
from reference_impl.relspec.contracts import PolicyCode

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "reference_impl"
EXAMPLES = PACKAGE / "examples"
DV_EXAMPLE = EXAMPLES / "dv_incompatible"


@pytest.fixture
def dv_manifest(tmp_path: Path) -> Path:
    """A private copy of the example's manifest; its bootstrap hook writes the data."""
    target = tmp_path / "dv_incompatible" / "manifest.toml"
    target.parent.mkdir()
    shutil.copy2(DV_EXAMPLE / "manifest.toml", target)
    return target


def test_the_bootstrap_writes_a_deletion_vector_table(tmp_path: Path) -> None:
    dv_data.bootstrap(tmp_path)
    table = deltalake.DeltaTable(str(tmp_path / "data" / "events"))
    protocol = table.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (3, 7)
    assert "deletionVectors" in (protocol.reader_features or [])
    assert "deletionVectors" in (protocol.writer_features or [])
    assert table.metadata().configuration["delta.enableDeletionVectors"] == "true"
    ctx = SessionContext()
    ctx.register_table("events", table)  # pyarrow cannot read deletion-vector tables
    assert ctx.sql("SELECT count(*) AS n FROM events").to_pydict() == {"n": [dv_data.ROWS]}
    leftovers = [p.name for p in (tmp_path / "data").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_the_bootstrap_leaves_an_existing_table_alone(tmp_path: Path) -> None:
    dv_data.bootstrap(tmp_path)
    log = tmp_path / "data" / "events" / "_delta_log"
    before = sorted(p.name for p in log.iterdir())
    dv_data.bootstrap(tmp_path)
    assert sorted(p.name for p in log.iterdir()) == before


def test_the_example_fails_validation_on_deletion_vectors_and_writes_nothing(
    dv_manifest: Path,
) -> None:
    run = run_pipeline(dv_manifest)
    assert run.validation.codes() == (PolicyCode.DELTA_PROTOCOL_INCOMPATIBLE,)
    (issue,) = run.validation.issues
    assert issue.severity == "error"
    assert (issue.subject, issue.subject_kind) == ("events", "dataset")
    (unit,) = run.plan.scan_units
    compat = unit.protocol_compatibility
    assert compat is not None
    assert compat.compatible is False
    assert compat.missing_reader_features == ("deletionVectors",)
    assert compat.missing_writer_features == ("deletionVectors",)
    assert run.execution is None
    assert not (dv_manifest.parent / "out").exists()
    assert (dv_manifest.parent / "data" / "events" / "_delta_log").is_dir()


def test_the_example_runs_once_the_policy_supports_deletion_vectors(dv_manifest: Path) -> None:
    """Twin: the same data with deletionVectors added to the policy validates and runs."""
    text = dv_manifest.read_text(encoding="utf-8")
    text = text.replace(
        '["timestampNtz", "variantType"]', '["deletionVectors", "timestampNtz", "variantType"]'
    )
    text = text.replace(
        '["appendOnly", "invariants"', '["appendOnly", "deletionVectors", "invariants"'
    )
    assert text.count('"deletionVectors"') == 2
    dv_manifest.write_text(text, encoding="utf-8")
    run = run_pipeline(dv_manifest)
    assert run.validation.ok, run.validation.issues
    assert run.execution is not None
    (written,) = run.execution.outputs
    assert written.rows == 3  # click, purchase, view


def packaged_files(package_data: list[str]) -> set[Path]:
    found: set[Path] = set()
    for pattern in package_data:
        found.update(Path(p) for p in glob.glob(str(PACKAGE / pattern), recursive=True))
    return found


def test_package_data_globs_include_every_example_file() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["reference_impl"]
    shipped = packaged_files(patterns)
    for example in ("tpch", "dv_incompatible"):
        root = EXAMPLES / example
        assert (root / "__init__.py").is_file(), "examples are packages (their .py files ship)"
        needed = {
            path
            for path in root.rglob("*")
            if path.is_file()
            and path.suffix not in {".py", ".pyc"}
            and not {"data", "out", "__pycache__"} & set(path.relative_to(root).parts)
        }
        assert needed, example
        assert needed <= shipped, sorted(str(p) for p in needed - shipped)


def test_a_missing_tpch_generator_is_a_coded_error_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain install has no tpchgen-cli: generating the example's data says what to
    install, through the bootstrap hook, as BOOTSTRAP_FAILED."""
    import sys

    from reference_impl.errors import ErrorCode, ReferenceImplError
    from reference_impl.examples.tpch import data as tpch_data

    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setattr(tpch_data.shutil, "which", lambda name: None)
    with pytest.raises(ReferenceImplError) as info:
        tpch_data.bootstrap(tmp_path / "tpch")
    assert info.value.code == ErrorCode.BOOTSTRAP_FAILED
    assert "pip install 'pytest-planguard[examples]'" in info.value.render()
