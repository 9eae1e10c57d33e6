"""Change causes: which changed upstream views explain a view's change, and whether they
explain all of it.

* ``caused_by`` of a changed view: the changed views among its upstream views, direct or
  not, from lineage (the adapter's view DAG in the gate; the ``depends-on`` header lines
  of the snapshots in ``planguard diff``).  Empty for a root change.
* A changed view's change is **inherited** when all of these hold:

  1. ``caused_by`` is not empty;
  2. its *own* logical plan is unchanged: its ``P0 logical`` section, with each block that
     is exactly an upstream view's plan (the line ``SubqueryAlias: U`` and, one level
     deeper, the ``P0 logical`` section of ``U``'s snapshot of the same version) replaced
     by the placeholder ``<view U>``, is the same text in both versions, and not empty;
  3. no UDF whose code changed (its ``udfs`` header line) is called in its own plan (a
     view's plan calls the UDFs of the upstream views inlined into it too: their code
     changes come through those views);
  4. its stored snapshot is not damaged.

  Everything else in the view's bundle (P1, P2, schema, signals) may differ: with the same
  own plan over changed inputs, those differences follow from the inputs.  The test is
  conservative: a change it cannot attribute to an upstream plan block (the view's own
  SQL, a dataset it reads directly, an upstream schema change that shows in the view's own
  lines, an upstream snapshot missing in one version) is the view's own.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from pytest_planguard.gate.snapshot import header_udfs, parse_snapshot, snapshot_damage

_ALIAS = re.compile(r"(?P<indent>\s*)SubqueryAlias: (?P<name>\S+)(?: \[.*\])?$")


def upstream_views(view: str, dependencies: Mapping[str, Collection[str]]) -> set[str]:
    """Every view ``view`` reads, directly or through other views."""
    upstream: set[str] = set()
    pending = list(dependencies.get(view, ()))
    while pending:
        name = pending.pop()
        if name not in upstream and name != view:
            upstream.add(name)
            pending.extend(dependencies.get(name, ()))
    return upstream


def caused_by(
    view: str, dependencies: Mapping[str, Collection[str]], changed: Collection[str]
) -> tuple[str, ...]:
    """The changed views among ``view``'s upstream views, sorted."""
    return tuple(sorted(upstream_views(view, dependencies) & set(changed)))


def own_plan(p0: str, upstream: Mapping[str, str]) -> str:
    """``p0`` with every block that is exactly the plan of an upstream view (``upstream``:
    view -> its ``P0 logical`` text) replaced by ``<view NAME>``."""
    lines = p0.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _ALIAS.fullmatch(line)
        plan = upstream.get(match.group("name")) if match else None
        if match is not None and plan:
            indent = len(match.group("indent"))
            end = index + 1
            while end < len(lines) and _indent(lines[end]) > indent:
                end += 1
            body = [text[indent + 2 :] for text in lines[index + 1 : end]]
            if body == plan.splitlines():
                out.append(f"{' ' * indent}<view {match.group('name')}>")
                index = end
                continue
        out.append(line)
        index += 1
    return "\n".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def is_inherited(
    old: str,
    new: str,
    causes: Collection[str],
    old_upstream: Mapping[str, str | None],
    new_upstream: Mapping[str, str | None],
) -> bool:
    """Is the change from snapshot text ``old`` to ``new`` inherited (module docs)?
    ``old_upstream``/``new_upstream``: upstream view -> its snapshot text in that
    version (None: it has none)."""
    if not causes or snapshot_damage(old):
        return False
    before, after = parse_snapshot(old), parse_snapshot(new)
    own_before = own_plan(before.sections.get("P0 logical", ""), _plans(old_upstream))
    own_after = own_plan(after.sections.get("P0 logical", ""), _plans(new_upstream))
    if not own_before or own_before != own_after:
        return False
    udfs_before, udfs_after = (
        header_udfs(before.header.get("udfs")),
        header_udfs(after.header.get("udfs")),
    )
    changed_udfs = {
        name
        for name in udfs_before.keys() | udfs_after.keys()
        if udfs_before.get(name) != udfs_after.get(name)
    }
    return not any(re.search(rf"\b{re.escape(name)}\(", own_after) for name in changed_udfs)


def _plans(texts: Mapping[str, str | None]) -> dict[str, str]:
    return {
        view: parse_snapshot(text).sections.get("P0 logical", "")
        for view, text in texts.items()
        if text is not None
    }
