"""``pytest --planguard`` as the tests run it: inside a pytester directory (:func:`gate`)
or in a fresh interpreter in a project directory (:func:`run_gate`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

FAST = ("-p", "no:cacheprovider", "--planguard-processes", "0", "--planguard-runs", "1")
"""A quick nested gate: no cache provider, no determinism subprocesses, one run."""


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a nested pytest: nothing of the outer session or its xdist."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "PLANGUARD_")) and key != "COV_CORE_SOURCE"
    }
    return {**env, **extra}


def gate(pytester: pytest.Pytester, *args: str, options: Sequence[str] = FAST) -> pytest.RunResult:
    """``pytest OPTIONS --planguard ARGS`` in a subprocess in pytester's directory."""
    return pytester.runpytest_subprocess(*options, "--planguard", *args)


def gate_command(*args: str, cpus: set[int] | None = None) -> list[str]:
    """The command line of ``pytest --planguard ARGS`` in a fresh interpreter, pinned to
    ``cpus`` (``os.sched_setaffinity``) before pytest starts when given."""
    argv = ["--planguard", *args]
    if cpus is None:
        return [sys.executable, "-m", "pytest", *argv]
    return [
        sys.executable,
        "-c",
        f"import os, sys, pytest; os.sched_setaffinity(0, {cpus!r}); "
        f"sys.exit(pytest.main({argv!r}))",
    ]


def run_gate(
    project: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    cpus: set[int] | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``pytest --planguard ARGS`` in a fresh interpreter in ``project``.

    ``env`` is the whole environment of the process (default: this one's).
    """
    return subprocess.run(
        gate_command(*args, cpus=cpus),
        cwd=project,
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        **kwargs,
    )


def plan_entry_files(directory: Path) -> list[Path]:
    """The files of a plan cache holding view plans (it also keeps dataset statistics and
    the views' SQL analyses): those whose payload is a plan's MessagePack map."""
    import msgspec

    from pytest_planguard.gate.plan_cache import _unwrap

    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        payload = _unwrap(path.read_bytes())
        try:
            decoded = msgspec.msgpack.decode(payload) if payload else None
        except msgspec.DecodeError:
            continue
        if isinstance(decoded, dict) and ("p0" in decoded or "frame" in decoded):
            found.append(path)
    return found
