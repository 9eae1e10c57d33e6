"""Dataset providers: resolving a location and registering a table, through the resolver.

``DataSourceConfig`` has two explicit modes, so that falling back to a default location
is a choice a caller makes, never something a missing entry does silently:

* ``semantic-authority``: locations come from the manifest's resolver only; an unresolved
  one fails closed with ``DATASET_LOCATION_UNRESOLVED``.
* ``runtime-bootstrap``: an unresolved location falls back to ``<fallback_root>/<name>``
  (a profile-derived default, used to bootstrap data before the manifest is authoritative).

Every registration, first or re-registration by a scan override, goes through
:func:`register_dataset` with the run's one resolver object.

Before anything is registered, the location must agree with its declaration and the files
it resolves to must stay inside the manifest's directory:

* format truth (``DATASET_FORMAT_MISMATCH``, field ``datasets.<name>.format``): the
  ``_delta_log`` directory decides. A ``parquet`` dataset may hold no ``_delta_log``, at
  its location, above it or below it (reading a Delta table's files as plain Parquet reads
  tombstoned files too: a silent wrong result), and must hold ``*.parquet`` files when it
  holds any file at all; a ``delta`` dataset must have a ``_delta_log``;
* data files (``MANIFEST_LOCATION_ESCAPES_ROOT`` unless ``policy.allow_external_locations``):
  every file a Delta log's add actions name and every ``*.parquet`` file or directory a
  Parquet location reaches through a symlink resolves inside the manifest's directory;
* only regular files are data files (``DATASET_UNREADABLE``): a FIFO or a device would
  block or never end.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import msgspec

from reference_impl.engine.delta_protocol import DeltaProtocol, delta_protocol_from_table
from reference_impl.engine.object_store import (
    open_store_table,
    register_store_parquet,
    store_error,
)
from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.program import (
    DatasetBindings,
    OutputBinding,
    SemanticProgramManifest,
)

_UNSUPPORTED_PROTOCOL = re.compile(
    r"Unsupported: (Feature '[^']*' is not supported|Unsupported minimum (reader|writer) "
    r"version)"
)
"""How deltalake (delta-kernel) says a table's protocol is newer than it can read."""
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
"""A URI scheme at the start of a Delta add-action path (``file:``, ``s3:`` ...)."""
DELTA_LOG = "_delta_log"
PARQUET_SUFFIX = ".parquet"

_T = TypeVar("_T")


class DataSourceConfig(msgspec.Struct, frozen=True, kw_only=True):
    mode: Literal["semantic-authority", "runtime-bootstrap"]
    resolver: DatasetBindings
    fallback_root: str | None = None

    def resolve(self, name: str) -> str:
        """The location to read ``name`` from, per this config's mode."""
        if self.mode == "semantic-authority" or self.resolver.has_location(name):
            return self.resolver.require_location(name)
        if self.fallback_root is None:
            raise _location_error(
                ErrorCode.DATASET_LOCATION_UNRESOLVED,
                name,
                f"dataset {name!r} has no location and runtime-bootstrap has no fallback root",
            )
        return os.path.join(self.fallback_root, name)

    def resolve_output(self, output: OutputBinding) -> str:
        """The location ``output`` is written to, per this config's mode: the declared one,
        else (``runtime-bootstrap`` only) ``<fallback_root>/outputs/<name>``."""
        if output.location is not None:
            return output.location
        if self.mode == "semantic-authority" or self.fallback_root is None:
            raise ReferenceImplError(
                ErrorCode.DATASET_LOCATION_UNRESOLVED,
                f"output {output.name!r} has no location"
                + (
                    " (semantic-authority: the manifest is the only source of locations)"
                    if self.mode == "semantic-authority"
                    else " and runtime-bootstrap has no fallback root"
                ),
                field_path=f"outputs.{output.name}.location",
                subjects=(output.name,),
            )
        return os.path.join(self.fallback_root, "outputs", output.name)

    @classmethod
    def of(cls, manifest: SemanticProgramManifest) -> DataSourceConfig:
        """The config a manifest declares (``project.data_source_mode``,
        ``runtime.fallback_root``), around the manifest's own resolver object."""
        return cls(
            mode=manifest.data_source_mode,
            resolver=manifest.dataset_bindings,
            fallback_root=manifest.fallback_root,
        )


class DataFileScope(msgspec.Struct, frozen=True, kw_only=True):
    """Where a dataset's data files may be: under ``root`` unless ``allow_external``.

    The manifest's location rule (``policy.allow_external_locations``) applied to the
    files a table resolves to, not only to its location string.
    """

    root: str
    allow_external: bool = False


class RegisteredDataset(msgspec.Struct, frozen=True, kw_only=True):
    """What registering one dataset found: its location, Delta version and protocol."""

    name: str
    format: Literal["delta", "parquet"]
    location: str
    delta_version: int | None
    delta_protocol: DeltaProtocol | None
    identity: str = ""
    """What the data is, for a plan cache: a Delta table's location, version and table id;
    a Parquet dataset's files with their sizes and modification times."""


def register_dataset(
    ctx: Any,
    resolver: DatasetBindings,
    name: str,
    *,
    version: int | None = None,
    mode: Literal["semantic-authority", "runtime-bootstrap"] = "semantic-authority",
    fallback_root: str | None = None,
    scope: DataFileScope | None = None,
    for_execution: bool = False,
) -> RegisteredDataset:
    """(Re-)register dataset ``name`` on ``ctx`` from the location ``resolver`` gives.

    ``version`` pins a Delta table to one version (scan overrides use it so that execution
    reads exactly the version that was planned).  ``scope`` confines the data files
    (see module docs); without it only format truth and file kinds are checked.  Every
    check runs before the previous registration of ``name`` is dropped.
    ``for_execution`` (scan overrides, before execution): a Delta table on a store is
    registered to be read, as deltalake's Arrow dataset, since the Delta provider plans
    but cannot read object-store files inside another DataFusion session.
    """
    config = DataSourceConfig(mode=mode, resolver=resolver, fallback_root=fallback_root)
    location = config.resolve(name)
    binding = resolver.binding(name)
    if binding.store is not None:  # a URL under a declared store
        return _register_on_store(
            ctx, resolver, name, location, version, for_execution=for_execution
        )
    info = _stat_location(name, location)
    if binding.format == "parquet":
        _check_parquet_location(name, location, info, scope)
        if ctx.table_exist(name):
            ctx.deregister_table(name)
        _register_parquet(ctx, name, location)
        return RegisteredDataset(
            name=name,
            format="parquet",
            location=location,
            delta_version=None,
            delta_protocol=None,
            identity=files_identity(location),
        )
    _check_delta_location(name, location, info)
    table = open_delta_table(name, location, version=version)
    _check_delta_files(name, table, location, scope)
    if ctx.table_exist(name):
        ctx.deregister_table(name)
    _engine_call(name, location, lambda: ctx.register_table(name, table))
    return _registered_delta(name, location, table)


def _registered_delta(name: str, location: str, table: Any) -> RegisteredDataset:
    """What registering the Delta table ``table`` found (its identity: location, version
    and table id, so a table re-created at the same version is another table)."""
    version = int(table.version())
    return RegisteredDataset(
        name=name,
        format="delta",
        location=location,
        delta_version=version,
        delta_protocol=delta_protocol_from_table(table.protocol()),
        identity=f"delta:{location}@{version}:{table.metadata().id}",
    )


def _register_on_store(
    ctx: Any,
    resolver: DatasetBindings,
    name: str,
    location: str,
    version: int | None,
    *,
    for_execution: bool,
) -> RegisteredDataset:
    """Register a dataset whose location is a URL under one of ``resolver.stores``.

    A Delta table is registered as deltalake's provider for planning (the same plan as a
    local table) and, ``for_execution``, as its Arrow dataset: deltalake 1.6's provider
    reads object-store files only through its own session's stores, which a
    datafusion-python session cannot give it (measured: "No suitable object store found"
    with the bucket registered on the session).  The Arrow dataset cannot read tables
    with deletion vectors; such a table is ``DATASET_UNREADABLE`` at execution."""
    binding = resolver.binding(name)
    assert binding.store is not None
    store = resolver.stores[binding.store]
    if binding.format == "parquet":
        register_store_parquet(ctx, name, location, store)
        return RegisteredDataset(
            name=name,
            format="parquet",
            location=location,
            delta_version=None,
            delta_protocol=None,
            # files on a store are not listed here: a fresh identity every time, so a plan
            # cache never reuses a plan of a store Parquet dataset (a miss, never unsound)
            identity=f"parquet:{location}:unlisted:{uuid.uuid4().hex}",
        )
    table = open_store_table(name, location, store, version=version, ctx=ctx)
    provider = table
    if for_execution:
        try:
            provider = table.to_pyarrow_dataset()
        except Exception as exc:
            raise _location_error(
                ErrorCode.DATASET_UNREADABLE,
                name,
                f"dataset {name!r}: cannot read the Delta table at {location!r} from its "
                f"store: {_first_line(exc)}",
            ) from None
    if ctx.table_exist(name):
        ctx.deregister_table(name)
    if for_execution:
        _engine_call(name, location, lambda: ctx.register_dataset(name, provider))
    else:
        _engine_call(name, location, lambda: ctx.register_table(name, provider))
    return _registered_delta(name, location, table)


def register_in_memory(
    ctx: Any,
    resolver: DatasetBindings,
    name: str,
    *,
    version: int | None = None,
    mode: Literal["semantic-authority", "runtime-bootstrap"] = "semantic-authority",
    fallback_root: str | None = None,
) -> RegisteredDataset:
    """Register ``name`` as a one-partition in-memory table (the small-input scan policy).

    The dataset is first registered as usual (every check of :func:`register_dataset`, a
    Delta table pinned at ``version``), read once through that provider (so a Delta
    table's deletion vectors and column mapping apply), and replaced by a ``MemTable``
    holding the rows in one partition: its scans list no files, fetch no file
    statistics and plan as ``DataSourceExec: partitions=1, partition_sizes=[...]``
    instead of a file scan with ``file_groups``.
    """
    import pyarrow as pa

    registered = register_dataset(
        ctx,
        resolver,
        name,
        version=version,
        mode=mode,
        fallback_root=fallback_root,
        for_execution=True,
    )
    try:
        table = _engine_call(name, registered.location, lambda: ctx.table(name).to_arrow_table())
    except ReferenceImplError:
        raise
    except Exception as exc:
        binding = resolver.binding(name)
        if binding.store is not None:
            coded = store_error(
                exc,
                resolver.stores[binding.store],
                field_path=f"datasets.{name}.location",
                subject=name,
                doing=f"reading dataset {name!r}",
            )
            if coded is not None:
                raise coded from None
        raise _location_error(
            ErrorCode.DATASET_UNREADABLE,
            name,
            f"dataset {name!r}: cannot read {registered.location!r}: {_first_line(exc)}",
        ) from None
    batches = table.combine_chunks().to_batches() or [
        pa.RecordBatch.from_pylist([], schema=table.schema)
    ]
    ctx.deregister_table(name)
    ctx.register_record_batches(name, [batches])
    return registered


# -- the location and its declaration --------------------------------------------------


def _stat_location(name: str, location: str) -> os.stat_result:
    """``os.stat(location)``: missing is ``DATASET_NOT_FOUND``; only a directory or a
    regular file is a dataset (``/dev/zero`` or a FIFO would never end)."""
    try:
        info = os.stat(location)
    except FileNotFoundError:
        raise _not_found(name, location) from None
    except OSError as exc:  # ELOOP (a symlink loop), EACCES, ENOTDIR ...
        raise _location_error(
            ErrorCode.DATASET_UNREADABLE,
            name,
            f"dataset {name!r}: cannot read {location!r}: {exc.strerror}",
        ) from None
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        raise _location_error(
            ErrorCode.DATASET_UNREADABLE,
            name,
            f"dataset {name!r}: {location!r} is {_kind(info.st_mode)}, not a regular file "
            "or a directory",
        )
    return info


def _check_delta_location(name: str, location: str, info: os.stat_result) -> None:
    """A ``delta`` dataset is a directory with a ``_delta_log``; anything else is a
    format mismatch, with a hint at what the location really holds."""
    if stat.S_ISDIR(info.st_mode) and os.path.lexists(os.path.join(location, DELTA_LOG)):
        return
    if stat.S_ISREG(info.st_mode):
        found = "a Parquet file" if _is_parquet_name(location) else "a file"
        hint = (
            'declare format = "parquet"'
            if found == "a Parquet file"
            else "point location at a Delta table directory"
        )
        raise _format_mismatch(
            name, f"format is 'delta', but {location!r} is {found}, not a Delta table: {hint}"
        )
    nested, parquet_files = _survey_directory(location)
    if nested:
        hint = f"a Delta table is one level down at {nested[0]!r}: point location at it"
    elif parquet_files:
        hint = (
            f'it holds {parquet_files} Parquet file(s): declare format = "parquet" if it is a '
            "plain Parquet directory"
        )
    else:
        hint = "it holds no Delta table and no Parquet files"
    raise _format_mismatch(
        name, f"format is 'delta', but {location!r} has no {DELTA_LOG} directory: {hint}"
    )


def files_identity(location: str) -> str:
    """What a file-based dataset holds, for a plan cache: ``location`` with every file
    under it (or the file itself) and their sizes and modification times."""

    def entry(path: str) -> tuple[str, int, int]:
        info = os.stat(path)
        return os.path.relpath(path, location), info.st_size, info.st_mtime_ns

    if os.path.isdir(location):
        found = sorted(
            entry(os.path.join(directory, name))
            for directory, _, names in os.walk(location)
            for name in names
        )
    else:
        found = [entry(location)]
    return f"files:{location}:" + hashlib.sha256(repr(found).encode()).hexdigest()


def _survey_directory(location: str) -> tuple[list[str], int]:
    """Subdirectories of ``location`` holding a ``_delta_log``, and its Parquet files."""
    nested: list[str] = []
    parquet_files = 0
    try:
        with os.scandir(location) as entries:
            for entry in entries:
                if entry.is_dir() and os.path.isdir(os.path.join(entry.path, DELTA_LOG)):
                    nested.append(os.path.join(location, entry.name))
                elif _is_parquet_name(entry.name):
                    parquet_files += 1
    except OSError:
        pass  # the mismatch is reported all the same, without the hint
    return sorted(nested), parquet_files


def _check_parquet_location(
    name: str, location: str, info: os.stat_result, scope: DataFileScope | None
) -> None:
    """A ``parquet`` dataset holds no Delta table and reaches no file outside ``scope``."""
    ancestor = _delta_ancestor(location)
    if ancestor is not None:
        where = (
            "is a Delta table"
            if ancestor == location
            else f"is inside the Delta table at {ancestor!r}"
        )
        raise _format_mismatch(
            name,
            f"format is 'parquet', but {location!r} {where} (it has a {DELTA_LOG}); reading "
            'it as Parquet would also read removed files: declare format = "delta" and '
            f"location = the table's directory",
        )
    if stat.S_ISREG(info.st_mode):
        return
    walk = _ParquetWalk(name, location, scope)
    walk.run()
    if walk.delta_tables:
        raise _format_mismatch(
            name,
            f"format is 'parquet', but {location!r} holds a Delta table at "
            f'{walk.delta_tables[0]!r}: declare it as its own dataset with format = "delta"',
        )
    if walk.parquet_files == 0 and walk.other_files:
        raise _format_mismatch(
            name,
            f"format is 'parquet', but {location!r} holds {walk.other_files} file(s) and none "
            f"named *{PARQUET_SUFFIX} (e.g. {walk.other_example!r})",
        )


def _delta_ancestor(location: str) -> str | None:
    """``location`` or its nearest ancestor that holds a ``_delta_log``."""
    current = os.path.abspath(location)
    while True:
        if os.path.isdir(os.path.join(current, DELTA_LOG)):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


class _ParquetWalk:
    """One pass over a Parquet directory: Delta tables inside, data file kinds, symlinks.

    Directories reached through a symlink are walked too (once each), since a listing may
    descend into them; a symlink is checked against the scope before it is followed.
    """

    def __init__(self, name: str, location: str, scope: DataFileScope | None) -> None:
        self.name = name
        self.location = location
        self.scope = scope
        self.delta_tables: list[str] = []
        self.parquet_files = 0
        self.other_files = 0
        self.other_example = ""

    def run(self) -> None:
        seen = {os.path.realpath(self.location)}
        stack = [self.location]
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as listing:
                    entries = sorted(listing, key=lambda entry: entry.name)
            except OSError as exc:
                raise self._unreadable(directory, exc.strerror or "cannot list it") from None
            for entry in entries:
                target = self._follow(entry)
                if target is None:
                    continue
                path, mode = target
                if stat.S_ISDIR(mode):
                    if entry.name == DELTA_LOG:
                        self.delta_tables.append(directory)
                        continue
                    real = os.path.realpath(path)
                    if real not in seen:
                        seen.add(real)
                        stack.append(entry.path)
                elif _is_parquet_name(entry.name):
                    if not stat.S_ISREG(mode):
                        raise self._unreadable(entry.path, f"is {_kind(mode)}, not a regular file")
                    self.parquet_files += 1
                else:
                    self.other_files += 1
                    self.other_example = self.other_example or self._relative(entry.path)

    def _follow(self, entry: os.DirEntry[str]) -> tuple[str, int] | None:
        """The entry's path and mode (through a symlink, checked); None: not data."""
        if not entry.is_symlink():
            if entry.is_dir(follow_symlinks=False):
                return entry.path, stat.S_IFDIR
            if entry.is_file(follow_symlinks=False):
                return entry.path, stat.S_IFREG
            return entry.path, entry.stat(follow_symlinks=False).st_mode
        try:
            mode = os.stat(entry.path).st_mode
        except FileNotFoundError:
            return None  # a dangling link is not listed as data
        except OSError as exc:  # ELOOP: the engine's listing fails on it too
            raise self._unreadable(
                entry.path, f"is a symlink that cannot be followed ({exc.strerror})"
            ) from None
        if not (stat.S_ISDIR(mode) or _is_parquet_name(entry.name)):
            return None  # a link to something the listing never reads as data
        if not _inside(self.scope, os.path.realpath(entry.path)):
            raise _escapes(self.name, self._relative(entry.path), "a symlink")
        return entry.path, mode

    def _relative(self, path: str) -> str:
        return os.path.relpath(path, self.location)

    def _unreadable(self, path: str, why: str) -> ReferenceImplError:
        return _location_error(
            ErrorCode.DATASET_UNREADABLE,
            self.name,
            f"dataset {self.name!r}: {self._relative(path)!r} {why}",
        )


# -- Delta tables ----------------------------------------------------------------------


def open_delta_table(name: str, location: str, *, version: int | None = None) -> Any:
    """``deltalake.DeltaTable(location)`` with its failures turned into coded errors."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    if not os.path.exists(location):
        raise _not_found(name, location)
    try:
        return DeltaTable(location, version=version)
    except TableNotFoundError as exc:
        raise _location_error(
            ErrorCode.DATASET_NOT_DELTA,
            name,
            f"dataset {name!r} at {location!r} has a {DELTA_LOG} but no readable table "
            f"version ({_first_line(exc)})",
        ) from None
    except DeltaError as exc:
        if _UNSUPPORTED_PROTOCOL.search(str(exc)):
            raise _location_error(
                ErrorCode.DELTA_PROTOCOL_UNSUPPORTED,
                name,
                f"dataset {name!r} at {location!r} needs a newer Delta protocol than "
                f"deltalake can read: {_first_line(exc)}",
            ) from None
        raise _corrupt(name, location, exc) from None
    except (OSError, ValueError) as exc:
        raise _corrupt(name, location, exc) from None


def _corrupt(name: str, location: str, exc: BaseException) -> ReferenceImplError:
    return _location_error(
        ErrorCode.DELTA_LOG_CORRUPT,
        name,
        f"dataset {name!r}: cannot read the Delta log at {location!r}: {_first_line(exc)}",
    )


def _check_delta_files(name: str, table: Any, location: str, scope: DataFileScope | None) -> None:
    """One pass over the log's add actions: each data file exists, is a regular file and
    (under ``scope``) resolves inside the manifest's directory.

    Planning reads only the log, so without this a deleted file would surface as a raw
    engine error in the middle of execution, and a path such as ``../../x.parquet``, an
    absolute path or a ``file://`` URL would be read wherever it points.  Paths come from
    the add actions, not ``file_uris()``, which joins even absolute paths to the table root.
    """
    # the path column alone (converting the whole table, statistics included, to
    # pyarrow first cost more than the checks)
    paths = table.get_add_actions(flatten=False).column("path").to_pylist()
    base = os.path.abspath(location)
    real_dirs: dict[str, str] = {}
    for raw in paths:
        local = _local_path(str(raw), base)
        if local is None:  # an object-store URL: outside any local root
            if not _inside(scope, None):
                raise _escapes(name, str(raw), "a Delta log add action")
            continue
        directory, file_name = os.path.split(local)
        real_dir = real_dirs.get(directory)
        if real_dir is None:
            real_dir = real_dirs[directory] = os.path.realpath(directory)
        real = os.path.join(real_dir, file_name)
        if not _inside(scope, real):
            raise _escapes(name, os.path.relpath(local, base), "a Delta log add action")
        try:
            mode = os.lstat(real).st_mode
            if stat.S_ISLNK(mode):
                real = os.path.realpath(real)
                if not _inside(scope, real):
                    raise _escapes(name, os.path.relpath(local, base), "a symlink in the table")
                mode = os.stat(real).st_mode
        except OSError as exc:
            shown = os.path.relpath(local, base)
            reason = (
                "is missing"
                if isinstance(exc, FileNotFoundError)
                else f"cannot be read ({exc.strerror})"
            )
            raise _location_error(
                ErrorCode.DATASET_UNREADABLE,
                name,
                f"dataset {name!r}: data file {shown!r} referenced by Delta version "
                f"{table.version()} {reason}",
            ) from None
        if not stat.S_ISREG(mode):
            shown = os.path.relpath(local, base)
            raise _location_error(
                ErrorCode.DATASET_UNREADABLE,
                name,
                f"dataset {name!r}: data file {shown!r} is {_kind(mode)}, not a regular file",
            )


def _local_path(raw: str, base: str) -> str | None:
    """The local path an add action's (percent-encoded) path names; None: not local."""
    if _SCHEME.match(raw):
        parts = urlsplit(raw)
        if parts.scheme.lower() != "file":
            return None
        return os.path.normpath(unquote(parts.path))
    path = unquote(raw)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))


def _inside(scope: DataFileScope | None, real: str | None) -> bool:
    """May a data file at ``real`` (None: not a local path) be read under ``scope``?"""
    if scope is None or scope.allow_external:
        return True
    root = scope.root.rstrip(os.sep)
    return real is not None and (real == root or real.startswith(root + os.sep))


def _escapes(name: str, shown: str, how: str) -> ReferenceImplError:
    return _location_error(
        ErrorCode.MANIFEST_LOCATION_ESCAPES_ROOT,
        name,
        f"dataset {name!r}: data file {shown!r} ({how}) resolves outside the manifest "
        "directory; set policy.allow_external_locations = true to allow it",
    )


# -- the engine ------------------------------------------------------------------------


def _register_parquet(ctx: Any, name: str, location: str) -> None:
    """``ctx.register_parquet`` with its failures (no files, not Parquet) turned into codes."""
    try:
        _engine_call(name, location, lambda: ctx.register_parquet(name, location))
    except ReferenceImplError:
        raise
    except Exception as exc:
        if "No files found" in str(exc):
            raise _not_found(name, location) from None
        raise _location_error(
            ErrorCode.DATASET_UNREADABLE,
            name,
            f"dataset {name!r}: cannot read Parquet at {location!r}: {_first_line(exc)}",
        ) from None


def is_engine_panic(exc: BaseException) -> bool:
    """A Rust panic raised through pyo3: a ``BaseException`` that is no ``Exception``."""
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"


def _engine_call(name: str, location: str, call: Callable[[], _T]) -> _T:
    """Run ``call``; an engine panic (a corrupt Parquet footer ...) is ``DATASET_UNREADABLE``.

    Rust's panic hook writes its own message to file descriptor 2 before pyo3 raises;
    that output is held back and dropped when the call panicked (the coded error carries
    the message), and passed through otherwise.
    """
    try:
        with held_stderr() as held:
            try:
                return call()
            except BaseException as exc:
                if is_engine_panic(exc):
                    held.drop()
                raise
    except BaseException as exc:
        if not is_engine_panic(exc):
            raise
        raise _location_error(
            ErrorCode.DATASET_UNREADABLE,
            name,
            f"dataset {name!r}: the engine failed reading {location!r}: {_first_line(exc)}",
        ) from None


class _Held:
    def __init__(self) -> None:
        self.keep = True

    def drop(self) -> None:
        self.keep = False


@contextmanager
def held_stderr() -> Iterator[_Held]:
    """Redirect file descriptor 2 to a temporary file; replay it unless dropped."""
    held = _Held()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield held  # no usable descriptor 2: nothing to hold back
        return
    with tempfile.TemporaryFile() as spool:
        os.dup2(spool.fileno(), 2)
        try:
            yield held
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if held.keep and spool.tell() > 0:
                spool.seek(0)
                os.write(2, spool.read())


# -- errors ----------------------------------------------------------------------------


def _is_parquet_name(path: str) -> bool:
    return path.lower().endswith(PARQUET_SUFFIX)


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _format_mismatch(name: str, message: str) -> ReferenceImplError:
    return ReferenceImplError(
        ErrorCode.DATASET_FORMAT_MISMATCH,
        f"dataset {name!r}: {message}",
        field_path=f"datasets.{name}.format",
        subjects=(name,),
    )


def _location_error(code: ErrorCode, name: str, message: str) -> ReferenceImplError:
    """A coded error about dataset ``name``'s location (its field path and subject)."""
    return ReferenceImplError(
        code, message, field_path=f"datasets.{name}.location", subjects=(name,)
    )


def _not_found(name: str, location: str) -> ReferenceImplError:
    return _location_error(
        ErrorCode.DATASET_NOT_FOUND,
        name,
        f"dataset {name!r}: nothing at {location!r}",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
