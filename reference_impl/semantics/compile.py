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
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.optimizer.scope import traverse_scope
from sqlglot.tokens import Token, TokenType

from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.complexity import (
    MAX_EXPANDED_SCANS,
    MAX_INLINED_DEPTH,
    MAX_INLINED_RELATIONS,
    MAX_SQL_DEPTH,
    expanded_scans,
    inlined_plan_sizes,
    tree_profile,
)
from reference_impl.semantics.load import resolve_location, store_of
from reference_impl.semantics.model import SemanticModel, StorageSpec
from reference_impl.semantics.program import (
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

MAX_SQL_NESTING = 64
"""Deepest parenthesis nesting accepted in a view; deeper SQL can exhaust the planner's
stack, so it is refused up front with ``MANIFEST_SQL_TOO_COMPLEX``."""

_NOT_A_QUERY_KEYWORDS = frozenset(
    {
        "ALTER", "ANALYZE", "ATTACH", "CALL", "COMMENT", "COMMIT", "COPY", "CREATE",
        "DEALLOCATE", "DELETE", "DESCRIBE", "DETACH", "DROP", "EXECUTE", "EXPLAIN",
        "GRANT", "INSERT", "LOAD", "MERGE", "PRAGMA", "PREPARE", "REFRESH", "REPLACE",
        "RESET", "REVOKE", "ROLLBACK", "SET", "SHOW", "TRUNCATE", "UNLOAD", "UPDATE",
        "UPSERT", "USE", "VACUUM",
    }
)  # fmt: skip
_QUERY_TYPES = (exp.Select, exp.SetOperation, exp.Subquery, exp.Values)
_STATEMENT_NODES = (exp.Into, exp.DML, exp.DDL, exp.Drop, exp.Command)
"""Nodes that make a query a statement: ``SELECT ... INTO`` creates a table when DataFusion
plans it, and DML can hide in a CTE."""
_DEFAULT_SCHEMAS = frozenset({"", "public"})
_DIALECT = Dialect.get_or_raise(None)
"""sqlglot's default dialect: what ``sqlglot.tokenize`` and ``sqlglot.parse`` use."""
ANALYSIS_CACHE_SIZE = 4096
"""Analyses of view SQL kept per process (see :func:`clear_analysis_cache`)."""
_CACHED_SQL_CHARS = 16 * 1024
"""Longer SQL is analysed every time rather than kept in the cache."""


def compile_semantic_program(model: SemanticModel) -> SemanticProgramManifest:
    """Compile a loaded manifest into its semantic program (engine-free, pure)."""
    document = model.document
    shown = model.path
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
            name: _analyse_view(name, model.view_sql[name], known, reads, depths)
            for name in sorted(document.views)
        }
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
    reads: dict[str, Mapping[str, int]] | None = None,
    depths: dict[str, int] | None = None,
) -> tuple[str, ...]:
    """Check that ``sql`` is one query and return the names it reads.

    ``reads`` receives how many times the view reads each name, CTEs inlined; ``depths``
    its longest chain of CTEs.
    """
    analyse = _analyse_sql if len(sql) > _CACHED_SQL_CHARS else _analyse_sql_cached
    refs, multiplicity, depth = analyse(name, sql)
    if reads is not None:
        reads[name] = multiplicity
    if depths is not None:
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
    """Forget the cached analyses of view SQL (benchmarks start cold with this)."""
    _analyse_sql_cached.cache_clear()


def _analyse_sql(name: str, sql: str) -> tuple[tuple[str, ...], Mapping[str, int], int]:
    """The sqlglot analysis of one view: the names it reads (sorted) and how many times
    it reads each, CTEs inlined; a coded error when it is not exactly one query.

    A pure function of ``(name, sql)``: compiling the same manifest again in one process
    (the gate's determinism runs, a test suite) reuses it through the cache.
    """
    path = f"views.{name}.sql"
    tokens = _tokenize(name, sql, path)
    statements = _split_statements(tokens)
    if not statements:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_SQL_SYNTAX, "the SQL holds no statement", field_path=path
        )
    if len(statements) > 1:
        raise _view_error(
            ErrorCode.MANIFEST_NOT_A_QUERY,
            name,
            path,
            f"view {name!r} holds {len(statements)} statements; a view is exactly one query",
        )
    first = statements[0][0]
    if first.text.upper() in _NOT_A_QUERY_KEYWORDS:
        raise _view_error(
            ErrorCode.MANIFEST_NOT_A_QUERY,
            name,
            path,
            f"view {name!r} is a {first.text.upper()} statement; only queries are allowed",
        )
    _check_nesting(name, statements[0], path)
    try:
        # ``parse`` rather than ``parse_one``: stray semicolons and a comment after the
        # last one parse as empty/``Semicolon`` entries (DataFusion ignores them too).
        # what ``sqlglot.parse(sql)`` does, from the tokens already read (once, not twice)
        parsed = [
            tree
            for tree in _DIALECT.parser().parse(tokens, sql)
            if tree is not None and type(tree) is not exp.Semicolon
        ]
        if len(parsed) != 1:
            raise ParseError(f"expected one query, parsed {len(parsed)}")
        tree = parsed[0]
    except (ParseError, TokenError) as exc:
        raise _view_error(
            ErrorCode.MANIFEST_SQL_SYNTAX,
            name,
            path,
            f"view {name!r}: {_first_line(str(exc))}",
        ) from None
    except RecursionError:
        raise _view_error(
            ErrorCode.MANIFEST_SQL_TOO_COMPLEX,
            name,
            path,
            f"view {name!r} is nested too deeply to analyse",
        ) from None
    if not isinstance(tree, _QUERY_TYPES):
        raise _view_error(
            ErrorCode.MANIFEST_NOT_A_QUERY,
            name,
            path,
            f"view {name!r} is a {tree.key.upper()} statement; only queries are allowed",
        )
    # one walk: the expression depth, the first statement node, the reads and CTE depth
    depth, nested, counts, cte_depth = tree_profile(tree, _STATEMENT_NODES)
    if nested is not None:
        kind = "SELECT ... INTO" if isinstance(nested, exp.Into) else nested.key.upper()
        raise _view_error(
            ErrorCode.MANIFEST_NOT_A_QUERY,
            name,
            path,
            f"view {name!r} contains a {kind} statement; only queries are allowed",
        )
    if depth > MAX_SQL_DEPTH:
        raise _view_error(
            ErrorCode.MANIFEST_SQL_TOO_COMPLEX,
            name,
            path,
            f"view {name!r} nests expressions {depth} deep; the limit is {MAX_SQL_DEPTH}",
        )
    multiplicity = MappingProxyType(dict(counts))
    return tuple(sorted(set(_table_references(name, tree, path)))), multiplicity, cte_depth


_analyse_sql_cached = lru_cache(maxsize=ANALYSIS_CACHE_SIZE)(_analyse_sql)


def _view_error(code: ErrorCode, name: str, path: str, message: str) -> ReferenceImplError:
    """A coded error about view ``name``'s SQL at field ``path``."""
    return ReferenceImplError(code, message, field_path=path, subjects=(name,))


def _tokenize(name: str, sql: str, path: str) -> list[Token]:
    try:
        return sqlglot.tokenize(sql)
    except (TokenError, ParseError) as exc:
        raise _view_error(
            ErrorCode.MANIFEST_SQL_SYNTAX,
            name,
            path,
            f"view {name!r}: {_first_line(str(exc))}",
        ) from None


def _split_statements(tokens: list[Token]) -> list[list[Token]]:
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    return [statement for statement in statements if statement]


def _check_nesting(name: str, tokens: list[Token], path: str) -> None:
    depth = deepest = 0
    for token in tokens:
        if token.token_type == TokenType.L_PAREN:
            depth += 1
            deepest = max(deepest, depth)
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
    if deepest > MAX_SQL_NESTING:
        raise _view_error(
            ErrorCode.MANIFEST_SQL_TOO_COMPLEX,
            name,
            path,
            f"view {name!r} nests parentheses {deepest} deep; the limit is {MAX_SQL_NESTING}",
        )


def _table_references(name: str, tree: exp.Expression, path: str) -> Iterable[str]:
    """Names of the tables a query reads, CTE names excluded, unquoted names lowercased."""
    try:
        tables = [
            source
            for scope in traverse_scope(tree)
            for source in scope.sources.values()
            if isinstance(source, exp.Table)
        ]
    except Exception:
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        tables = [t for t in tree.find_all(exp.Table) if t.name.lower() not in ctes]
    for table in tables:
        if not table.name:  # table functions such as unnest(...)
            continue
        schema = table.db.lower()
        if table.catalog or schema not in _DEFAULT_SCHEMAS:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_UNKNOWN_REFERENCE,
                f"view {name!r} reads {table.sql()!r}: only unqualified names of datasets "
                "and views can be read",
                field_path=path,
                subjects=(name, table.sql()),
            )
        identifier = table.this
        quoted = isinstance(identifier, exp.Identifier) and identifier.quoted
        yield table.name if quoted else table.name.lower()


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


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
