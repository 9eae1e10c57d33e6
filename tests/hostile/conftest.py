"""Hostile-input and fault tests: every test declares the codes it produces, and proves it.

A test marked ``@pytest.mark.produces_codes("CODE", ...)`` asks for the ``codes`` fixture
and asserts each code through it (``codes.expect(actual, "CODE")``).  The fixture fails the
test when it asserts a code it did not declare, or when a passing test never asserted one
it declared, so the declarations are exactly what the tests check.
``test_error_code_coverage.py`` then requires every member of ``ErrorCode``,
``PolicyCode`` and ``PlanguardCode`` to be declared by some test.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.support.codes import CODES_MARKER, DESELECTED, CodeRecorder, declared_codes

CALL_REPORT = pytest.StashKey[pytest.TestReport]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{CODES_MARKER}(*codes): error or finding codes this test produces and asserts "
        "through the `codes` fixture (tests/hostile/test_error_code_coverage.py)",
    )


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash.setdefault(DESELECTED, []).extend(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report


@pytest.fixture
def codes(request: pytest.FixtureRequest) -> Generator[CodeRecorder, None, None]:
    """The code recorder of a test marked ``produces_codes``."""
    item = request.node
    assert isinstance(item, pytest.Item)
    declared = declared_codes(item)
    assert declared, "a test using `codes` declares them with @pytest.mark.produces_codes"
    recorder = CodeRecorder(declared)
    yield recorder
    report = item.stash.get(CALL_REPORT, None)
    if report is not None and report.passed:
        unasserted = sorted(declared - recorder.seen)
        assert not unasserted, f"declared by produces_codes but never asserted: {unasserted}"
