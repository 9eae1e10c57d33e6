"""The strategies module itself: its public API, what its cases write, and its coverage.

* the facade's ``__all__`` lists exactly the public names its private modules define, each
  documented;
* a written manifest decodes (TOML or JSON) to exactly the case's document;
* every grammar production is generated: a bounded sweep, then a search for any the sweep
  missed (so a generator change that silently drops one fails here);
* the real ``planguard`` console script rejects hostile cases with exit code 2, a code
  and no traceback.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from pytest_planguard import strategies
from pytest_planguard.hypothesis_profiles import scaled_examples
from pytest_planguard.strategies import (
    GRAMMAR_FEATURES,
    HostileCase,
    ManifestCase,
    _internal,
    delta_protocols,
    hostile_manifests,
    manifests,
    runtime_profiles,
)

GENERATION = [HealthCheck.too_slow]


def _plain(value: Any) -> Any:
    if isinstance(value, MappingProxyType | dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def _defined_public_names(module: Any) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", module.__name__) == module.__name__
    }


def _private_modules() -> list[Any]:
    """The facade's private modules, except the SQL grammar (whose public names its
    sibling modules use; none is part of the facade)."""
    return [
        importlib.import_module(f"{_internal.__name__}.{info.name}")
        for info in pkgutil.iter_modules(_internal.__path__)
        if info.name != "sqlgen"
    ]


def test_all_lists_exactly_the_public_names() -> None:
    modules = _private_modules()
    defined = set().union(*(_defined_public_names(module) for module in modules))
    assert sorted(strategies.__all__) == sorted(defined)
    for name in strategies.__all__:  # each resolves through the facade to its definition
        assert any(vars(module).get(name) is getattr(strategies, name) for module in modules)
    assert _defined_public_names(strategies) <= set(strategies.__all__)


def test_every_public_callable_and_class_is_documented() -> None:
    undocumented = [
        name
        for name in strategies.__all__
        if callable(getattr(strategies, name)) and not inspect.getdoc(getattr(strategies, name))
    ]
    assert undocumented == []


def test_the_export_check_can_fail() -> None:
    fake = type(sys)("fake_strategies")
    fake.__dict__.update({"public_helper": lambda: None, "_private": 1, "CONSTANT": 2})
    fake.public_helper.__module__ = "fake_strategies"
    assert _defined_public_names(fake) == {"public_helper", "CONSTANT"}


@settings(max_examples=scaled_examples(2.0), suppress_health_check=GENERATION)
@given(case=manifests(), rng=st.randoms(use_true_random=False))
def test_written_manifest_decodes_to_the_document(case: ManifestCase, rng: Any) -> None:
    for variant in (case, case.reordered(rng)):
        text = variant.manifest_bytes().decode("utf-8")
        decoded = json.loads(text) if variant.manifest_format == "json" else tomllib.loads(text)
        assert decoded == _plain(variant.document)
        assert list(decoded["views"]) == list(variant.document["views"])  # order is kept


@settings(max_examples=scaled_examples(1.0), suppress_health_check=GENERATION)
@given(case=manifests(max_rows=2), protocol=delta_protocols(), runtime=runtime_profiles())
def test_write_materializes_tables_files_and_manifest(
    case: ManifestCase, protocol: Any, runtime: Any, case_dir: Callable[[], Path]
) -> None:
    directory = case_dir()
    path = case.write(directory)
    assert path == directory / case.file_name
    for relative in case.files:
        assert (directory / relative).is_file()
    for table in case.tables:
        location = directory / table.location
        if table.format == "delta":
            assert (location / "_delta_log").is_dir()
        else:
            assert location.is_file() or any(location.glob("*.parquet"))
    assert set(protocol.configuration) <= {
        "delta.appendOnly",
        "delta.enableChangeDataFeed",
        "delta.columnMapping.mode",
        "delta.enableDeletionVectors",
        "delta.minReaderVersion",
        "delta.minWriterVersion",
    }
    assert runtime.get("planning_budget_ms", 10_000) >= 10_000


def _seen(strategy: st.SearchStrategy[Any], label: Callable[[Any], set[str]], n: int) -> set[str]:
    seen: set[str] = set()

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        seen.update(label(value))

    collect()
    return seen


def _reachable(strategy: st.SearchStrategy[Any], feature: str, n: int) -> bool:
    """Whether a search of up to ``n`` generated examples finds one with ``feature``."""
    try:
        find(
            strategy,
            lambda case: feature in case.features,
            settings=settings(
                max_examples=n,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            ),
        )
    except NoSuchExample:
        return False
    return True


def test_every_grammar_production_occurs() -> None:
    # One derandomized sweep finds most productions cheaply.  It is not the same sweep in
    # every process (Hypothesis mixes constants from the loaded modules into generation,
    # and a CI worker has loaded others), so a production the sweep missed is searched
    # for on its own before it counts as dropped.
    seen = _seen(manifests(), lambda case: set(case.features), 250)
    missing = [
        f for f in sorted(set(GRAMMAR_FEATURES) - seen) if not _reachable(manifests(), f, 2000)
    ]
    assert missing == []


def test_coverage_check_can_fail() -> None:
    narrowed = manifests(max_views=1, udfs=False, formats=("parquet",))
    seen = _seen(narrowed, lambda c: c.features, 20)
    assert {"udf", "delta"} & seen == set()
    assert not _reachable(narrowed, "udf", 200)


@pytest.mark.parametrize(
    "arguments",
    [
        {"formats": ()},
        {"formats": ("csv",)},
        {"min_views": 0},
        {"min_views": 3, "max_views": 2},
        {"max_datasets": 0},
        {"max_rows": -1},
    ],
)
def test_manifests_rejects_bad_arguments(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"formats|views|max_"):
        manifests(**arguments)


def test_hostile_manifests_rejects_unknown_mutations() -> None:
    with pytest.raises(ValueError, match="nope"):
        hostile_manifests(mutations=("cycle", "nope"))


def test_hostile_case_writes_its_links_and_directories(tmp_path: Path) -> None:
    case = HostileCase(
        mutation="escape_root",
        description="through a symlink",
        expected_codes=frozenset({"MANIFEST_LOCATION_ESCAPES_ROOT"}),
        manifest_name="manifest.toml",
        manifest=b'[datasets.t_1]\nformat = "delta"\nlocation = "links/up/x"\n',
        files=MappingProxyType({"views/a.sql": b"SELECT 1"}),
        directories=("views/dir.sql",),
        symlinks=MappingProxyType({"links/up": "../.."}),
    )
    path = case.write(tmp_path)
    assert path.read_bytes() == case.manifest
    assert (tmp_path / "links" / "up").is_symlink()
    assert (tmp_path / "views" / "dir.sql").is_dir()
    case.write(tmp_path)  # writing twice replaces the links
    assert "MANIFEST_LOCATION_ESCAPES_ROOT" in repr(case)


@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=GENERATION,
)
@given(case=hostile_manifests())
def test_console_script_rejects_hostile_cases(
    case: HostileCase, case_dir: Callable[[], Path]
) -> None:
    path = case.write(case_dir())
    done = subprocess.run(
        [sys.executable, "-m", "pytest_planguard.cli", "compile", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert any(done.stderr.startswith(f"error[{code}] ") for code in case.expected_codes), (
        done.stderr
    )
    assert "Traceback" not in done.stderr
