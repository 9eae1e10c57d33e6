"""What this process runs of each target, and in which order: the views a partial
selection plans, the determinism item last, a pytest-xdist worker's share of the planning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pytest

from pytest_planguard.config import GateTarget
from pytest_planguard.gate.items import GateItem, is_gate_item


class _Collected(Protocol):
    complete: bool


def partial_targets(
    items: list[pytest.Item],
    collected: Mapping[GateTarget, _Collected],
    dependencies: Mapping[GateTarget, Mapping[str, tuple[str, ...]]],
) -> dict[GateTarget, frozenset[str]]:
    """Targets whose run may plan only some views: part of their items selected (a shard,
    ``-k``) and none of them a check of the whole run (the invariants, the policy).  Each
    maps to its selected views and the views those read, directly or not (a changed
    view's causes are read off them).  (Not for pytest-xdist workers, which learn their
    items as they go and split the planning through the cache instead.)"""
    chosen: dict[GateTarget, set[str]] = {}
    whole: set[GateTarget] = set()
    for item in items:
        target = getattr(item, "target", None)
        if target is None or not is_gate_item(item):
            continue
        if isinstance(item, GateItem):
            whole.add(target)
        else:
            chosen.setdefault(target, set()).add(item.name)
    wanted: dict[GateTarget, frozenset[str]] = {}
    for target, views in chosen.items():
        entry = collected.get(target)
        if target in whole or entry is None or entry.complete:
            continue
        reads = dependencies.get(target, {})
        stack, closure = list(views), set(views)
        while stack:
            for upstream in reads.get(stack.pop(), ()):
                if upstream not in closure:
                    closure.add(upstream)
                    stack.append(upstream)
        wanted[target] = frozenset(closure)
    return wanted


def determinism_last(items: list[pytest.Item]) -> None:
    """Move each ``invariant[determinism]`` item after the other items: its subprocesses,
    started when collection ends, plan while the other items run, and the check reads
    their results at the end instead of waiting for them early.

    Not for pytest-xdist workers: there the item's in-process run is the longest item,
    and early it runs while the other workers gate the views; last, they would idle."""
    late: list[pytest.Item] = [
        i for i in items if isinstance(i, GateItem) and i.check == "determinism"
    ]
    if late:
        moved = set(late)
        items[:] = [item for item in items if item not in moved] + late


def xdist_share(config: Any) -> tuple[int, int] | None:
    """(index, count) of this pytest-xdist worker (None outside one): the workers of a
    run plan ahead from their own slices of a target's views, through the shared cache."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    worker, count = str(workerinput.get("workerid", "")), workerinput.get("workercount")
    if not worker.startswith("gw") or not worker[2:].isdigit() or not isinstance(count, int):
        return None
    return int(worker[2:]), count
