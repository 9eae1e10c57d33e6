"""What a session's tables and UDFs *are*, for the plan cache of the session gate.

A ``SessionContext`` does not say what a registered table holds: a Delta table is an
opaque provider.  So the factory call is watched: while it runs, the session's
registration methods record what they were given, and each table gets an identity:

* a ``deltalake.DeltaTable``: its URI, version and table id (a table re-created at the same
  path has a new id);
* a path (``register_parquet``, ``register_csv``, ``register_json``, ``register_avro``,
  ``register_listing_table``): every file under it with its size and modification time;
* anything else (record batches, datasets, other providers): what its plan shows, the
  ``EXPLAIN`` of ``SELECT *`` with statistics and its partition count.

UDFs: their names with the factory module's source (a UDF defined next to the factory is
covered); the code of a UDF defined elsewhere is not (``--planguard-cache-verify`` or
``--planguard-no-cache`` when such a UDF is folded at plan time).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

_PATH_METHODS = (
    "register_parquet",
    "register_csv",
    "register_json",
    "register_avro",
    "register_listing_table",
)


@contextmanager
def recording_tables(recorded: dict[str, Any]) -> Iterator[None]:
    """Record ``name -> what was registered`` for every table registered while active
    (a DeltaTable object, or a path as a ``("path", str)`` tuple)."""
    from datafusion import SessionContext

    originals: dict[str, Callable[..., Any]] = {}

    def wrap(method: str) -> None:
        original = getattr(SessionContext, method, None)
        if original is None:
            return
        originals[method] = original

        def recorder(self: Any, name: str, source: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, name, source, *args, **kwargs)
            if method == "register_table":
                recorded[str(name)] = source
            elif isinstance(source, str | os.PathLike):
                recorded[str(name)] = ("path", os.fspath(source))
            else:  # e.g. a list of paths
                recorded[str(name)] = ("paths", [os.fspath(p) for p in source])
            return result

        setattr(SessionContext, method, recorder)

    for method in ("register_table", *_PATH_METHODS):
        wrap(method)
    try:
        yield
    finally:
        for method, original in originals.items():
            setattr(SessionContext, method, original)


def table_identities(ctx: Any, tables: list[str], recorded: Mapping[str, Any]) -> dict[str, str]:
    """Table name -> identity, for every table of ``ctx`` (see module docs)."""
    out: dict[str, str] = {}
    for name in tables:
        source = recorded.get(name)
        identity = _recorded_identity(source) if source is not None else None
        out[name] = identity if identity is not None else _plan_identity(ctx, name)
    return out


def catalog_tables(ctx: Any, *, views: bool) -> list[str]:
    """Every view (``views``) or every other table in the session's catalogs; names
    outside the default catalog and schema are qualified as DataFusion resolves them
    (``schema.name``, ``catalog.schema.name``)."""
    from reference_impl.relspec.frame_plan import session_settings

    settings = session_settings(ctx)
    default_catalog = settings.get("datafusion.catalog.default_catalog", "datafusion")
    default_schema = settings.get("datafusion.catalog.default_schema", "public")
    names: list[str] = []
    for catalog_name in sorted(ctx.catalog_names()):
        catalog = ctx.catalog(catalog_name)
        for schema_name in sorted(catalog.schema_names()):
            if schema_name == "information_schema":
                continue
            schema = catalog.schema(schema_name)
            for table in sorted(schema.names()):
                if (schema.table(table).kind == "view") != views:
                    continue
                if catalog_name != default_catalog:
                    names.append(f"{catalog_name}.{schema_name}.{table}")
                elif schema_name != default_schema:
                    names.append(f"{schema_name}.{table}")
                else:
                    names.append(table)
    return names


def module_source(spec: str) -> str:
    """The sha256 of the factory module's file ("" when it has none)."""
    import sys

    module = sys.modules.get(spec.partition(":")[0])
    file = getattr(module, "__file__", None)
    if not file:
        return ""
    try:
        with open(file, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return ""


def _recorded_identity(source: Any) -> str | None:
    if isinstance(source, tuple) and source[0] in ("path", "paths"):
        paths = [source[1]] if source[0] == "path" else list(source[1])
        return "files:" + _files_digest(paths)
    version = getattr(source, "version", None)
    metadata = getattr(source, "metadata", None)
    uri = getattr(source, "table_uri", None)
    if callable(version) and callable(metadata) and uri is not None:
        try:
            return f"delta:{uri}@{int(version())}:{metadata().id}"
        except Exception:
            return None
    return None


def _files_digest(paths: list[str]) -> str:
    from reference_impl.engine.data_source import files_identity

    found = []
    for given in paths:
        root = given.removeprefix("file://")
        # a remote or missing path is keyed by its name only
        found.append(files_identity(root) if os.path.exists(root) else f"unlisted:{root}")
    return hashlib.sha256("\n".join(found).encode()).hexdigest()


def _plan_identity(ctx: Any, name: str) -> str:
    """What a table's own plan shows: its EXPLAIN with statistics, its partition count."""
    quoted = ".".join(f'"{part}"' for part in name.split("."))
    try:
        frame = ctx.sql(f"SELECT * FROM {quoted}")
        plan = frame.execution_plan()
        text = plan.display_indent() + f"\npartitions={plan.partition_count}"
        stats = ctx.sql(f"EXPLAIN SELECT * FROM {quoted}").to_pydict()
        text += "\n" + "\n".join(str(v) for v in stats.get("plan", []))
    except Exception as exc:  # keyed by the failure: re-planned when it changes
        text = f"unplannable: {exc}"
    return "plan:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
