"""The bundled TPC-H example, copied with its generated data into a test's directory."""

from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "reference_impl" / "examples"
TPCH = EXAMPLES / "tpch"


def copy_tpch(target: Path, data: Path) -> Path:
    """Copy the bundled TPC-H example (manifest, views, data) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(TPCH / "manifest.toml", target / "manifest.toml")
    shutil.copytree(TPCH / "views", target / "views")
    shutil.copytree(data, target / "data", ignore=shutil.ignore_patterns(".lock", ".tmp-*"))
    return target / "manifest.toml"
