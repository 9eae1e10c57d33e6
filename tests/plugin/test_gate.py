"""``pytest --planguard``: collection, snapshots, classification, gates and reports.

Every test runs pytest in a subprocess on the shop project (real Delta and Parquet
tables), the way a team runs the gate in CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.gate import gate
from tests.support.shop import edit

SNAPSHOTS = Path("snapshots/manifest")
VIEWS = ("big_spenders", "customer_totals", "event_counts", "order_totals")


def accepted(pytester: pytest.Pytester) -> None:
    gate(pytester, "--snapshot-update").assert_outcomes(passed=4 + len(VIEWS))


def report(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "report.json").read_text())


def test_collects_invariants_policy_and_one_item_per_view(
    pytester: pytest.Pytester, shop: Path
) -> None:
    result = gate(pytester, "--collect-only", "-q")
    lines = result.stdout.lines
    ids = [line for line in lines if line.startswith("manifest.toml::")]
    assert ids[:3] == [
        "manifest.toml::invariant[single_compile]",
        "manifest.toml::invariant[resolver_identity]",
        "manifest.toml::policy[validation]",
    ]
    # the determinism check runs last: its subprocesses plan while the views are gated
    assert ids[-1] == "manifest.toml::invariant[determinism]"
    views = [i.split("::")[1] for i in ids[3:-1]]
    assert sorted(views) == sorted(VIEWS)
    # topological order: a view comes after the views it reads
    assert (
        views.index("order_totals") < views.index("customer_totals") < views.index("big_spenders")
    )


def test_new_snapshot_fails_until_updated(pytester: pytest.Pytester, shop: Path) -> None:
    first = gate(pytester)
    first.assert_outcomes(passed=4, failed=len(VIEWS))
    first.stdout.fnmatch_lines(
        [
            "*error[[]PLAN_NEW[]] no snapshot for view 'big_spenders' yet*",
            "To accept it: pytest --planguard --snapshot-update 'manifest.toml::big_spenders'",
        ]
    )
    assert not (pytester.path / SNAPSHOTS).exists(), "a failing gate must write nothing"
    accepted(pytester)
    assert sorted(p.stem for p in (pytester.path / SNAPSHOTS).glob("*.plan")) == sorted(VIEWS)
    gate(pytester).assert_outcomes(passed=4 + len(VIEWS))


def test_edited_view_fails_as_semantic_and_the_report_names_it(
    pytester: pytest.Pytester, shop: Path
) -> None:
    accepted(pytester)
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 200")
    result = gate(pytester, "--planguard-report", "report.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=4 + len(VIEWS) - 1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*error[[]PLAN_CHANGED[]] view 'big_spenders': plan changed, class semantic*",
            "*--- P0 logical ---*",
            "-*Filter: customer_totals.total > Int64(100)*",
            "+*Filter: customer_totals.total > Int64(200)*",
            "To accept this change: pytest --planguard --snapshot-update "
            "'manifest.toml::big_spenders'",
        ]
    )
    (finding,) = [f for f in report(pytester)["findings"] if f["code"] == "PLAN_CHANGED"]
    assert (finding["view"], finding["class"], finding["severity"]) == (
        "big_spenders",
        "semantic",
        "error",
    )


def test_physical_only_runtime_change_is_classified_physical(
    pytester: pytest.Pytester, shop: Path
) -> None:
    accepted(pytester)
    edit(shop / "manifest.toml", "target_partitions = 4", "target_partitions = 1")
    result = gate(pytester, "--planguard-report", "report.json")
    changed = {
        f["view"]: f["classes"] for f in report(pytester)["findings"] if f["code"] == "PLAN_CHANGED"
    }
    assert changed, result.stdout.str()
    assert all(classes == ["physical"] for classes in changed.values()), changed


def test_gate_policy_can_warn_instead_of_failing(pytester: pytest.Pytester, shop: Path) -> None:
    accepted(pytester)
    before = {p.name: p.read_text() for p in (pytester.path / SNAPSHOTS).glob("*.plan")}
    edit(shop / "manifest.toml", "target_partitions = 4", "target_partitions = 1")
    result = gate(pytester, "--planguard-gate", "physical=warn")
    result.assert_outcomes(passed=4 + len(VIEWS))
    result.stdout.fnmatch_lines(["*WARNED*manifest.toml::*: physical*"])
    after = {p.name: p.read_text() for p in (pytester.path / SNAPSHOTS).glob("*.plan")}
    assert after == before, "a warned change leaves the snapshot as it was"


def test_cost_gate_fails_on_repartition_growth(pytester: pytest.Pytester, shop: Path) -> None:
    edit(shop / "manifest.toml", "target_partitions = 4", "target_partitions = 1")
    accepted(pytester)
    edit(shop / "manifest.toml", "target_partitions = 1", "target_partitions = 4")
    pytester.makeini(
        "[pytest]\n"
        "planguard_manifests = manifest.toml\n"
        "planguard_cost_limits = repartition_count = +0\n"
    )
    result = gate(pytester, "--planguard-gate", "physical=warn")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*error[[]PLAN_COST_REGRESSION[]] repartition_count 0 -> * (limit +0)*"]
    )


def test_schema_changes_are_breaking_or_additive(pytester: pytest.Pytester, shop: Path) -> None:
    accepted(pytester)
    edit(shop / "manifest.toml", "SELECT name, total FROM", "SELECT name FROM")
    edit(
        shop / "manifest.toml",
        "sum(amount) AS total, count(*) AS n",
        "sum(amount) AS total, count(*) AS n, max(amount) AS top",
    )
    gate(pytester, "--planguard-report", "report.json")
    classes = {
        f["view"]: f["classes"] for f in report(pytester)["findings"] if f["code"] == "PLAN_CHANGED"
    }
    assert classes["big_spenders"][0] == "schema_breaking"
    # only a column added: the engine shows the other columns plan as before (issue 13.5)
    assert classes["order_totals"] == ["schema_additive"]
    by_class = report(pytester)["summary"]["changed"]["by_class"]
    # every class of every changed view counts, not only each view's first
    assert by_class["schema_additive"] >= 1
    assert by_class["semantic"] >= 2
    assert by_class["schema_breaking"] >= 1


def test_the_report_keeps_the_view_and_message_of_a_planning_failure(
    pytester: pytest.Pytester, shop: Path
) -> None:
    accepted(pytester)
    edit(shop / "manifest.toml", "SELECT e.kind, count(*) AS n", "SELECT e.nope, count(*) AS n")
    gate(pytester, "--planguard-report", "report.json")
    findings = report(pytester)["findings"]
    (planning,) = [f for f in findings if f["code"] == "VIEW_PLANNING_FAILED"]
    assert planning["view"] == "event_counts"
    assert planning["severity"] == "error"
    assert "nope" in planning["message"]
    (policy,) = [f for f in findings if f["code"] == "POLICY_FAILED"]
    assert "VIEW_PLANNING_FAILED event_counts" in policy["message"]


def test_unused_snapshot_is_reported_then_deleted_on_update(
    pytester: pytest.Pytester, shop: Path
) -> None:
    accepted(pytester)
    text = (shop / "manifest.toml").read_text()
    start = text.index("[views.event_counts]")
    end = text.index("[outputs.big_spenders_out]")
    (shop / "manifest.toml").write_text(text[:start] + text[end:])
    result = gate(pytester, "--planguard-report", "report.json")
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines_random(
        ["*1 unused snapshot(s)*", "*UNUSED*snapshot manifest/event_counts.plan*"]
    )
    assert report(pytester)["unused_snapshots"] == [
        {
            "code": "SNAPSHOT_UNUSED",
            "snapshot": "manifest/event_counts.plan",
            "view": "event_counts",
            "deleted": False,
        }
    ]
    gate(pytester, "--snapshot-update").assert_outcomes(passed=4 + len(VIEWS) - 1)
    assert not (pytester.path / SNAPSHOTS / "event_counts.plan").exists()


def test_gate_runs_under_xdist(pytester: pytest.Pytester, shop: Path) -> None:
    accepted(pytester)
    result = gate(pytester, "-n", "2", "--planguard-report", "report.json")
    result.assert_outcomes(passed=4 + len(VIEWS))
    assert report(pytester)["summary"]["unchanged"] == len(VIEWS)


def test_snapshot_update_under_xdist_writes_every_view(
    pytester: pytest.Pytester, shop: Path
) -> None:
    gate(pytester, "-n", "2", "--snapshot-update").assert_outcomes(passed=4 + len(VIEWS))
    assert sorted(p.stem for p in (pytester.path / SNAPSHOTS).glob("*.plan")) == sorted(VIEWS)
    gate(pytester).assert_outcomes(passed=4 + len(VIEWS))


def test_json_report_validates_against_its_schema(pytester: pytest.Pytester, shop: Path) -> None:
    import jsonschema

    from pytest_planguard.gate.report import SCHEMA_PATH

    accepted(pytester)
    edit(shop / "manifest.toml", "WHERE total > 100", "WHERE total > 200")
    gate(pytester, "--planguard-report", "report.json")
    data = report(pytester)
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
    assert data["schema_version"] == 4
    assert all(f["code"] and "view" in f for f in data["findings"])
    # twin: the schema rejects a finding without a code
    broken = json.loads(json.dumps(data))
    del broken["findings"][0]["code"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(SCHEMA_PATH.read_text()))


FLAKY = '''
import itertools
from pytest_planguard.adapter import BundleView
from pytest_planguard.reference_adapter import ReferenceAdapter

_counter = itertools.count()


class FlakyAdapter(ReferenceAdapter):
    """Each planning of big_spenders prints a different (fake) operator id."""

    def bundles(self, plan):
        out = dict(super().bundles(plan))
        b = out["big_spenders"]
        out["big_spenders"] = BundleView(
            view=b.view, p0=b.p0, p1=b.p1, p2=b.p2 + f"\\n  OperatorId: {next(_counter)}",
            schema=b.schema, signals=b.signals,
        )
        return out
'''


def test_unstable_plan_is_refused_on_update(pytester: pytest.Pytester, shop: Path) -> None:
    pytester.makepyfile(flaky=FLAKY)
    result = gate(pytester, "--snapshot-update", "--planguard-adapter", "flaky:FlakyAdapter")
    result.assert_outcomes(passed=4 + len(VIEWS) - 1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*error[[]UNSTABLE_PLAN[]] view 'big_spenders': two independent builds*",
            "-  OperatorId: 0",
            "+  OperatorId: 1",
        ]
    )
    assert not (pytester.path / SNAPSHOTS / "big_spenders.plan").exists()
    assert (pytester.path / SNAPSHOTS / "order_totals.plan").exists()


BROKEN_ADAPTERS = """
import dataclasses
import msgspec
from pytest_planguard.reference_adapter import ReferenceAdapter


class RecompilingAdapter(ReferenceAdapter):
    def plan(self, context):
        self.compile(context.authority.semantic_context.manifest.source_path)
        return super().plan(context)


class SwappingAdapter(ReferenceAdapter):
    def execute(self, plan, context, *, dry_run):
        from reference_impl.execution import execute_plan
        from reference_impl.relspec.scan_overrides import apply_scan_unit_overrides
        semantic = context.authority.semantic_context
        overrides = plan.scan_policy_overrides_by_key
        apply_scan_unit_overrides(semantic.session, semantic.dataset_resolver, overrides)
        stray = msgspec.structs.replace(semantic.dataset_resolver)
        swapped = dataclasses.replace(semantic, dataset_resolver=stray)
        authority = dataclasses.replace(context.authority, semantic_context=swapped)
        return execute_plan(plan, authority, dry_run=dry_run)
"""


@pytest.mark.parametrize(
    ("adapter", "item", "message"),
    [
        ("RecompilingAdapter", "single_compile", "*2 compiles in one test*"),
        ("SwappingAdapter", "resolver_identity", "*stage 'execution' received resolver*"),
    ],
)
def test_gate_invariants_fail_on_broken_adapters(
    pytester: pytest.Pytester, shop: Path, adapter: str, item: str, message: str
) -> None:
    pytester.makepyfile(broken_adapters=BROKEN_ADAPTERS)
    result = gate(
        pytester, "--snapshot-update", "--planguard-adapter", f"broken_adapters:{adapter}"
    )
    result.assert_outcomes(passed=3 + len(VIEWS), failed=1)
    result.stdout.fnmatch_lines([f"*manifest.toml::invariant[[]{item}[]]*", message])


def test_manifest_error_is_a_collection_error_without_traceback(
    pytester: pytest.Pytester, shop: Path
) -> None:
    edit(shop / "manifest.toml", "FROM customer_totals WHERE", "FROM big_spenders WHERE")
    result = gate(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*error[[]MANIFEST_CYCLE[]]*views form a cycle: big_spenders -> big_spenders*"]
    )
    assert "Traceback" not in result.stdout.str()
    assert not (pytester.path / "snapshots").exists()


def test_nothing_configured_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """Without planguard_manifests, the gate used to gate the bundled TPC-H example."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = gate(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*error[[]CONFIG_ERROR[]] planguard_sessions: no manifests or sessions configured*"]
    )
    assert "planguard_sessions" in result.stderr.str().split("configured", 1)[1]
    assert "tpch" not in result.stdout.str() + result.stderr.str()
    # twin: plain pytest (no --planguard) needs no configuration
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_determinism_marker_on_a_file_that_is_not_a_manifest(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """A coded error with a hint, not a traceback from the reference pipeline."""
    pytester.makepyfile(
        pipeline="def build():\n    return None\n",
        test_det=(
            "import pytest\n\n\n"
            '@pytest.mark.planguard_deterministic(manifest="pipeline.py", processes=0)\n'
            "def test_det():\n    pass\n"
        ),
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_det.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*error[[]MANIFEST_*pipeline.py*", "*hint: *adapter=*"])
    assert "Traceback" not in result.stdout.str()
    assert "reference_impl/" not in result.stdout.str()


def test_downstream_changes_name_the_upstream_view_that_caused_them(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """order_totals -> customer_totals -> big_spenders: editing order_totals changes all
    three; the two downstream views name it, the root change names nothing."""
    accepted(pytester)
    edit(shop / "manifest.toml", "FROM orders GROUP BY", "FROM orders WHERE amount > 1 GROUP BY")
    result = gate(pytester, "--planguard-report", "report.json")
    causes = {
        f["view"]: f.get("caused_by", [])
        for f in report(pytester)["findings"]
        if f["code"] == "PLAN_CHANGED"
    }
    assert causes == {
        "order_totals": [],
        "customer_totals": ["order_totals"],
        "big_spenders": ["customer_totals", "order_totals"],
    }
    result.stdout.fnmatch_lines_random(
        [
            "*changed through upstream customer_totals, order_totals*",
            "*FAILED*manifest.toml::customer_totals: semantic* (through order_totals)",
        ]
    )
    # twin: a change in a view nothing reads names no cause anywhere
    edit(shop / "manifest.toml", "FROM orders WHERE amount > 1 GROUP BY", "FROM orders GROUP BY")
    edit(shop / "manifest.toml", "GROUP BY e.kind", "GROUP BY e.kind HAVING count(*) > 0")
    gate(pytester, "--planguard-report", "report.json")
    changed = [f for f in report(pytester)["findings"] if f["code"] == "PLAN_CHANGED"]
    assert [(f["view"], f.get("caused_by", [])) for f in changed] == [("event_counts", [])]


def test_a_protocol_finding_names_its_dataset_in_the_report(
    pytester: pytest.Pytester, shop: Path
) -> None:
    """One finding per dataset, with the dataset in `dataset` and no pretend view (twin:
    a planning failure keeps `view`, above)."""
    edit(
        shop / "manifest.toml",
        "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n",
        "",
    )
    gate(pytester, "--planguard-report", "report.json", "-k", "policy")
    findings = [f for f in report(pytester)["findings"] if f["check"] == "policy"]
    protocol = [f for f in findings if f.get("dataset")]
    assert sorted(f["dataset"] for f in protocol) == ["customers", "orders"]
    assert all(f["view"] is None for f in protocol)
