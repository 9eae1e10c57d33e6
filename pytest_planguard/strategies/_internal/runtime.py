"""Strategies for ``[runtime]`` tables and Delta table protocols (with the
``[policy.delta_support]`` tables that accept or refuse them)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from pytest_planguard.strategies._internal.cases import DeltaProtocolCase

_KNOWN_READER_FEATURES = (
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "typeWidening",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "variantType",
)
_KNOWN_WRITER_FEATURES = (
    "appendOnly",
    "changeDataFeed",
    "checkConstraints",
    "columnMapping",
    "deletionVectors",
    "domainMetadata",
    "generatedColumns",
    "icebergCompatV1",
    "identityColumns",
    "inCommitTimestamp",
    "invariants",
    "rowTracking",
    "timestampNtz",
    "typeWidening",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "variantType",
)
_DELTA_CONFIGURATIONS: tuple[Mapping[str, str], ...] = tuple(
    MappingProxyType(config)
    for config in (
        {},
        {"delta.appendOnly": "true"},
        {"delta.enableChangeDataFeed": "true"},
        {"delta.columnMapping.mode": "name"},
        {"delta.enableDeletionVectors": "true"},
        {"delta.enableDeletionVectors": "true", "delta.appendOnly": "true"},
        {"delta.minReaderVersion": "1", "delta.minWriterVersion": "3"},
        {"delta.minReaderVersion": "2", "delta.minWriterVersion": "5"},
    )
)
"""Table properties deltalake 1.6 accepts; they yield protocols (1,2) through (3,7)."""


@st.composite
def runtime_profiles(draw: st.DrawFn, *, min_planning_budget_ms: int = 10_000) -> Mapping[str, Any]:
    """``[runtime]`` tables valid for manifest format v1 (read-only mappings).

    Each key is present or left to its default at random.  ``planning_budget_ms`` stays
    at or above ``min_planning_budget_ms`` so that tiny fuzz views never hit the budget
    (a budget hit is a legitimate, timing-dependent finding).
    """
    table: dict[str, Any] = {}
    for key, strategy in _runtime_candidates(min_planning_budget_ms).items():
        if draw(st.integers(0, 2)) == 0:
            table[key] = draw(strategy)
    return MappingProxyType(table)


def _size(number: int, fraction: str, unit: str) -> str:
    return f"{number}{fraction}{unit}"


def _ttl(minutes: int, seconds: int) -> str:
    return (f"{minutes}m" if minutes else "") + f"{seconds}s"


@functools.cache
def _runtime_candidates(min_planning_budget_ms: int) -> Mapping[str, st.SearchStrategy[Any]]:
    # sizes stay within the model's ceiling of 1024G (reference_impl.semantics.model)
    sizes = st.builds(
        _size, st.integers(0, 1023), st.sampled_from(("", ".5", ".25")), st.sampled_from("KMG")
    )
    return MappingProxyType(
        {
            "target_partitions": st.integers(1, 8),
            "planning_concurrency": st.integers(1, 8),
            "batch_size": st.integers(1, 65_536),
            "collect_statistics": st.booleans(),
            "meta_fetch_concurrency": st.integers(1, 64),
            "list_files_cache_limit": sizes,
            "list_files_cache_ttl": st.builds(_ttl, st.integers(0, 10), st.integers(1, 59)),
            "metadata_cache_limit": sizes,
            "planning_budget_ms": st.integers(min_planning_budget_ms, 600_000),
            "enable_udfs": st.booleans(),
            "cache_min_consumers": st.integers(0, 4),
            "statistics": st.sampled_from(("scan", "plan")),
            "stats_fallback": st.sampled_from(("warn", "error", "ignore")),
            "retain_plans": st.lists(st.sampled_from(("P0", "P1", "P2")), unique=True),
        }
    )


def _support(
    reader: int, writer: int, reader_features: list[str], writer_features: list[str]
) -> Mapping[str, Any]:
    return MappingProxyType(
        {
            "max_reader_version": reader,
            "max_writer_version": writer,
            "reader_features": reader_features,
            "writer_features": writer_features,
        }
    )


@functools.cache
def _delta_supports() -> st.SearchStrategy[Mapping[str, Any] | None]:
    permissive = st.just(
        MappingProxyType(
            {
                "max_reader_version": 3,
                "max_writer_version": 7,
                "reader_features": list(_KNOWN_READER_FEATURES),
                "writer_features": list(_KNOWN_WRITER_FEATURES),
            }
        )
    )
    drawn = st.builds(
        _support,
        st.integers(1, 3),
        st.integers(1, 7),
        st.lists(st.sampled_from(_KNOWN_READER_FEATURES), unique=True),
        st.lists(st.sampled_from(_KNOWN_WRITER_FEATURES), unique=True),
    )
    return st.one_of(st.none(), permissive, drawn)


@functools.cache
def delta_protocols() -> st.SearchStrategy[DeltaProtocolCase]:
    """Delta protocols from (1, 2) up to (3, 7) with table features, and support tables."""
    return st.builds(
        DeltaProtocolCase,
        configuration=st.sampled_from(_DELTA_CONFIGURATIONS),
        timestamp_ntz=st.booleans(),
        support=_delta_supports(),
    )
