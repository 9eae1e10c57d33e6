"""The benchmarks' synthetic DAGs are manifests semantic compile accepts, at every size.

Engine-free (no data is needed to compile); no timing is measured here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.complexity import expanded_scans
from reference_impl.semantics.load import load_manifest
from reference_impl.semantics.sql_analysis import scan_multiplicity
from tests.support.benchmarks import benchmark_module


@pytest.mark.parametrize("size", [100, 2000])
def test_layered_dag_compiles_with_bounded_inlining(tmp_path: Path, size: int) -> None:
    dag = benchmark_module("dag")
    manifest = compile_semantic_program(
        load_manifest(dag.write_manifest(tmp_path / "dag.toml", size))
    )
    assert len(manifest.views) == size
    layers = {view.name.split("_", 1)[0] for view in manifest.views}
    assert len(layers) == dag.LAYERS
    reads = {view.name: scan_multiplicity(sqlglot.parse_one(view.sql)) for view in manifest.views}
    expanded = expanded_scans(manifest.view_names(), reads)
    # what the generator promises (bounded plan size per view), checked by the compiler's
    # own inlining measure
    assert max(expanded.values()) <= dag.MAX_EXPANDED_SCANS
    assert {view.name: view.sql for view in manifest.views} == {
        view.name: view.sql for view in dag.generate_views(size)
    }


def test_the_99_tpcds_queries_compile(tmp_path: Path) -> None:
    """The TPC-DS workload's manifest: every query is one query semantic compile accepts
    (no complexity bound refuses real TPC-DS SQL), reading only the 24 declared tables."""
    tpcds = benchmark_module("tpcds")
    numbers = [str(n) for n in range(1, 100)]
    manifest = compile_semantic_program(
        load_manifest(tpcds.write_manifest(tmp_path / "tpcds.toml", tmp_path / "data", numbers))
    )
    assert len(manifest.views) == 99
    tables = set(tpcds.schema())
    assert len(tables) == 24
    read = {name for view in manifest.views for name in view.dataset_dependencies}
    assert read <= tables
    assert not [view.name for view in manifest.views if view.view_dependencies]
