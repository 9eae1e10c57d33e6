"""Spies used one after the other in one process each see their own calls."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_planguard.invariants import count_compiles
from reference_impl.semantics.load import load_manifest

LATE_MODULE = "planguard_late_importer"
MANIFEST = """
[datasets.t]
format = "parquet"
location = "t"

[views.v]
sql = "SELECT 1 AS x FROM t"
"""


def test_a_module_imported_under_a_spy_reports_to_the_next_spy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_manifest: Callable[..., Path]
) -> None:
    """A module imported while the compile entrypoint was patched binds the wrapper; once
    that spy ends, its calls must reach the next spy, not the finished one."""
    (tmp_path / f"{LATE_MODULE}.py").write_text(
        "from reference_impl.semantics.compile import compile_semantic_program\n\n\n"
        "def run(model):\n    return compile_semantic_program(model)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_manifest(write_manifest(MANIFEST))
    try:
        with count_compiles() as first:
            late = importlib.import_module(LATE_MODULE)
        with count_compiles() as second:
            late.run(model)
        assert (first.count, second.count) == (0, 1)
        late.run(model)  # no spy active: nothing is recorded anywhere
        assert (first.count, second.count) == (0, 1)
    finally:
        sys.modules.pop(LATE_MODULE, None)
