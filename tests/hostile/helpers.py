"""Shared checks of the hostile suite: coded error lines, no traceback, nothing written."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from reference_impl.issues import display_path
from tests.hostile.corpus import Case

ERROR_LINE = re.compile(r"^error\[(?P<code>[A-Z_]+)\] (?P<rest>.*)$", re.MULTILINE)
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "', "panicked at")


def tree_state(root: Path) -> Mapping[str, tuple[str, int, int]]:
    """Every path under ``root`` with its kind, size and modification time."""
    state: dict[str, tuple[str, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            info = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            size = 0 if kind == "dir" else info.st_size
            state[str(path.relative_to(root))] = (kind, size, info.st_mtime_ns)
    return state


def assert_nothing_written(before: Mapping[str, object], after: Mapping[str, object]) -> None:
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(
        path
        for path in set(before) & set(after)
        if before[path] != after[path] and not str(before[path]).startswith("('dir'")
    )
    assert not created, f"bad input wrote to disk: created {created}"
    assert not removed, f"bad input removed {removed}"
    assert not changed, f"bad input changed {changed}"


def assert_no_traceback(*streams: str) -> None:
    for stream in streams:
        for marker in TRACEBACK_MARKERS:
            assert marker not in stream, f"{marker!r} in output:\n{stream[-2000:]}"


def shown(path: Path, cwd: Path) -> str:
    """``path`` as ``planguard`` run in ``cwd`` prints it: relative to ``cwd`` when inside
    it, else absolute (``reference_impl.issues.display_path``)."""
    with contextlib.chdir(cwd):
        return display_path(path)


def assert_error_line(case: Case, stderr: str, file: Path, cwd: Path) -> re.Match[str]:
    """The first line of ``stderr`` is ``error[CODE] file: field.path: message``, the file
    named as the command run in ``cwd`` prints it."""
    lines = stderr.strip().splitlines()
    assert lines, "no error line on stderr"
    match = ERROR_LINE.match(lines[0])
    assert match is not None, f"not an error[CODE] line: {lines[0]!r}"
    rest = match["rest"]
    named = shown(file, cwd)
    assert rest.startswith(f"{named}: "), f"{rest!r} does not name {named}"
    if case.field_path is not None:
        where = rest.split(": ", 1)[1]
        assert where.startswith(f"{case.field_path}: "), (
            f"{where!r} does not name the field {case.field_path}"
        )
    return match
