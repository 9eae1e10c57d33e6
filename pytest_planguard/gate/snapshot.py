"""Plan-bundle snapshot files and the syrupy extension that stores them.

One readable text file per (manifest, view)::

    <snapshot dir>/<manifest dir relative to rootdir>/<manifest stem>/<view>.plan

A header (engine versions, pinned-settings hash, normalizer version; per view, when there
are any, the views it reads directly, ``depends-on``, and a hash of the code of each UDF it
calls, ``udfs``) and sections
``P0 logical``, ``P1 optimized``, ``P2 physical``, ``schema`` and ``signals``, then, when
the adapter gives one, the rule ``trace`` (:mod:`pytest_planguard.gate.trace`).  Files are
written atomically (temporary file, fsync, rename): a killed writer leaves the old file or
the new one, never a mix.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syrupy.data import SnapshotCollections
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from pytest_planguard.adapter import BundleView, EngineInfo
from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.gate.normalize import NORMALIZER_VERSION, normalize_plan_text, settings_hash
from pytest_planguard.gate.trace import TRACE_SECTION, trace_lines

if TYPE_CHECKING:
    from syrupy.data import SnapshotCollection
    from syrupy.location import PyTestLocation
    from syrupy.types import SerializableData, SerializedData

FILE_EXTENSION = "plan"
FORMAT_LINE = "# planguard plan bundle v1"
SECTIONS = ("P0 logical", "P1 optimized", "P2 physical", "schema", "signals")
OPTIONAL_SECTIONS = (TRACE_SECTION,)
"""Sections after :data:`SECTIONS` that a snapshot may lack (an adapter without a trace)."""
EXTERNAL = "_external"
HEADER_KEYS = ("view", "engine", "settings-hash", "normalizer", "depends-on", "udfs")
UDF_HASH_CHARS = 16
"""Hex digits of a UDF's code hash kept in the ``udfs`` header line."""
_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
_TEMPORARY = re.compile(r"\.(?P<name>[^/\\]+\.plan)\.[a-z0-9_]{8}\.tmp")
"""What :func:`atomic_write` leaves when it is killed between creating and renaming."""


@dataclass(frozen=True, slots=True)
class ParsedSnapshot:
    header: Mapping[str, str]
    sections: Mapping[str, str]


def valid_snapshot_name(name: str) -> bool:
    """Can ``name`` (a view) name a snapshot file without escaping its directory?"""
    return bool(_SNAPSHOT_NAME.fullmatch(name)) and ".." not in name and os.sep not in name


def snapshot_header(engine: EngineInfo, *, strict_settings: bool = False) -> dict[str, str]:
    return {
        "engine": " ".join(
            f"{name}={version}" for name, version in sorted(engine.versions.items())
        ),
        "settings-hash": settings_hash(engine.settings, strict=strict_settings),
        "normalizer": str(NORMALIZER_VERSION),
    }


def view_header(depends_on: Collection[str], udfs: Mapping[str, str]) -> dict[str, str]:
    """The header lines of one view: ``depends-on`` (the views it reads directly, sorted)
    and ``udfs`` (``name=hash`` of each UDF it calls), each only when not empty."""
    header = {}
    if depends_on:
        header["depends-on"] = ", ".join(sorted(set(depends_on)))
    if udfs:
        header["udfs"] = ", ".join(
            f"{name}={source[:UDF_HASH_CHARS]}" for name, source in sorted(udfs.items())
        )
    return header


def header_names(value: str | None) -> tuple[str, ...]:
    """A list header line (``depends-on: a, b``) as names; ``()`` when absent."""
    return tuple(name for name in (part.strip() for part in (value or "").split(",")) if name)


def header_udfs(value: str | None) -> dict[str, str]:
    """The ``udfs`` header line as name -> code hash; ``{}`` when absent."""
    return dict(part.partition("=")[::2] for part in header_names(value))


def render_snapshot(
    bundle: BundleView,
    header: Mapping[str, str],
    *,
    locations: Mapping[str, str],
    roots: Mapping[str, str],
    stores: Mapping[str, str] | None = None,
) -> str:
    """The snapshot text of one bundle, every section normalized."""

    def norm(text: str) -> str:
        return normalize_plan_text(text, locations=locations, roots=roots, stores=stores or {})

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
    if bundle.trace:
        body[TRACE_SECTION] = "\n".join(trace_lines(bundle.trace, norm))
    for name in (*SECTIONS, *OPTIONAL_SECTIONS):
        if name in body:
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


def snapshot_damage(text: str) -> tuple[str, ...]:
    """Where ``text`` departs from the snapshot format, or ``()`` for a well-formed file.

    The format is exact: the format line, ``# key: value`` header lines of the known keys,
    then the known sections in order (the optional ones last, each at most once), each
    ``== name`` after one blank line.  Anything
    else (an appended section, a stray line before the first section) is damage, which
    the gate reports as a changed plan and never as a cosmetic one.
    """
    lines = text.splitlines()
    problems: list[str] = []
    if not lines or lines[0] != FORMAT_LINE:
        problems.append(f"line 1 is not {FORMAT_LINE!r}")
    expected = iter(SECTIONS)
    optional = list(OPTIONAL_SECTIONS)
    seen_section = False
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith("== "):
            name = line[3:]
            required = next(expected, None)
            if required is None and name in optional:
                optional = optional[optional.index(name) + 1 :]
            elif name != required:
                problems.append(f"line {number}: unexpected section {name!r}")
                break
            seen_section = True
        elif not seen_section:
            key, sep, _ = line[2:].partition(":")
            if line and not (line.startswith("# ") and sep and key in HEADER_KEYS):
                problems.append(f"line {number}: not a header line: {line[:60]!r}")
                break
    missing = list(expected)
    if missing and not problems:
        problems.append("missing section(s): " + ", ".join(missing))
    return tuple(problems)


def is_planguard_snapshot(path: Path) -> bool:
    """True for a regular ``*.plan`` file (not a link) that starts with the format line:
    the only files planguard ever deletes."""
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or path.suffix != f".{FILE_EXTENSION}":
            return False
        with path.open("rb") as handle:
            first = handle.read(len(FORMAT_LINE) + 2)
    except OSError:
        return False
    return first.decode("utf-8", errors="replace").splitlines()[:1] == [FORMAT_LINE]


def unused_snapshots(directory: Path, views: Collection[str]) -> list[Path]:
    """Snapshot files in ``directory`` (one manifest's) that name no view of ``views``."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return []
    return [path for path in entries if path.stem not in views and is_planguard_snapshot(path)]


def stale_temporaries(directory: Path, before: float) -> list[Path]:
    """Temporary files of a killed :func:`atomic_write` in ``directory``, older than
    ``before`` (a run's start): nothing else matches the writer's own name pattern."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return []
    stale = []
    for path in entries:
        if not _TEMPORARY.fullmatch(path.name):
            continue
        try:
            info = path.lstat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_mtime < before:
            stale.append(path)
    return stale


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

    def serialize(self, data: SerializableData, **_: Any) -> SerializedData:
        if not isinstance(data, str):
            raise TypeError(f"plan bundle snapshots are text, got {type(data).__name__}")
        return data

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        """The item's own snapshot directory (a session's lies below its module's): the
        gate's items carry it, so no state is kept on this class between runs.  (syrupy
        also asks for the directory of other items at the end of a session: theirs is
        syrupy's default, where this extension never writes and finds nothing.)"""
        directory = getattr(test_location.item, "snapshot_directory", None)
        if directory is None:
            return str(Path(test_location.filepath).parent / "__snapshots__")
        return str(directory)

    @classmethod
    def matches_test_location(
        cls, *, test_location: PyTestLocation, snapshot_location: str
    ) -> bool:
        """A gate item's snapshot is the file in its own directory (syrupy's default wants
        the test file's stem as the directory name, which a session's is not)."""
        return Path(snapshot_location).parent == Path(cls.dirname(test_location=test_location))

    @classmethod
    def discovery_dirname(cls, *, test_location: PyTestLocation) -> str:
        return cls.dirname(test_location=test_location)

    def discover_snapshots(
        self, *, test_location: PyTestLocation, ignore_extensions: list[str] | None = None
    ) -> SnapshotCollections:
        """Nothing, on purpose: syrupy matches snapshot files to test files, which this
        layout does not follow, and deletes what it cannot match, foreign files included.
        The gate finds unused snapshots itself, only for fully selected manifests and only
        among planguard's own files (:func:`unused_snapshots`)."""
        return SnapshotCollections()

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
