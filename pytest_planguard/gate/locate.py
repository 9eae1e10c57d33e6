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
    text = _text(path)
    if not session:
        sql_file = _sql_file(path, text, view)
        if sql_file is not None and sql_file.is_file():
            return sql_file, 0
    patterns = [re.compile(rf"^\s*\[\s*views\s*\.\s*[\"']?{re.escape(view)}[\"']?\s*\]")]
    patterns.append(re.compile(rf"[\"']{re.escape(view)}[\"']"))
    patterns.append(re.compile(rf"\b{re.escape(view)}\b"))
    lines = text.splitlines()
    for pattern in patterns:
        for number, line in enumerate(lines):
            if pattern.search(line):
                return path, number
    return path, None


def _sql_file(path: Path, text: str, view: str) -> Path | None:
    data: Any
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except ValueError:
        return None
    spec = data.get("views", {}).get(view) if isinstance(data, dict) else None
    name = spec.get("sql_file") if isinstance(spec, dict) else None
    if not isinstance(name, str) or "://" in name:
        return None
    return (path.parent / name).resolve()
