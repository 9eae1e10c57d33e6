"""Every error and finding code is produced by some test.

Tests declare the codes they produce with ``@pytest.mark.produces_codes`` and assert each
of them through the ``codes`` fixture, which fails a test whose declaration and assertions
disagree (see ``conftest.py``).  This test enumerates ``ErrorCode``, ``PolicyCode`` and
``PlanguardCode`` and fails on any member that no collected test declares.  A code that
can never be produced belongs out of its enum, not into a fake test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_planguard.errors import PlanguardCode
from reference_impl.errors import ErrorCode
from reference_impl.relspec.contracts import PolicyCode
from tests.support.codes import CODES_MARKER, DESELECTED, declared_codes

HERE = Path(__file__).resolve().parent
ENUMS = (ErrorCode, PolicyCode, PlanguardCode)


def all_codes() -> dict[str, str]:
    return {str(member): enum.__name__ for enum in ENUMS for member in enum}


def test_the_enums_do_not_share_a_code() -> None:
    assert sum(len(enum) for enum in ENUMS) == len(all_codes())


def test_every_code_is_produced_by_some_test(request: pytest.FixtureRequest) -> None:
    session = request.session
    items = [*session.items, *request.config.stash.get(DESELECTED, [])]
    collected = {Path(str(item.path)).resolve() for item in items}
    modules = sorted(HERE.glob("test_*.py"))
    missing_modules = [module.name for module in modules if module not in collected]
    if missing_modules:
        pytest.skip(f"needs every module of tests/hostile collected; missing {missing_modules}")

    declared: dict[str, list[str]] = {}
    for item in items:
        codes = declared_codes(item)
        if not codes:
            continue
        assert "codes" in getattr(item, "fixturenames", ()), (
            f"{item.nodeid} declares {CODES_MARKER} but does not assert through `codes`"
        )
        for code in codes:
            declared.setdefault(code, []).append(item.nodeid)

    known = all_codes()
    unknown = sorted(set(declared) - set(known))
    assert not unknown, f"declared codes that no enum defines: {unknown}"
    never = sorted(f"{known[code]}.{code}" for code in known if code not in declared)
    assert not never, (
        f"codes no test produces: {never}. Produce each in a test under tests/hostile marked "
        f"@pytest.mark.{CODES_MARKER}(CODE) that asserts it through the `codes` fixture, or "
        "remove the code from its enum if nothing can produce it."
    )
