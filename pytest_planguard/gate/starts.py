"""The determinism check's subprocesses, started before the check needs them.

They start at the end of collection, for the targets whose determinism item was
selected, and plan while this process gates the views, so that the check reads their
results at the end instead of waiting for them.  Under pytest-xdist, whose workers learn
their items one batch at a time, worker gw0 starts them once for the run, in a directory
the controller creates and removes, and the worker that runs the item reads them there.
The one with the fixed seed waits for a plan no check established
(:func:`~pytest_planguard.determinism_processes.start_determinism_processes`): the
run's first plan-cache miss starts it, in whichever process has it.

(Starting them earlier, at session start, was measured and not kept: on a warm gate the
check usually needs no subprocess at all, and those started early then only took CPU
from collection; TPC-H, 2 cores: +0.05 s when no view was sampled, -0.015 s when one
was.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_planguard.config import GateTarget
from pytest_planguard.determinism_processes import (
    Checked,
    DeterminismProcesses,
    Incremental,
    shared_processes,
    start_determinism_processes,
    stop_shared,
)
from pytest_planguard.gate.items import GateItem

if TYPE_CHECKING:
    from pytest_planguard.config import PlanguardConfig

RUN_DIR = "planguard_run_dir"
"""``workerinput`` key: the directory of the run's shared determinism subprocesses."""
SAMPLE_SEED = "planguard_sample_seed"
"""``workerinput`` key: the seed of the run's incremental determinism sample."""


class DeterminismStarts:
    """The determinism subprocesses of this process's targets (see the module)."""

    def __init__(self, config: PlanguardConfig, pytest_config: pytest.Config) -> None:
        self.config = config
        self._workerinput: dict[str, Any] | None = getattr(pytest_config, "workerinput", None)
        self.due: set[GateTarget] = set()
        """Targets whose determinism item runs in this run (as far as this process knows)."""
        self.started: dict[GateTarget, DeterminismProcesses] = {}
        self._run_dir: Path | None = None
        """On the pytest-xdist controller: the run's directory of shared subprocesses."""
        self._incremental: Incremental | None = None
        self._asked: set[GateTarget] = set()
        """Targets whose shared held-back subprocesses this process has had started."""

    @property
    def incremental(self) -> Incremental | None:
        """The determinism check over the plan cache (None under --planguard-no-cache);
        its sample seed is the run's, the same in every pytest-xdist worker."""
        if self.config.cache_dir is None:
            return None
        if self._incremental is None:
            import random

            seed = (self._workerinput or {}).get(SAMPLE_SEED, random.randrange(2**32))
            strength = f"{self.config.runs}x{self.config.processes}"
            self._incremental = Incremental(self.config.cache_dir, seed, strength)
        return self._incremental

    def at_collection_end(self, items: list[pytest.Item], compiled: Collection[GateTarget]) -> None:
        """Note the targets whose determinism item this run selected (and whose compile
        did not fail at collection), and start their subprocesses."""
        workerinput = self._workerinput
        if workerinput is not None and (
            workerinput.get("workerid") != "gw0" or RUN_DIR not in workerinput
        ):
            return
        self.due = {
            item.target
            for item in items
            if isinstance(item, GateItem)
            and item.check == "determinism"
            and item.target in compiled
        }
        for target in sorted(self.due, key=lambda t: t.key):
            self.start(target)

    def start(self, target: GateTarget) -> None:
        """Start ``target``'s subprocesses, unless they are not due or already started.
        Not for a real run: outputs being written could be read by their plans."""
        if (
            target not in self.due
            or target in self.started
            or self.config.execute
            or self.config.processes < 1
        ):
            return
        directory = self._shared_directory(target)
        checked = Checked(
            adapter_spec=None if target.spec else self.config.adapter,
            manifest=target.path,
            processes=self.config.processes,
            trusted_modules=() if target.spec else tuple(self.config.trusted_modules),
            session=target.spec,
            incremental=self.incremental,
        )
        self.started[target] = start_determinism_processes(
            checked, directory=directory, hold_fixed=True
        )

    def take(self, target: GateTarget) -> DeterminismProcesses | None:
        """``target``'s subprocesses, for its determinism item: this process's own, else
        (under pytest-xdist) those started for the run."""
        own = self.started.pop(target, None)
        if own is not None:
            return own
        directory = self._shared_directory(target)
        return shared_processes(directory) if directory is not None else None

    def drop(self, target: GateTarget) -> None:
        """Stop this process's subprocesses of ``target`` (its run failed: the determinism
        item fails on that)."""
        if target in self.started:
            self.started.pop(target).close()

    def start_pending(self) -> None:
        """Start the subprocesses held back (the run planned a view afresh: its check
        needs every seed): this process's own, and under pytest-xdist those of the run's
        directory, once per target (whichever worker asks first starts them)."""
        for started in list(self.started.values()):
            started.start_pending()
        for target in self.config.targets:
            directory = self._shared_directory(target)
            if directory is None or target in self.started or target in self._asked:
                continue
            shared = shared_processes(directory)
            if shared is not None:  # (None: gw0 has not started them yet; asked again later)
                shared.start_pending()
                self._asked.add(target)

    def configure_node(self, node: Any) -> None:
        """pytest-xdist controller, before a worker starts: the run's shared directory
        and incremental sample seed, the same for every worker."""
        node.workerinput[RUN_DIR] = str(self._make_run_dir())
        if self.incremental is not None:
            node.workerinput[SAMPLE_SEED] = self.incremental.seed

    def finish(self) -> None:
        for started in self.started.values():
            if started.owned:  # started for a determinism item that did not run
                started.close()  # (shared ones may still be read: the controller stops them)
        self.started.clear()
        if self._run_dir is not None:
            stop_shared(self._run_dir)

    def _shared_directory(self, target: GateTarget) -> Path | None:
        """Under pytest-xdist (a worker or the controller): where the run's subprocesses
        for ``target`` write."""
        root = self._workerinput.get(RUN_DIR) if self._workerinput is not None else self._run_dir
        if root is None:
            return None
        return Path(root) / hashlib.sha256(target.key.encode()).hexdigest()[:16]

    def _make_run_dir(self) -> Path:
        if self._run_dir is None:
            import tempfile

            self._run_dir = Path(tempfile.mkdtemp(prefix="planguard-run-"))
        return self._run_dir
