"""The gate on the shop project (real Delta tables, a real manifest): a UDF's code change
(class ``udf``) and changes inherited from upstream views (``inherited = warn``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.gate import gate
from tests.support.shop import edit

PROVIDER = """\
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import udf


def _cents(value: pa.Array) -> pa.Array:
    return pc.divide(value, 100.0)


cents_to_eur = udf(_cents, [pa.float64()], pa.float64(), "immutable", name="cents_to_eur")
"""
UDF_VIEWS = """\
[views.eur_totals]
sql = "SELECT customer_id, cents_to_eur(total) AS eur FROM order_totals"
udfs = ["cents_to_eur"]

[views.big_eur]
sql = "SELECT customer_id, eur FROM eur_totals WHERE eur > 1"

[udfs.cents_to_eur]
provider = "shop_udfs:cents_to_eur"

[runtime]"""


def changed(pytester: pytest.Pytester) -> dict[str, tuple[list[str], list[str], bool, str]]:
    """view -> (classes, caused_by, inherited, severity) of each PLAN_CHANGED finding."""
    data = json.loads((pytester.path / "report.json").read_text())
    return {
        f["view"]: (f["classes"], f.get("caused_by", []), f.get("inherited", False), f["severity"])
        for f in data["findings"]
        if f["code"] == "PLAN_CHANGED"
    }


@pytest.fixture
def udf_shop(pytester: pytest.Pytester, shop: Path) -> Path:
    """The shop with a UDF provider module next to the manifest and two more views: one
    that calls the UDF, and one downstream of it that does not; snapshots accepted."""
    (shop / "shop_udfs.py").write_text(PROVIDER)
    edit(shop / "manifest.toml", "[runtime]", UDF_VIEWS)
    gate(pytester, "--snapshot-update").assert_outcomes(passed=10)
    return shop


def test_editing_a_udf_body_fails_the_views_that_call_it_as_udf(
    pytester: pytest.Pytester, udf_shop: Path
) -> None:
    snapshot = (udf_shop / "snapshots" / "manifest" / "eur_totals.plan").read_text()
    assert "# udfs: cents_to_eur=" in snapshot
    # big_eur reads eur_totals: DataFusion inlines that view, so its plan calls the UDF too
    assert (
        "# udfs: cents_to_eur="
        in (udf_shop / "snapshots" / "manifest" / "big_eur.plan").read_text()
    )
    assert "# udfs:" not in (udf_shop / "snapshots" / "manifest" / "order_totals.plan").read_text()
    # twin: nothing edited, nothing changes
    gate(pytester).assert_outcomes(passed=10)

    edit(udf_shop / "shop_udfs.py", "100.0", "1000.0")
    result = gate(pytester, "--planguard-report", "report.json")
    result.assert_outcomes(passed=8, failed=2)
    assert changed(pytester) == {
        "eur_totals": (["udf"], [], False, "error"),
        "big_eur": (["udf"], ["eur_totals"], True, "error"),
    }
    result.stdout.fnmatch_lines(
        [
            "*error[[]PLAN_CHANGED[]] view 'eur_totals': plan changed, class udf (gate: udf=fail)",
            "*udf: the code of cents_to_eur changed*",
        ]
    )
    # with inherited = warn, only the view whose own plan calls the UDF fails
    gate(pytester, "--planguard-gate", "inherited=warn").assert_outcomes(passed=9, failed=1)
    # the policy can let it through, like any class
    gate(pytester, "--planguard-gate", "udf=warn").assert_outcomes(passed=10)


def test_inherited_changes_warn_while_the_root_still_fails(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """order_totals -> customer_totals -> big_spenders; with ``inherited = warn`` only
    the edited view fails."""
    gate(pytester, "--snapshot-update").assert_outcomes(passed=8)
    edit(shop / "manifest.toml", "FROM orders GROUP BY", "FROM orders WHERE amount > 1 GROUP BY")
    # twin: without the entry, every changed view fails
    gate(pytester, "--planguard-report", "report.json").assert_outcomes(passed=5, failed=3)
    assert changed(pytester) == {
        "order_totals": (["semantic"], [], False, "error"),
        "customer_totals": (["semantic"], ["order_totals"], True, "error"),
        "big_spenders": (["semantic"], ["customer_totals", "order_totals"], True, "error"),
    }

    pytester.makeini(
        "[pytest]\nplanguard_manifests = manifest.toml\nplanguard_gate = inherited = warn\n"
    )
    result = gate(pytester, "--planguard-report", "report.json")
    result.assert_outcomes(passed=7, failed=1)
    assert changed(pytester) == {
        "order_totals": (["semantic"], [], False, "error"),
        "customer_totals": (["semantic"], ["order_totals"], True, "warning"),
        "big_spenders": (["semantic"], ["customer_totals", "order_totals"], True, "warning"),
    }
    result.stdout.fnmatch_lines_random(
        ["*WARNED*::customer_totals: semantic, inherited (through order_totals)"]
    )

    # twin: a downstream view whose own SQL changed too is not inherited, and fails
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 101")
    gate(pytester, "--planguard-report", "report.json").assert_outcomes(passed=6, failed=2)
    assert changed(pytester)["big_spenders"] == (
        ["semantic"],
        ["customer_totals", "order_totals"],
        False,
        "error",
    )
