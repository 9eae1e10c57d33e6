"""Additive means additive on a manifest too (issue 13.5): the reference adapter plans the
old columns over the new view, and a view that only gained a column is schema_additive
alone.  The session gate's twin is in test_session_gate.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.gate import gate
from tests.support.shop import edit

pytest_plugins = ["pytester"]


def _classes(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, list[str]]:
    report = pytester.path / "report.json"
    result = gate(pytester, "-k", "order_totals", "--planguard-report", str(report), *args)
    (item,) = [r for r in json.loads(report.read_text())["items"] if r.get("view")]
    return result, item.get("classes", [])


def test_an_added_column_is_schema_additive_alone(shop: Path, pytester: pytest.Pytester) -> None:
    gate(pytester, "--snapshot-update").assert_outcomes(passed=8)
    manifest = shop / "manifest.toml"
    edit(manifest, "count(*) AS n FROM orders", "count(*) AS n, max(amount) AS top FROM orders")
    result, classes = _classes(pytester, "--planguard-gate", "schema_additive=warn")
    assert classes == ["schema_additive"]
    result.assert_outcomes(passed=1)
    # twin: the same added column with a changed aggregate is semantic too, and fails
    edit(manifest, "sum(amount) AS total", "sum(amount) + 1 AS total")
    result, classes = _classes(pytester, "--planguard-gate", "schema_additive=warn")
    assert classes == ["semantic", "schema_additive"]
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*not classified as schema_additive alone*"])
