"""The hostile-manifest strategy: mutations of a valid case, each naming the error codes
a correct compiler answers with."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from pytest_planguard.strategies._internal import sqlgen
from pytest_planguard.strategies._internal.cases import HostileCase, ManifestCase, ManifestFormat
from pytest_planguard.strategies._internal.serialization import _thaw, _toml_dumps
from pytest_planguard.strategies._internal.sqlgen import names, quote
from pytest_planguard.strategies._internal.valid import _manifest_cases


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
    # a URL under no declared [storage.*] store is not allowed; a NUL is no path at all
    code = "MANIFEST_LOCATION_NOT_ALLOWED" if "://" in value else "MANIFEST_INVALID_VALUE"
    return m.case("bad_location", f"datasets.{dataset}.location = {value!r}", code)


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
        ).filter(lambda s: s.lower() not in sqlgen.RESERVED)
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
