"""A reader that closes the pipe early is not an error of planguard's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_closed_pipe_ends_quietly(tpch_manifest: Path) -> None:
    command = [sys.executable, "-m", "pytest_planguard.cli", "compile", str(tpch_manifest)]
    process = subprocess.Popen(
        [*command, "--plan", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    head = process.stdout.read(64)  # then close, like `| head -c 64`
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert head.startswith(b"{")
    assert err.decode() == ""
    assert process.returncode == 0
