"""The valid-manifest strategy: random DAGs of views over generated Arrow schemas, SQL
from :mod:`.sqlgen`, Delta and Parquet tables, a Python UDF, outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from pytest_planguard.strategies._internal import sqlgen
from pytest_planguard.strategies._internal.cases import (
    DatasetFormat,
    ManifestCase,
    ManifestFormat,
    TableCase,
    ViewCase,
)
from pytest_planguard.strategies._internal.runtime import (
    _delta_supports,
    delta_protocols,
    runtime_profiles,
)
from pytest_planguard.strategies._internal.serialization import _freeze
from pytest_planguard.strategies._internal.sqlgen import Column, Kind, Relation, names

GRAMMAR_FEATURES: tuple[str, ...] = (
    *sqlgen.FEATURES,
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
        kind: Kind = draw(st.sampled_from(sqlgen.KINDS))
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
        query = draw(sqlgen.queries(relations, udf=udf_name))
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
        # a view calling the UDF declares it (else UDF_UNDECLARED); now and then a view
        # declares it without calling it (UDF_DECLARED_UNUSED, a warning)
        declare = udf_name is not None and (
            bool(query.udfs) or (draw(st.integers(0, 3)) == 0 and draw(st.booleans()))
        )
        if declare:
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
