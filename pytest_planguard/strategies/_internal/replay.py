"""Write a failing case where ``planguard compile`` can replay it."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from pytest_planguard.strategies._internal.cases import Case

FAILURES_DIR_ENV = "PLANGUARD_FAILURES_DIR"
"""Environment variable naming where :func:`replay_on_failure` writes failing cases
(default ``.planguard-failures`` in the current directory)."""


def write_failure(case: Case, directory: str | os.PathLike[str] | None = None) -> Path:
    """Write ``case`` to ``<directory>/<16-hex digest>/`` and return that directory.

    ``directory`` defaults to ``$PLANGUARD_FAILURES_DIR`` or ``.planguard-failures``.
    The directory holds the manifest (and its tables): ``planguard compile DIR`` replays it.
    """
    base = Path(directory or os.environ.get(FAILURES_DIR_ENV) or ".planguard-failures")
    target = base / case.digest()[:16]
    if target.exists():
        shutil.rmtree(target)
    case.write(target)
    return target.resolve()


def _final_or_outside_hypothesis() -> tuple[bool, bool]:
    """(inside a Hypothesis test, this run is the final, reported one)."""
    try:
        from hypothesis.control import current_build_context

        context = current_build_context()
    except Exception:
        return False, True
    return True, bool(getattr(context, "is_final", True))


@contextlib.contextmanager
def replay_on_failure(
    case: Case, directory: str | os.PathLike[str] | None = None
) -> Iterator[None]:
    """On an exception in the block, write ``case`` for replay and name it in the failure.

    Inside a Hypothesis test only the final (shrunk) example is written, and its path is
    shown with ``note()``; outside one the case is written at once.  Either way the
    exception gets a note ``planguard: replay this case with: planguard compile <dir>``.
    """
    try:
        yield
    except Exception as exc:
        inside, final = _final_or_outside_hypothesis()
        if final:
            target = write_failure(case, directory)
            message = (
                f"planguard: failing case written to {target}; "
                f"replay it with: planguard compile {target}"
            )
            if inside:
                from hypothesis import note

                note(message)
            else:
                exc.add_note(message)
        raise
