"""``planguard init DIR``: a starter manifest for the tables already in a directory.

It finds every Delta table (a directory holding ``_delta_log``) and every Parquet dataset
(a directory of ``*.parquet`` files outside any Delta table) under ``DIR``, within a
bounded depth and count, and writes ``DIR/manifest.toml`` (a dataset and a starter view
per table; ``[policy.delta_support]`` set to what those tables' protocols actually need,
so the first ``planguard validate`` does not fail closed) and ``DIR/pytest.ini`` (the
gate on that manifest).  It never overwrites: if either file exists, nothing is written.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from reference_impl.engine.delta_protocol import DeltaProtocol, delta_protocol_from_table
from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.load import NAME_RE, RESERVED_NAMES

MAX_DEPTH = 4
"""Directory levels below ``DIR`` searched for tables."""
MAX_DATASETS = 200
"""More tables than this is not a starter project: init refuses rather than truncate."""
_SKIPPED = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "snapshots"}


@dataclass(frozen=True, slots=True)
class FoundDataset:
    name: str
    format: str
    location: str
    """Relative to ``DIR``, with ``/``."""
    protocol: DeltaProtocol | None


@dataclass(frozen=True, slots=True)
class Scaffold:
    manifest: Path
    pytest_ini: Path
    datasets: tuple[FoundDataset, ...]


def scaffold_project(directory: Path) -> Scaffold:
    """Write the starter manifest and pytest.ini for the tables under ``directory``."""
    root = directory.resolve()
    if not root.is_dir():
        raise ReferenceImplError(
            ErrorCode.MANIFEST_NOT_FOUND, f"{str(directory)!r} is not a directory"
        )
    manifest, ini = root / "manifest.toml", root / "pytest.ini"
    for path in (manifest, ini):
        if path.exists() or path.is_symlink():
            raise ReferenceImplError(
                ErrorCode.INIT_TARGET_EXISTS,
                f"{path.name} already exists in {str(directory)!r}; init never overwrites",
                file=str(path),
            )
    datasets = find_datasets(root)
    if not datasets:
        raise ReferenceImplError(
            ErrorCode.DATASET_NOT_FOUND,
            f"no Delta table or Parquet dataset within {MAX_DEPTH} levels of {str(directory)!r}",
        )
    text = manifest_text(root.name, datasets)
    ini_text = "[pytest]\nplanguard_manifests = manifest.toml\n"
    # exclusive creation: a file that appeared meanwhile is never overwritten
    with manifest.open("x", encoding="utf-8") as handle:
        handle.write(text)
    try:
        with ini.open("x", encoding="utf-8") as handle:
            handle.write(ini_text)
    except FileExistsError:
        manifest.unlink()
        raise ReferenceImplError(
            ErrorCode.INIT_TARGET_EXISTS,
            f"pytest.ini appeared in {str(directory)!r}; init never overwrites",
            file=str(ini),
        ) from None
    return Scaffold(manifest=manifest, pytest_ini=ini, datasets=datasets)


def find_datasets(root: Path) -> tuple[FoundDataset, ...]:
    """Delta tables and Parquet directories under ``root`` (no symlinks followed)."""
    found: list[tuple[str, str, Path]] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(directory)
        depth = len(here.relative_to(root).parts)
        if "_delta_log" in dirnames:
            found.append(("delta", _relative(here, root), here))
            dirnames[:] = []  # a table's partitions are not tables of their own
            continue
        if any(name.endswith(".parquet") for name in filenames) and here != root:
            found.append(("parquet", _relative(here, root), here))
            dirnames[:] = []
            continue
        dirnames[:] = sorted(
            name
            for name in dirnames
            if name not in _SKIPPED and not name.startswith(".") and depth < MAX_DEPTH
        )
        if len(found) > MAX_DATASETS:
            break
    if len(found) > MAX_DATASETS:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_LIMIT_EXCEEDED,
            f"more than {MAX_DATASETS} datasets under {str(root)!r}: write the manifest by hand",
        )
    names: set[str] = set()
    out = []
    for fmt, location, path in sorted(found, key=lambda entry: entry[1]):
        name = _unique(_identifier(Path(location).name), names)
        out.append(FoundDataset(name, fmt, location, _protocol(path) if fmt == "delta" else None))
    return tuple(out)


def manifest_text(project: str, datasets: tuple[FoundDataset, ...]) -> str:
    lines = [
        "# Written by `planguard init`: one dataset and one starter view per table found.",
        "# Edit the views; see `planguard schema` for every key.",
        "",
        "[project]",
        f"name = {json.dumps(_identifier(project))}",
    ]
    for dataset in datasets:
        lines += [
            "",
            f"[datasets.{dataset.name}]",
            f"format = {json.dumps(dataset.format)}",
            f"location = {json.dumps(dataset.location)}",
        ]
    for dataset in datasets:
        lines += ["", f"[views.{dataset.name}_rows]", f'sql = "SELECT * FROM {dataset.name}"']
    protocols = [d.protocol for d in datasets if d.protocol is not None]
    if protocols:
        reader = sorted({f for p in protocols for f in p.reader_features})
        writer = sorted({f for p in protocols for f in p.writer_features})
        lines += [
            "",
            "# What these tables' protocols need (from their _delta_log): the engine must",
            "# support at least this, or validate fails closed.",
            "[policy.delta_support]",
            f"max_reader_version = {max(p.min_reader_version for p in protocols)}",
            f"max_writer_version = {max(p.min_writer_version for p in protocols)}",
            f"reader_features = {json.dumps(reader)}",
            f"writer_features = {json.dumps(writer)}",
        ]
    return "\n".join(lines) + "\n"


def _protocol(path: Path) -> DeltaProtocol:
    import deltalake

    try:
        return delta_protocol_from_table(deltalake.DeltaTable(str(path)).protocol())
    except Exception as exc:
        raise ReferenceImplError(
            ErrorCode.DELTA_LOG_CORRUPT, f"cannot read the Delta table at {str(path)!r}: {exc}"
        ) from None


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() or "."


def _identifier(text: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "data"
    if name[0].isdigit():
        name = f"t_{name}"
    if name in RESERVED_NAMES:
        name = f"{name}_data"
    return name[:56]


def _unique(name: str, taken: set[str]) -> str:
    candidate, index = name, 2
    while candidate in taken or NAME_RE.fullmatch(candidate) is None:
        candidate = f"{name}_{index}"
        index += 1
    taken.add(candidate)
    return candidate
