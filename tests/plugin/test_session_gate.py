"""The session gate: a DataFusion pipeline of the user's own, gated with one ini key and a
zero-argument factory (issue 13.1), through real pytest runs."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from tests.support.cli import planguard_command
from tests.support.gate import FAST, gate
from tests.support.sessions import (
    VIEWS,
    make_leaky,
    shop_project,
    snapshot_dir,
    write_pipeline,
)

pytest_plugins = ["pytester"]


def _accept(pytester: pytest.Pytester, *args: str) -> None:
    gate(pytester, "--snapshot-update", *args).assert_outcomes(passed=len(VIEWS) + 1)


def test_a_session_is_gated_with_one_ini_key(pytester: pytest.Pytester) -> None:
    """One snapshot per view at <snapshot dir>/<module path>/<factory>/<view>.plan, items
    named <module path>::<factory>::<view>, green on rerun; the session does not enable
    information_schema."""
    shop_project(pytester)
    first = gate(pytester)
    first.assert_outcomes(passed=1, failed=len(VIEWS))
    first.stdout.fnmatch_lines(["*shop/pipeline.py::make_context::valid_orders*PLAN_NEW*"])
    _accept(pytester)
    written = sorted(path.name for path in snapshot_dir(pytester).iterdir())
    assert written == sorted(f"{view}.plan" for view in VIEWS)
    text = (snapshot_dir(pytester) / "order_eur.plan").read_text()
    assert "cents_to_eur(" in text
    assert "required_udfs: cents_to_eur" in text
    assert "== P2 physical" in text
    assert "DeltaScanExec" in text
    gate(pytester).assert_outcomes(passed=len(VIEWS) + 1)
    listed = gate(pytester, "--collect-only", "-q").stdout.lines
    assert "shop/pipeline.py::make_context::invariant[determinism]" in listed
    assert "shop/pipeline.py::make_context::big_customers" in listed


def test_a_filter_edit_fails_that_view_and_names_it_downstream(
    pytester: pytest.Pytester,
) -> None:
    shop_project(pytester)
    _accept(pytester)
    before = {p.name: p.read_text() for p in snapshot_dir(pytester).iterdir()}
    edited = dict(VIEWS, valid_orders=VIEWS["valid_orders"].replace("<>", "="))
    write_pipeline(pytester.path, edited)
    report = pytester.path / "report.json"
    result = gate(pytester, "--planguard-report", str(report))
    # the edited view, and the three views that read it, changed; sku_counts did not
    result.assert_outcomes(passed=2, failed=4)
    out = result.stdout.str()
    assert "view 'valid_orders': plan changed, class semantic" in out
    result.stdout.fnmatch_lines(
        [
            "*view 'order_eur': plan changed*",
            "changed through upstream valid_orders (inherited: its own plan is unchanged)",
        ]
    )
    data = json.loads(report.read_text())
    assert data["sessions"] == ["shop.pipeline:make_context"]
    plans = {r["view"]: r for r in data["items"] if r.get("view")}
    assert plans["valid_orders"]["classes"] == ["semantic"]
    assert plans["valid_orders"].get("caused_by", []) == []
    assert plans["big_customers"]["caused_by"] == ["customer_totals", "order_eur", "valid_orders"]
    assert plans["sku_counts"]["status"] == "unchanged"
    # a session's downstream views inline the changed view's own plan: with
    # `inherited = warn` only the root fails (twin: the run above, where all four fail)
    inherited = gate(pytester, "--planguard-gate", "inherited=warn")
    inherited.assert_outcomes(passed=5, failed=1)
    inherited.stdout.fnmatch_lines(["*view 'valid_orders': plan changed*"])
    # the printed accept command updates the one view and keeps every other snapshot
    line = next(x for x in out.splitlines() if "To accept this change:" in x and "valid_o" in x)
    command = shlex.split(line.split("To accept this change:", 1)[1])
    assert command[:2] == ["pytest", "--planguard"]
    pytester.runpytest_subprocess(*FAST, *command[1:]).assert_outcomes(passed=1)
    after = {p.name: p.read_text() for p in snapshot_dir(pytester).iterdir()}
    assert after.keys() == before.keys()
    assert [n for n in after if after[n] != before[n]] == ["valid_orders.plan"]


def test_a_typo_fails_that_view_alone_by_name(pytester: pytest.Pytester) -> None:
    """DataFusion rejects the typo inside the factory (ctx.sql plans eagerly); the gate
    still names the view, skips what reads it and checks every other view."""
    shop_project(pytester)
    _accept(pytester)
    typo = dict(VIEWS, order_eur=VIEWS["order_eur"].replace("amount_cents)", "amount_cent)"))
    write_pipeline(pytester.path, typo)
    result = gate(pytester, "-rs")
    # order_eur fails; customer_totals and big_customers read it: skipped; the rest pass
    result.assert_outcomes(passed=3, failed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*error[[]PLAN_UNAVAILABLE[]] view 'order_eur' has no plan: *No field named "
            "amount_cent*",
            "*SKIPPED*view 'customer_totals' was not planned: upstream view 'order_eur'*",
        ]
    )
    assert "ADAPTER_ERROR" not in result.stdout.str()


def test_a_failing_factory_is_an_adapter_error_naming_it(pytester: pytest.Pytester) -> None:
    shop_project(pytester)
    write_pipeline(
        pytester.path,
        extra="\n\ndef broken():\n    return _helper()\n\n\ndef _helper():\n"
        "    raise RuntimeError('warehouse unreachable')\n",
    )
    pytester.makeini("[pytest]\nplanguard_sessions = shop.pipeline:broken\n")
    result = gate(pytester, "--tb=long")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str()
    assert (
        "error[ADAPTER_ERROR] session factory 'shop.pipeline:broken' raised RuntimeError: "
        "warehouse unreachable" in out
    )
    assert "in _helper" in out  # the user's frames, under --tb=long
    assert "Traceback (most recent call last)" not in out.split("ADAPTER_ERROR", 1)[0]


def test_a_factory_that_returns_no_session_is_an_adapter_error(
    pytester: pytest.Pytester,
) -> None:
    shop_project(pytester)
    write_pipeline(pytester.path, extra="\n\ndef not_a_session():\n    return {}\n")
    pytester.makeini("[pytest]\nplanguard_sessions = shop.pipeline:not_a_session\n")
    result = gate(pytester)
    result.stdout.fnmatch_lines(
        ["*error[[]ADAPTER_ERROR[]]*returned dict, not a datafusion.SessionContext*"]
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("shop.pipeline", "must look like 'package.module:factory'"),
        ("shop.nowhere:make_context", "no Python module 'shop.nowhere' on sys.path"),
        ("shop:make_context", "not in a package's __init__.py"),
    ],
)
def test_a_bad_session_spec_is_a_usage_error(
    pytester: pytest.Pytester, spec: str, message: str
) -> None:
    shop_project(pytester)
    result = gate(pytester, "--planguard-session", spec)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*error[[]CONFIG_ERROR[]] --planguard-session: *{message}*"])
    assert "Traceback" not in result.stderr.str()


def test_session_views_restrict_the_gate(pytester: pytest.Pytester) -> None:
    shop_project(pytester, ini="planguard_session_views =\n    big_*\n    sku_counts\n")
    result = gate(pytester, "--snapshot-update", "-v")
    result.assert_outcomes(passed=3)
    assert sorted(p.name for p in snapshot_dir(pytester).iterdir()) == [
        "big_customers.plan",
        "sku_counts.plan",
    ]
    # twin: an entry that matches nothing is an error, with a hint
    pytester.makeini(
        "[pytest]\nplanguard_sessions = shop.pipeline:make_context\n"
        "planguard_session_views = sku_count\n"
    )
    typo = gate(pytester)
    typo.stdout.fnmatch_lines(
        [
            "*CONFIG_ERROR*planguard_session_views entry 'sku_count' matches no view*"
            "did you mean 'sku_counts'*"
        ]
    )


def test_determinism_rebuilds_the_session_in_subprocesses(pytester: pytest.Pytester) -> None:
    """A view whose SQL depends on the process (str hashing) passes every single run and
    fails the determinism check; its twin, the clean pipeline, passes it."""
    shop_project(pytester)
    options = ("-p", "no:cacheprovider", "--planguard-processes", "2", "--planguard-runs", "1")
    clean = pytester.runpytest_subprocess(*options, "--planguard", "--snapshot-update")
    clean.assert_outcomes(passed=len(VIEWS) + 1)
    make_leaky(pytester.path)
    result = pytester.runpytest_subprocess(
        *options, "--planguard", "-k", "determinism", "--snapshot-warn-unused"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*plan fingerprint of view 'sku_counts' differs between runs*"])


def test_the_bundled_sales_example_is_gated(pytester: pytest.Pytester) -> None:
    """reference_impl/examples/sales: a pipeline with no planguard code, copied as a user
    would have it, gated from the README's one ini key."""
    import reference_impl.examples.sales.pipeline as example

    package = pytester.path / "sales"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(Path(example.__file__), package / "pipeline.py")
    pytester.makeini("[pytest]\nplanguard_sessions = sales.pipeline:make_context\n")
    gate(pytester, "--snapshot-update").assert_outcomes(passed=len(example.VIEWS) + 1)
    assert (pytester.path / "sales" / "data" / "orders" / "_delta_log").is_dir()
    gate(pytester).assert_outcomes(passed=len(example.VIEWS) + 1)


def test_an_added_column_is_schema_additive_alone(pytester: pytest.Pytester) -> None:
    """Adding an output column changes P0 (and P1/P2) too; the engine shows that the old
    columns plan exactly as before, so the change is schema_additive and nothing else,
    and `schema_additive = warn` lets it through.  Twin: a column added together with a
    changed aggregate is not additive alone, and the failure says why."""
    shop_project(pytester)
    _accept(pytester)
    added = dict(
        VIEWS,
        customer_totals=VIEWS["customer_totals"].replace(
            "AS total_eur", "AS total_eur, count(*) AS orders"
        ),
    )
    write_pipeline(pytester.path, added)
    report = pytester.path / "report.json"
    options = ("--planguard-gate", "schema_additive=warn", "--planguard-report", str(report))
    result = gate(pytester, "-k", "customer_totals", *options)
    result.assert_outcomes(passed=1)
    (item,) = [r for r in json.loads(report.read_text())["items"] if r.get("view")]
    assert item["classes"] == ["schema_additive"]
    assert item["action"] == "warn"

    both = dict(
        added,
        customer_totals=added["customer_totals"].replace("sum(amount_eur)", "max(amount_eur)"),
    )
    write_pipeline(pytester.path, both)
    twin = gate(pytester, "-k", "customer_totals", *options)
    twin.assert_outcomes(failed=1)
    twin.stdout.fnmatch_lines(
        [
            "*class semantic, schema_additive*",
            "*not classified as schema_additive alone: the old columns over the new view*",
        ]
    )


def test_the_determinism_marker_takes_a_session(pytester: pytest.Pytester) -> None:
    """planguard_deterministic(session=...) in a test of the user's own suite (no gate):
    the clean pipeline passes; its twin, with a view that depends on the hash seed, fails;
    session and manifest together are a coded marker error."""
    shop_project(pytester)
    pytester.makepyfile(
        test_mine="""
        import pytest

        @pytest.mark.planguard_deterministic(session="shop.pipeline:make_context", processes=1)
        def test_marked():
            pass

        def test_fixture(planguard_determinism):
            report = planguard_determinism.check(session="shop.pipeline:make_context")
            assert len(report.runs) == 3  # 2 in-process runs (the default), 1 subprocess

        @pytest.mark.planguard_deterministic(session="shop.pipeline:make_context",
                                             manifest="m.toml")
        def test_both():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--planguard-processes", "1")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*MARKER_ARGUMENT*session='module:factory' alone*"])
    module = pytester.path / "shop" / "pipeline.py"
    module.write_text(
        module.read_text().replace(
            "ctx.register_view(name, ctx.sql(sql))",
            "ctx.register_view(name, ctx.sql(sql.replace('count(*)', "
            "f'count(*) + {hash(\"x\") % 997}')))",
        )
    )
    leaky = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--planguard-processes", "1", "-k", "marked or fixture"
    )
    leaky.assert_outcomes(failed=2)
    leaky.stdout.fnmatch_lines(["*plan fingerprint of view 'sku_counts' differs between runs*"])


def test_explain_prints_a_session_views_plan(pytester: pytest.Pytester) -> None:
    """`planguard explain module:factory VIEW` prints the section the snapshot holds."""
    shop_project(pytester)
    _accept(pytester)
    stored = (snapshot_dir(pytester) / "order_eur.plan").read_text()
    result = pytester.run(
        *planguard_command(),
        "explain",
        "shop.pipeline:make_context",
        "order_eur",
        "--section",
        "P2",
    )
    assert result.ret == 0
    p2 = stored.split("== P2 physical\n", 1)[1].split("\n== ", 1)[0].strip()
    assert result.outlines
    assert "\n".join(result.outlines).strip() == p2
    typo = pytester.run(*planguard_command(), "explain", "shop.pipeline:make_context", "order_er")
    assert typo.ret == 2
    typo.stderr.fnmatch_lines(["error[[]VIEW_NOT_FOUND[]]*did you mean 'order_eur'*"])
