"""Two copies of the repository's committed snapshot tree, for ``planguard diff`` tests."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_SNAPSHOTS = Path(__file__).resolve().parents[2] / "snapshots"


def snapshot_trees(root: Path) -> tuple[Path, Path]:
    """``root/base`` and ``root/head``, each a copy of ``snapshots/``."""
    base, head = root / "base", root / "head"
    shutil.copytree(REPO_SNAPSHOTS, base)
    shutil.copytree(REPO_SNAPSHOTS, head)
    return base, head
