"""Static bounds on how expensive a view can be to plan, checked before any engine work.

DataFusion's logical optimizer holds the GIL (``DataFrame.optimized_logical_plan``), so a
planning budget enforced from another thread cannot interrupt it, and its cost grows
superlinearly with two shapes a few kilobytes of SQL can reach:

* deep expression trees: ``a + a + ... + a`` or ``x = 1 OR x = 2 OR ...`` nest one level
  per operator (10,000 terms took minutes to plan);
* plans that multiply when inlined: DataFusion inlines CTEs and registered views, so a CTE
  (or view) read twice by the next one doubles the plan at each level, a "billion laughs"
  query whose plan exhausts time and memory.

Both are measured on the sqlglot tree without recursion (hostile SQL must not exhaust the
Python stack either) and refused with ``MANIFEST_SQL_TOO_COMPLEX``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

from sqlglot import exp

MAX_SQL_DEPTH = 1000
"""Deepest expression tree accepted in a view (one level per nested operator)."""
MAX_EXPANDED_SCANS = 10_000
"""Most relation reads (tables, views, CTEs) a view may expand to once its CTEs and
upstream views are inlined."""
MAX_INLINED_DEPTH = 500
"""Longest chain of relation references (views reading views, CTEs reading CTEs) a view
may reach once upstream views and CTEs are inlined.  DataFusion's memory for planning one
view grows with the square of this depth (README, "Bounded work")."""
MAX_INLINED_RELATIONS = 80_000
"""Most relation reads all views together may hold once upstream views and CTEs are
inlined (a linear chain of ``n`` views holds about ``n * n / 2``): what keeps the memory
of planning a whole manifest under the documented ceiling."""
CTE_READ = ""
"""The :func:`scan_multiplicity` key counting reads of CTEs."""


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


def _inlined(
    direct: Mapping[str, tuple[Counter[str], Counter[str]]],
    root: tuple[Counter[str], Counter[str]],
) -> tuple[Counter[str], int]:
    """:func:`scan_profile` from the direct reads of each CTE body and of the query."""
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


def expanded_scans(
    order: list[str] | tuple[str, ...], reads: Mapping[str, Mapping[str, int]]
) -> dict[str, int]:
    """Relation reads of each view with upstream views inlined (``order`` is topological).

    A view costs at least 1 where it is read, even when it reads no table itself.
    """
    expanded: dict[str, int] = {}
    for view in order:
        expanded[view] = max(
            1, sum(count * expanded.get(name, 1) for name, count in reads.get(view, {}).items())
        )
    return expanded


def _table_name(table: exp.Table) -> str:
    identifier = table.this
    quoted = isinstance(identifier, exp.Identifier) and identifier.quoted
    return table.name if quoted else table.name.lower()


def inlined_plan_sizes(
    order: list[str] | tuple[str, ...],
    reads: Mapping[str, Mapping[str, int]],
    cte_depths: Mapping[str, int],
) -> dict[str, tuple[int, int]]:
    """``(relations, depth)`` of each view's plan with upstream views and CTEs inlined.

    ``relations`` counts the view itself and every table, CTE and view read, an upstream
    view with all it holds; ``depth`` is the longest chain of views and CTEs leading to a
    table (``order`` is topological; ``cte_depths`` from :func:`scan_profile`).  Both are
    computed in one pass over the views, without the engine.
    """
    sizes: dict[str, tuple[int, int]] = {}
    for view in order:
        relations = 1
        upstream = -1
        for name, count in reads.get(view, {}).items():
            if name in sizes:
                inner, inner_depth = sizes[name]
                relations += count * inner
                upstream = max(upstream, inner_depth)
            else:
                relations += count
        sizes[view] = (relations, cte_depths.get(view, 0) + upstream + 1)
    return sizes
