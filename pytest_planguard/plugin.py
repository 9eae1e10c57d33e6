"""pytest entry point of planguard (``pytest11``): options, markers, fixtures and hooks only.

Everything else lives in :mod:`pytest_planguard.session` and is imported lazily, so that
an inactive plugin costs pytest nothing and imports neither DataFusion nor reference_impl.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("planguard", "plan-regression gates and pipeline invariants")
    group.addoption(
        "--planguard",
        action="store_true",
        default=False,
        help="collect the configured manifests into plan-gate and invariant test items",
    )
