"""Stage *semantic context*: a real DataFusion session over real Delta / Parquet tables.

Registrations are checked by querying them through the session; settings by reading
``information_schema.df_settings``; the resolver by object identity.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import deltalake
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reference_impl.engine.data_source import DataSourceConfig, register_dataset
from reference_impl.engine.runtime import DataFusionRuntimeProfile, build_runtime_profile
from reference_impl.engine.session import (
    SemanticExecutionContext,
    build_semantic_execution_context,
    new_session,
)
from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
from reference_impl.semantics.program import (
    DatasetBinding,
    DatasetBindings,
    SemanticProgramManifest,
)

WriteManifest = Callable[..., Path]
DeltaTableFactory = Callable[..., Path]

UDF_MODULE = """
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import udf

def _double(values: pa.Array) -> pa.Array:
    return pc.multiply(values, 2)

double_it = udf(_double, [pa.int64()], pa.int64(), "immutable", name="double_it")

def make_double_it():
    return udf(_double, [pa.int64()], pa.int64(), "immutable", name="double_it")
"""

MANIFEST = """
[datasets.events]
format = "delta"
location = "events"

[datasets.clicks]
format = "parquet"
location = "clicks"

[views.big_events]
sql = "SELECT id, amount FROM events WHERE amount > 10"

[views.doubled]
sql = "SELECT id, double_it(amount) AS doubled FROM big_events"
udfs = ["double_it"]

[views.click_counts]
sql = "SELECT page, count(*) AS n FROM clicks GROUP BY page"

[udfs.double_it]
provider = "session_udfs:double_it"

[runtime]
target_partitions = 3
batch_size = 1024
list_files_cache_limit = "2M"
list_files_cache_ttl = "1m30s"
metadata_cache_limit = "7M"
"""


def write_clicks(root: Path) -> None:
    (root / "clicks").mkdir()
    pq.write_table(pa.table({"page": ["a", "b", "a"]}), root / "clicks" / "part-0.parquet")
    pq.write_table(pa.table({"page": ["c"]}), root / "clicks" / "part-1.parquet")


@pytest.fixture
def program(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> SemanticProgramManifest:
    delta_table("events", {"id": [1, 2, 3, 4], "amount": [5, 20, 30, 40]})
    path = write_manifest(MANIFEST)
    write_clicks(path.parent)
    (path.parent / "session_udfs.py").write_text(UDF_MODULE, encoding="utf-8")
    return compile_semantic_program(load_manifest(path))


@pytest.fixture
def semantic(program: SemanticProgramManifest) -> SemanticExecutionContext:
    return build_semantic_execution_context(program, build_runtime_profile(program))


def settings(ctx: object, prefix: str = "datafusion.") -> dict[str, str | None]:
    rows = ctx.sql(  # type: ignore[attr-defined]
        f"SELECT name, value FROM information_schema.df_settings WHERE name LIKE '{prefix}%'"
    ).to_pydict()
    return dict(zip(rows["name"], rows["value"], strict=True))


# -- registrations, checked through the session -------------------------------------------


def test_delta_and_parquet_datasets_are_queryable_through_the_session(
    semantic: SemanticExecutionContext,
) -> None:
    ctx = semantic.session
    assert ctx.sql("SELECT sum(amount) AS s FROM events").to_pydict() == {"s": [95]}
    assert ctx.sql("SELECT count(*) AS n FROM clicks").to_pydict() == {"n": [4]}
    events = semantic.datasets["events"]
    assert (events.format, events.delta_version) == ("delta", 0)
    assert events.delta_protocol is not None
    assert events.location == semantic.dataset_resolver.require_location("events")
    clicks = semantic.datasets["clicks"]
    assert (clicks.format, clicks.delta_version, clicks.delta_protocol) == ("parquet", None, None)


def test_the_context_repr_executes_no_view_frame(semantic: SemanticExecutionContext) -> None:
    """A DataFrame's repr executes it, and an executed DataFrame shows runtime filter
    values in its physical plan: a repr of the context (a failing assert, a log line) must
    leave the frames the bundles are planned from untouched."""
    frame = semantic.view_frames["big_events"]
    before = frame.execution_plan().display_indent()
    shown = repr(semantic)
    assert "DataFrame" not in shown
    assert "view_frames" not in shown
    assert "manifest=" in shown  # the rest is still shown
    assert frame.execution_plan().display_indent() == before


def test_views_are_registered_in_topological_order_and_queryable(
    semantic: SemanticExecutionContext,
) -> None:
    ctx = semantic.session
    assert semantic.view_failures == {}
    assert set(semantic.view_frames) == {"big_events", "doubled", "click_counts"}
    doubled = ctx.sql("SELECT id, doubled FROM doubled ORDER BY id").to_pydict()
    assert doubled == {"id": [2, 3, 4], "doubled": [40, 60, 80]}
    counts = ctx.sql("SELECT page, n FROM click_counts ORDER BY page").to_pydict()
    assert counts == {"page": ["a", "b", "c"], "n": [2, 1, 1]}
    tables = ctx.sql(
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = 'public' ORDER BY table_name"
    ).to_pydict()
    assert dict(zip(tables["table_name"], tables["table_type"], strict=True)) == {
        "big_events": "VIEW",
        "click_counts": "VIEW",
        "clicks": "BASE TABLE",
        "doubled": "VIEW",
        "events": "BASE TABLE",
    }


def test_view_frames_hold_each_views_plan_and_schema(semantic: SemanticExecutionContext) -> None:
    frame = semantic.view_frames["big_events"]
    assert "Filter" in frame.logical_plan().display_indent()
    assert frame.schema().names == ["id", "amount"]


def test_udfs_are_registered_from_their_providers(semantic: SemanticExecutionContext) -> None:
    assert semantic.registered_udfs == ("double_it",)
    routines = semantic.session.sql(
        "SELECT routine_name FROM information_schema.routines WHERE routine_name = 'double_it'"
    ).to_pydict()
    assert routines["routine_name"] == ["double_it"]
    assert semantic.session.sql("SELECT double_it(21) AS x").to_pydict() == {"x": [42]}


def test_a_udf_factory_provider_is_called(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("events", {"id": [1], "amount": [7]})
    text = MANIFEST.replace("session_udfs:double_it", "session_udfs_factory:make_double_it")
    path = write_manifest(text)
    write_clicks(path.parent)
    (path.parent / "session_udfs_factory.py").write_text(UDF_MODULE, encoding="utf-8")
    program = compile_semantic_program(load_manifest(path))
    semantic = build_semantic_execution_context(program, build_runtime_profile(program))
    assert semantic.session.sql("SELECT double_it(4) AS x").to_pydict() == {"x": [8]}


def test_udfs_disabled_registers_none_and_records_the_failing_view(
    program: SemanticProgramManifest,
) -> None:
    profile = build_runtime_profile(program)
    disabled = msgspec.structs.replace(
        profile, features=msgspec.structs.replace(profile.features, enable_udfs=False)
    )
    semantic = build_semantic_execution_context(program, disabled)
    assert semantic.registered_udfs == ()
    failure = semantic.view_failures["doubled"]
    assert (failure.kind, failure.function) == ("unknown_function", "double_it")
    assert "doubled" not in semantic.view_frames
    assert semantic.session.sql("SELECT count(*) AS n FROM big_events").to_pydict() == {"n": [3]}


def test_view_failures_are_classified_and_propagate_downstream(
    write_manifest: WriteManifest, delta_table: DeltaTableFactory
) -> None:
    delta_table("t", {"a": [1, 2]})
    path = write_manifest(
        """
        [datasets.t]
        format = "delta"
        location = "t"

        [views.unknown_fn]
        sql = "SELECT no_such_fn(a) AS x FROM t"

        [views.bad_column]
        sql = "SELECT no_such_column FROM t"

        [views.downstream]
        sql = "SELECT * FROM bad_column"

        [views.fine]
        sql = "SELECT a FROM t"
        """
    )
    program = compile_semantic_program(load_manifest(path))
    semantic = build_semantic_execution_context(program, build_runtime_profile(program))
    failures = semantic.view_failures
    assert (failures["unknown_fn"].kind, failures["unknown_fn"].function) == (
        "unknown_function",
        "no_such_fn",
    )
    assert failures["bad_column"].kind == "planning_error"
    assert "no_such_column" in failures["bad_column"].message
    assert (failures["downstream"].kind, failures["downstream"].upstream) == (
        "upstream_failed",
        "bad_column",
    )
    assert set(failures) == {"unknown_fn", "bad_column", "downstream"}
    assert set(semantic.view_frames) == {"fine"}


# -- the resolver ------------------------------------------------------------------------


def test_the_dataset_resolver_is_the_manifests_own_bindings_object(
    program: SemanticProgramManifest, semantic: SemanticExecutionContext
) -> None:
    assert semantic.manifest is program
    assert semantic.dataset_resolver is program.dataset_bindings


def test_registration_goes_through_the_resolver_it_is_given(
    semantic: SemanticExecutionContext, delta_table: DeltaTableFactory
) -> None:
    """Re-registering through a resolver that points elsewhere reads the other table."""
    other = delta_table("other_events", {"id": [9], "amount": [1000]})
    resolver = DatasetBindings(
        bindings={
            "events": DatasetBinding(
                name="events", format="delta", declared_location="x", location=str(other)
            )
        },
        source="test",
    )
    register_dataset(semantic.session, resolver, "events")
    assert semantic.session.sql("SELECT sum(amount) AS s FROM events").to_pydict() == {"s": [1000]}


def test_registering_at_a_version_pins_the_table(
    semantic: SemanticExecutionContext,
) -> None:
    location = semantic.dataset_resolver.require_location("events")
    deltalake.write_deltalake(location, pa.table({"id": [5], "amount": [50]}), mode="append")
    ctx = semantic.session
    latest = register_dataset(ctx, semantic.dataset_resolver, "events")
    assert latest.delta_version == 1
    assert ctx.sql("SELECT count(*) AS n FROM events").to_pydict() == {"n": [5]}
    pinned = register_dataset(ctx, semantic.dataset_resolver, "events", version=0)
    assert pinned.delta_version == 0
    assert ctx.sql("SELECT count(*) AS n FROM events").to_pydict() == {"n": [4]}


# -- DataSourceConfig modes --------------------------------------------------------------


def unresolved_bindings() -> DatasetBindings:
    return DatasetBindings(
        bindings={
            "known": DatasetBinding(
                name="known", format="delta", declared_location="k", location="/data/known"
            ),
            "floating": DatasetBinding(
                name="floating", format="delta", declared_location="f", location=None
            ),
        },
        source="manifest.toml",
    )


@pytest.mark.parametrize("name", ["floating", "undeclared"])
def test_semantic_authority_fails_closed_on_an_unresolved_location(name: str) -> None:
    config = DataSourceConfig(mode="semantic-authority", resolver=unresolved_bindings())
    with pytest.raises(ReferenceImplError) as info:
        config.resolve(name)
    assert info.value.code == ErrorCode.DATASET_LOCATION_UNRESOLVED
    assert info.value.subjects == (name,)
    assert info.value.file == "manifest.toml"


def test_semantic_authority_ignores_a_fallback_root() -> None:
    config = DataSourceConfig(
        mode="semantic-authority", resolver=unresolved_bindings(), fallback_root="/fallback"
    )
    with pytest.raises(ReferenceImplError) as info:
        config.resolve("floating")
    assert info.value.code == ErrorCode.DATASET_LOCATION_UNRESOLVED


@pytest.mark.parametrize("name", ["floating", "undeclared"])
def test_runtime_bootstrap_falls_back_to_the_profile_root(name: str) -> None:
    config = DataSourceConfig(
        mode="runtime-bootstrap", resolver=unresolved_bindings(), fallback_root="/fallback"
    )
    assert config.resolve(name) == os.path.join("/fallback", name)


@pytest.mark.parametrize("mode", ["semantic-authority", "runtime-bootstrap"])
def test_a_resolved_location_wins_in_both_modes(mode: str) -> None:
    config = DataSourceConfig(
        mode=mode,  # type: ignore[arg-type]
        resolver=unresolved_bindings(),
        fallback_root="/fallback",
    )
    assert config.resolve("known") == "/data/known"


def test_runtime_bootstrap_without_a_fallback_root_fails_closed() -> None:
    config = DataSourceConfig(mode="runtime-bootstrap", resolver=unresolved_bindings())
    with pytest.raises(ReferenceImplError) as info:
        config.resolve("floating")
    assert info.value.code == ErrorCode.DATASET_LOCATION_UNRESOLVED


def test_register_dataset_in_each_mode_over_a_real_table(
    tmp_path: Path, delta_table: DeltaTableFactory
) -> None:
    delta_table("fallback/floating", {"a": [1, 2, 3]})
    profile = build_runtime_profile_for_tests()
    ctx = new_session(profile)
    with pytest.raises(ReferenceImplError) as info:
        register_dataset(ctx, unresolved_bindings(), "floating")
    assert info.value.code == ErrorCode.DATASET_LOCATION_UNRESOLVED
    assert not ctx.table_exist("floating")
    registered = register_dataset(
        ctx,
        unresolved_bindings(),
        "floating",
        mode="runtime-bootstrap",
        fallback_root=str(tmp_path / "fallback"),
    )
    assert registered.location == str(tmp_path / "fallback" / "floating")
    assert ctx.sql("SELECT count(*) AS n FROM floating").to_pydict() == {"n": [3]}


def build_runtime_profile_for_tests() -> DataFusionRuntimeProfile:
    from reference_impl.engine.runtime import runtime_profile_from_specs
    from reference_impl.semantics.model import PolicySpec, RuntimeSpec

    return runtime_profile_from_specs(RuntimeSpec(), PolicySpec())


# -- pinned settings ---------------------------------------------------------------------


def test_session_settings_are_pinned_from_the_profile(semantic: SemanticExecutionContext) -> None:
    df = settings(semantic.session, "datafusion.execution.")
    assert df["datafusion.execution.target_partitions"] == "3"
    assert df["datafusion.execution.planning_concurrency"] == "3"
    assert df["datafusion.execution.batch_size"] == "1024"
    assert df["datafusion.execution.collect_statistics"] == "true"
    for key, value in semantic.runtime_profile.session_settings.items():
        assert settings(semantic.session, key)[key] == value


def test_planning_concurrency_can_be_pinned_apart_from_target_partitions(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest("[runtime]\ntarget_partitions = 2\nplanning_concurrency = 5\n")
    program = compile_semantic_program(load_manifest(path))
    ctx = new_session(build_runtime_profile(program))
    df = settings(ctx, "datafusion.execution.")
    assert df["datafusion.execution.target_partitions"] == "2"
    assert df["datafusion.execution.planning_concurrency"] == "5"


def test_default_partitioning_is_pinned_not_the_cpu_count(write_manifest: WriteManifest) -> None:
    program = compile_semantic_program(load_manifest(write_manifest("[project]\nname = 'x'\n")))
    df = settings(new_session(build_runtime_profile(program)), "datafusion.execution.")
    assert df["datafusion.execution.target_partitions"] == "4"
    assert df["datafusion.execution.planning_concurrency"] == "4"


def test_runtime_cache_settings_are_applied_with_set(semantic: SemanticExecutionContext) -> None:
    df = settings(semantic.session, "datafusion.runtime.")
    assert df["datafusion.runtime.list_files_cache_limit"] == "2M"
    assert df["datafusion.runtime.list_files_cache_ttl"] == "1m30s"
    assert df["datafusion.runtime.metadata_cache_limit"] == "7M"
    assert set(semantic.runtime_profile.runtime_settings) == {
        "datafusion.runtime.list_files_cache_limit",
        "datafusion.runtime.list_files_cache_ttl",
        "datafusion.runtime.metadata_cache_limit",
    }


def test_runtime_settings_differ_from_the_engine_defaults_only_when_set() -> None:
    """Twin: a bare SessionContext does not have the profile's runtime values."""
    from datafusion import SessionConfig, SessionContext

    bare = SessionContext(SessionConfig({"datafusion.catalog.information_schema": "true"}))
    df = settings(bare, "datafusion.runtime.")
    assert df["datafusion.runtime.metadata_cache_limit"] != "7M"
    assert df["datafusion.runtime.list_files_cache_limit"] != "2M"


# -- bootstrap -----------------------------------------------------------------------------

BOOTSTRAP_MODULE = """
from pathlib import Path
import deltalake
import pyarrow as pa

def make(root: Path) -> None:
    calls = root / "calls.txt"
    calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
    deltalake.write_deltalake(str(root / "data" / "t"), pa.table({"a": [1, 2]}))
"""


def test_the_bootstrap_hook_creates_missing_data_once(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        [project]
        bootstrap = "make_session_data:make"

        [datasets.t]
        format = "delta"
        location = "data/t"
        """
    )
    (path.parent / "make_session_data.py").write_text(BOOTSTRAP_MODULE, encoding="utf-8")
    program = compile_semantic_program(load_manifest(path))
    profile = build_runtime_profile(program)
    first = build_semantic_execution_context(program, profile)
    assert first.session.sql("SELECT count(*) AS n FROM t").to_pydict() == {"n": [2]}
    build_semantic_execution_context(program, profile)
    assert (path.parent / "calls.txt").read_text() == "x", "not called when data exists"
