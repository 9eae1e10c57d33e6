"""The ``produces_codes`` marker's bookkeeping: which codes a test declares, and a recorder
that asserts codes against that declaration (the ``codes`` fixture of tests/hostile)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

CODES_MARKER = "produces_codes"
DESELECTED = pytest.StashKey[list[pytest.Item]]()
"""Items deselected in this session (tests/hostile/conftest.py records them)."""


def declared_codes(item: pytest.Item) -> set[str]:
    return {str(code) for marker in item.iter_markers(CODES_MARKER) for code in marker.args}


class CodeRecorder:
    """Asserts codes against a test's declaration and remembers which it saw."""

    def __init__(self, declared: set[str]) -> None:
        self.declared = declared
        self.seen: set[str] = set()

    def expect(self, actual: object, expected: str, context: object = "") -> None:
        """``actual`` must be the code ``expected`` (which the test must declare)."""
        assert str(actual) == expected, f"expected {expected}, got {actual}\n{context}"
        self._saw(expected)

    def expect_all(self, actual: Iterable[object], expected: Iterable[str]) -> None:
        """Every code in ``expected`` is among ``actual``."""
        found = {str(code) for code in actual}
        for code in expected:
            assert code in found, f"{code} not among {sorted(found)}"
            self._saw(code)

    def _saw(self, code: str) -> None:
        assert code in self.declared, f"{code} is produced but not declared by produces_codes"
        self.seen.add(code)
