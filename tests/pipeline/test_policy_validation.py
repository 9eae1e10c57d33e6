"""Stage *policy validation*: every PolicyCode produced by a real situation.

Each scenario builds real Delta (or Parquet) tables and a manifest, runs the pipeline up to
validation and checks the exact set of codes it yields; most have a twin that fixes the
situation and must come out clean.  ``PLANNING_BUDGET_EXCEEDED`` is covered elsewhere.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import deltalake
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reference_impl.engine.runtime import build_runtime_profile
from reference_impl.engine.session import build_semantic_execution_context
from reference_impl.pipeline import run_pipeline
from reference_impl.relspec.authority import build_execution_authority
from reference_impl.relspec.contracts import PolicyCode, PolicyValidationResult
from reference_impl.relspec.execution_plan import compile_execution_plan
from reference_impl.relspec.policy_validation import validate_policy_bundle
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest

NOT_COVERED_HERE = {PolicyCode.PLANNING_BUDGET_EXCEEDED}

TABLE = """
[datasets.t]
format = "delta"
location = "t"
"""

# Plain deltalake tables are reader 1 / writer 2; no small-input finding unless asked.
CLEAN_POLICY = """
[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 1
max_writer_version = 2
"""

# What a deletion-vector table needs, except deletion vectors themselves (delta-rs also
# lists variantType when it upgrades a table to table features).
ALMOST_DV_SUPPORT = """
[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 3
max_writer_version = 7
reader_features = ["timestampNtz", "variantType"]
writer_features = ["appendOnly", "invariants", "timestampNtz", "variantType"]
"""

UDF_MODULE = """
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import udf

plus_one = udf(lambda v: pc.add(v, 1), [pa.int64()], pa.int64(), "immutable", name="plus_one")
"""

DV = {"delta.enableDeletionVectors": "true"}


class Project:
    """A directory with real tables and a manifest, validated through the real pipeline."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def table(
        self, name: str = "t", rows: int = 2000, config: dict[str, str] | None = None
    ) -> None:
        data = pa.table({"a": list(range(rows)), "b": [i % 7 for i in range(rows)]})
        deltalake.write_deltalake(str(self.root / name), data, configuration=config)

    def parquet(self, name: str, rows: int = 2000) -> None:
        (self.root / name).mkdir()
        pq.write_table(pa.table({"a": list(range(rows))}), self.root / name / "part-0.parquet")

    def file(self, name: str, text: str) -> None:
        (self.root / name).write_text(textwrap.dedent(text), encoding="utf-8")

    def manifest(self, text: str) -> Path:
        path = self.root / "manifest.toml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def validate(self, text: str, **kwargs: Any) -> PolicyValidationResult:
        return run_pipeline(self.manifest(text), execute=False, **kwargs).validation


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "project")


def codes(result: PolicyValidationResult) -> set[str]:
    return {str(issue.code) for issue in result.issues}


def only(result: PolicyValidationResult, code: PolicyCode) -> Any:
    (issue,) = [issue for issue in result.issues if issue.code == code]
    return issue


# -- scenarios: each returns its validation result and the codes it must yield --------------


def udfs_disabled(project: Project) -> PolicyValidationResult:
    project.table()
    project.file("plus_udfs.py", UDF_MODULE)
    return project.validate(
        TABLE
        + CLEAN_POLICY
        + """
        [views.v]
        sql = "SELECT plus_one(a) AS x FROM t"
        udfs = ["plus_one"]
        [udfs.plus_one]
        provider = "plus_udfs:plus_one"
        [runtime]
        enable_udfs = false
        """
    )


def udf_missing(project: Project) -> PolicyValidationResult:
    """A view calls a function the session does not have.  (A view declaring a UDF that
    no ``[udfs.*]`` provides is refused earlier, at load: MANIFEST_UNKNOWN_REFERENCE.)"""
    project.table()
    return project.validate(
        TABLE + CLEAN_POLICY + '[views.v]\nsql = "SELECT plus_one(a) AS x FROM t"\n'
    )


PLUS_ONE = """
[udfs.plus_one]
provider = "plus_udfs:plus_one"
"""


def udf_undeclared(project: Project) -> PolicyValidationResult:
    """A view calls a provided UDF without listing it in its ``udfs``."""
    project.table()
    project.file("plus_udfs.py", UDF_MODULE)
    return project.validate(
        TABLE + CLEAN_POLICY + PLUS_ONE + '[views.v]\nsql = "SELECT plus_one(a) AS x FROM t"\n'
    )


def udf_declared_unused(project: Project) -> PolicyValidationResult:
    """A view lists a provided UDF in its ``udfs`` that its SQL never calls."""
    project.table()
    project.file("plus_udfs.py", UDF_MODULE)
    return project.validate(
        TABLE
        + CLEAN_POLICY
        + PLUS_ONE
        + '[views.v]\nsql = "SELECT a FROM t"\nudfs = ["plus_one"]\n'
    )


def delta_protocol_incompatible(project: Project) -> PolicyValidationResult:
    project.table(config=DV)
    return project.validate(
        TABLE
        + CLEAN_POLICY.replace("max_reader_version = 1", "max_reader_version = 3")
        + '[views.v]\nsql = "SELECT a FROM t"\n'
    )


def delta_protocol_support_unconfigured(project: Project) -> PolicyValidationResult:
    project.table()
    return project.validate(
        TABLE + '[views.v]\nsql = "SELECT a FROM t"\n[policy]\nsmall_input_rows = 0\n'
    )


def small_input_scan_policy(project: Project) -> PolicyValidationResult:
    project.table(rows=10)
    text = TABLE + CLEAN_POLICY + '[views.v]\nsql = "SELECT a FROM t"\n'
    return project.validate(text.replace("small_input_rows = 0", "small_input_rows = 1000"))


def scan_dataset_not_in_manifest(project: Project) -> PolicyValidationResult:
    """A session that drifted from the manifest: a view frame reads a table that was
    registered directly on the session, bypassing the resolver."""
    project.table()
    project.table("rogue")
    path = project.manifest(TABLE + CLEAN_POLICY + '[views.v]\nsql = "SELECT a FROM t"\n')
    program = compile_semantic_program(load_manifest(path))
    profile = build_runtime_profile(program)
    semantic = build_semantic_execution_context(program, profile)
    ctx = semantic.session
    ctx.register_table("rogue", deltalake.DeltaTable(str(project.root / "rogue")))
    drifted = dataclasses.replace(
        semantic, view_frames={**semantic.view_frames, "v": ctx.sql("SELECT a FROM rogue")}
    )
    authority = build_execution_authority(drifted)
    plan = compile_execution_plan(authority)
    return validate_policy_bundle(
        plan, runtime_profile=profile, udf_snapshot=authority.capabilities.udf_snapshot
    )


def executor_unavailable(project: Project) -> PolicyValidationResult:
    project.table()
    return project.validate(
        TABLE + CLEAN_POLICY + '[views.v]\nsql = "SELECT a FROM t"\nexecutor = "spark"\n'
    )


def output_schema_mismatch(project: Project) -> PolicyValidationResult:
    project.table()
    # the output table holds one column; the view now gives two
    deltalake.write_deltalake(str(project.root / "out"), pa.table({"a": [1]}))
    return project.validate(
        TABLE
        + CLEAN_POLICY
        + '[views.v]\nsql = "SELECT a, b FROM t"\n'
        + '[outputs.o]\nview = "v"\nlocation = "out"\n'
    )


def stats_unavailable(project: Project) -> PolicyValidationResult:
    project.parquet("p")
    return project.validate(
        """
        [datasets.p]
        format = "parquet"
        location = "p"
        [views.v]
        sql = "SELECT a FROM p"
        [runtime]
        collect_statistics = false
        """
    )


def view_planning_failed(project: Project) -> PolicyValidationResult:
    project.table()
    return project.validate(
        TABLE + CLEAN_POLICY + '[views.v]\nsql = "SELECT no_such_column FROM t"\n'
    )


def view_upstream_failed(project: Project) -> PolicyValidationResult:
    project.table()
    return project.validate(
        TABLE
        + CLEAN_POLICY
        + '[views.v]\nsql = "SELECT no_such_column FROM t"\n'
        + '[views.w]\nsql = "SELECT * FROM v"\n'
    )


SCENARIOS: dict[PolicyCode, tuple[Callable[[Project], PolicyValidationResult], set[str]]] = {
    # both, as the review's skeleton: disabled UDFs are not registered, so also missing
    PolicyCode.UDFS_DISABLED: (udfs_disabled, {"UDFS_DISABLED", "UDF_MISSING"}),
    PolicyCode.UDF_MISSING: (udf_missing, {"UDF_MISSING"}),
    PolicyCode.UDF_UNDECLARED: (udf_undeclared, {"UDF_UNDECLARED"}),
    PolicyCode.UDF_DECLARED_UNUSED: (udf_declared_unused, {"UDF_DECLARED_UNUSED"}),
    PolicyCode.DELTA_PROTOCOL_INCOMPATIBLE: (
        delta_protocol_incompatible,
        {"DELTA_PROTOCOL_INCOMPATIBLE"},
    ),
    PolicyCode.DELTA_PROTOCOL_SUPPORT_UNCONFIGURED: (
        delta_protocol_support_unconfigured,
        {"DELTA_PROTOCOL_SUPPORT_UNCONFIGURED"},
    ),
    PolicyCode.SMALL_INPUT_SCAN_POLICY: (small_input_scan_policy, {"SMALL_INPUT_SCAN_POLICY"}),
    PolicyCode.SCAN_DATASET_NOT_IN_MANIFEST: (
        scan_dataset_not_in_manifest,
        {"SCAN_DATASET_NOT_IN_MANIFEST"},
    ),
    PolicyCode.EXECUTOR_UNAVAILABLE: (executor_unavailable, {"EXECUTOR_UNAVAILABLE"}),
    PolicyCode.STATS_UNAVAILABLE: (stats_unavailable, {"STATS_UNAVAILABLE"}),
    PolicyCode.OUTPUT_SCHEMA_MISMATCH: (output_schema_mismatch, {"OUTPUT_SCHEMA_MISMATCH"}),
    PolicyCode.VIEW_PLANNING_FAILED: (view_planning_failed, {"VIEW_PLANNING_FAILED"}),
    PolicyCode.VIEW_UPSTREAM_FAILED: (
        view_upstream_failed,
        {"VIEW_PLANNING_FAILED", "VIEW_UPSTREAM_FAILED"},
    ),
}


def test_every_policy_code_has_a_real_scenario() -> None:
    assert set(SCENARIOS) == set(PolicyCode) - NOT_COVERED_HERE


@pytest.mark.parametrize("code", list(SCENARIOS), ids=str)
def test_the_scenario_yields_its_code(project: Project, code: PolicyCode) -> None:
    scenario, expected = SCENARIOS[code]
    result = scenario(project)
    assert codes(result) == expected, result.issues
    issue = only(result, code)
    assert issue.subject
    assert issue.message
    assert "Traceback" not in issue.message


# -- details and twins ------------------------------------------------------------------------


def test_udfs_disabled_names_the_view_and_its_udfs(project: Project) -> None:
    issue = only(udfs_disabled(project), PolicyCode.UDFS_DISABLED)
    assert (issue.subject, issue.subject_kind, issue.severity) == ("v", "view", "error")
    assert "plus_one" in issue.message


def test_a_declared_and_provided_udf_is_clean(project: Project) -> None:
    project.table()
    project.file("plus_udfs.py", UDF_MODULE)
    result = project.validate(
        TABLE
        + CLEAN_POLICY
        + """
        [views.v]
        sql = "SELECT plus_one(a) AS x FROM t"
        udfs = ["plus_one"]
        [udfs.plus_one]
        provider = "plus_udfs:plus_one"
        """
    )
    assert result.issues == ()
    assert result.ok


def test_an_unknown_function_surfaces_as_udf_missing_for_that_view(project: Project) -> None:
    project.table()
    run = run_pipeline(
        project.manifest(
            TABLE
            + CLEAN_POLICY
            + '[views.v]\nsql = "SELECT mystery_fn(a) AS x FROM t"\n'
            + '[views.fine]\nsql = "SELECT a FROM t"\n'
        ),
        execute=False,
    )
    issue = only(run.validation, PolicyCode.UDF_MISSING)
    assert (issue.subject, issue.severity) == ("v", "error")
    assert "mystery_fn" in issue.message
    assert codes(run.validation) == {"UDF_MISSING"}
    nodes = {node.name: node for node in run.plan.view_nodes}
    assert nodes["v"].status == "failed"
    assert nodes["v"].required_udfs == ("mystery_fn",)
    assert nodes["fine"].status == "planned"


def test_a_deletion_vector_table_reports_the_missing_feature(project: Project) -> None:
    run_result = delta_protocol_incompatible(project)
    issue = only(run_result, PolicyCode.DELTA_PROTOCOL_INCOMPATIBLE)
    assert (issue.subject, issue.subject_kind) == ("t", "dataset")
    # the scenario allows reader version 3 but writer version 2: the first setting short
    assert issue.field_path == "policy.delta_support.max_writer_version"
    assert "deletionVectors" in issue.message
    assert not run_result.ok


def test_a_deletion_vector_table_is_compatible_with_a_policy_supporting_it(
    project: Project,
) -> None:
    project.table(config=DV)
    support = ALMOST_DV_SUPPORT.replace('["timestampNtz"', '["deletionVectors", "timestampNtz"')
    support = support.replace('["appendOnly"', '["appendOnly", "deletionVectors"')
    assert support.count("deletionVectors") == 2
    run = run_pipeline(
        project.manifest(TABLE + support + '[views.v]\nsql = "SELECT a FROM t"\n'),
        execute=False,
    )
    assert run.validation.issues == ()
    (unit,) = run.plan.scan_units
    compat = unit.protocol_compatibility
    assert compat is not None
    assert compat.compatible is True
    assert "deletionVectors" in compat.required_reader_features


def test_a_narrower_policy_lists_exactly_what_is_missing(project: Project) -> None:
    project.table(config=DV)
    narrower = ALMOST_DV_SUPPORT.replace("max_reader_version = 3", "max_reader_version = 2")
    run = run_pipeline(
        project.manifest(TABLE + narrower + '[views.v]\nsql = "SELECT a FROM t"\n'),
        execute=False,
    )
    (unit,) = run.plan.scan_units
    compat = unit.protocol_compatibility
    assert compat is not None
    assert compat.compatible is False
    assert compat.missing_reader_features == ("deletionVectors",)
    assert compat.missing_writer_features == ("deletionVectors",)
    assert "reader version 3 > supported 2" in compat.reason
    assert run.plan.plan_signals_by_view["v"].scan_protocol.incompatible_datasets == ("t",)


@pytest.mark.parametrize(
    ("mode", "severity", "ok"),
    [("error", "error", False), ("warn", "warning", True), ("ignore", "info", True)],
)
def test_unconfigured_support_is_handled_by_the_manifest_mode(
    project: Project, mode: str, severity: str, ok: bool
) -> None:
    project.table()
    result = project.validate(
        TABLE + f'[views.v]\nsql = "SELECT a FROM t"\n[policy]\nmode = "{mode}"\n'
        "small_input_rows = 0\n"
    )
    issue = only(result, PolicyCode.DELTA_PROTOCOL_SUPPORT_UNCONFIGURED)
    assert issue.severity == severity
    assert result.mode == mode
    assert result.ok is ok


@pytest.mark.parametrize(
    ("mode", "severity"), [("error", "error"), ("warn", "warning"), ("ignore", "info")]
)
def test_unconfigured_support_is_handled_by_the_mode_override(
    project: Project, mode: str, severity: str
) -> None:
    project.table()
    run = run_pipeline(
        project.manifest(TABLE + '[views.v]\nsql = "SELECT a FROM t"\n'),
        execute=False,
        mode=mode,  # type: ignore[arg-type]
    )
    assert only(run.validation, PolicyCode.DELTA_PROTOCOL_SUPPORT_UNCONFIGURED).severity == (
        severity
    )
    (unit,) = run.plan.scan_units
    assert unit.protocol_compatibility is not None
    assert unit.protocol_compatibility.compatible is None  # never coerced to a boolean


def test_a_small_table_is_a_warning_naming_its_row_count(project: Project) -> None:
    result = small_input_scan_policy(project)
    issue = only(result, PolicyCode.SMALL_INPUT_SCAN_POLICY)
    assert (issue.subject, issue.severity) == ("v", "warning")
    assert "10 rows" in issue.message
    assert result.ok  # a warning does not fail validation


def test_a_large_enough_table_is_not_small(project: Project) -> None:
    project.table(rows=2000)
    text = TABLE + CLEAN_POLICY + '[views.v]\nsql = "SELECT a FROM t"\n'
    result = project.validate(text.replace("small_input_rows = 0", "small_input_rows = 1000"))
    assert result.issues == ()


def test_the_drifted_scan_is_flagged_not_in_manifest(project: Project) -> None:
    issue = only(scan_dataset_not_in_manifest(project), PolicyCode.SCAN_DATASET_NOT_IN_MANIFEST)
    assert issue.subject.startswith("scan::rogue::")
    assert "'rogue'" in issue.message


def test_an_executor_missing_from_the_map_is_found_at_plan_time(project: Project) -> None:
    project.table()
    text = TABLE + CLEAN_POLICY + '[views.v]\nsql = "SELECT a FROM t"\n'
    assert project.validate(text).issues == ()
    run = run_pipeline(
        project.manifest(text), execute=False, executors={"spark": lambda inputs: inputs}
    )
    issue = only(run.validation, PolicyCode.EXECUTOR_UNAVAILABLE)
    assert (issue.subject, issue.severity) == ("v", "error")
    (node,) = run.plan.view_nodes
    assert node.executor_available is False
    assert node.status == "planned"  # availability is policy, not a planning failure


@pytest.mark.parametrize(
    ("fallback", "severity"), [("warn", "warning"), ("error", "error"), ("ignore", "info")]
)
def test_missing_statistics_follow_the_stats_fallback(
    project: Project, fallback: str, severity: str
) -> None:
    project.parquet("p")
    result = project.validate(
        f"""
        [datasets.p]
        format = "parquet"
        location = "p"
        [views.v]
        sql = "SELECT a FROM p"
        [runtime]
        collect_statistics = false
        stats_fallback = "{fallback}"
        """
    )
    assert only(result, PolicyCode.STATS_UNAVAILABLE).severity == severity


def test_parquet_statistics_are_available_when_collected(project: Project) -> None:
    project.parquet("p")
    run = run_pipeline(
        project.manifest(
            '[datasets.p]\nformat = "parquet"\nlocation = "p"\n[views.v]\nsql = "SELECT a FROM p"\n'
        ),
        execute=False,
    )
    assert run.validation.issues == ()
    assert run.plan.task_plan_metrics["v"].stats_row_count == 2000
    assert run.plan.plan_signals_by_view["v"].stats.provenance == "explain:scan"


def test_a_failed_view_and_its_dependents(project: Project) -> None:
    result = view_upstream_failed(project)
    failed = only(result, PolicyCode.VIEW_PLANNING_FAILED)
    upstream = only(result, PolicyCode.VIEW_UPSTREAM_FAILED)
    assert (failed.subject, failed.severity) == ("v", "error")
    assert "no_such_column" in failed.message
    assert (upstream.subject, upstream.severity) == ("w", "warning")


# -- the result ---------------------------------------------------------------------------------


def many_findings(project: Project) -> PolicyValidationResult:
    project.table("t", config=DV)
    project.table("small", rows=5)
    return project.validate(
        """
        [datasets.t]
        format = "delta"
        location = "t"
        [datasets.small]
        format = "delta"
        location = "small"
        [views.z_bad]
        sql = "SELECT nope FROM t"
        [views.c_dv]
        sql = "SELECT a FROM t"
        [views.a_dep]
        sql = "SELECT * FROM z_bad"
        [views.m_small]
        sql = "SELECT a FROM small"
        executor = "ray"
        [views.b_udf]
        sql = "SELECT a FROM small"
        udfs = ["zeta", "alpha"]
        [udfs.zeta]
        provider = "nowhere:zeta"
        [udfs.alpha]
        provider = "nowhere:alpha"
        [runtime]
        enable_udfs = false
        [policy.delta_support]
        max_reader_version = 1
        max_writer_version = 2
        """
    )


def test_issues_are_sorted_and_the_result_summarizes_them(project: Project) -> None:
    result = many_findings(project)
    keys = [(str(i.code), i.subject, i.severity, i.message) for i in result.issues]
    assert keys == sorted(keys)
    assert result.codes() == tuple(sorted(codes(result)))
    assert set(result.codes()) == {
        "DELTA_PROTOCOL_INCOMPATIBLE",
        "EXECUTOR_UNAVAILABLE",
        "SMALL_INPUT_SCAN_POLICY",
        "UDFS_DISABLED",
        "UDF_DECLARED_UNUSED",
        "UDF_MISSING",
        "VIEW_PLANNING_FAILED",
        "VIEW_UPSTREAM_FAILED",
    }
    assert "alpha, zeta" in only(result, PolicyCode.UDF_MISSING).message
    assert not result.ok
    assert result.errors == tuple(i for i in result.issues if i.severity == "error")
    artifact = result.artifact()
    assert artifact.issue_count == len(result.issues)
    assert artifact.error_count == len(result.errors)
    assert artifact.codes == result.codes()
    assert artifact.is_deterministic is True


def test_warn_mode_downgrades_errors_and_ignore_records_everything_as_info(
    project: Project,
) -> None:
    error = many_findings(project)
    profile_warn = run_pipeline(project.root / "manifest.toml", execute=False, mode="warn")
    profile_ignore = run_pipeline(project.root / "manifest.toml", execute=False, mode="ignore")
    warn, ignore = profile_warn.validation, profile_ignore.validation
    assert [i.code for i in warn.issues] == [i.code for i in error.issues]
    assert {i.severity for i in warn.issues} == {"warning"}
    assert {i.severity for i in ignore.issues} == {"info"}
    assert warn.ok
    assert ignore.ok
    assert error.plan_hash == warn.plan_hash == ignore.plan_hash


def test_validating_the_same_plan_twice_gives_identical_bytes(project: Project) -> None:
    project.table("t", config=DV)
    path = project.manifest(TABLE + CLEAN_POLICY + '[views.v]\nsql = "SELECT a FROM t"\n')
    run = run_pipeline(path, execute=False)
    again = validate_policy_bundle(
        run.plan,
        runtime_profile=build_runtime_profile(run.authority.semantic_context.manifest),
        udf_snapshot=run.authority.capabilities.udf_snapshot,
    )
    assert again.artifact().to_bytes() == run.validation.artifact().to_bytes()
    assert b"DELTA_PROTOCOL_INCOMPATIBLE" in again.artifact().to_bytes()


def test_views_that_scan_no_dataset_yield_no_scan_findings(project: Project) -> None:
    """A constant view and a table function read no dataset: no scan unit, no
    SCAN_DATASET_NOT_IN_MANIFEST, and no small-input or missing-statistics finding."""
    project.table()
    text = TABLE + CLEAN_POLICY.replace("small_input_rows = 0", "small_input_rows = 1000")
    run = run_pipeline(
        project.manifest(
            text
            + '[views.constant]\nsql = "SELECT 1 AS x"\n'
            + '[views.series]\nsql = "SELECT value FROM generate_series(1, 5)"\n'
            + '[views.mixed]\nsql = "SELECT a FROM t JOIN range(3) r ON r.value = t.a"\n'
        ),
        execute=False,
    )
    assert run.validation.issues == (), run.validation.issues
    assert {unit.dataset_name for unit in run.plan.scan_units} == {"t"}
    nodes = {node.name: node for node in run.plan.view_nodes}
    assert nodes["constant"].scan_unit_keys == nodes["series"].scan_unit_keys == ()
    assert run.plan.lineage_by_view["mixed"].datasets == ("t",)


# -- UDFs declared and used (issue 19.2) ----------------------------------------------------


def test_an_undeclared_udf_call_names_the_view_the_udf_and_the_field(project: Project) -> None:
    result = udf_undeclared(project)
    issue = only(result, PolicyCode.UDF_UNDECLARED)
    assert (issue.subject, issue.subject_kind, issue.severity) == ("v", "view", "error")
    assert issue.field_path == "views.v.udfs"
    assert 'udfs = ["plus_one"]' in issue.message
    assert not result.ok


@pytest.mark.parametrize(
    ("mode", "severity", "ok"),
    [("error", "error", False), ("warn", "warning", True), ("ignore", "info", True)],
)
def test_an_undeclared_udf_call_takes_its_severity_from_the_mode(
    project: Project, mode: str, severity: str, ok: bool
) -> None:
    udf_undeclared(project)
    run = run_pipeline(project.root / "manifest.toml", execute=False, mode=mode)  # type: ignore[arg-type]
    assert only(run.validation, PolicyCode.UDF_UNDECLARED).severity == severity
    assert run.validation.ok is ok


def test_the_plan_records_what_a_view_calls_beside_what_it_declares(project: Project) -> None:
    udf_undeclared(project)
    run = run_pipeline(project.root / "manifest.toml", execute=False)
    (node,) = run.plan.view_nodes
    assert (node.declared_udfs, node.called_udfs, node.required_udfs) == (
        (),
        ("plus_one",),
        ("plus_one",),
    )
    # the bundle still says what the view needs to run; the finding says it is undeclared
    assert run.plan.plan_bundles_by_view["v"].required_udfs == ("plus_one",)


def test_a_declaration_the_view_never_calls_is_a_warning(project: Project) -> None:
    result = udf_declared_unused(project)
    issue = only(result, PolicyCode.UDF_DECLARED_UNUSED)
    assert (issue.subject, issue.severity, issue.field_path) == ("v", "warning", "views.v.udfs")
    assert "plus_one" in issue.message
    assert result.ok  # a warning does not fail validation


UPSTREAM_CALLS = """
[views.up]
sql = "SELECT plus_one(a) AS p, plus_one(b), a FROM t"
udfs = ["plus_one"]
"""


def test_a_view_reading_a_udf_calling_view_need_not_declare_that_udf(project: Project) -> None:
    """The upstream view's calls are the upstream view's to declare (DataFusion inlines it
    into the reader's plan), even through an alias; the reader still requires the UDF."""
    project.table()
    project.file("plus_udfs.py", UDF_MODULE)
    run = run_pipeline(
        project.manifest(
            TABLE
            + CLEAN_POLICY
            + PLUS_ONE
            + UPSTREAM_CALLS
            + '[views.down]\nsql = "SELECT u.p, u.\\"plus_one(t.b)\\" AS q FROM up AS u"\n'
        ),
        execute=False,
    )
    assert run.validation.issues == ()
    nodes = {node.name: node for node in run.plan.view_nodes}
    assert nodes["down"].called_udfs == ()
    assert nodes["down"].required_udfs == ("plus_one",)


def test_twin_a_reader_calling_the_udf_itself_must_declare_it(project: Project) -> None:
    project.table()
    project.file("plus_udfs.py", UDF_MODULE)
    result = project.validate(
        TABLE
        + CLEAN_POLICY
        + PLUS_ONE
        + UPSTREAM_CALLS
        + '[views.down]\nsql = "SELECT plus_one(p) AS q FROM up"\n'
    )
    assert [(i.code, i.subject) for i in result.issues] == [(PolicyCode.UDF_UNDECLARED, "down")]


# -- one Delta protocol finding per dataset (issue 19.4) -------------------------------------


def test_a_dataset_read_by_many_scan_units_gets_one_protocol_finding(project: Project) -> None:
    project.table()
    run = run_pipeline(
        project.manifest(
            TABLE
            + "[policy]\nsmall_input_rows = 0\n"
            + '[views.v]\nsql = "SELECT a FROM t"\n'
            + '[views.w]\nsql = "SELECT b FROM t WHERE a > 3"\n'
            + '[views.x]\nsql = "SELECT a, b FROM t"\n'
        ),
        execute=False,
    )
    assert len(run.plan.scan_units) == 3
    (issue,) = run.validation.issues
    assert issue.code == PolicyCode.DELTA_PROTOCOL_SUPPORT_UNCONFIGURED
    assert (issue.subject, issue.subject_kind) == ("t", "dataset")
    assert issue.field_path == "policy.delta_support"
    # what to write in [policy.delta_support]: the table's own versions and features
    assert "max_reader_version = 1, max_writer_version = 2" in issue.message
    assert "views v, w, x" in issue.message


def test_an_incompatible_table_names_its_versions_features_and_the_short_setting(
    project: Project,
) -> None:
    project.table(config=DV)
    result = project.validate(TABLE + ALMOST_DV_SUPPORT + '[views.v]\nsql = "SELECT a FROM t"\n')
    issue = only(result, PolicyCode.DELTA_PROTOCOL_INCOMPATIBLE)
    assert (issue.subject, issue.subject_kind) == ("t", "dataset")
    assert issue.field_path == "policy.delta_support.reader_features"
    assert "reader version 3 and writer version 7" in issue.message
    assert "unsupported reader features: deletionVectors" in issue.message
    assert '"deletionVectors"' in issue.message  # the lists to paste
