"""The ``planguard`` command, called in-process (:func:`run_cli`) or run as a real process
(:func:`run_planguard`)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_planguard.cli import main


def run_cli(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """Call ``planguard ARGS`` in this process; return (exit code, stdout, stderr).

    With ``cwd`` the command runs in that directory (so a relative write that slipped
    through would land in a tree the test checks), and the old one is restored after.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def planguard_command() -> list[str]:
    """The installed ``planguard`` console script, or ``python -m pytest_planguard.cli``."""
    script = Path(sys.executable).with_name("planguard")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "pytest_planguard.cli"]


def run_planguard(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    timeout: float = 300,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``planguard ARGS`` as a real process.

    Its environment is this one without ``PLANGUARD_DEBUG`` (so that an internal error is
    a coded line, not a traceback) and the names in ``unset``, plus ``env``.  ``kwargs``
    go to :func:`subprocess.run` (``preexec_fn``, say).
    """
    removed = {"PLANGUARD_DEBUG", *unset}
    base = {key: value for key, value in os.environ.items() if key not in removed}
    return subprocess.run(
        [*planguard_command(), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**base, **(env or {})},
        check=False,
        timeout=timeout,
        **kwargs,
    )
