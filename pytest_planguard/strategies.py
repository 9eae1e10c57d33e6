"""Hypothesis strategies for manifest format v1: valid, hostile, runtime and Delta cases.

Fuzz your own manifest compiler with them (this project fuzzes ``reference_impl`` with the
same strategies in ``tests/property/``)::

    from hypothesis import given
    from pytest_planguard.strategies import hostile_manifests, manifests, replay_on_failure

    @given(case=manifests())
    def test_compiles(case, tmp_path_factory):
        path = case.write(tmp_path_factory.mktemp("case"))
        with replay_on_failure(case):
            my_compiler(path)

* :func:`manifests` draws valid :class:`ManifestCase` objects: random DAGs of views over
  generated Arrow schemas, SQL from a typed grammar (projection, filter, inner and left
  joins on typed keys, aggregates with GROUP BY / HAVING, UNION ALL, CTEs, window
  functions, ORDER BY / LIMIT, calls of a Python UDF the case registers).
* :func:`hostile_manifests` draws invalid :class:`HostileCase` objects by mutating a
  valid one (cycles, unknown references, wrong types, statements that are not queries,
  locations escaping the root, duplicate and reserved names, very long identifiers,
  unicode, broken files); each names the error codes a correct compiler answers with.
* :func:`runtime_profiles` draws ``[runtime]`` tables; :func:`delta_protocols` draws
  Delta table protocols (the table properties that produce them) and
  ``[policy.delta_support]`` tables.

Every case is a frozen value; ``case.write(directory)`` materializes the manifest file,
the SQL files and UDF modules it names and, for valid cases, real Delta tables and Parquet
files, and returns the manifest path.  :func:`replay_on_failure` writes the final
(shrunk) failing case to ``.planguard-failures/<hash>/`` so that
``planguard compile <that directory>`` replays it.

This module imports Hypothesis; ``pyarrow`` and ``deltalake`` are imported only when a
valid case writes its tables.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import random
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from hypothesis import strategies as st

from pytest_planguard import _sqlgen
from pytest_planguard._sqlgen import Column, Kind, Relation, names, quote

__all__ = [
    "FAILURES_DIR_ENV",
    "GRAMMAR_FEATURES",
    "MUTATIONS",
    "UDF_MODULE",
    "DeltaProtocolCase",
    "HostileCase",
    "ManifestCase",
    "TableCase",
    "ViewCase",
    "delta_protocols",
    "hostile_manifests",
    "manifest_case",
    "manifests",
    "replay_on_failure",
    "runtime_profiles",
    "write_failure",
]

DatasetFormat: TypeAlias = Literal["delta", "parquet"]
ManifestFormat: TypeAlias = Literal["toml", "json"]

FAILURES_DIR_ENV = "PLANGUARD_FAILURES_DIR"
"""Environment variable naming where :func:`replay_on_failure` writes failing cases
(default ``.planguard-failures`` in the current directory)."""

GRAMMAR_FEATURES: tuple[str, ...] = (
    *_sqlgen.FEATURES,
    "view_reads_view",
    "sql_file",
    "delta",
    "parquet",
    "json_manifest",
    "toml_manifest",
    "udf_factory",
    "udf_package",
    "output",
    "delta_support",
)
"""Labels a :class:`ManifestCase` can carry in ``features`` (the SQL grammar's
productions plus manifest-level ones)."""

UDF_MODULE = "planguard_fuzz_udfs"
"""Top-level module (next to the manifest) that holds a case's Python UDF."""

_ARROW_TYPES: Mapping[Kind, tuple[str, ...]] = MappingProxyType(
    {
        "int": ("int64", "int32"),
        "float": ("float64", "float32"),
        "str": ("string", "large_string"),
        "bool": ("bool",),
        "date": ("date32",),
        "ts": ("timestamp[us, tz=UTC]", "timestamp[us]"),
    }
)
_KNOWN_READER_FEATURES = (
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "typeWidening",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "variantType",
)
_KNOWN_WRITER_FEATURES = (
    "appendOnly",
    "changeDataFeed",
    "checkConstraints",
    "columnMapping",
    "deletionVectors",
    "domainMetadata",
    "generatedColumns",
    "icebergCompatV1",
    "identityColumns",
    "inCommitTimestamp",
    "invariants",
    "rowTracking",
    "timestampNtz",
    "typeWidening",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "variantType",
)
_DELTA_CONFIGURATIONS: tuple[Mapping[str, str], ...] = tuple(
    MappingProxyType(config)
    for config in (
        {},
        {"delta.appendOnly": "true"},
        {"delta.enableChangeDataFeed": "true"},
        {"delta.columnMapping.mode": "name"},
        {"delta.enableDeletionVectors": "true"},
        {"delta.enableDeletionVectors": "true", "delta.appendOnly": "true"},
        {"delta.minReaderVersion": "1", "delta.minWriterVersion": "3"},
        {"delta.minReaderVersion": "2", "delta.minWriterVersion": "5"},
    )
)
"""Table properties deltalake 1.6 accepts; they yield protocols (1,2) through (3,7)."""


# --------------------------------------------------------------------------- cases


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


# ----------------------------------------------------------------- serialization


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(item) for item in value]
    return value


_ORDER_FREE_LISTS = re.compile(
    r"^(views\.[^.]+\.udfs|runtime\.retain_plans"
    r"|policy\.delta_support\.(reader|writer)_features)$"
)


def _shuffle(value: Any, path: tuple[str, ...], rng: random.Random) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: _shuffle(value[key], (*path, key), rng) for key in keys}
    if isinstance(value, list) and _ORDER_FREE_LISTS.fullmatch(".".join(path)):
        items = list(value)
        rng.shuffle(items)
        return items
    return value


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_string(text: str) -> str:
    """A TOML basic string holding ``text`` exactly."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    """One TOML value (inline tables for mappings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_dumps(document: Mapping[str, Any], *, inline: bool = False) -> str:
    """Write a manifest document as TOML: ``[section.entity]`` tables, or inline tables."""
    lines: list[str] = []

    def emit(table: Mapping[str, Any], path: tuple[str, ...]) -> None:
        scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
        if path and (scalars or not tables):
            lines.append("[" + ".".join(_toml_key(part) for part in path) + "]")
        for key, value in scalars:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        if scalars or (path and not tables):
            lines.append("")
        if inline and len(path) == 1 and tables:
            if not scalars:
                lines.append("[" + _toml_key(path[0]) + "]")
            for key, value in tables:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
            lines.append("")
            return
        for key, value in tables:
            emit(value, (*path, key))

    emit(document, ())
    return "\n".join(lines).rstrip("\n") + "\n"


def _arrow_type(name: str) -> Any:
    import pyarrow as pa

    simple = {
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "float32": pa.float32(),
        "string": pa.string(),
        "large_string": pa.large_string(),
        "bool": pa.bool_(),
        "date32": pa.date32(),
        "timestamp[us]": pa.timestamp("us"),
        "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
    }
    return simple[name]


# ----------------------------------------------------------- runtime and delta


@st.composite
def runtime_profiles(draw: st.DrawFn, *, min_planning_budget_ms: int = 10_000) -> Mapping[str, Any]:
    """``[runtime]`` tables valid for manifest format v1 (read-only mappings).

    Each key is present or left to its default at random.  ``planning_budget_ms`` stays
    at or above ``min_planning_budget_ms`` so that tiny fuzz views never hit the budget
    (a budget hit is a legitimate, timing-dependent finding).
    """
    table: dict[str, Any] = {}
    for key, strategy in _runtime_candidates(min_planning_budget_ms).items():
        if draw(st.integers(0, 2)) == 0:
            table[key] = draw(strategy)
    return MappingProxyType(table)


def _size(number: int, fraction: str, unit: str) -> str:
    return f"{number}{fraction}{unit}"


def _ttl(minutes: int, seconds: int) -> str:
    return (f"{minutes}m" if minutes else "") + f"{seconds}s"


@functools.cache
def _runtime_candidates(min_planning_budget_ms: int) -> Mapping[str, st.SearchStrategy[Any]]:
    # sizes stay within the model's ceiling of 1024G (reference_impl.semantics.model)
    sizes = st.builds(
        _size, st.integers(0, 1023), st.sampled_from(("", ".5", ".25")), st.sampled_from("KMG")
    )
    return MappingProxyType(
        {
            "target_partitions": st.integers(1, 8),
            "planning_concurrency": st.integers(1, 8),
            "batch_size": st.integers(1, 65_536),
            "collect_statistics": st.booleans(),
            "meta_fetch_concurrency": st.integers(1, 64),
            "list_files_cache_limit": sizes,
            "list_files_cache_ttl": st.builds(_ttl, st.integers(0, 10), st.integers(1, 59)),
            "metadata_cache_limit": sizes,
            "planning_budget_ms": st.integers(min_planning_budget_ms, 600_000),
            "enable_udfs": st.booleans(),
            "cache_min_consumers": st.integers(0, 4),
            "statistics": st.sampled_from(("scan", "plan")),
            "stats_fallback": st.sampled_from(("warn", "error", "ignore")),
            "retain_plans": st.lists(st.sampled_from(("P0", "P1", "P2")), unique=True),
        }
    )


def _support(
    reader: int, writer: int, reader_features: list[str], writer_features: list[str]
) -> Mapping[str, Any]:
    return MappingProxyType(
        {
            "max_reader_version": reader,
            "max_writer_version": writer,
            "reader_features": reader_features,
            "writer_features": writer_features,
        }
    )


@functools.cache
def _delta_supports() -> st.SearchStrategy[Mapping[str, Any] | None]:
    permissive = st.just(
        MappingProxyType(
            {
                "max_reader_version": 3,
                "max_writer_version": 7,
                "reader_features": list(_KNOWN_READER_FEATURES),
                "writer_features": list(_KNOWN_WRITER_FEATURES),
            }
        )
    )
    drawn = st.builds(
        _support,
        st.integers(1, 3),
        st.integers(1, 7),
        st.lists(st.sampled_from(_KNOWN_READER_FEATURES), unique=True),
        st.lists(st.sampled_from(_KNOWN_WRITER_FEATURES), unique=True),
    )
    return st.one_of(st.none(), permissive, drawn)


@functools.cache
def delta_protocols() -> st.SearchStrategy[DeltaProtocolCase]:
    """Delta protocols from (1, 2) up to (3, 7) with table features, and support tables."""
    return st.builds(
        DeltaProtocolCase,
        configuration=st.sampled_from(_DELTA_CONFIGURATIONS),
        timestamp_ntz=st.booleans(),
        support=_delta_supports(),
    )


# ------------------------------------------------------------------ valid cases


def _values(type_name: str) -> st.SearchStrategy[Any]:
    if type_name == "int64":
        return st.integers(-(2**63), 2**63 - 1)
    if type_name == "int32":
        return st.integers(-(2**31), 2**31 - 1)
    if type_name in ("float64", "float32"):
        return st.floats(width=64 if type_name == "float64" else 32)
    if type_name in ("string", "large_string"):
        return st.text(max_size=6)
    if type_name == "bool":
        return st.booleans()
    if type_name == "date32":
        return st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))
    return st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1))


_LOCATION_DIRS = ("data", "tables/raw", "données", "data dir", "./data")


@st.composite
def _tables(
    draw: st.DrawFn,
    name: str,
    formats: Sequence[DatasetFormat],
    max_rows: int,
    max_columns: int,
) -> TableCase:
    fmt: DatasetFormat = draw(st.sampled_from(formats))
    protocol = draw(delta_protocols()) if fmt == "delta" else None
    count = draw(st.integers(1, max_columns))
    column_names = draw(st.lists(names(), min_size=count, max_size=count, unique=True))
    columns: list[tuple[str, str]] = []
    for column in column_names:
        kind: Kind = draw(st.sampled_from(_sqlgen.KINDS))
        choices = _ARROW_TYPES[kind]
        if fmt == "delta" and kind == "ts" and not (protocol and protocol.timestamp_ntz):
            choices = ("timestamp[us, tz=UTC]",)
        columns.append((column, draw(st.sampled_from(choices))))
    if protocol is not None and protocol.timestamp_ntz:
        extra = draw(names().filter(lambda n: n not in column_names))
        columns.append((extra, "timestamp[us]"))
    row_values = st.tuples(*(st.none() | _values(type_name) for _, type_name in columns))
    rows = draw(st.lists(row_values, max_size=max_rows))
    directory = draw(st.sampled_from(_LOCATION_DIRS))
    single_file = fmt == "parquet" and draw(st.booleans())
    location = f"{directory}/{name}{'.parquet' if single_file else ''}"
    return TableCase(
        name=name,
        format=fmt,
        location=location,
        columns=tuple(columns),
        rows=tuple(rows),
        configuration=protocol.configuration if protocol else MappingProxyType({}),
    )


_KIND_OF_TYPE: Mapping[str, Kind] = MappingProxyType(
    {type_name: kind for kind, types in _ARROW_TYPES.items() for type_name in types}
)

_UDF_SOURCE = '''"""A Python scalar UDF written by pytest_planguard.strategies for one fuzz case."""

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import udf


def _impl(values: pa.Array) -> pa.Array:
    return pc.{op}(values, {constant})


{definition}
'''


def _udf_module(name: str, attribute: str, op: str, constant: float, factory: bool) -> str:
    make = f'udf(_impl, [pa.float64()], pa.float64(), "immutable", name="{name}")'
    definition = (
        f"def {attribute}():  # a zero-argument factory\n    return {make}"
        if factory
        else f"{attribute} = {make}"
    )
    return _UDF_SOURCE.format(op=op, constant=constant, definition=definition)


_UDF_SUFFIXES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)
_SQL_PREFIXES = ("", "", "\n  ", "-- generated view\n", "/* fuzz */ ")
_SQL_SUFFIXES = ("", "", ";", "\n", " ;\n")


@st.composite
def _manifest_cases(
    draw: st.DrawFn,
    *,
    formats: tuple[DatasetFormat, ...],
    min_views: int,
    max_views: int,
    max_datasets: int,
    max_columns: int,
    max_rows: int,
    udfs: bool,
    manifest_formats: tuple[ManifestFormat, ...],
) -> ManifestCase:
    features: set[str] = set()
    n_datasets = draw(st.integers(1, max_datasets))
    n_views = draw(st.integers(min_views, max_views))
    all_names = draw(
        st.lists(names(), min_size=n_datasets + n_views, max_size=n_datasets + n_views, unique=True)
    )
    dataset_names, view_names = all_names[:n_datasets], all_names[n_datasets:]
    tables = [draw(_tables(name, formats, max_rows, max_columns)) for name in dataset_names]
    features.update(table.format for table in tables)
    relations = [
        Relation(t.name, tuple(Column(c, _KIND_OF_TYPE[ty]) for c, ty in t.columns)) for t in tables
    ]
    files: dict[str, str] = {}
    udf_name: str | None = None
    udf_table: dict[str, Any] = {}
    if udfs and draw(st.booleans()):
        udf_name = "fz_" + draw(_UDF_SUFFIXES)
        attribute = draw(st.sampled_from((udf_name, "make_udf", "provided")))
        factory = draw(st.booleans())
        package = draw(st.booleans())
        source = _udf_module(
            udf_name,
            attribute,
            draw(st.sampled_from(("multiply", "add", "subtract"))),
            draw(st.sampled_from((2.0, 0.5, 1.0, -3.25))),
            factory,
        )
        if package:
            features.add("udf_package")
            files[f"{UDF_MODULE}/__init__.py"] = ""
            files[f"{UDF_MODULE}/functions.py"] = source
            provider = f"{UDF_MODULE}.functions:{attribute}"
        else:
            files[f"{UDF_MODULE}.py"] = source
            provider = f"{UDF_MODULE}:{attribute}"
        if factory:
            features.add("udf_factory")
        udf_table[udf_name] = {"provider": provider}

    view_cases: list[ViewCase] = []
    view_specs: dict[str, dict[str, Any]] = {}
    for name in view_names:
        query = draw(_sqlgen.queries(relations, udf=udf_name))
        prefix = draw(st.sampled_from(_SQL_PREFIXES))
        suffix = draw(st.sampled_from(_SQL_SUFFIXES))
        sql = prefix + query.sql + suffix
        spec: dict[str, Any] = {}
        if draw(st.integers(0, 3)) == 0:
            features.add("sql_file")
            sql_path = f"views/{name}.sql"
            files[sql_path] = sql
            spec["sql_file"] = sql_path
        else:
            spec["sql"] = sql
        declare = udf_name is not None and (query.udfs or draw(st.integers(0, 3)) == 0)
        if declare and draw(st.booleans()):
            spec["udfs"] = [udf_name]
        if draw(st.integers(0, 4)) == 0:
            spec["executor"] = "datafusion"
        view_specs[name] = spec
        if query.reads & set(view_specs):
            features.add("view_reads_view")
        features.update(query.features)
        view_cases.append(
            ViewCase(
                name=name,
                sql=sql,
                depends_on=tuple(sorted(query.reads)),
                calls_udfs=tuple(sorted(query.udfs)),
                features=query.features,
            )
        )
        relations.append(Relation(name, query.columns))

    document: dict[str, Any] = {}
    if draw(st.booleans()):
        document["project"] = {"name": draw(st.text(max_size=12))}
    dataset_order = draw(st.permutations(tables))
    document["datasets"] = {
        t.name: {"format": t.format, "location": t.location} for t in dataset_order
    }
    view_order = draw(st.permutations(view_names))
    document["views"] = {name: view_specs[name] for name in view_order}
    if udf_table:
        document["udfs"] = udf_table
    if draw(st.integers(0, 3)) == 0:
        features.add("output")
        output_name = draw(names())
        document["outputs"] = {
            output_name: {
                "view": draw(st.sampled_from(view_names)),
                "location": f"out/{output_name}",
                "mode": draw(st.sampled_from(("overwrite", "append"))),
            }
        }
    if draw(st.booleans()):
        runtime = dict(draw(runtime_profiles()))
        if any(view.calls_udfs for view in view_cases):
            runtime.pop("enable_udfs", None)  # the default, True: calls must resolve
        document["runtime"] = runtime
    policy: dict[str, Any] = {}
    if draw(st.booleans()):
        policy["mode"] = draw(st.sampled_from(("error", "warn", "ignore")))
    if draw(st.booleans()):
        policy["small_input_rows"] = draw(st.integers(0, 10_000))
    support = draw(_delta_supports())
    if support is not None:
        features.add("delta_support")
        policy["delta_support"] = dict(support)
    if policy:
        document["policy"] = policy
    manifest_format: ManifestFormat = draw(st.sampled_from(manifest_formats))
    features.add(f"{manifest_format}_manifest")
    return ManifestCase(
        document=_freeze(document),
        manifest_format=manifest_format,
        tables=tuple(tables),
        files=MappingProxyType(files),
        views=tuple(view_cases),
        features=frozenset(features),
        toml_style=draw(st.sampled_from(("tables", "inline"))),
    )


def manifests(
    *,
    formats: Sequence[DatasetFormat] = ("delta", "parquet"),
    min_views: int = 1,
    max_views: int = 4,
    max_datasets: int = 3,
    max_columns: int = 4,
    max_rows: int = 4,
    udfs: bool = True,
    manifest_formats: Sequence[ManifestFormat] = ("toml", "json"),
) -> st.SearchStrategy[ManifestCase]:
    """Valid manifest cases: a random DAG of views over generated tables.

    ``formats`` chooses the dataset formats (``("parquet",)`` for plans that must
    serialize with ``LogicalPlan.to_bytes``, which Delta table providers do not support);
    ``udfs`` allows a Python UDF the case writes next to its manifest.  Keep the sizes
    small for engine-heavy properties: every table is written for real.
    """
    chosen = tuple(formats)
    if not chosen or any(fmt not in ("delta", "parquet") for fmt in chosen):
        raise ValueError(f"formats must be a non-empty subset of ('delta', 'parquet'): {chosen}")
    if not 1 <= min_views <= max_views:
        raise ValueError("need 1 <= min_views <= max_views")
    if max_datasets < 1 or max_columns < 1 or max_rows < 0:
        raise ValueError("need max_datasets >= 1, max_columns >= 1 and max_rows >= 0")
    return _manifest_cases(
        formats=chosen,
        min_views=min_views,
        max_views=max_views,
        max_datasets=max_datasets,
        max_columns=max_columns,
        max_rows=max_rows,
        udfs=udfs,
        manifest_formats=tuple(manifest_formats),
    )


# ---------------------------------------------------------------- hostile cases


def _rename(
    document: dict[str, Any], section: str, old: str, new: str, *, outputs: bool = False
) -> None:
    """Rename one entry; with ``outputs``, outputs writing a renamed view follow it."""
    entries = document[section]
    document[section] = {(new if key == old else key): value for key, value in entries.items()}
    if outputs and section == "views":
        for output in document.get("outputs", {}).values():
            if isinstance(output, dict) and output.get("view") == old:
                output["view"] = new


def _set_sql(document: dict[str, Any], view: str, sql: str) -> None:
    spec = document["views"][view]
    spec.pop("sql_file", None)
    spec["sql"] = sql


class _Mutator:
    """Draws one mutation of a valid base case."""

    def __init__(self, draw: st.DrawFn, base: ManifestCase) -> None:
        self.draw = draw
        self.base = base
        self.doc: dict[str, Any] = _thaw(base.document)
        self.format: ManifestFormat = base.manifest_format
        self.files: dict[str, bytes] = {k: v.encode("utf-8") for k, v in base.files.items()}
        self.directories: list[str] = []
        self.symlinks: dict[str, str] = {}
        self.raw: bytes | None = None

    @property
    def datasets(self) -> list[str]:
        return list(self.doc.get("datasets", {}))

    @property
    def views(self) -> list[str]:
        return list(self.doc.get("views", {}))

    def pick(self, items: Sequence[Any]) -> Any:
        return self.draw(st.sampled_from(list(items)))

    def fresh(self) -> str:
        taken = set(self.datasets) | set(self.views)
        return self.draw(names().filter(lambda n: n not in taken))

    def relation(self) -> str:
        """A dataset, quoted (never a view: reading one could close an unintended cycle)."""
        return quote(self.pick(self.datasets))

    def case(self, mutation: str, description: str, *codes: str) -> HostileCase:
        if self.raw is not None:
            manifest = self.raw
        elif self.format == "json":
            manifest = json.dumps(self.doc, indent=2, ensure_ascii=False).encode("utf-8")
        else:
            manifest = _toml_dumps(self.doc).encode("utf-8")
        return HostileCase(
            mutation=mutation,
            description=description,
            expected_codes=frozenset(codes),
            manifest_name=f"manifest.{self.format}",
            manifest=manifest,
            files=MappingProxyType(dict(self.files)),
            directories=tuple(self.directories),
            symlinks=MappingProxyType(dict(self.symlinks)),
        )


def _m_cycle(m: _Mutator) -> HostileCase:
    size = m.draw(st.integers(1, min(3, len(m.views))))
    ring = m.draw(st.lists(st.sampled_from(m.views), min_size=size, max_size=size, unique=True))
    for index, view in enumerate(ring):
        target = quote(ring[(index + 1) % len(ring)])
        sql = m.pick((f"SELECT * FROM {target}", f"SELECT * FROM {m.relation()} AS a, {target}"))
        _set_sql(m.doc, view, sql)
    return m.case("cycle", f"views {' -> '.join(ring)} read each other", "MANIFEST_CYCLE")


def _m_unknown_reference(m: _Mutator) -> HostileCase:
    view = m.pick(m.views)
    missing = m.fresh()
    known = m.relation()
    odd = m.pick(("â", "ß", "\u210c", "😀", " "))
    variant = m.pick(range(7))
    if variant == 6:
        m.doc.setdefault("outputs", {})[missing] = {"view": missing, "location": "out/x"}
        return m.case(
            "unknown_reference", "an output writes an undeclared view", "MANIFEST_UNKNOWN_REFERENCE"
        )
    sql = (
        f"SELECT * FROM {quote(missing)}",
        f"SELECT * FROM {known} AS a JOIN {quote(missing)} AS b ON TRUE",
        f"SELECT * FROM other_schema.{known}",
        f'SELECT * FROM "t{odd}ble"',
        f"SELECT * FROM {known} WHERE 1 IN (SELECT 1 FROM {quote(missing)})",
        f'SELECT * FROM "{m.pick(m.datasets + m.views).upper()}X"',
    )[variant]
    _set_sql(m.doc, view, sql)
    return m.case("unknown_reference", f"view {view!r}: {sql}", "MANIFEST_UNKNOWN_REFERENCE")


def _m_wrong_type(m: _Mutator) -> HostileCase:
    dataset, view = m.pick(m.datasets), m.pick(m.views)
    type_error, invalid = "MANIFEST_TYPE_ERROR", "MANIFEST_INVALID_VALUE"
    options: list[tuple[tuple[str, ...], Any, tuple[str, ...]]] = [
        (("datasets", dataset, "format"), 1, (type_error,)),
        (("datasets", dataset, "format"), "csv", (invalid,)),
        (("datasets", dataset, "location"), 5, (type_error,)),
        (("datasets", dataset, "location"), "", (invalid,)),
        (("views", view, "sql"), 42, (type_error,)),
        (("views", view, "udfs"), "fz_x", (type_error,)),
        (("views", view, "udfs"), [1], (type_error,)),
        (("views", view, "executor"), "", (invalid,)),
        (("views", view), "SELECT 1", (type_error,)),
        (("views",), ["SELECT 1"], (type_error,)),
        (("datasets",), "data", (type_error,)),
        (("runtime", "target_partitions"), "4", (type_error,)),
        (("runtime", "target_partitions"), 0, (invalid,)),
        (("runtime", "target_partitions"), -3, (invalid,)),
        (("runtime", "target_partitions"), 4.5, (type_error,)),
        (("runtime", "batch_size"), True, (type_error,)),
        (("runtime", "collect_statistics"), "yes", (type_error,)),
        (("runtime", "list_files_cache_limit"), "1X", (invalid,)),
        (("runtime", "list_files_cache_ttl"), "0s", (invalid,)),
        (("runtime", "list_files_cache_ttl"), "soon", (invalid,)),
        (("runtime", "retain_plans"), ["P3"], (invalid,)),
        (("runtime", "statistics"), "always", (invalid,)),
        (("runtime",), [], (type_error,)),
        (("policy", "mode"), "strict", (invalid,)),
        (("policy", "small_input_rows"), -1, (invalid,)),
        (
            ("policy", "delta_support"),
            {"max_reader_version": 0, "max_writer_version": 2},
            (invalid,),
        ),
        (("policy", "allow_external_locations"), "no", (type_error,)),
        (("udfs", "fz_bad"), {"provider": "not a provider"}, (invalid,)),
        (("udfs", "fz_bad"), {"provider": 7}, (type_error,)),
        (("outputs", "bad_out"), {"view": view, "location": "out/x", "mode": "merge"}, (invalid,)),
        (
            ("outputs", "bad_out"),
            {"view": view, "location": "out/x", "format": "parquet"},
            (invalid,),
        ),
        (("project",), 3, (type_error,)),
        (("project", "name"), ["a"], (type_error,)),
    ]
    if m.format == "toml":
        options.append((("views", view, "sql"), datetime(1979, 5, 27, 7, 32), (type_error,)))
    else:
        options.append((("runtime", "target_partitions"), 2**80, (type_error, invalid)))
        options.append((("runtime",), None, (type_error,)))
        options.append((("datasets",), None, (type_error,)))
    path, value, codes = m.pick(options)
    target = m.doc
    for part in path[:-1]:
        existing = target.get(part)
        if not isinstance(existing, dict):
            existing = target[part] = {}
        target = existing
    if path[0] == "views" and path[-1] == "sql":
        target.pop("sql_file", None)
    target[path[-1]] = value
    return m.case("wrong_type", f"{'.'.join(path)} = {value!r}", *codes)


_NOT_QUERIES = (
    "INSERT INTO {r} VALUES (1)",
    "CREATE TABLE evil AS SELECT * FROM {r}",
    "CREATE VIEW evil AS SELECT * FROM {r}",
    "DROP TABLE {r}",
    "DELETE FROM {r}",
    "UPDATE {r} SET x = 1",
    "SET datafusion.execution.target_partitions = 1",
    "EXPLAIN SELECT * FROM {r}",
    "COPY {r} TO 'out.csv'",
    "SHOW TABLES",
    "DESCRIBE {r}",
    "SELECT * FROM {r}; SELECT * FROM {r}",
    "SELECT * FROM {r}; DROP TABLE {r}",
    "-- looks harmless\nDROP TABLE {r}",
    "/* c */ insert into {r} select * from {r}",
    "WITH x AS (SELECT * FROM {r}) INSERT INTO {r} SELECT * FROM x",
    "SELECT * INTO evil FROM {r}",
    "PREPARE p AS SELECT * FROM {r}",
    "TRUNCATE {r}",
)


def _m_not_a_query(m: _Mutator) -> HostileCase:
    view = m.pick(m.views)
    sql = m.pick(_NOT_QUERIES).format(r=m.relation())
    _set_sql(m.doc, view, sql)
    return m.case("not_a_query", f"view {view!r}: {sql!r}", "MANIFEST_NOT_A_QUERY")


def _m_escape_root(m: _Mutator) -> HostileCase:
    escapes = (
        "../outside",
        "../../etc",
        "/nonexistent-planguard-root/table",
        "data/../../outside",
        "./..",
        "..",
    )
    variant = m.pick(range(5))
    if variant == 0:
        dataset = m.pick(m.datasets)
        m.doc["datasets"][dataset]["location"] = m.pick(escapes)
        where = f"datasets.{dataset}.location"
    elif variant == 1:
        m.doc["outputs"] = {"escaping": {"view": m.pick(m.views), "location": m.pick(escapes)}}
        where = "outputs.escaping.location"
    elif variant == 2:
        view = m.pick(m.views)
        spec = m.doc["views"][view]
        spec.pop("sql", None)
        spec["sql_file"] = m.pick(escapes) + "/view.sql"
        where = f"views.{view}.sql_file"
    else:
        # A symlink inside the root that points outside it.
        dataset = m.pick(m.datasets)
        m.symlinks["links/up"] = "../.."
        m.doc["datasets"][dataset]["location"] = "links/up/" + m.pick(("x", "tables/t"))
        where = f"datasets.{dataset}.location (through a symlink)"
    return m.case("escape_root", where, "MANIFEST_LOCATION_ESCAPES_ROOT")


def _m_bad_location(m: _Mutator) -> HostileCase:
    dataset = m.pick(m.datasets)
    value = m.pick(("file:///etc/passwd", "s3://bucket/table", "data/\x00nul"))
    m.doc["datasets"][dataset]["location"] = value
    return m.case(
        "bad_location", f"datasets.{dataset}.location = {value!r}", "MANIFEST_INVALID_VALUE"
    )


def _json_with_duplicate(document: dict[str, Any], section: str, name: str) -> bytes:
    parts = []
    for key, value in document.items():
        body = json.dumps(value, ensure_ascii=False)
        if key == section:
            duplicate = json.dumps(name) + ": " + json.dumps(value[name], ensure_ascii=False)
            body = body[:-1] + ", " + duplicate + "}"
        parts.append(json.dumps(key) + ": " + body)
    return ("{" + ", ".join(parts) + "}").encode("utf-8")


def _m_duplicate(m: _Mutator) -> HostileCase:
    variant = m.pick(range(3))
    if variant == 0:
        view, dataset = m.pick(m.views), m.pick(m.datasets)
        _rename(m.doc, "views", view, dataset, outputs=True)
        return m.case(
            "duplicate", f"{dataset!r} is a dataset and a view", "MANIFEST_DUPLICATE_NAME"
        )
    section = m.pick(("datasets", "views"))
    name = m.pick(list(m.doc[section]))
    if variant == 1:
        m.format = "json"
        m.raw = _json_with_duplicate(m.doc, section, name)
        return m.case(
            "duplicate", f"JSON object {section} has {name!r} twice", "MANIFEST_DUPLICATE_NAME"
        )
    text = _toml_dumps(m.doc)
    entry = _toml_dumps({section: {name: m.doc[section][name]}})
    m.format = "toml"
    m.raw = (text + "\n" + entry).encode("utf-8")
    return m.case("duplicate", f"TOML table [{section}.{name}] twice", "MANIFEST_PARSE_ERROR")


_RESERVED_SPELLINGS = (
    "information_schema",
    "datafusion",
    "public",
    "pg_catalog",
    "PUBLIC",
    "DataFusion",
    "Information_Schema",
)


def _m_reserved(m: _Mutator) -> HostileCase:
    reserved = m.pick(_RESERVED_SPELLINGS)
    variant = m.pick(range(4))
    if variant == 0:
        _rename(m.doc, "datasets", m.pick(m.datasets), reserved)
        where = "datasets"
    elif variant == 1:
        _rename(m.doc, "views", m.pick(m.views), reserved)
        where = "views"
    elif variant == 2:
        m.doc.setdefault("udfs", {})[reserved] = {"provider": "pkg.mod:fn"}
        where = "udfs"
    else:
        m.doc["views"][m.pick(m.views)]["udfs"] = [reserved]
        where = "a view's udfs"
    return m.case("reserved", f"{where}: {reserved!r}", "MANIFEST_RESERVED_NAME")


def _bad_names(m: _Mutator) -> str:
    return m.draw(
        st.one_of(
            st.from_regex(r"[a-z_][a-z0-9_]{63,300}", fullmatch=True),
            st.text(min_size=1, max_size=20).filter(
                lambda s: re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", s) is None
            ),
            st.sampled_from(
                ("", "T_1", "1abc", "a-b", "a b", "naïve", "名前", "😀", "a.b", '"q"', "x\ny")
            ),
        ).filter(lambda s: s.lower() not in _sqlgen.RESERVED)
    )


def _m_invalid_name(m: _Mutator, mutation: str) -> HostileCase:
    bad = _bad_names(m) if mutation == "unicode" else "x" * m.draw(st.integers(64, 20_000))
    variant = m.pick(range(4))
    section = ("datasets", "views", "outputs", "udfs")[variant]
    if section in ("datasets", "views"):
        _rename(m.doc, section, m.pick(m.doc[section]), bad)
    elif section == "outputs":
        m.doc["outputs"] = {bad: {"view": m.pick(m.views), "location": "out/x"}}
    else:
        m.doc["udfs"] = {bad: {"provider": "pkg.mod:fn"}}
    shown = bad if len(bad) < 40 else bad[:37] + "..."
    return m.case(mutation, f"{section} name {shown!r}", "MANIFEST_INVALID_NAME")


def _m_long_identifier(m: _Mutator) -> HostileCase:
    if m.draw(st.booleans()):
        return _m_invalid_name(m, "long_identifier")
    view = m.pick(m.views)
    length = m.draw(st.integers(64, 100_000))
    _set_sql(m.doc, view, f'SELECT * FROM "{"y" * length}"')
    return m.case(
        "long_identifier", f"view reads a {length}-char name", "MANIFEST_UNKNOWN_REFERENCE"
    )


def _m_unicode(m: _Mutator) -> HostileCase:
    variant = m.pick(range(5))
    if variant <= 1:
        return _m_invalid_name(m, "unicode")
    text = (_toml_dumps(m.doc) if m.format == "toml" else json.dumps(m.doc)).encode("utf-8")
    if variant == 2:
        m.raw = b"\xef\xbb\xbf" + text
        return m.case("unicode", "a UTF-8 byte order mark", "MANIFEST_PARSE_ERROR")
    if variant == 3:
        m.raw = text.decode("utf-8").encode("utf-16")
        return m.case("unicode", "UTF-16 text", "MANIFEST_PARSE_ERROR")
    m.raw = text + b"\n# \xff\xfe broken \xc3\x28\n"
    return m.case("unicode", "invalid UTF-8 bytes", "MANIFEST_PARSE_ERROR")


def _m_unknown_key(m: _Mutator) -> HostileCase:
    dataset, view = m.pick(m.datasets), m.pick(m.views)
    path = m.pick(
        (
            ("extra",),
            ("datasets", dataset, "partitioning"),
            ("views", view, "sqll"),
            ("runtime", "target_partition"),
            ("policy", "modes"),
            ("project", "version"),
        )
    )
    target = m.doc
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = "x"
    return m.case("unknown_key", ".".join(path), "MANIFEST_UNKNOWN_KEY")


def _m_missing_field(m: _Mutator) -> HostileCase:
    dataset, view = m.pick(m.datasets), m.pick(m.views)
    variant = m.pick(range(5))
    if variant == 0:
        del m.doc["datasets"][dataset][m.pick(("format", "location"))]
        where = f"datasets.{dataset}"
    elif variant == 1:
        spec = m.doc["views"][view]
        spec.pop("sql", None)
        spec.pop("sql_file", None)
        where = f"views.{view}"
    elif variant == 2:
        m.doc["outputs"] = {"out_1": {"location": "out/x"}}
        where = "outputs.out_1.view"
    elif variant == 3:
        m.doc["udfs"] = {"fz_missing": {}}
        where = "udfs.fz_missing.provider"
    else:
        m.doc.setdefault("policy", {})["delta_support"] = {"max_reader_version": 3}
        where = "policy.delta_support.max_writer_version"
    return m.case("missing_field", where, "MANIFEST_MISSING_FIELD")


def _m_conflicting(m: _Mutator) -> HostileCase:
    view = m.pick(m.views)
    spec = m.doc["views"][view]
    spec["sql"] = f"SELECT * FROM {m.relation()}"
    spec["sql_file"] = f"views/{view}.sql"
    m.files[f"views/{view}.sql"] = spec["sql"].encode()
    return m.case(
        "conflicting_fields", f"views.{view} has sql and sql_file", "MANIFEST_CONFLICTING_FIELDS"
    )


def _m_bad_sql(m: _Mutator) -> HostileCase:
    view = m.pick(m.views)
    r = m.relation()
    options: tuple[tuple[str, str], ...] = (
        ("", "MANIFEST_INVALID_VALUE"),
        ("  \n\t ", "MANIFEST_INVALID_VALUE"),
        (";", "MANIFEST_SQL_SYNTAX"),
        ("-- only a comment", "MANIFEST_SQL_SYNTAX"),
        ("/* nothing */ ;", "MANIFEST_SQL_SYNTAX"),
        ("SELECT (1", "MANIFEST_SQL_SYNTAX"),
        (f"SELECT 'unterminated FROM {r}", "MANIFEST_SQL_SYNTAX"),
        (f"SELECT * FROM {r} WHERE", "MANIFEST_SQL_SYNTAX"),
        ("SELEC 1", "MANIFEST_SQL_SYNTAX"),
    )
    sql, code = m.pick(options)
    _set_sql(m.doc, view, sql)
    return m.case("bad_sql", f"view {view!r}: {sql!r}", code)


def _m_too_complex(m: _Mutator) -> HostileCase:
    view = m.pick(m.views)
    depth = m.draw(st.integers(65, 5_000))
    if m.draw(st.booleans()):
        sql = "SELECT " + "(" * depth + "1" + ")" * depth + " AS x"
    else:
        sql = "SELECT * FROM (" * depth + f"SELECT * FROM {m.relation()}" + ") AS s" * depth
    _set_sql(m.doc, view, sql)
    return m.case("too_complex", f"view {view!r} nests {depth} deep", "MANIFEST_SQL_TOO_COMPLEX")


def _m_sql_file(m: _Mutator) -> HostileCase:
    view = m.pick(m.views)
    spec = m.doc["views"][view]
    spec.pop("sql", None)
    path = f"views/{view}_broken.sql"
    spec["sql_file"] = path
    variant = m.pick(range(4))
    if variant == 0:
        m.files.pop(path, None)
        what = "missing"
    elif variant == 1:
        m.files[path] = b"  \n"
        what = "empty"
    elif variant == 2:
        m.files[path] = b"SELECT '\xff\xfe' AS x"
        what = "not UTF-8"
    else:
        m.directories.append(path)
        what = "a directory"
    return m.case("sql_file", f"views.{view}.sql_file is {what}", "MANIFEST_SQL_FILE_UNREADABLE")


def _m_broken_file(m: _Mutator) -> HostileCase:
    variant = m.pick(range(8))
    m.format = m.pick(("toml", "json"))
    depth = m.draw(st.integers(2_000, 20_000))
    raw, code = (
        (b"", "MANIFEST_PARSE_ERROR"),
        (b"  \n\n ", "MANIFEST_PARSE_ERROR"),
        (b"[[[ not toml", "MANIFEST_PARSE_ERROR"),
        (b'[views.x]\nsql = "SELECT 1"\x00\n', "MANIFEST_PARSE_ERROR"),
        (
            (b"a = " + b"[" * depth + b"]" * depth)
            if m.format == "toml"
            else (b'{"a": ' + b"[" * depth + b"]" * depth + b"}"),
            "MANIFEST_PARSE_ERROR",
        ),
        (b"[1, 2, 3]" if m.format == "json" else b"{ not json", "MANIFEST_TYPE_ERROR"),
        (b'"just a string"' if m.format == "json" else b"= 1", "MANIFEST_TYPE_ERROR"),
        (
            _toml_dumps(m.doc).encode() if m.format == "json" else b'{"views": {}}',
            "MANIFEST_PARSE_ERROR",
        ),
    )[variant]
    if m.format == "toml" and variant in (5, 6):
        code = "MANIFEST_PARSE_ERROR"
    m.raw = raw
    return m.case("broken_file", f"{m.format} file variant {variant}", code)


def _m_too_many_views(m: _Mutator) -> HostileCase:
    view = m.pick(m.views)
    sql = f"SELECT * FROM {quote(view)}"
    m.doc["views"] = {f"v_{i}": {"sql": sql} for i in range(5_001)}
    return m.case("too_many_views", "5001 views", "MANIFEST_LIMIT_EXCEEDED")


_MUTATORS = {
    "cycle": _m_cycle,
    "unknown_reference": _m_unknown_reference,
    "wrong_type": _m_wrong_type,
    "not_a_query": _m_not_a_query,
    "escape_root": _m_escape_root,
    "bad_location": _m_bad_location,
    "duplicate": _m_duplicate,
    "reserved": _m_reserved,
    "long_identifier": _m_long_identifier,
    "unicode": _m_unicode,
    "unknown_key": _m_unknown_key,
    "missing_field": _m_missing_field,
    "conflicting_fields": _m_conflicting,
    "bad_sql": _m_bad_sql,
    "too_complex": _m_too_complex,
    "sql_file": _m_sql_file,
    "broken_file": _m_broken_file,
    "too_many_views": _m_too_many_views,
}
MUTATIONS: tuple[str, ...] = tuple(_MUTATORS)
"""Names of every mutation :func:`hostile_manifests` applies."""


@st.composite
def _hostile_cases(draw: st.DrawFn, mutations: tuple[str, ...]) -> HostileCase:
    mutation = draw(st.sampled_from(mutations))
    base = draw(
        _manifest_cases(
            formats=("delta", "parquet"),
            min_views=1,
            max_views=3,
            max_datasets=2,
            max_columns=3,
            max_rows=0,
            udfs=True,
            manifest_formats=("toml", "json"),
        )
    )
    return _MUTATORS[mutation](_Mutator(draw, base))


def hostile_manifests(*, mutations: Sequence[str] = MUTATIONS) -> st.SearchStrategy[HostileCase]:
    """Invalid manifest cases, each one mutation of a valid case (see :data:`MUTATIONS`).

    Semantic compile must reject each with one of ``case.expected_codes``; no tables are
    written (compile never reads data).
    """
    chosen = tuple(mutations)
    unknown = sorted(set(chosen) - set(MUTATIONS))
    if not chosen or unknown:
        raise ValueError(f"unknown or no mutations: {unknown or chosen}")
    return _hostile_cases(chosen)


# ------------------------------------------------------------------------ replay


def write_failure(case: Case, directory: str | os.PathLike[str] | None = None) -> Path:
    """Write ``case`` to ``<directory>/<16-hex digest>/`` and return that directory.

    ``directory`` defaults to ``$PLANGUARD_FAILURES_DIR`` or ``.planguard-failures``.
    The directory holds the manifest (and its tables): ``planguard compile DIR`` replays it.
    """
    base = Path(directory or os.environ.get(FAILURES_DIR_ENV) or ".planguard-failures")
    target = base / case.digest()[:16]
    if target.exists():
        shutil.rmtree(target)
    case.write(target)
    return target.resolve()


def _final_or_outside_hypothesis() -> tuple[bool, bool]:
    """(inside a Hypothesis test, this run is the final, reported one)."""
    try:
        from hypothesis.control import current_build_context

        context = current_build_context()
    except Exception:
        return False, True
    return True, bool(getattr(context, "is_final", True))


@contextlib.contextmanager
def replay_on_failure(
    case: Case, directory: str | os.PathLike[str] | None = None
) -> Iterator[None]:
    """On an exception in the block, write ``case`` for replay and name it in the failure.

    Inside a Hypothesis test only the final (shrunk) example is written, and its path is
    shown with ``note()``; outside one the case is written at once.  Either way the
    exception gets a note ``planguard: replay this case with: planguard compile <dir>``.
    """
    try:
        yield
    except Exception as exc:
        inside, final = _final_or_outside_hypothesis()
        if final:
            target = write_failure(case, directory)
            message = (
                f"planguard: failing case written to {target}; "
                f"replay it with: planguard compile {target}"
            )
            if inside:
                from hypothesis import note

                note(message)
            else:
                exc.add_note(message)
        raise
