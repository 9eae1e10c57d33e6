"""Plan-bundle snapshot files and the syrupy extension that stores them.

One readable text file per (manifest, view)::

    <snapshot dir>/<manifest dir relative to rootdir>/<manifest stem>/<view>.plan

A header (engine versions, pinned-settings hash, normalizer version) and sections
``P0 logical``, ``P1 optimized``, ``P2 physical``, ``schema`` and ``signals``.  Files are
written atomically (temporary file, fsync, rename): a killed writer leaves the old file or
the new one, never a mix.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from pytest_planguard.adapter import BundleView, EngineInfo
from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.normalize import NORMALIZER_VERSION, normalize_plan_text, settings_hash

if TYPE_CHECKING:
    from syrupy.data import SnapshotCollection
    from syrupy.location import PyTestLocation
    from syrupy.types import SerializableData, SerializedData

FILE_EXTENSION = "plan"
FORMAT_LINE = "# planguard plan bundle v1"
SECTIONS = ("P0 logical", "P1 optimized", "P2 physical", "schema", "signals")
EXTERNAL = "_external"


@dataclass(frozen=True, slots=True)
class ParsedSnapshot:
    header: Mapping[str, str]
    sections: Mapping[str, str]


def snapshot_header(engine: EngineInfo) -> dict[str, str]:
    return {
        "engine": " ".join(
            f"{name}={version}" for name, version in sorted(engine.versions.items())
        ),
        "settings-hash": settings_hash(engine.settings),
        "normalizer": str(NORMALIZER_VERSION),
    }


def render_snapshot(
    bundle: BundleView,
    header: Mapping[str, str],
    *,
    locations: Mapping[str, str],
    roots: Mapping[str, str],
) -> str:
    """The snapshot text of one bundle, every section normalized."""

    def norm(text: str) -> str:
        return normalize_plan_text(text, locations=locations, roots=roots)

    schema = "\n".join(
        f"{name}: {norm(dtype)}{'' if nullable else ' not null'}"
        for name, dtype, nullable in bundle.schema
    )
    signals = "\n".join(_signal_lines(bundle.signals))
    parts = [FORMAT_LINE, f"# view: {bundle.view}"]
    parts += [f"# {key}: {value}" for key, value in header.items()]
    body = {
        "P0 logical": norm(bundle.p0),
        "P1 optimized": norm(bundle.p1),
        "P2 physical": norm(bundle.p2),
        "schema": schema,
        "signals": signals,
    }
    for name in SECTIONS:
        parts += ["", f"== {name}", body[name]]
    return "\n".join(parts).rstrip("\n") + "\n"


def _signal_lines(signals: Mapping[str, Any]) -> list[str]:
    lines = []
    for key in sorted(signals):
        value = signals[key]
        if isinstance(value, Mapping):
            shown = " ".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
        elif isinstance(value, list | tuple):
            shown = ", ".join(str(v) for v in value) or "-"
        elif value is None:
            shown = "-"
        else:
            shown = str(value)
        lines.append(f"{key}: {shown}")
    return lines


def parse_snapshot(text: str) -> ParsedSnapshot:
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("== "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
        elif line.startswith("# ") and ":" in line:
            key, _, value = line[2:].partition(":")
            header[key.strip()] = value.strip()
    return ParsedSnapshot(
        header=header,
        sections={name: "\n".join(lines).strip("\n") for name, lines in sections.items()},
    )


def parse_signals(section: str) -> dict[str, str]:
    out = {}
    for line in section.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out[key.strip()] = value.strip()
    return out


def snapshot_directory(snapshot_root: Path, rootpath: Path, manifest: Path) -> Path:
    """``<root>/<manifest dir relative to rootdir>/<manifest stem>`` (``_external/...``
    when the manifest lies outside the rootdir)."""
    parent = manifest.resolve().parent
    try:
        relative = parent.relative_to(rootpath.resolve())
    except ValueError:
        relative = Path(EXTERNAL) / parent.name
    return snapshot_root / relative / manifest.stem


def read_snapshot_text(path: Path) -> str | None:
    """A snapshot file's text, or None when there is none.

    A damaged file (not UTF-8) still reads, with replacement characters, so that it is
    reported as a changed plan and rewritten by ``--snapshot-update`` instead of crashing
    the gate (and being deleted as unused).
    """
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    # universal newlines, as text-mode reading does (a checkout may convert to CRLF)
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


@lru_cache(maxsize=256)
def _snapshot_dirname(snapshot_root: Path, rootpath: Path, manifest: str) -> str:
    """:func:`snapshot_directory` as syrupy asks for it: several times per item and once
    per snapshot file found (each a ``resolve()``, so a few syscalls); memoized."""
    return str(snapshot_directory(snapshot_root, rootpath, Path(manifest)))


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise PlanguardError(
            PlanguardCode.SNAPSHOT_WRITE_FAILED,
            f"cannot write {str(path)!r}: {exc.strerror or exc}",
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise PlanguardError(
            PlanguardCode.SNAPSHOT_WRITE_FAILED,
            f"cannot write {str(path)!r}: {exc.strerror or exc}",
        ) from None


class PlanBundleSnapshotExtension(SingleFileSnapshotExtension):
    """syrupy single-file extension for ``.plan`` files in the planguard layout."""

    file_extension = FILE_EXTENSION
    _write_mode = WriteMode.TEXT
    snapshot_root: ClassVar[Path] = Path("snapshots")
    rootpath: ClassVar[Path] = Path()

    def serialize(self, data: SerializableData, **_: Any) -> SerializedData:
        if not isinstance(data, str):
            raise TypeError(f"plan bundle snapshots are text, got {type(data).__name__}")
        return data

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return _snapshot_dirname(cls.snapshot_root, cls.rootpath, str(test_location.filepath))

    @classmethod
    def discovery_dirname(cls, *, test_location: PyTestLocation) -> str:
        return cls.dirname(test_location=test_location)

    @classmethod
    def get_snapshot_name(cls, *, test_location: PyTestLocation, index: Any = 0) -> str:
        return str(test_location.testname)

    def read_snapshot_data_from_location(
        self, *, snapshot_location: str, snapshot_name: str, session_id: str
    ) -> SerializableData | None:
        return read_snapshot_text(Path(snapshot_location))

    @classmethod
    def write_snapshot_collection(
        cls, *, snapshot_collection: SnapshotCollection, name_order: dict[str, int] | None = None
    ) -> None:
        data = next(iter(snapshot_collection)).data
        if not isinstance(data, str):
            raise TypeError(f"plan bundle snapshots are text, got {type(data).__name__}")
        atomic_write(Path(snapshot_collection.location), data)
