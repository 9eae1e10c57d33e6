"""``planguard diff`` names the changed upstream views of a changed snapshot
(``caused_by``, from the snapshots' ``depends-on`` lines) and gates inherited changes by the
``inherited`` policy entry: two real snapshot trees of the shop project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_planguard.cli import main
from tests.support.gate import gate
from tests.support.shop import edit


def test_diff_names_caused_by_and_gates_inherited_changes(
    pytester: pytest.Pytester, shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gate(pytester, "--snapshot-update").assert_outcomes(passed=8)
    base = shutil.copytree(shop / "snapshots", shop / "base")
    edit(shop / "manifest.toml", "FROM orders GROUP BY", "FROM orders WHERE amount > 1 GROUP BY")
    gate(pytester, "--snapshot-update").assert_outcomes(passed=8)
    head = shutil.copytree(shop / "snapshots", shop / "head")
    assert "# depends-on: order_totals" in (head / "manifest" / "customer_totals.plan").read_text()

    assert main(["diff", str(base), str(head)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  manifest/customer_totals.plan: changed (semantic)\n" in out
    assert "  inherited through upstream customer_totals, order_totals\n" in out
    assert "4 snapshot(s) compared: 1 unchanged, 3 changed (semantic 3), 3 failing" in out

    assert main(["diff", str(base), str(head), "--json", "--policy", "inherited=warn"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == 4
    assert {c["view"]: (c["caused_by"], c["inherited"], c["action"]) for c in data["changes"]} == {
        "order_totals": ([], False, "fail"),
        "customer_totals": (["order_totals"], True, "warn"),
        "big_spenders": (["customer_totals", "order_totals"], True, "warn"),
    }
    # twin: the root's change accepted alone in BASE: customer_totals's change no longer
    # comes from a changed view (its stored plan embeds the old order_totals), so it is
    # its own and fails; big_spenders's change now comes through customer_totals
    shutil.copy(head / "manifest" / "order_totals.plan", base / "manifest" / "order_totals.plan")
    assert main(["diff", str(base), str(head), "--json", "--policy", "inherited=warn"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {c["view"]: (c["caused_by"], c["inherited"], c["action"]) for c in data["changes"]} == {
        "customer_totals": ([], False, "fail"),
        "big_spenders": (["customer_totals"], True, "warn"),
    }


def test_diff_without_depends_on_lines_names_no_cause(
    pytester: pytest.Pytester, shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Snapshots written before ``depends-on`` existed carry no lineage: no cause, and
    nothing is inherited (twin of the test above, on the same kind of change)."""
    gate(pytester, "--snapshot-update").assert_outcomes(passed=8)
    base = shutil.copytree(shop / "snapshots", shop / "base")
    edit(shop / "manifest.toml", "FROM orders GROUP BY", "FROM orders WHERE amount > 1 GROUP BY")
    gate(pytester, "--snapshot-update").assert_outcomes(passed=8)
    head = shutil.copytree(shop / "snapshots", shop / "head")
    for tree in (base, head):
        for plan in tree.rglob("*.plan"):
            text = plan.read_text()
            plan.write_text(
                "".join(line for line in text.splitlines(True) if "depends-on" not in line)
            )
    capsys.readouterr()  # what pytester printed
    assert main(["diff", str(base), str(head), "--json", "--policy", "inherited=warn"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {c["view"]: (c["caused_by"], c["inherited"]) for c in data["changes"]} == {
        "order_totals": ([], False),
        "customer_totals": ([], False),
        "big_spenders": ([], False),
    }
