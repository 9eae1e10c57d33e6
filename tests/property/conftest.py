"""Property tests of the reference pipeline, driven by ``pytest_planguard.strategies``.

The planguard plugin registers the ci/dev/nightly Hypothesis profiles; registering them
here too (idempotent) keeps these tests bounded even when the plugin did not (CI sets
``CI``, which selects the ``ci`` profile).  Cases are written under a session temporary
directory: Hypothesis runs many examples per test, so function-scoped ``tmp_path`` does
not fit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_planguard.hypothesis_profiles import register_profiles

register_profiles()

_counter = itertools.count()


@pytest.fixture(scope="session")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """A fresh directory for one Hypothesis example."""
    root = tmp_path_factory.mktemp("cases")

    def make() -> Path:
        path = root / f"case-{next(_counter)}"
        path.mkdir()
        return path

    return make
