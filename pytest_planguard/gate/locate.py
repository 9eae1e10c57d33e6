"""Where a gated view is defined, for ``reportinfo()`` (IDEs, ``-rA``, GitHub annotations):
its SQL file, or the line of its table in a manifest, or the line of its name in a session
factory's module.  Read from the file's text alone (nothing is imported); unknown lines
are None and the file is still named."""

from __future__ import annotations

import json
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

MAX_BYTES = 4 * 1024 * 1024


@lru_cache(maxsize=64)
def _text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def view_location(path: Path, view: str, *, session: bool = False) -> tuple[Path, int | None]:
    """The file and 0-based line where ``view`` of the manifest or session module
    ``path`` is defined."""
    if not session:
        sql_file = _sql_files(path).get(view)
        if sql_file is not None and sql_file.is_file():
            return sql_file, 0
        line = _view_tables(path).get(view)
        if line is not None:
            return path, line
    lines = _text(path).splitlines()
    for pattern in (rf"[\"']{re.escape(view)}[\"']", rf"\b{re.escape(view)}\b"):
        compiled = re.compile(pattern)
        for number, text in enumerate(lines):
            if compiled.search(text):
                return path, number
    return path, None


_VIEW_TABLE = re.compile(r"^\s*\[\s*views\s*\.\s*(?:\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+))\s*\]")


@lru_cache(maxsize=64)
def _view_tables(path: Path) -> dict[str, int]:
    """View -> the line of its ``[views.NAME]`` table: one pass over the manifest for all
    of its views (a gate of thousands of views asks for each)."""
    found: dict[str, int] = {}
    for number, line in enumerate(_text(path).splitlines()):
        match = _VIEW_TABLE.match(line)
        if match is not None:
            found.setdefault(next(g for g in match.groups() if g is not None), number)
    return found


@lru_cache(maxsize=64)
def _sql_files(path: Path) -> dict[str, Path]:
    """View -> its ``sql_file``, resolved: the manifest is parsed once, not once per view."""
    text = _text(path)
    data: Any
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except ValueError:
        return {}
    views = data.get("views") if isinstance(data, dict) else None
    out: dict[str, Path] = {}
    for view, spec in views.items() if isinstance(views, dict) else ():
        name = spec.get("sql_file") if isinstance(spec, dict) else None
        if isinstance(name, str) and "://" not in name:
            out[view] = (path.parent / name).resolve()
    return out
