"""Fixtures for plugin tests: the shop project inside pytester's directory."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.support.shop import write_shop


@pytest.fixture
def shop(pytester: pytest.Pytester) -> Path:
    """pytester's directory holding the shop project, gated by its ini file."""
    write_shop(pytester.path)
    pytester.makeini(
        textwrap.dedent(
            """\
            [pytest]
            planguard_manifests = manifest.toml
            """
        )
    )
    return pytester.path
