"""Shared fixtures: real Delta tables written with deltalake, manifests on disk, and a copy
of the bundled TPC-H example whose data is generated once per test session (per worker)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.tpch import copy_tpch

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _no_xdist_worker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pytest runs that tests start are not xdist workers, even when the suite runs under
    ``-n 2``: syrupy reads PYTEST_XDIST_WORKER from the environment and would skip its
    summary and unused-snapshot accounting in the inner run."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tpch_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The eight TPC-H Delta tables, generated once by the example's bootstrap hook."""
    from reference_impl.examples.tpch.data import bootstrap

    root = tmp_path_factory.mktemp("tpch-cache")
    bootstrap(root)
    return root / "data"


@pytest.fixture
def tpch_manifest(tmp_path: Path, tpch_data: Path) -> Path:
    """Path of a private copy of the bundled TPC-H manifest, data included."""
    return copy_tpch(tmp_path / "tpch", tpch_data)


@pytest.fixture(scope="module")
def tpch_module_manifest(tmp_path_factory: pytest.TempPathFactory, tpch_data: Path) -> Path:
    """Like ``tpch_manifest``, but one copy per test module: for read-only tests that share
    an expensive module-scoped plan. Tests must not modify the copy."""
    return copy_tpch(tmp_path_factory.mktemp("tpch-module"), tpch_data)


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[..., Path]:
    """Write manifest text (dedented) to ``tmp_path/<name>``; returns its path."""

    def write(text: str, name: str = "manifest.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def delta_table(tmp_path: Path) -> Callable[..., Path]:
    """Write a real Delta table with deltalake under ``tmp_path/<name>``; returns its path."""

    def write(
        name: str,
        columns: Mapping[str, list[Any]],
        *,
        configuration: Mapping[str, str] | None = None,
        mode: str = "overwrite",
    ) -> Path:
        import deltalake
        import pyarrow as pa

        location = tmp_path / name
        deltalake.write_deltalake(
            str(location),
            pa.table(dict(columns)),
            mode=mode,
            configuration=dict(configuration) if configuration else None,
        )
        return location

    return write
