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

from collections import Counter
from collections.abc import Mapping

from sqlglot import exp

MAX_SQL_DEPTH = 1000
"""Deepest expression tree accepted in a view (one level per nested operator)."""
MAX_EXPANDED_SCANS = 10_000
"""Most relation reads (tables, views, CTEs) a view may expand to once its CTEs and
upstream views are inlined."""
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
    bodies: dict[str, exp.Expression] = {}
    for cte in tree.find_all(exp.CTE):
        bodies.setdefault(cte.alias_or_name.lower(), cte.this)
    memo: dict[str, Counter[str]] = {}
    visiting: set[str] = set()

    def reads(root: exp.Expression) -> Counter[str]:
        out: Counter[str] = Counter()
        stack = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, exp.CTE):
                continue  # a CTE's body counts where the CTE is read, not where it is defined
            if isinstance(node, exp.Table) and node.name:
                name = _table_name(node)
                if not node.db and name in bodies and name not in visiting:
                    out[CTE_READ] += 1
                    out.update(cte_reads(name))
                else:
                    out[name] += 1
            stack.extend(node.iter_expressions())
        return out

    def cte_reads(name: str) -> Counter[str]:
        if name not in memo:
            visiting.add(name)
            memo[name] = reads(bodies[name])
            visiting.discard(name)
        return memo[name]

    return reads(tree)


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
