"""Contracts produced by semantic compile: the program manifest and its dataset resolver.

Engine-free: nothing here imports DataFusion or Delta.  ``DatasetBindings`` is *the*
resolver object of a run: the semantic context, scan overrides and execution all hold
this very object (resolver identity is one of the invariants the plugin checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.model import PolicySpec, RuntimeSpec

ANALYSES_PREFIX = "analyses:"
"""Key prefix of the stored SQL analyses of a manifest's views in a store shared between
runs (:class:`reference_impl.semantics.compile.AnalysisStore`, a plan gate's cache)."""

SEMANTIC_CONTRACT_VERSION = "semantic/1"


class StoreDeclaration(msgspec.Struct, frozen=True, kw_only=True):
    """``[storage.<name>]`` as compiled: where the store is and how to reach it.

    ``secrets`` maps an option to the *name* of the environment variable holding its
    value; values are read only by the engine (:mod:`reference_impl.engine.object_store`)
    and never stored in a contract."""

    name: str
    url: str
    options: Mapping[str, str]
    secrets: Mapping[str, str]

    @property
    def bucket(self) -> str:
        return self.url.split("://", 1)[1].split("/", 1)[0]

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]


class DatasetBinding(msgspec.Struct, frozen=True, kw_only=True):
    """One input table: its declared (manifest-relative) and resolved location."""

    name: str
    format: Literal["delta", "parquet"]
    declared_location: str | None
    location: str | None
    """Absolute, or the URL itself for a table on a store; None when the manifest declares
    none (``runtime-bootstrap`` only)."""
    store: str | None = None
    """The ``[storage.*]`` store serving ``location`` (None: a local path)."""


class DatasetBindings(msgspec.Struct, frozen=True, kw_only=True):
    """The dataset resolver: name -> location, failing closed on demand."""

    bindings: Mapping[str, DatasetBinding]
    source: str
    stores: Mapping[str, StoreDeclaration] = {}
    """The manifest's ``[storage.*]`` stores, by name (datasets and outputs name theirs)."""

    def names(self) -> tuple[str, ...]:
        """Dataset names, sorted."""
        return tuple(sorted(self.bindings))

    def has_location(self, name: str) -> bool:
        binding = self.bindings.get(name)
        return binding is not None and binding.location is not None

    def location(self, name: str) -> str | None:
        binding = self.bindings.get(name)
        return None if binding is None else binding.location

    def binding(self, name: str) -> DatasetBinding:
        try:
            return self.bindings[name]
        except KeyError:
            raise ReferenceImplError(
                ErrorCode.DATASET_LOCATION_UNRESOLVED,
                f"dataset {name!r} is not declared in the manifest",
                file=self.source,
                field_path=f"datasets.{name}",
                subjects=(name,),
            ) from None

    def require_location(self, name: str) -> str:
        """The resolved location of ``name``; a coded error when there is none."""
        location = self.binding(name).location
        if location is None:
            raise ReferenceImplError(
                ErrorCode.DATASET_LOCATION_UNRESOLVED,
                f"dataset {name!r} has no resolved location",
                file=self.source,
                field_path=f"datasets.{name}.location",
                subjects=(name,),
            )
        return location


class SemanticView(msgspec.Struct, frozen=True, kw_only=True):
    """One view after analysis: its SQL and what it reads."""

    name: str
    sql: str
    depends_on: tuple[str, ...]
    """Every dataset and view the SQL reads, sorted."""
    view_dependencies: tuple[str, ...]
    dataset_dependencies: tuple[str, ...]
    declared_udfs: tuple[str, ...]
    executor: str


class OutputBinding(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    view: str
    declared_location: str | None
    location: str | None
    """Absolute; None when the manifest declares none (``runtime-bootstrap`` only): the
    engine's ``DataSourceConfig.resolve_output`` gives the location written."""
    format: Literal["delta"]
    mode: Literal["overwrite", "append"]
    schema_mode: Literal["strict", "overwrite", "merge"] = "strict"
    store: str | None = None
    """The ``[storage.*]`` store serving ``location`` (None: a local path)."""


class UdfDeclaration(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    provider: str


class ExecutorDeclaration(msgspec.Struct, frozen=True, kw_only=True):
    """``[executors.<name>]``: a non-DataFusion executor and its ``module:callable``."""

    name: str
    provider: str


class SemanticProgramManifest(msgspec.Struct, frozen=True, kw_only=True):
    """The compiled semantic program: views in topological order plus every binding."""

    manifest_version: int
    semantic_contract_version: str
    source_path: str
    root: str
    project_name: str | None
    bootstrap: str | None
    dataset_bindings: DatasetBindings
    views: tuple[SemanticView, ...]
    outputs: tuple[OutputBinding, ...]
    udfs: tuple[UdfDeclaration, ...]
    runtime: RuntimeSpec
    policy: PolicySpec
    fingerprint: str
    """The semantic fingerprint: datasets, views, outputs, UDF declarations only."""
    runtime_policy_fingerprint: str = ""
    """The declared runtime/policy fingerprint: ``[runtime]``, ``[policy]``, ``[project]``,
    ``[executors]`` (engine-free; the authority's runtime fingerprint includes it)."""
    data_source_mode: Literal["semantic-authority", "runtime-bootstrap"] = "semantic-authority"
    fallback_root: str | None = None
    """Absolute ``runtime.fallback_root`` (``runtime-bootstrap`` falls back under it)."""
    executors: tuple[ExecutorDeclaration, ...] = ()
    """Declared executors besides the built-in ``datafusion`` (availability is checked
    by execution planning, never here)."""

    def view(self, name: str) -> SemanticView:
        for view in self.views:
            if view.name == name:
                return view
        raise KeyError(name)

    def view_names(self) -> tuple[str, ...]:
        return tuple(view.name for view in self.views)
