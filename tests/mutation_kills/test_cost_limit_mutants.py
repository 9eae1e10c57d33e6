"""Cost limits as the ini file writes them: ``planguard_cost_limits`` lines parsed into a
:class:`CostLimit`, its description in a failure message, and every way a line is refused
(issue 20: each case here kills a mutant that the boundary tests alone let live)."""

from __future__ import annotations

import re

import pytest

from pytest_planguard.config import CostLimit, _cost_limit
from pytest_planguard.errors import PlanguardCode, PlanguardError


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("operator_total = +0", CostLimit("operator_total", 0.0, None)),
        ("operator_total=+3", CostLimit("operator_total", 3.0, None)),
        ("repartition_count = 2", CostLimit("repartition_count", 2.0, None)),
        ("estimated_rows = +10%", CostLimit("estimated_rows", None, 10.0)),
        ("estimated_rows = +5, +10%", CostLimit("estimated_rows", 5.0, 10.0)),
        ("estimated_rows = +10% +5", CostLimit("estimated_rows", 5.0, 10.0)),
        ("  estimated_rows   =   1.5%  ", CostLimit("estimated_rows", None, 1.5)),
    ],
)
def test_a_cost_limit_line_parses_into_its_parts(line: str, expected: CostLimit) -> None:
    assert _cost_limit(line) == expected


@pytest.mark.parametrize(
    ("limit", "text"),
    [
        (CostLimit("operator_total", 3, None), "+3"),
        (CostLimit("operator_total", None, 12.5), "+12.5%"),
        (CostLimit("operator_total", 0, 10), "+0 and +10%"),
    ],
)
def test_a_cost_limit_describes_itself_as_written(limit: CostLimit, text: str) -> None:
    assert limit.describe() == text


def test_a_zero_percent_limit_allows_no_relative_growth() -> None:
    limit = CostLimit("estimated_rows", None, 0)
    assert limit.allows(10, 10)
    assert not limit.allows(10, 10.5)
    # an absolute part alone: the percentage check never runs
    assert CostLimit("estimated_rows", 2, None).allows(0, 2)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("operator_total +3", "'operator_total +3' must look like 'name = value'"),
        (
            "operators = +3",
            "cost limit 'operators = +3': signal must be one of "
            "operator_total, repartition_count, estimated_rows",
        ),
        (
            "operator_total = lots",
            "cost limit 'operator_total = lots': 'lots' is not '+N' or '+N%'",
        ),
        ("operator_total = x%", "cost limit 'operator_total = x%': 'x%' is not '+N' or '+N%'"),
        ("operator_total =", "cost limit 'operator_total =' gives no limit"),
        (
            "operator_total = nan",
            "cost limit 'operator_total = nan': the allowed growth must be a finite number >= 0",
        ),
        (
            "operator_total = inf%",
            "cost limit 'operator_total = inf%': the allowed growth must be a finite number >= 0",
        ),
        (
            "operator_total = -1",
            "cost limit 'operator_total = -1': the allowed growth must be a finite number >= 0",
        ),
        (
            "operator_total = 1, -1%",
            "cost limit 'operator_total = 1, -1%': the allowed growth must be a finite number >= 0",
        ),
    ],
)
def test_a_bad_cost_limit_line_is_a_config_error_naming_the_key(line: str, message: str) -> None:
    with pytest.raises(PlanguardError, match=f"^{re.escape(message)}$") as raised:
        _cost_limit(line)
    assert raised.value.code is PlanguardCode.CONFIG_ERROR
    assert raised.value.field_path == "planguard_cost_limits"


def test_a_percentage_of_a_baseline_below_one_is_still_a_percentage() -> None:
    """Only a zero baseline makes a percentage meaningless (estimated rows can be 1)."""
    assert CostLimit("estimated_rows", None, 50).allows(1, 1.5)
    assert not CostLimit("estimated_rows", None, 50).allows(1, 1.6)
    assert CostLimit("estimated_rows", None, 50).allows(0.5, 0.75)


def test_leading_plus_signs_are_dropped_and_nothing_else() -> None:
    assert _cost_limit("operator_total = ++3") == CostLimit("operator_total", 3.0, None)
    for bad in ("3+", "X3"):
        with pytest.raises(PlanguardError, match="is not '\\+N' or '\\+N%'"):
            _cost_limit(f"operator_total = {bad}")
