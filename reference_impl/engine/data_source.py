"""Dataset providers: resolving a location and registering a table, through the resolver.

``DataSourceConfig`` has the review's two explicit modes:

* ``semantic-authority``: locations come from the manifest's resolver only; an unresolved
  one fails closed with ``DATASET_LOCATION_UNRESOLVED``.
* ``runtime-bootstrap``: an unresolved location falls back to ``<fallback_root>/<name>``
  (a profile-derived default, used to bootstrap data before the manifest is authoritative).

Every registration, first or re-registration by a scan override, goes through
:func:`register_dataset` with the run's one resolver object.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal
from urllib.parse import unquote

import msgspec

from reference_impl.engine.delta_protocol import DeltaProtocol, delta_protocol_from_table
from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.program import DatasetBindings

_UNSUPPORTED_PROTOCOL = re.compile(
    r"Unsupported: (Feature '[^']*' is not supported|Unsupported minimum (reader|writer) "
    r"version)"
)
"""How deltalake (delta-kernel) says a table's protocol is newer than it can read."""


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


class RegisteredDataset(msgspec.Struct, frozen=True, kw_only=True):
    """What registering one dataset found: its location, Delta version and protocol."""

    name: str
    format: Literal["delta", "parquet"]
    location: str
    delta_version: int | None
    delta_protocol: DeltaProtocol | None


def register_dataset(
    ctx: Any,
    resolver: DatasetBindings,
    name: str,
    *,
    version: int | None = None,
    mode: Literal["semantic-authority", "runtime-bootstrap"] = "semantic-authority",
    fallback_root: str | None = None,
) -> RegisteredDataset:
    """(Re-)register dataset ``name`` on ``ctx`` from the location ``resolver`` gives.

    ``version`` pins a Delta table to one version (scan overrides use it so that execution
    reads exactly the version that was planned).
    """
    config = DataSourceConfig(mode=mode, resolver=resolver, fallback_root=fallback_root)
    location = config.resolve(name)
    binding = resolver.binding(name)
    if ctx.table_exist(name):
        ctx.deregister_table(name)
    if binding.format == "parquet":
        if not os.path.exists(location):
            raise _not_found(name, location)
        _register_parquet(ctx, name, location)
        return RegisteredDataset(
            name=name, format="parquet", location=location, delta_version=None, delta_protocol=None
        )
    table = open_delta_table(name, location, version=version)
    _require_data_files(name, table)
    ctx.register_table(name, table)
    return RegisteredDataset(
        name=name,
        format="delta",
        location=location,
        delta_version=int(table.version()),
        delta_protocol=delta_protocol_from_table(table.protocol()),
    )


def _register_parquet(ctx: Any, name: str, location: str) -> None:
    """``ctx.register_parquet`` with its failures (no files, not Parquet) turned into codes."""
    try:
        ctx.register_parquet(name, location)
    except Exception as exc:
        if "No files found" in str(exc):
            raise _not_found(name, location) from None
        raise _location_error(
            ErrorCode.DATASET_UNREADABLE,
            name,
            f"dataset {name!r}: cannot read Parquet at {location!r}: {_first_line(exc)}",
        ) from None


def open_delta_table(name: str, location: str, *, version: int | None = None) -> Any:
    """``deltalake.DeltaTable(location)`` with its failures turned into coded errors."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    if not os.path.exists(location):
        raise _not_found(name, location)
    if not os.path.isdir(location):
        raise _location_error(
            ErrorCode.DATASET_NOT_DELTA,
            name,
            f"dataset {name!r} at {location!r} is a file, not a Delta table directory",
        )
    try:
        return DeltaTable(location, version=version)
    except TableNotFoundError as exc:
        raise _location_error(
            ErrorCode.DATASET_NOT_DELTA,
            name,
            f"dataset {name!r} at {location!r} is not a Delta table ({_first_line(exc)})",
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


def _require_data_files(name: str, table: Any) -> None:
    """Fail with a code, at registration, when the log references a data file that is gone.

    Planning reads only the log, so without this check a deleted file would surface as a
    raw engine error in the middle of execution.
    """
    for uri in table.file_uris():
        # file_uris() are percent-encoded ("donn%C3%A9es", "data%20dir"): decode them.
        path = uri.removeprefix("file://")
        if "://" in path:
            continue  # object stores: left to the engine
        path = unquote(path)
        if os.path.exists(path):
            continue
        raise _location_error(
            ErrorCode.DATASET_UNREADABLE,
            name,
            f"dataset {name!r}: data file {os.path.basename(path)!r} referenced by Delta "
            f"version {table.version()} is missing",
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
