"""The sqlglot analysis of one view's SQL, for semantic compile.

A pure function of the view's name and SQL (:func:`analyse_sql`): it must be exactly one
query (``MANIFEST_NOT_A_QUERY``), parse (``MANIFEST_SQL_SYNTAX``), stay within the
nesting and expression-depth limits (``MANIFEST_SQL_TOO_COMPLEX``); the result is the
names it reads, how many times it reads each with its CTEs inlined, and its longest chain
of CTEs.  The walks over the sqlglot tree live here too, without recursion.

Imported only when an analysis is not already known (:mod:`.compile` keeps them per
process and, when given a store, across processes): sqlglot takes about 40 ms to import.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.optimizer.scope import traverse_scope
from sqlglot.tokens import Token, TokenType

from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.complexity import CTE_READ, MAX_SQL_DEPTH

Analysis = tuple[tuple[str, ...], Mapping[str, int], int]
"""(names read, sorted; reads of each name with CTEs inlined; longest chain of CTEs)."""

MAX_SQL_NESTING = 64
"""Deepest parenthesis nesting accepted in a view; deeper SQL can exhaust the planner's
stack, so it is refused up front with ``MANIFEST_SQL_TOO_COMPLEX``."""
MAX_CASE_NESTING = 32
"""Deepest nesting of ``CASE`` expressions (which nest without parentheses) accepted in a
view.  Measured: DataFusion 55's SQL parser refuses 48 and deeper, sqlglot in Python runs
out of recursion near 60, compiled (``sqlglotc``) much later; a bound below all of them
gives every installation the same answer."""

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


def clear_analysis_cache() -> None:
    """Forget the cached analyses of view SQL (benchmarks start cold with this)."""
    _analyse_sql_cached.cache_clear()


def _analyse_sql(name: str, sql: str) -> Analysis:
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
        raise _syntax_error(name, path, exc) from None
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
        raise _syntax_error(name, path, exc) from None


def _syntax_error(name: str, path: str, exc: Exception) -> ReferenceImplError:
    """``MANIFEST_SQL_SYNTAX`` with the first line of what sqlglot said."""
    return _view_error(
        ErrorCode.MANIFEST_SQL_SYNTAX, name, path, f"view {name!r}: {_first_line(str(exc))}"
    )


def _split_statements(tokens: list[Token]) -> list[list[Token]]:
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    return [statement for statement in statements if statement]


def _check_nesting(name: str, tokens: list[Token], path: str) -> None:
    """Parentheses at most ``MAX_SQL_NESTING`` deep, ``CASE ... END`` at most
    ``MAX_CASE_NESTING``: checked on the tokens, before a parser recurses into them."""
    depth = deepest = cases = deepest_case = 0
    for token in tokens:
        kind = token.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
            deepest = max(deepest, depth)
        elif kind == TokenType.R_PAREN:
            depth -= 1
        elif kind == TokenType.CASE:
            cases += 1
            deepest_case = max(deepest_case, cases)
        elif kind == TokenType.END:
            cases -= 1
    for what, found, limit in (
        ("parentheses", deepest, MAX_SQL_NESTING),
        ("CASE expressions", deepest_case, MAX_CASE_NESTING),
    ):
        if found > limit:
            raise _view_error(
                ErrorCode.MANIFEST_SQL_TOO_COMPLEX,
                name,
                path,
                f"view {name!r} nests {what} {found} deep; the limit is {limit}",
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


def analyse_sql(name: str, sql: str) -> Analysis:
    """The analysis of view ``name``'s ``sql`` (a coded error when it is not one query, or
    too complex); kept per process unless the SQL is long."""
    return (_analyse_sql if len(sql) > _CACHED_SQL_CHARS else _analyse_sql_cached)(name, sql)


def expression_depth(tree: exp.Expression) -> int:
    """Depth of ``tree`` (a leaf has depth 1), computed without recursion."""
    deepest = 0
    stack: list[tuple[exp.Expression, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_expressions())
    return deepest


def scan_multiplicity(tree: exp.Expression) -> Counter[str]:
    """How many times the query reads each table once its CTEs are inlined.

    Names are lowercased unless quoted (as in semantic compile).  Reads of CTEs themselves
    are counted under the key ``""`` (a CTE without any table still grows the plan when it
    is read twice per level); a recursive CTE counts its self-reference once.  Table
    functions (no name) are not counted.
    """
    return scan_profile(tree)[0]


def scan_profile(tree: exp.Expression) -> tuple[Counter[str], int]:
    """:func:`scan_multiplicity` of ``tree`` and its CTE depth: the longest chain of CTEs
    reading CTEs (0 without CTEs; ``WITH a AS (...), b AS (SELECT * FROM a) SELECT * FROM
    b`` has depth 2).

    Without recursion: a chain of thousands of CTEs, each reading the one before, is
    resolved with an explicit stack rather than one Python frame per CTE.
    """
    bodies: dict[str, exp.Expression] = {}
    for cte in tree.find_all(exp.CTE):
        bodies.setdefault(cte.alias_or_name.lower(), cte.this)
    direct = {name: _direct_reads(body, bodies) for name, body in bodies.items()}
    return _inlined(direct, _direct_reads(tree, bodies))


def tree_profile(
    tree: exp.Expression, statements: tuple[type[Any], ...]
) -> tuple[int, exp.Expression | None, Counter[str], int]:
    """In one breadth-first walk of ``tree``: :func:`expression_depth`, the first node of
    the ``statements`` types in ``tree.walk()`` order (None: there is none) and
    :func:`scan_profile`.

    The same answers as those functions (semantic compile needs all of them), from one
    walk instead of four: each node is read once, with the scope it belongs to for the
    scan profile (the query itself, the body of the first CTE of a name, or nothing: a
    later CTE of a name already taken, and a CTE's other parts), found in the order
    ``find_all`` finds the CTEs."""
    deepest = 0
    first_statement: exp.Expression | None = None
    bodies: dict[str, exp.Expression] = {}
    # scope of each table read: "" the query, a name the body of that CTE, None nothing
    reads: list[tuple[str | None, exp.Table]] = []
    queue: deque[tuple[exp.Expression, int, str | None]] = deque([(tree, 1, "")])
    while queue:
        node, depth, scope = queue.popleft()
        deepest = max(deepest, depth)
        if first_statement is None and isinstance(node, statements):
            first_statement = node
        if isinstance(node, exp.CTE):
            name = node.alias_or_name.lower()
            body = node.this
            if name not in bodies:
                bodies[name] = body
                owned: str | None = name
            else:
                owned = None
            for part in node.iter_expressions():
                queue.append((part, depth + 1, owned if part is body else None))
            continue
        if scope is not None and isinstance(node, exp.Table) and node.name:
            reads.append((scope, node))
        for child in node.iter_expressions():
            queue.append((child, depth + 1, scope))
    direct: dict[str, tuple[Counter[str], Counter[str]]] = {
        name: (Counter(), Counter()) for name in bodies
    }
    top: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    for scope, table in reads:
        tables, ctes = direct[scope] if scope else top
        name = _table_name(table)
        if not table.db and name in bodies:
            ctes[name] += 1
        else:
            tables[name] += 1
    counts, cte_depth = _inlined(direct, top)
    return deepest, first_statement, counts, cte_depth


def _direct_reads(
    root: exp.Expression, bodies: Mapping[str, exp.Expression]
) -> tuple[Counter[str], Counter[str]]:
    """Tables and CTEs ``root`` reads itself (CTE definitions inside it skipped)."""
    tables: Counter[str] = Counter()
    ctes: Counter[str] = Counter()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, exp.CTE):
            continue  # a CTE's body counts where the CTE is read, not where it is defined
        if isinstance(node, exp.Table) and node.name:
            name = _table_name(node)
            if not node.db and name in bodies:
                ctes[name] += 1
            else:
                tables[name] += 1
        stack.extend(node.iter_expressions())
    return tables, ctes


def _table_name(table: exp.Table) -> str:
    identifier = table.this
    quoted = isinstance(identifier, exp.Identifier) and identifier.quoted
    return table.name if quoted else table.name.lower()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _inlined(
    direct: Mapping[str, tuple[Counter[str], Counter[str]]],
    root: tuple[Counter[str], Counter[str]],
) -> tuple[Counter[str], int]:
    """:func:`.sql_analysis.scan_profile` from the direct reads of each CTE body and of the
    query."""
    memo: dict[str, tuple[Counter[str], int]] = {}

    def inline(reads: tuple[Counter[str], Counter[str]]) -> tuple[Counter[str], int]:
        tables, ctes = reads
        out = Counter(tables)
        depth = 0
        for name, count in ctes.items():
            if name in memo:
                inner, inner_depth = memo[name]
                out[CTE_READ] += count
                for table, times in inner.items():
                    out[table] += times * count
                depth = max(depth, inner_depth + 1)
            else:  # on the current path: a recursive CTE reading itself
                out[name] += count
        return out, depth

    for start in direct:
        if start in memo:
            continue
        path = [start]
        on_path = {start}
        pending = [iter(direct[start][1])]
        while path:
            name = next((n for n in pending[-1] if n not in memo and n not in on_path), None)
            if name is not None:
                path.append(name)
                on_path.add(name)
                pending.append(iter(direct[name][1]))
                continue
            done = path.pop()
            pending.pop()
            memo[done] = inline(direct[done])
            on_path.discard(done)
    return inline(root)
