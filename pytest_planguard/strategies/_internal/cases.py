"""The frozen case values: tables, views, valid and hostile manifests, Delta protocols.

Each case is a plain value; ``case.write(directory)`` materializes it on disk."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from pytest_planguard.strategies._internal.serialization import (
    _arrow_type,
    _freeze,
    _shorten,
    _shuffle,
    _thaw,
    _toml_dumps,
)

DatasetFormat: TypeAlias = Literal["delta", "parquet"]
ManifestFormat: TypeAlias = Literal["toml", "json"]


@dataclass(frozen=True, slots=True)
class DeltaProtocolCase:
    """A Delta protocol to fuzz with: how to produce it and what a pipeline supports.

    ``configuration`` are the table properties that make deltalake write a table at the
    protocol; ``timestamp_ntz`` adds a timezone-less timestamp column (which requires the
    ``timestampNtz`` feature, reader 3 / writer 7).  ``support`` is a
    ``[policy.delta_support]`` table, or None for "support unconfigured".
    """

    configuration: Mapping[str, str]
    timestamp_ntz: bool
    support: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class TableCase:
    """One input table of a valid case: where it goes and what it holds."""

    name: str
    format: DatasetFormat
    location: str
    """Manifest-relative; for Parquet either a directory or a ``.parquet`` file."""
    columns: tuple[tuple[str, str], ...]
    """``(column name, Arrow type name)`` pairs, e.g. ``("k_1", "int64")``."""
    rows: tuple[tuple[Any, ...], ...]
    configuration: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Delta table properties (ignored for Parquet)."""

    def write(self, root: Path) -> Path:
        """Write the table under ``root`` (replacing what is there); returns its path."""
        import pyarrow as pa

        target = root / self.location
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        arrays = []
        for index, (_, type_name) in enumerate(self.columns):
            values = [row[index] for row in self.rows]
            arrays.append(pa.array(values, type=_arrow_type(type_name)))
        table = pa.Table.from_arrays(arrays, names=[name for name, _ in self.columns])
        if self.format == "delta":
            import deltalake

            deltalake.write_deltalake(
                str(target), table, configuration=dict(self.configuration) or None
            )
        else:
            import pyarrow.parquet as pq

            if target.suffix == ".parquet":
                pq.write_table(table, str(target))
            else:
                target.mkdir(parents=True)
                pq.write_table(table, str(target / "part-0.parquet"))
        return target


@dataclass(frozen=True, slots=True)
class ViewCase:
    """One view of a valid case, as generated: what its SQL reads and calls."""

    name: str
    sql: str
    depends_on: tuple[str, ...]
    """Datasets and views the SQL reads, sorted (what a correct compiler must find)."""
    calls_udfs: tuple[str, ...] = ()
    features: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ManifestCase:
    """A valid manifest with everything it needs on disk.

    ``document`` is the manifest as a read-only nested mapping, in declaration order;
    ``manifest_format`` and ``toml_style`` decide how it is written.  A correct compiler
    accepts it and finds each view's ``depends_on``; DataFusion plans every view, except
    for engine defects (datafusion 55 rejects a rare UNION ALL + ORDER BY shape with
    ``SanityCheckPlan``: see ``tests/property/test_engine_properties.py``).
    """

    document: Mapping[str, Any]
    manifest_format: ManifestFormat
    tables: tuple[TableCase, ...]
    files: Mapping[str, str]
    """Manifest-relative path -> text of SQL files and UDF modules."""
    views: tuple[ViewCase, ...]
    features: frozenset[str]
    toml_style: Literal["tables", "inline"] = "tables"

    def __repr__(self) -> str:
        views = ", ".join(f"{view.name}={_shorten(view.sql, 300)!r}" for view in self.views)
        tables = ", ".join(f"{t.name}:{t.format}[{len(t.rows)} rows]" for t in self.tables)
        return (
            f"ManifestCase({self.manifest_format}, digest={self.digest()[:16]}, "
            f"tables=[{tables}], views=[{views}])"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis and IPython pretty-print cases with the compact repr."""
        printer.text(repr(self))

    @property
    def file_name(self) -> str:
        return f"manifest.{self.manifest_format}"

    def manifest_bytes(self) -> bytes:
        """The manifest file's content."""
        plain = _thaw(self.document)
        if self.manifest_format == "json":
            return (json.dumps(plain, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        return _toml_dumps(plain, inline=self.toml_style == "inline").encode("utf-8")

    def write(
        self, directory: str | os.PathLike[str], *, file_name: str | None = None, data: bool = True
    ) -> Path:
        """Write the manifest, its SQL files and UDF modules and (with ``data``) its tables.

        Returns the manifest path.  ``data=False`` skips the tables (semantic compile never
        reads them); ``file_name`` writes the manifest under another name in the same
        directory, e.g. a reordered twin next to the original, sharing its tables.
        """
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        for relative, text in self.files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if data:
            for table in self.tables:
                table.write(root)
        manifest = root / (file_name or self.file_name)
        manifest.write_bytes(self.manifest_bytes())
        return manifest

    def reordered(self, rng: random.Random) -> ManifestCase:
        """The same manifest with every table's keys, and every order-free list, shuffled.

        Its semantic fingerprint and validation result must equal this case's.
        """
        document = _shuffle(_thaw(self.document), (), rng)
        style: Literal["tables", "inline"] = rng.choice(("tables", "inline"))
        return replace(self, document=_freeze(document), toml_style=style)

    def with_manifest_format(self, manifest_format: ManifestFormat) -> ManifestCase:
        """The same manifest written as TOML or JSON."""
        return replace(self, manifest_format=manifest_format)

    def digest(self) -> str:
        """sha256 over everything :meth:`write` writes (names replay directories)."""
        payload = {
            "manifest": self.manifest_bytes().decode("utf-8"),
            "name": self.file_name,
            "files": dict(sorted(self.files.items())),
            "tables": [
                [t.name, t.format, t.location, t.columns, repr(t.rows), dict(t.configuration)]
                for t in self.tables
            ],
        }
        return hashlib.sha256(
            json.dumps(payload, sort_keys=True, default=repr).encode("utf-8")
        ).hexdigest()


@dataclass(frozen=True, slots=True)
class HostileCase:
    """An invalid manifest: one mutation of a valid case and the codes it must fail with.

    ``expected_codes`` are ``reference_impl`` error codes (``MANIFEST_CYCLE`` ...); a
    correct compiler fails with one of them and never with anything else.
    """

    mutation: str
    description: str
    expected_codes: frozenset[str]
    manifest_name: str
    manifest: bytes
    files: Mapping[str, bytes]
    directories: tuple[str, ...] = ()
    symlinks: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Manifest-relative link path -> link target (as written, possibly pointing outside)."""

    def __repr__(self) -> str:
        return (
            f"HostileCase({self.mutation!r}, {_shorten(self.description, 200)!r}, "
            f"expected={sorted(self.expected_codes)}, {self.manifest_name}: "
            f"{len(self.manifest)} bytes, digest={self.digest()[:16]})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis and IPython pretty-print cases with the compact repr."""
        printer.text(repr(self))

    def write(self, directory: str | os.PathLike[str]) -> Path:
        """Write the manifest and the files and links it names; returns the manifest path."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        for relative in self.directories:
            (root / relative).mkdir(parents=True, exist_ok=True)
        for relative, content in self.files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        for relative, target in self.symlinks.items():
            link = root / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
        manifest = root / self.manifest_name
        manifest.write_bytes(self.manifest)
        return manifest

    def digest(self) -> str:
        """sha256 over everything :meth:`write` writes (names replay directories)."""
        hasher = hashlib.sha256(self.manifest_name.encode() + b"\0" + self.manifest)
        for relative, content in sorted(self.files.items()):
            hasher.update(relative.encode() + b"\0" + content)
        for relative, target in sorted(self.symlinks.items()):
            hasher.update(f"{relative}->{target}".encode())
        for relative in self.directories:
            hasher.update(relative.encode())
        return hasher.hexdigest()


Case: TypeAlias = ManifestCase | HostileCase


def manifest_case(
    tables: Sequence[TableCase],
    views: Sequence[ViewCase],
    *,
    manifest_format: ManifestFormat = "toml",
    sections: Mapping[str, Any] | None = None,
    files: Mapping[str, str] | None = None,
) -> ManifestCase:
    """A valid case built by hand, e.g. to pin a regression with ``@example``.

    The document declares ``tables`` and ``views`` (inline ``sql``); ``sections`` adds
    or replaces top-level tables such as ``runtime``, ``policy`` or ``udfs``; ``files``
    are extra files to write (UDF modules, SQL files).
    """
    document: dict[str, Any] = {
        "datasets": {t.name: {"format": t.format, "location": t.location} for t in tables},
        "views": {view.name: {"sql": view.sql} for view in views},
    }
    document.update(_thaw(dict(sections or {})))
    return ManifestCase(
        document=_freeze(document),
        manifest_format=manifest_format,
        tables=tuple(tables),
        files=MappingProxyType(dict(files or {})),
        views=tuple(views),
        features=frozenset().union(*(view.features for view in views)),
    )
