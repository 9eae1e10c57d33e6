"""``planguard explain MANIFEST VIEW``: one view's bundle exactly as its snapshot holds it,
and a coded error for a view the manifest does not have."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_planguard.gate.snapshot import parse_snapshot
from tests.hostile.helpers import assert_no_traceback
from tests.support.cli import run_cli
from tests.support.codes import CodeRecorder

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = "reference_impl/examples/tpch/manifest.toml"
COMMITTED = ROOT / "snapshots" / "reference_impl" / "examples" / "tpch" / "manifest"


def test_explain_prints_the_bundle_the_gate_would_store() -> None:
    code, out, err = run_cli("explain", MANIFEST, "q01", cwd=ROOT)
    assert (code, err) == (0, "")
    assert out == (COMMITTED / "q01.plan").read_text(encoding="utf-8")


@pytest.mark.parametrize("section", ["P0", "P1", "P2", "schema", "signals"])
def test_explain_prints_one_section(section: str) -> None:
    code, out, _ = run_cli("explain", MANIFEST, "q03", "--section", section, cwd=ROOT)
    assert code == 0
    stored = parse_snapshot((COMMITTED / "q03.plan").read_text(encoding="utf-8"))
    name = {"P0": "P0 logical", "P1": "P1 optimized", "P2": "P2 physical"}.get(section, section)
    assert out == stored.sections[name] + "\n"


@pytest.mark.produces_codes("VIEW_NOT_FOUND")
def test_explain_names_the_closest_view_for_an_unknown_one(codes: CodeRecorder) -> None:
    code, out, err = run_cli("explain", MANIFEST, "q1", cwd=ROOT)
    assert code == 2
    assert_no_traceback(out, err)
    assert err.startswith(f"error[VIEW_NOT_FOUND] {MANIFEST}: no view 'q1' in the manifest")
    assert "did you mean 'q" in err
    codes.expect(err.split("]", 1)[0].removeprefix("error["), "VIEW_NOT_FOUND", err)
