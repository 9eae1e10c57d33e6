"""Facts read off displayed plans instead of engine objects, so a view is planned once.

:func:`~reference_impl.relspec.frame_plan.plan_frame` gets P1 and P2 as the text of one
``EXPLAIN VERBOSE``.  Its table scans (from P1) and its output partition count (from P2)
are read here off those texts; each reader returns None wherever the text does not
determine the answer beyond doubt, and the caller then asks the engine object (which
costs a second planning of that view).  Never a guess: a None is always safe.

Relies on DataFusion 55's indent display: one node per line, two spaces per level;
``TableScan: name projection=[a, b], full_filters=[...], partial_filters=[...],
unsupported_filters=[...], fetch=N``; a ``Filter: predicate`` line; expressions printed
as ``Expr``'s ``Display``, which is also their ``canonical_name()``.
"""

from __future__ import annotations

import re

from reference_impl.relspec.plan_facts import TableScanFact

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*){0,2}")
_SCAN = "TableScan: "
_FILTER = "Filter: "
_FILTER_LISTS = ("full_filters=[", "partial_filters=[", "unsupported_filters=[")
_FETCH = re.compile(r", fetch=\d+$")
# A string literal whose text cannot be mistaken for plan syntax; any other '"' (a
# literal holding quotes, brackets or commas, a quoted name) sends the view to the engine.
_SAFE_LITERAL = re.compile(r'\("[^"\\()\[\]{},]*"\)')
# Lines whose subtree the object walk of table_scans sees differently (subqueries are
# displayed but are not plan inputs; a recursive CTE's work table is named only there).
_UNSURE = ("Subquery:", "RecursiveQuery:")


def plan_scans(p1: str) -> tuple[TableScanFact, ...] | None:
    """The table scans of an optimized logical plan's indent display, as
    :func:`~reference_impl.relspec.plan_facts.table_scans` finds them on the plan object
    (projection; filters pushed into the scan plus a ``Filter`` directly above it), or
    None when the text does not determine them."""
    if any(marker in p1 for marker in _UNSURE):
        return None
    lines = p1.splitlines()
    found: list[TableScanFact] = []
    for index, line in enumerate(lines):
        body = line.lstrip(" ")
        if not body.startswith(_SCAN):
            continue
        depth = len(line) - len(body)
        scan = _scan(body[len(_SCAN) :], _parent(lines, index, depth))
        if scan is None:
            return None
        found.append(scan)
    return tuple(found)


def _parent(lines: list[str], index: int, depth: int) -> str:
    for line in reversed(lines[:index]):
        body = line.lstrip(" ")
        if len(line) - len(body) < depth:
            return body
    return ""


def _scan(text: str, parent: str) -> TableScanFact | None:
    text = _FETCH.sub("", text)
    name, _, rest = text.partition(" ")
    if not _TABLE.fullmatch(name.rstrip(",")):
        return None  # a table function, a quoted name: the engine knows
    if "," in name:
        name, rest = name.rstrip(","), ", " + rest
    if not rest.startswith("projection=["):
        return None  # no projection printed: the columns are the table's schema
    columns, rest = _bracketed(rest, "projection=[")
    if columns is None or not all(_NAME.fullmatch(column) for column in columns):
        return None
    filters: list[str] = []
    while rest:
        prefix = next((p for p in _FILTER_LISTS if rest.startswith(", " + p)), None)
        if prefix is None:
            return None
        listed, rest = _bracketed(rest[2:], prefix)
        if listed is None:
            return None
        filters += listed
    if parent.startswith(_FILTER):
        predicate = parent[len(_FILTER) :]
        if _split(predicate) is None:
            return None  # a literal or name the text cannot delimit
        filters.append(predicate)
    return TableScanFact(dataset=name, columns=tuple(columns), filters=tuple(sorted(set(filters))))


def _bracketed(text: str, prefix: str) -> tuple[list[str] | None, str]:
    """``prefix`` + a bracketed list at the start of ``text``: its items and the rest."""
    body = text[len(prefix) :]
    depth = 1
    for index, char in enumerate(_masked(body)):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0:
            items = _split(body[:index]) if index else []
            return items, body[index + 1 :]
    return None, ""


def _masked(text: str) -> str:
    """``text`` with each safe string literal's content blanked (same length)."""
    return _SAFE_LITERAL.sub(lambda m: "(" + "_" * (len(m.group()) - 2) + ")", text)


def _split(text: str) -> list[str] | None:
    """Top-level ``", "``-separated items, or None when a ``"`` is not part of a safe
    literal (its extent is then unknowable from the text)."""
    masked = _masked(text)
    if '"' in masked or "\\" in masked:
        return None
    items: list[str] = []
    depth = start = 0
    for index, char in enumerate(masked):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth < 0:
            return None
        if depth == 0 and masked.startswith(", ", index):
            items.append(text[start:index])
            start = index + 2
    if depth != 0:
        return None
    items.append(text[start:])
    return items


# ----------------------------------------------------------------- output partitions

_SINGLE = ("SortPreservingMergeExec", "CoalescePartitionsExec", "GlobalLimitExec")
"""Operators whose output is one partition."""
_SAME_AS_FIRST_CHILD = (
    "ProjectionExec",
    "FilterExec",
    "CoalesceBatchesExec",
    "LocalLimitExec",
    "CooperativeExec",
    "AggregateExec",
    "BoundedWindowAggExec",
    "WindowAggExec",
    "SortMergeJoinExec",
    "SymmetricHashJoinExec",
    "InterleaveExec",
    "ScalarSubqueryExec",
)
"""Operators whose output partitioning is their (first) input's."""
_SAME_AS_LAST_CHILD = ("CrossJoinExec", "NestedLoopJoinExec")
"""Joins that collect their left (build) side and keep the right side's partitions."""
_PARTITIONING = re.compile(r"partitioning=(?:Hash\(\[.*\], (\d+)\)|RoundRobinBatch\((\d+)\))")
_FILE_GROUPS = re.compile(r"file_groups=\{(\d+) groups?:")
_PARTITIONS = re.compile(r"\bpartitions=(\d+)")


def output_partitions(p2: str) -> int | None:
    """The number of partitions a physical plan's root outputs (``partition_count``), read
    off its indent display; None where the text does not tell (an operator outside the
    known ones, such as an FFI scan, which does not print its file groups)."""
    lines = [line for line in p2.splitlines() if line.strip()]
    if not lines:
        return None
    return _partitions(lines, 0)


def _children(lines: list[str], index: int) -> list[int]:
    depth = len(lines[index]) - len(lines[index].lstrip(" "))
    out: list[int] = []
    for at in range(index + 1, len(lines)):
        here = len(lines[at]) - len(lines[at].lstrip(" "))
        if here <= depth:
            break
        if here == depth + 2:
            out.append(at)
    return out


def _partitions(lines: list[str], index: int) -> int | None:
    body = lines[index].lstrip(" ")
    operator = re.split(r"[:,]", body, maxsplit=1)[0].strip()
    children = _children(lines, index)
    if operator in _SINGLE:
        return 1
    if operator == "RepartitionExec":
        match = _PARTITIONING.search(body)
        return int(match.group(1) or match.group(2)) if match else None
    if operator == "SortExec":
        if "preserve_partitioning=[false]" in body:
            return 1
        return _partitions(lines, children[0]) if children else None
    if operator == "HashJoinExec":
        if len(children) != 2:
            return None
        if "mode=CollectLeft" in body:
            return _partitions(lines, children[1])
        if "mode=Partitioned" in body:
            return _partitions(lines, children[0])
        return None
    if operator in _SAME_AS_LAST_CHILD:
        return _partitions(lines, children[-1]) if children else None
    if operator in _SAME_AS_FIRST_CHILD:
        return _partitions(lines, children[0]) if children else None
    if operator == "UnionExec":
        counts = [_partitions(lines, child) for child in children]
        return sum(c for c in counts if c is not None) if None not in counts else None
    if operator == "DataSourceExec":
        match = _FILE_GROUPS.search(body) or _PARTITIONS.search(body)
        return int(match.group(1)) if match else None
    return None
