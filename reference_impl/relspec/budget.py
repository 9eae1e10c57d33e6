"""A planning budget: run one view's planning with a deadline.

A running plan cannot be cancelled.  So planning runs on a daemon worker thread; when the
deadline passes the caller stops waiting, reports ``PLANNING_BUDGET_EXCEEDED`` for that
view and carries on with a fresh worker, while the abandoned one finishes (or dies with the
process) in the background.

The caller can only stop waiting while the worker does not hold the GIL.  DataFusion
releases it in ``ctx.sql`` and ``DataFrame.execution_plan()`` (where pathological plans
spend their time) but not in ``DataFrame.optimized_logical_plan()``: callers plan
physically first and take the optimized logical plan afterwards, and semantic compile
refuses the shapes whose optimization alone explodes
(:mod:`reference_impl.semantics.complexity`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Job(Generic[T]):
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class BudgetExceeded(Exception):
    """The job did not finish within its deadline."""


class PlanningWorker:
    """Runs callables one at a time on a daemon thread, each with a deadline."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job[object] | None] | None = None

    def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        """``fn()``'s result, or :class:`BudgetExceeded` after ``timeout_s`` seconds."""
        if self._jobs is None:
            self._jobs = self._start()
        job: _Job[T] = _Job(fn)
        self._jobs.put(job)  # type: ignore[arg-type]
        if not job.done.wait(timeout_s):
            self._jobs.put(None)  # the thread exits after the abandoned job
            self._jobs = None
            raise BudgetExceeded
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None

    @staticmethod
    def _start() -> queue.SimpleQueue[_Job[object] | None]:
        jobs: queue.SimpleQueue[_Job[object] | None] = queue.SimpleQueue()

        def loop() -> None:
            while (job := jobs.get()) is not None:
                try:
                    job.result = job.fn()
                except BaseException as exc:
                    job.error = exc
                finally:
                    job.done.set()

        threading.Thread(target=loop, name="planguard-planner", daemon=True).start()
        return jobs
