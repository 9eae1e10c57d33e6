"""A planning budget: run one view's planning with a deadline.

A running plan cannot be cancelled.  So planning runs on a daemon worker thread; when the
deadline passes the caller stops waiting, reports ``PLANNING_BUDGET_EXCEEDED`` for that
view and carries on with a fresh worker, while the abandoned one finishes its job in the
background.

The caller can only stop waiting while the worker does not hold the GIL.  DataFusion
releases it in ``ctx.sql`` and ``DataFrame.execution_plan()`` (where pathological plans
spend their time) but not in ``DataFrame.optimized_logical_plan()``: callers plan
physically first and take the optimized logical plan afterwards, and semantic compile
refuses the shapes whose optimization alone explodes
(:mod:`reference_impl.semantics.complexity`).

**No planning thread outlives its use.**  On CPython before 3.14, a thread that comes back
from a GIL-releasing engine call after the interpreter has begun finalizing is ended with
``pthread_exit``.  Its forced unwind runs through the engine's Rust and C++ frames and
aborts the whole process (``terminate called without an active exception`` or ``FATAL:
exception not rethrown``, SIGABRT, exit 134), after the run has written everything.  So:

* :meth:`PlanningWorker.close` joins its thread, which is idle then (every job it ran has
  finished), so nothing of the worker is left when the caller moves on;
* a worker abandoned at a deadline (or by an interrupt) is told to stop after its job and
  joined by an :mod:`atexit` hook, which runs before finalization begins: a process whose
  planning hit the budget reports on time but exits only once the abandoned planning has
  returned from the engine.
"""

from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

THREAD_NAME = "planguard-planner"

_abandoned: set[threading.Thread] = set()
_abandoned_lock = threading.Lock()


class _Job(Generic[T]):
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        # held until the job has finished: a bare lock, cheaper to wait on and to
        # release than an Event (a planning hands over two jobs per view)
        self.done = threading.Lock()
        self.done.acquire()
        self.result: T | None = None
        self.error: BaseException | None = None

    def wait(self, timeout_s: float) -> bool:
        """Whether the job finished within ``timeout_s`` seconds (as ``Event.wait``: a
        timeout of 0 or less only looks)."""
        if timeout_s <= 0:
            return self.done.acquire(blocking=False)
        return self.done.acquire(timeout=min(timeout_s, threading.TIMEOUT_MAX))


class BudgetExceeded(Exception):
    """The job did not finish within its deadline."""


_Queue = queue.SimpleQueue["_Job[object] | None"]


class PlanningWorker:
    """Runs callables one at a time on a daemon thread, each with a deadline."""

    def __init__(self) -> None:
        self._jobs: _Queue | None = None
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        """``fn()``'s result, or :class:`BudgetExceeded` after ``timeout_s`` seconds."""
        if self._jobs is None:
            self._jobs, self._thread = _start()
        job: _Job[T] = _Job(fn)
        self._jobs.put(job)  # type: ignore[arg-type]
        finished = False
        try:
            finished = job.wait(timeout_s)
        finally:
            if not finished:  # the deadline passed, or the wait was interrupted
                self._abandon()
        if not finished:
            raise BudgetExceeded
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the worker and wait for its thread to end (it is idle: nothing to wait for)."""
        jobs, thread = self._jobs, self._thread
        self._jobs = self._thread = None
        if jobs is not None:
            jobs.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _abandon(self) -> None:
        """Leave the running job to finish; its thread ends after it and is joined at exit."""
        jobs, thread = self._jobs, self._thread
        self._jobs = self._thread = None
        if jobs is not None:
            jobs.put(None)
        if thread is not None:
            with _abandoned_lock:
                _abandoned.difference_update([t for t in _abandoned if not t.is_alive()])
                _abandoned.add(thread)


def abandoned_workers() -> tuple[threading.Thread, ...]:
    """Threads of abandoned workers that are still running their job."""
    with _abandoned_lock:
        return tuple(t for t in _abandoned if t.is_alive())


def join_abandoned_workers() -> None:
    """Wait until every abandoned worker has returned from the engine and ended."""
    for thread in abandoned_workers():
        thread.join()


atexit.register(join_abandoned_workers)


def _start() -> tuple[_Queue, threading.Thread]:
    jobs: _Queue = queue.SimpleQueue()

    def loop() -> None:
        while (job := jobs.get()) is not None:
            try:
                job.result = job.fn()
            except BaseException as exc:
                job.error = exc
            finally:
                job.done.release()
            del job  # drop the last result here, not when the next job arrives

    thread = threading.Thread(target=loop, name=THREAD_NAME, daemon=True)
    thread.start()
    return jobs, thread
