"""Stage *semantic compile*: ``compile_semantic_program(model) -> SemanticProgramManifest``.

Engine-free.  Each view's SQL is tokenized and parsed with sqlglot: it must be exactly
one query (``MANIFEST_NOT_A_QUERY`` otherwise), it must parse (``MANIFEST_SQL_SYNTAX``),
and the tables it reads must be declared datasets or views
(``MANIFEST_UNKNOWN_REFERENCE``).  The references give the view DAG, ordered
topologically with ties broken by name (``MANIFEST_CYCLE`` names the cycle).  The
fingerprint is a sha256 over a canonical, key-sorted encoding of the semantic declarations
(datasets, views, outputs, UDFs), so the order of keys and tables in the file does not
change it; ``runtime_policy_fingerprint`` covers the rest of the manifest.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import msgspec

from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.complexity import (
    MAX_EXPANDED_SCANS,
    MAX_INLINED_DEPTH,
    MAX_INLINED_RELATIONS,
    expanded_scans,
    inlined_plan_sizes,
)
from reference_impl.semantics.load import resolve_location, store_of
from reference_impl.semantics.model import SemanticModel, StorageSpec
from reference_impl.semantics.program import (
    ANALYSES_PREFIX,
    SEMANTIC_CONTRACT_VERSION,
    DatasetBinding,
    DatasetBindings,
    ExecutorDeclaration,
    OutputBinding,
    SemanticProgramManifest,
    SemanticView,
    StoreDeclaration,
    UdfDeclaration,
)


class AnalysisStore(Protocol):
    """Where the SQL analyses of a manifest's views may be kept between processes (a
    plan gate's cache directory).  An analysis is a pure function of the view's name and
    SQL, the analysing code and sqlglot: a stored one is used only when all match."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...


def compile_semantic_program(
    model: SemanticModel, *, analyses: AnalysisStore | None = None
) -> SemanticProgramManifest:
    """Compile a loaded manifest into its semantic program (engine-free, pure).

    ``analyses``: where the views' SQL analyses are kept between runs; then sqlglot is
    not even imported when every view's analysis is known."""
    document = model.document
    shown = model.path
    stored = _StoredAnalyses(analyses, str(model.path))
    try:
        datasets = set(document.datasets)
        for name in sorted(datasets & set(document.views)):
            raise ReferenceImplError(
                ErrorCode.MANIFEST_DUPLICATE_NAME,
                f"{name!r} is declared both as a dataset and as a view",
                field_path=f"views.{name}",
                subjects=(name,),
            )
        known = datasets | set(document.views)
        reads: dict[str, Mapping[str, int]] = {}
        depths: dict[str, int] = {}
        analysed = {
            name: _analyse_view(
                name, model.view_sql[name], known, stored, reads=reads, depths=depths
            )
            for name in sorted(document.views)
        }
        stored.save()
        order = _topological_order(
            {
                name: [ref for ref in refs if ref in document.views]
                for name, refs in analysed.items()
            }
        )
        _check_expansion(order, reads, depths)
        root = Path(model.root)
        allow = document.policy.allow_external_locations
        bindings = DatasetBindings(
            bindings={
                name: DatasetBinding(
                    name=name,
                    format=spec.format,
                    declared_location=spec.location,
                    location=_resolved(
                        spec.location, root, allow, f"datasets.{name}.location", document.storage
                    ),
                    store=_store(spec.location, document.storage, f"datasets.{name}.location"),
                )
                for name, spec in sorted(document.datasets.items())
            },
            source=shown,
            stores={
                name: StoreDeclaration(
                    name=name,
                    url=store.url.rstrip("/"),
                    options=dict(sorted(store.options.items())),
                    secrets=dict(sorted(store.secrets.items())),
                )
                for name, store in sorted(document.storage.items())
            },
        )
        views = tuple(
            SemanticView(
                name=name,
                sql=model.view_sql[name],
                depends_on=tuple(sorted(analysed[name])),
                view_dependencies=tuple(sorted(r for r in analysed[name] if r in document.views)),
                dataset_dependencies=tuple(sorted(r for r in analysed[name] if r in datasets)),
                declared_udfs=tuple(sorted(set(document.views[name].udfs))),
                executor=document.views[name].executor,
            )
            for name in order
        )
        outputs = tuple(
            OutputBinding(
                name=name,
                view=spec.view,
                declared_location=spec.location,
                location=_resolved(
                    spec.location, root, allow, f"outputs.{name}.location", document.storage
                ),
                format=spec.format,
                mode=spec.mode,
                schema_mode=spec.schema_mode,
                store=_store(spec.location, document.storage, f"outputs.{name}.location"),
            )
            for name, spec in sorted(document.outputs.items())
        )
    except ReferenceImplError as err:
        raise err.with_file(shown) from None
    return SemanticProgramManifest(
        manifest_version=model.manifest_version,
        semantic_contract_version=SEMANTIC_CONTRACT_VERSION,
        source_path=model.path,
        root=model.root,
        project_name=document.project.name,
        bootstrap=document.project.bootstrap,
        dataset_bindings=bindings,
        views=views,
        outputs=outputs,
        udfs=tuple(
            UdfDeclaration(name=name, provider=spec.provider)
            for name, spec in sorted(document.udfs.items())
        ),
        runtime=document.runtime,
        policy=document.policy,
        fingerprint=semantic_fingerprint(model),
        runtime_policy_fingerprint=runtime_policy_fingerprint(model),
        data_source_mode=document.project.data_source_mode,
        fallback_root=_resolved(
            document.runtime.fallback_root,
            Path(model.root),
            document.policy.allow_external_locations,
            "runtime.fallback_root",
        ),
        executors=tuple(
            ExecutorDeclaration(name=name, provider=spec.provider)
            for name, spec in sorted(document.executors.items())
        ),
    )


def _resolved(
    location: str | None,
    root: Path,
    allow: bool,
    field_path: str,
    stores: Mapping[str, StorageSpec] | None = None,
) -> str | None:
    """The absolute location of a declared one (a URL under a declared store stays the
    URL); None when none is declared (allowed in ``runtime-bootstrap`` mode only: the
    engine's ``DataSourceConfig`` falls back)."""
    if location is None:
        return None
    if "://" in location:
        store_of(location, stores or {}, field_path=field_path)
        return location.rstrip("/")
    return str(resolve_location(location, root, allow_external=allow, field_path=field_path))


def _store(location: str | None, stores: Mapping[str, StorageSpec], field_path: str) -> str | None:
    """The store serving ``location`` (None: a local path or no location)."""
    if location is None or "://" not in location:
        return None
    return store_of(location, stores, field_path=field_path)


def _analyse_view(
    name: str,
    sql: str,
    known: set[str],
    stored: _StoredAnalyses,
    *,
    reads: dict[str, Mapping[str, int]],
    depths: dict[str, int],
) -> tuple[str, ...]:
    """Check that ``sql`` is one query and return the names it reads.

    ``reads`` receives how many times the view reads each name, CTEs inlined; ``depths``
    its longest chain of CTEs.
    """
    refs, multiplicity, depth = stored.analysis(name, sql)
    reads[name] = multiplicity
    depths[name] = depth
    for ref in refs:
        if ref not in known:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_UNKNOWN_REFERENCE,
                f"view {name!r} reads {ref!r}, which is neither a dataset nor a view",
                field_path=f"views.{name}.sql",
                subjects=(name, ref),
            )
    return refs


def clear_analysis_cache() -> None:
    """Forget the analyses of view SQL kept in this process (benchmarks start cold)."""
    import sys

    module = sys.modules.get("reference_impl.semantics.sql_analysis")
    if module is not None:
        module.clear_analysis_cache()


class _StoredAnalyses:
    """The analyses of one manifest's views: read from ``store`` once (one entry per
    manifest, each view's under the digest of its name and SQL), computed with
    :mod:`.sql_analysis` when missing, and written back once when any was."""

    def __init__(self, store: AnalysisStore | None, manifest: str) -> None:
        self.store = store
        self.key = ANALYSES_PREFIX + manifest
        self.known: dict[str, Any] = {}
        self.changed = False
        if store is not None:
            self.known = _read_analyses(store.get(self.key))

    def analysis(self, name: str, sql: str) -> tuple[tuple[str, ...], Mapping[str, int], int]:
        digest = hashlib.sha256(f"{name}\0{sql}".encode()).hexdigest()
        entry = self.known.get(digest)
        if entry is not None:
            refs, counts, depth = entry
            return tuple(refs), MappingProxyType(dict(counts)), int(depth)
        from reference_impl.semantics.sql_analysis import analyse_sql

        refs, multiplicity, depth = analyse_sql(name, sql)
        if self.store is not None:
            self.known[digest] = [list(refs), list(multiplicity.items()), depth]
            self.changed = True
        return refs, multiplicity, depth

    def save(self) -> None:
        if self.store is not None and self.changed:
            payload = {"version": _analysis_version(), "views": self.known}
            self.store.put(self.key, json.dumps(payload, sort_keys=True).encode())


def _read_analyses(data: bytes | None) -> dict[str, Any]:
    """The stored analyses, if made by this analysing code and sqlglot (else none)."""
    if data is None:
        return {}
    try:
        payload = json.loads(data)
        if payload["version"] == _analysis_version() and isinstance(payload["views"], dict):
            return dict(payload["views"])
    except (ValueError, KeyError, TypeError):
        pass
    return {}


@cache
def _analysis_version() -> str:
    """A digest of the code an analysis comes from: :mod:`.sql_analysis`,
    :mod:`.complexity` and sqlglot's version file (read, not imported)."""
    from importlib.util import find_spec

    digest = hashlib.sha256()
    here = Path(__file__).parent
    spec = find_spec("sqlglot")
    sqlglot_dir = Path(spec.origin).parent if spec and spec.origin else None
    for path in (
        here / "sql_analysis.py",
        here / "complexity.py",
        *((sqlglot_dir / "_version.py", sqlglot_dir / "__init__.py") if sqlglot_dir else ()),
    ):
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"?")
    return digest.hexdigest()


def _check_expansion(
    order: list[str], reads: Mapping[str, Mapping[str, int]], depths: Mapping[str, int]
) -> None:
    """Refuse plans that multiply or grow too deep once CTEs and upstream views are
    inlined, and manifests whose inlined plans are too large together (engine-free)."""
    expanded = expanded_scans(order, reads)
    sizes = inlined_plan_sizes(order, reads, depths)
    for name in order:
        if expanded[name] > MAX_EXPANDED_SCANS:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_SQL_TOO_COMPLEX,
                f"view {name!r} reads {expanded[name]} relations once its CTEs and upstream "
                f"views are inlined; the limit is {MAX_EXPANDED_SCANS}",
                field_path=f"views.{name}.sql",
                subjects=(name,),
            )
        if sizes[name][1] > MAX_INLINED_DEPTH:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_SQL_TOO_COMPLEX,
                f"view {name!r} chains {sizes[name][1]} views and CTEs deep once upstream "
                f"views and CTEs are inlined; the limit is {MAX_INLINED_DEPTH}",
                field_path=f"views.{name}.sql",
                subjects=(name,),
            )
    total = sum(relations for relations, _ in sizes.values())
    if total > MAX_INLINED_RELATIONS:
        largest = max(order, key=lambda name: (sizes[name][0], name))
        raise ReferenceImplError(
            ErrorCode.MANIFEST_LIMIT_EXCEEDED,
            f"the views' plans hold {total} relation reads together once upstream views "
            f"and CTEs are inlined; the limit is {MAX_INLINED_RELATIONS} (largest: view "
            f"{largest!r} with {sizes[largest][0]}; a chain of n views holds about n*n/2)",
            field_path="views",
            subjects=(largest,),
        )


def _topological_order(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Kahn's algorithm, smallest name first among the ready views."""
    dependents: dict[str, list[str]] = {name: [] for name in edges}
    remaining = dict.fromkeys(edges, 0)
    for name, deps in edges.items():
        for dep in set(deps):
            dependents[dep].append(name)
            remaining[name] += 1
    ready = [name for name, count in remaining.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for dependent in dependents[name]:
            remaining[dependent] -= 1
            if remaining[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(order) < len(edges):
        cycle = _find_cycle({n: list(d) for n, d in edges.items() if remaining[n] > 0})
        raise ReferenceImplError(
            ErrorCode.MANIFEST_CYCLE,
            "views form a cycle: " + " -> ".join(cycle),
            field_path=f"views.{cycle[0]}",
            subjects=tuple(dict.fromkeys(cycle)),
        )
    return order


def _find_cycle(edges: Mapping[str, list[str]]) -> list[str]:
    """One cycle among ``edges`` (every node there lies on or leads to a cycle)."""
    start = min(edges)
    path: list[str] = []
    position: dict[str, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = min(dep for dep in edges[node] if dep in edges)
    return [*path[position[node] :], node]


def semantic_fingerprint(model: SemanticModel) -> str:
    """sha256 over the canonical encoding of the semantics alone: datasets, views, outputs
    and UDF declarations.  ``[runtime]``, ``[policy]``, ``[project]`` and ``[executors]``
    are not semantics (they change how and where the program runs, not what it means):
    they are covered by :func:`runtime_policy_fingerprint`."""
    return hashlib.sha256(canonical_bytes(model)).hexdigest()


def canonical_bytes(model: SemanticModel) -> bytes:
    document = model.document
    views = {
        name: {
            "sql": model.view_sql[name],
            "udfs": sorted(set(spec.udfs)),
            "executor": spec.executor,
        }
        for name, spec in document.views.items()
    }
    payload = {
        "manifest_version": model.manifest_version,
        "semantic_contract_version": SEMANTIC_CONTRACT_VERSION,
        "datasets": msgspec.to_builtins(document.datasets),
        "views": views,
        "outputs": msgspec.to_builtins(document.outputs),
        "udfs": msgspec.to_builtins(document.udfs),
    }
    return msgspec.json.encode(payload, order="sorted")


def runtime_policy_fingerprint(model: SemanticModel) -> str:
    """sha256 over the canonical encoding of everything the semantic fingerprint leaves
    out: ``[runtime]`` (session settings and the perf policy), ``[policy]``, ``[project]``
    (data-source mode, bootstrap) and ``[executors]``.  Engine-free: the declared half of
    the authority's runtime fingerprint, which adds the session's effective settings."""
    document = model.document
    policy: dict[str, Any] = msgspec.to_builtins(document.policy)
    if document.policy.delta_support is not None:
        policy["delta_support"] = document.policy.delta_support.canonical()
    runtime: dict[str, Any] = msgspec.to_builtins(document.runtime)
    runtime["retain_plans"] = sorted(set(runtime["retain_plans"]))
    payload = {
        "manifest_version": model.manifest_version,
        "project": msgspec.to_builtins(document.project),
        "executors": msgspec.to_builtins(document.executors),
        "runtime": runtime,
        "policy": policy,
    }
    if document.storage:
        # stores by url, options, and the *names* of the environment variables holding
        # their secrets: never a secret value (none is known here)
        payload["storage"] = msgspec.to_builtins(document.storage)
    return hashlib.sha256(msgspec.json.encode(payload, order="sorted")).hexdigest()
