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
Python stack either; :mod:`.sql_analysis` walks the tree) and refused with
``MANIFEST_SQL_TOO_COMPLEX``.  This module holds the limits and the arithmetic over the
counts the walk returns; it imports no sqlglot.
"""

from __future__ import annotations

from collections.abc import Mapping

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
"""The :func:`.sql_analysis.scan_multiplicity` key counting reads of CTEs."""


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


def inlined_plan_sizes(
    order: list[str] | tuple[str, ...],
    reads: Mapping[str, Mapping[str, int]],
    cte_depths: Mapping[str, int],
) -> dict[str, tuple[int, int]]:
    """``(relations, depth)`` of each view's plan with upstream views and CTEs inlined.

    ``relations`` counts the view itself and every table, CTE and view read, an upstream
    view with all it holds; ``depth`` is the longest chain of views and CTEs leading to a
    table (``order`` is topological; ``cte_depths`` from
    :func:`.sql_analysis.scan_profile`).  Both are computed in one pass over the views,
    without the engine.
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
