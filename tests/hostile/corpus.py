"""The bad-input corpus: hostile manifests, each with the exact code it must produce.

Every :class:`Case` is a small project (a manifest plus the files, links and Delta tables
it needs) written into its own directory by :func:`materialize`.  ``code`` and
``field_path`` are what ``error[CODE] file: field.path: message`` must say; ``stage`` says
where the pipeline refuses it:

* ``load`` / ``compile``: before any engine work (``planguard compile`` refuses it too, and
  ``pytest --planguard`` reports it as a collection error);
* ``engine``: while building the DataFusion session (datasets, UDF providers, bootstrap);
* ``policy``: a policy finding of ``planguard validate`` (exit 1), not an error.

``@OUTSIDE@`` in any text is replaced by the absolute path of a directory next to (not
inside) the case's directory, holding ``secret.sql`` and a Delta table ``t``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# Imported at module import, never inside a test: pytester restores sys.modules after each
# test, and deltalake's native module panics when it is initialized twice.
import deltalake
import pyarrow as pa
import pyarrow.parquet as pq

Stage = Literal["load", "compile", "engine", "policy"]
OUTSIDE = "@OUTSIDE@"

T = '[datasets.t]\nformat = "delta"\nlocation = "t"\n'
"""A Delta dataset ``t`` (columns a: int64, b: string) at ``t``; pair with ``tables=("t",)``."""
CLEAN = (
    "[policy]\nsmall_input_rows = 0\n"
    "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n"
)
"""Policy under which a plain Delta table yields no finding."""


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    field_path: str | None
    manifest: str | bytes | None
    """Manifest content; None: no manifest is written (``path`` names what is missing)."""
    stage: Stage = "load"
    name: str = "manifest.toml"
    path: str | None = None
    """What to hand to the CLI, relative to the case directory (default: ``name``)."""
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    """Symlink (relative to the case directory) -> target."""
    tables: tuple[str, ...] = ()
    """Delta tables to write (relative to the case directory)."""
    setup: Callable[[Path], None] | None = None
    subject: str | None = None
    """For policy findings: ``<kind> <subject>`` the finding names (e.g. ``view v``)."""

    @property
    def exit(self) -> int:
        return 1 if self.stage == "policy" else 2


def write_table(location: Path, rows: int = 3) -> Path:
    deltalake.write_deltalake(
        str(location),
        pa.table({"a": list(range(rows)), "b": [f"r{i}" for i in range(rows)]}),
    )
    return location


def materialize(case: Case, base: Path) -> Path:
    """Write ``case`` under ``base/<id>`` (``base/outside`` is shared); return the path the
    CLI is given."""
    outside = base / "outside"
    if not outside.exists():
        outside.mkdir(parents=True)
        (outside / "secret.sql").write_text("SELECT 1 AS leaked\n", encoding="utf-8")
        write_table(outside / "t")
    root = base / case.id
    root.mkdir(parents=True)

    def fill(content: str | bytes) -> str | bytes:
        if isinstance(content, str):
            return content.replace(OUTSIDE, str(outside))
        return content.replace(OUTSIDE.encode(), str(outside).encode())

    for location in case.tables:
        write_table(root / location)
    for relative, content in case.files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        data = fill(content)
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data, encoding="utf-8")
    for relative, link_target in case.links.items():
        link = root / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(str(fill(link_target)), link)
    if case.manifest is not None:
        data = fill(case.manifest)
        manifest = root / case.name
        if isinstance(data, bytes):
            manifest.write_bytes(data)
        else:
            manifest.write_text(data, encoding="utf-8")
    if case.setup is not None:
        case.setup(root)
    return root / (case.path or case.name)


def view(sql: str, name: str = "v") -> str:
    return f"[views.{name}]\nsql = {json.dumps(sql)}\n"


# -- setups --------------------------------------------------------------------------------


def _first_log(root: Path) -> Path:
    return root / "t" / "_delta_log" / "00000000000000000000.json"


def corrupt_log(root: Path) -> None:
    _first_log(root).write_text('{"protocol": {"minReaderVersion": \n', encoding="utf-8")


def newer_protocol(root: Path) -> None:
    log = _first_log(root)
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        if "protocol" in line:
            line["protocol"] = {
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": ["planguardFutureFeature"],
                "writerFeatures": ["planguardFutureFeature"],
            }
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")


def delete_data_files(root: Path) -> None:
    for data in (root / "t").glob("*.parquet"):
        data.unlink()


def deletion_vectors(root: Path) -> None:
    deltalake.write_deltalake(
        str(root / "dv"),
        pa.table({"a": [1, 2, 3]}),
        configuration={"delta.enableDeletionVectors": "true"},
    )


def parquet_without_statistics(root: Path) -> None:
    (root / "p").mkdir(parents=True)
    pq.write_table(pa.table({"a": [1, 2, 3]}), root / "p" / "part-0.parquet")


def add_path_outside(root: Path) -> None:
    """Point the add action of ``t``'s log at the outside table's data file (``../..``)."""
    outside_file = next((root.parent / "outside" / "t").glob("*.parquet"))
    log = _first_log(root)
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        if "add" in line:
            line["add"]["path"] = f"../../outside/t/{outside_file.name}"
            line["add"]["size"] = outside_file.stat().st_size
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")


def parquet_linking_outside(root: Path) -> None:
    parquet_without_statistics(root)
    outside_file = next((root.parent / "outside" / "t").glob("*.parquet"))
    (root / "p" / "part-1.parquet").symlink_to(outside_file)


def corrupt_parquet_footer(root: Path) -> None:
    """A footer whose metadata length is 2**31: the engine panics reading it."""
    parquet_without_statistics(root)
    data = (root / "p" / "part-0.parquet").read_bytes()
    (root / "p" / "part-0.parquet").write_bytes(data[:-8] + (2**31).to_bytes(4, "little") + b"PAR1")


def symlink_loop(link: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).symlink_to(root / f"{link}.loop")
        (root / f"{link}.loop").symlink_to(root / link)

    return setup


# -- the corpus ----------------------------------------------------------------------------

NESTED_PARENS = "SELECT " + "(" * 100 + "1" + ")" * 100 + " AS x"
NOT_CHAIN = "SELECT " + "NOT " * 3000 + "true AS x"
LONG_SUM = "SELECT " + " + ".join(["a"] * 5000) + " AS x FROM t"
CTE_BOMB = (
    "WITH c0 AS (SELECT a FROM t), "
    + ", ".join(
        f"c{i} AS (SELECT x.a FROM c{i - 1} x UNION ALL SELECT y.a FROM c{i - 1} y)"
        for i in range(1, 16)
    )
    + " SELECT a FROM c15"
)
VIEW_BOMB = view("SELECT a FROM t", "w00") + "".join(
    view(f"SELECT x.a FROM w{i - 1:02d} x JOIN w{i - 1:02d} y ON x.a = y.a", f"w{i:02d}")
    for i in range(1, 16)
)
TEN_THOUSAND_VIEWS = "".join(f'[views.v{i:05d}]\nsql = "SELECT 1"\n' for i in range(10_000))


def cte_chain(length: int, source: str = "SELECT 1 AS a") -> str:
    """``length`` CTEs, each reading the one before (no recursion allowed to analyse it)."""
    chain = ", ".join(f"c{i} AS (SELECT a FROM c{i - 1})" for i in range(1, length))
    return f"WITH c0 AS ({source}), {chain} SELECT a FROM c{length - 1}"


def view_chain(length: int) -> str:
    """``length`` views over ``t``, each reading the one before: plans grow n*n/2."""
    return view("SELECT a FROM t", "v0000") + "".join(
        view(f"SELECT a FROM v{i - 1:04d}", f"v{i:04d}") for i in range(1, length)
    )


# three views of 200 CTEs each, each reading the one before: 602 deep once inlined
DEEP_ACROSS_VIEWS = (
    view(cte_chain(200, "SELECT a FROM t"), "v0")
    + view(cte_chain(200, "SELECT a FROM v0"), "v1")
    + view(cte_chain(200, "SELECT a FROM v1"), "v2")
)

CASES: tuple[Case, ...] = (
    # -- malformed files -------------------------------------------------------------------
    Case("toml-syntax", "MANIFEST_PARSE_ERROR", None, "[views.v\nsql = 'SELECT 1'\n"),
    Case(
        "json-syntax",
        "MANIFEST_PARSE_ERROR",
        None,
        '{"views": {"v": }',
        name="manifest.json",
    ),
    Case("empty-file", "MANIFEST_PARSE_ERROR", None, ""),
    Case("whitespace-only", "MANIFEST_PARSE_ERROR", None, " \n\t\n"),
    Case("binary-file", "MANIFEST_PARSE_ERROR", None, b"\x7fELF\x02\x01\x01\x00\x00\x00"),
    Case("not-utf8", "MANIFEST_PARSE_ERROR", None, b"\xff\xfe[views.v]\n"),
    Case("json-nested-too-deep", "MANIFEST_PARSE_ERROR", None, "[" * 100_000, name="m.json"),
    Case("toml-nested-too-deep", "MANIFEST_PARSE_ERROR", None, "x = " + "[" * 100_000),
    Case(
        "toml-duplicate-table",
        "MANIFEST_PARSE_ERROR",
        None,
        view("SELECT 1") + view("SELECT 2"),
    ),
    Case(
        "json-duplicate-key",
        "MANIFEST_DUPLICATE_NAME",
        "views.v",
        '{"views": {"v": {"sql": "SELECT 1"}, "v": {"sql": "SELECT 2"}}}',
        name="manifest.json",
    ),
    Case("json-top-level-array", "MANIFEST_TYPE_ERROR", None, "[1, 2]", name="manifest.json"),
    # -- wrong types -----------------------------------------------------------------------
    Case("views-not-a-table", "MANIFEST_TYPE_ERROR", "views", 'views = "v"\n'),
    Case("sql-not-a-string", "MANIFEST_TYPE_ERROR", "views.v.sql", "[views.v]\nsql = 42\n"),
    Case(
        "udfs-not-a-list",
        "MANIFEST_TYPE_ERROR",
        "views.v.udfs",
        '[views.v]\nsql = "SELECT 1"\nudfs = "f"\n',
    ),
    Case(
        "partitions-a-string",
        "MANIFEST_TYPE_ERROR",
        "runtime.target_partitions",
        '[runtime]\ntarget_partitions = "four"\n',
    ),
    Case("policy-a-list", "MANIFEST_TYPE_ERROR", "policy", '{"policy": [1]}', name="m.json"),
    # -- missing, conflicting and unknown fields -------------------------------------------
    Case(
        "dataset-without-location",
        "MANIFEST_MISSING_FIELD",
        "datasets.t.location",
        '[datasets.t]\nformat = "delta"\n',
    ),
    Case("view-without-sql", "MANIFEST_MISSING_FIELD", "views.v", "[views.v]\nudfs = []\n"),
    Case(
        "output-without-view",
        "MANIFEST_MISSING_FIELD",
        "outputs.o.view",
        '[outputs.o]\nlocation = "out/o"\n',
    ),
    Case(
        "sql-and-sql-file",
        "MANIFEST_CONFLICTING_FIELDS",
        "views.v",
        '[views.v]\nsql = "SELECT 1"\nsql_file = "v.sql"\n',
        files={"v.sql": "SELECT 2"},
    ),
    Case("unknown-top-level-key", "MANIFEST_UNKNOWN_KEY", "view", '[view.v]\nsql = "SELECT 1"\n'),
    Case(
        "unknown-view-key",
        "MANIFEST_UNKNOWN_KEY",
        "views.v.sq",
        '[views.v]\nsql = "SELECT 1"\nsq = "SELECT 2"\n',
    ),
    Case(
        "unknown-runtime-key",
        "MANIFEST_UNKNOWN_KEY",
        "runtime.target_partition",
        "[runtime]\ntarget_partition = 4\n",
    ),
    # -- invalid values --------------------------------------------------------------------
    Case(
        "negative-partitions",
        "MANIFEST_INVALID_VALUE",
        "runtime.target_partitions",
        "[runtime]\ntarget_partitions = -4\n",
    ),
    Case(
        "unparsable-ttl",
        "MANIFEST_INVALID_VALUE",
        "runtime.list_files_cache_ttl",
        '[runtime]\nlist_files_cache_ttl = "ten minutes"\n',
    ),
    Case(
        "unparsable-size",
        "MANIFEST_INVALID_VALUE",
        "runtime.metadata_cache_limit",
        '[runtime]\nmetadata_cache_limit = "lots"\n',
    ),
    Case(
        "zero-planning-budget",
        "MANIFEST_INVALID_VALUE",
        "runtime.planning_budget_ms",
        "[runtime]\nplanning_budget_ms = 0\n",
    ),
    Case(
        "unknown-policy-mode", "MANIFEST_INVALID_VALUE", "policy.mode", '[policy]\nmode = "lax"\n'
    ),
    Case("blank-sql", "MANIFEST_INVALID_VALUE", "views.v.sql", '[views.v]\nsql = " \\n "\n'),
    Case(
        "url-location",
        "MANIFEST_LOCATION_NOT_ALLOWED",
        "datasets.t.location",
        '[datasets.t]\nformat = "delta"\nlocation = "s3://bucket/t"\n',
    ),
    Case(
        "nul-in-location",
        "MANIFEST_INVALID_VALUE",
        "datasets.t.location",
        '[datasets.t]\nformat = "delta"\nlocation = "t\\u0000/x"\n',
    ),
    Case(
        "malformed-udf-provider",
        "MANIFEST_INVALID_VALUE",
        "udfs.f.provider",
        "[udfs.f]\nprovider = \"__import__('os').system('id')\"\n",
    ),
    # -- names -----------------------------------------------------------------------------
    Case(
        "view-name-escapes-snapshot-dir",
        "MANIFEST_INVALID_NAME",
        "views.../../evil",
        view("SELECT 1", '"../../evil"'),
    ),
    Case("view-name-with-slash", "MANIFEST_INVALID_NAME", "views.a/b", view("SELECT 1", '"a/b"')),
    Case("hidden-view-name", "MANIFEST_INVALID_NAME", "views..plan", view("SELECT 1", '".plan"')),
    Case(
        "reserved-view-name",
        "MANIFEST_RESERVED_NAME",
        "views.information_schema",
        view("SELECT 1", "information_schema"),
    ),
    Case(
        "reserved-dataset-name",
        "MANIFEST_RESERVED_NAME",
        "datasets.datafusion",
        '[datasets.datafusion]\nformat = "delta"\nlocation = "t"\n',
    ),
    Case(
        "builtin-executor-redeclared",
        "MANIFEST_RESERVED_NAME",
        "executors.datafusion",
        '[executors.datafusion]\nprovider = "m:f"\n',
    ),
    Case(
        "schema-overwrite-while-appending",
        "MANIFEST_CONFLICTING_FIELDS",
        "outputs.o.schema_mode",
        view("SELECT 1 AS x")
        + '[outputs.o]\nview = "v"\nlocation = "o"\nmode = "append"\nschema_mode = "overwrite"\n',
    ),
    Case(
        "dataset-and-view-share-a-name",
        "MANIFEST_DUPLICATE_NAME",
        "views.t",
        T + view("SELECT 1", "t"),
        stage="compile",
    ),
    # -- references ------------------------------------------------------------------------
    Case(
        "unknown-table",
        "MANIFEST_UNKNOWN_REFERENCE",
        "views.v.sql",
        view("SELECT * FROM nowhere"),
        stage="compile",
    ),
    Case(
        "information-schema-read",
        "MANIFEST_UNKNOWN_REFERENCE",
        "views.v.sql",
        view("SELECT table_name FROM information_schema.tables"),
        stage="compile",
    ),
    Case(
        "output-of-unknown-view",
        "MANIFEST_UNKNOWN_REFERENCE",
        "outputs.o.view",
        view("SELECT 1") + '[outputs.o]\nview = "w"\nlocation = "out/o"\n',
    ),
    Case(
        "two-view-cycle",
        "MANIFEST_CYCLE",
        "views.a",
        view("SELECT * FROM b", "a") + view("SELECT * FROM a", "b"),
        stage="compile",
    ),
    Case("self-cycle", "MANIFEST_CYCLE", "views.v", view("SELECT * FROM v"), stage="compile"),
    # -- SQL -------------------------------------------------------------------------------
    Case("sql-syntax", "MANIFEST_SQL_SYNTAX", "views.v.sql", view("SELECT (1"), stage="compile"),
    Case("misspelt-select", "MANIFEST_SQL_SYNTAX", "views.v.sql", view("SELEC 1"), stage="compile"),
    Case(
        "create-table",
        "MANIFEST_NOT_A_QUERY",
        "views.v.sql",
        view("CREATE TABLE x AS SELECT 1"),
        stage="compile",
    ),
    Case("drop", "MANIFEST_NOT_A_QUERY", "views.v.sql", T + view("DROP TABLE t"), stage="compile"),
    Case(
        "insert",
        "MANIFEST_NOT_A_QUERY",
        "views.v.sql",
        T + view("INSERT INTO t VALUES (1, 'x')"),
        stage="compile",
    ),
    Case(
        "copy-to",
        "MANIFEST_NOT_A_QUERY",
        "views.v.sql",
        view("COPY (SELECT 1 AS a) TO 'copied.csv'"),
        stage="compile",
    ),
    Case(
        "set",
        "MANIFEST_NOT_A_QUERY",
        "views.v.sql",
        view("SET datafusion.execution.target_partitions = 1"),
        stage="compile",
    ),
    Case(
        "create-external-table",
        "MANIFEST_NOT_A_QUERY",
        "views.v.sql",
        view("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'"),
        stage="compile",
    ),
    Case(
        "several-statements",
        "MANIFEST_NOT_A_QUERY",
        "views.v.sql",
        view("SELECT 1; DROP TABLE t"),
        stage="compile",
    ),
    Case(
        "select-into",
        "MANIFEST_NOT_A_QUERY",
        "views.v.sql",
        view("SELECT 1 AS a INTO created"),
        stage="compile",
    ),
    Case(
        "dml-in-cte",
        "MANIFEST_NOT_A_QUERY",
        "views.v.sql",
        T + view("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x"),
        stage="compile",
    ),
    Case(
        "drop-behind-a-comment",
        "MANIFEST_NOT_A_QUERY",
        "views.v.sql",
        T + view("/* just a query */ DROP TABLE t"),
        stage="compile",
    ),
    Case(
        "deeply-nested-parentheses",
        "MANIFEST_SQL_TOO_COMPLEX",
        "views.v.sql",
        view(NESTED_PARENS),
        stage="compile",
    ),
    Case(
        "deep-not-chain",
        "MANIFEST_SQL_TOO_COMPLEX",
        "views.v.sql",
        view(NOT_CHAIN),
        stage="compile",
    ),
    Case(
        "five-thousand-term-sum",
        "MANIFEST_SQL_TOO_COMPLEX",
        "views.v.sql",
        T + view(LONG_SUM),
        stage="compile",
    ),
    Case(
        "cte-bomb", "MANIFEST_SQL_TOO_COMPLEX", "views.v.sql", T + view(CTE_BOMB), stage="compile"
    ),
    Case("view-bomb", "MANIFEST_SQL_TOO_COMPLEX", "views.w14.sql", T + VIEW_BOMB, stage="compile"),
    # -- corpus II: deep chains (the analysis must not recurse; the plans must stay small) --
    *(
        Case(
            f"cte-chain-{length}",
            "MANIFEST_SQL_TOO_COMPLEX",
            "views.v.sql",
            view(cte_chain(length)),
            stage="compile",
        )
        for length in (600, 1000, 3000)
    ),
    Case(
        "cte-chain-501",
        "MANIFEST_SQL_TOO_COMPLEX",
        "views.v.sql",
        T + view(cte_chain(501, "SELECT a FROM t")),
        stage="compile",
    ),
    Case(
        "cte-chains-deep-across-views",
        "MANIFEST_SQL_TOO_COMPLEX",
        "views.v2.sql",
        T + DEEP_ACROSS_VIEWS,
        stage="compile",
    ),
    Case(
        "view-chain-399",
        "MANIFEST_LIMIT_EXCEEDED",
        "views",
        T + view_chain(399),
        stage="compile",
    ),
    # -- corpus II: a trailing newline (Python's `$` matches before a final "\n") -------
    Case(
        "view-name-trailing-newline",
        "MANIFEST_INVALID_NAME",
        "views.a\\n",
        view("SELECT 1", '"a\\n"'),
    ),
    Case(
        "dataset-name-trailing-newline",
        "MANIFEST_INVALID_NAME",
        "datasets.t\\n",
        '[datasets."t\\n"]\nformat = "delta"\nlocation = "t"\n',
    ),
    Case(
        "udf-name-trailing-newline",
        "MANIFEST_INVALID_NAME",
        "views.v.udfs[0]",
        '[views.v]\nsql = "SELECT 1"\nudfs = ["f\\n"]\n',
    ),
    Case(
        "udf-declared-but-not-provided",
        "MANIFEST_UNKNOWN_REFERENCE",
        "views.v.udfs[1]",
        '[views.v]\nsql = "SELECT 1"\nudfs = ["plus_one", "plus_tow"]\n'
        '[udfs.plus_one]\nprovider = "my_udfs:plus_one"\n'
        '[udfs.plus_two]\nprovider = "my_udfs:plus_two"\n',
    ),
    Case(
        "size-trailing-newline",
        "MANIFEST_INVALID_VALUE",
        "runtime.list_files_cache_limit",
        '[runtime]\nlist_files_cache_limit = "1M\\n"\n',
    ),
    Case(
        "ttl-trailing-newline",
        "MANIFEST_INVALID_VALUE",
        "runtime.list_files_cache_ttl",
        '[runtime]\nlist_files_cache_ttl = "1m\\n"\n',
    ),
    Case(
        "udf-provider-trailing-newline",
        "MANIFEST_INVALID_VALUE",
        "udfs.f.provider",
        '[udfs.f]\nprovider = "my_udfs:f\\n"\n',
    ),
    Case(
        "bootstrap-trailing-newline",
        "MANIFEST_INVALID_VALUE",
        "project.bootstrap",
        '[project]\nbootstrap = "boot:make\\n"\n' + T,
        files={"boot.py": "def make(root):\n    pass\n"},
    ),
    # -- corpus II: sizes and durations the engine refuses or saturates --------------------
    Case(
        "cache-size-beyond-u64",
        "MANIFEST_INVALID_VALUE",
        "runtime.list_files_cache_limit",
        '[runtime]\nlist_files_cache_limit = "99999999999999999999G"\n',
    ),
    Case(
        "metadata-cache-over-a-tebibyte",
        "MANIFEST_INVALID_VALUE",
        "runtime.metadata_cache_limit",
        '[runtime]\nmetadata_cache_limit = "1025G"\n',
    ),
    Case(
        "ttl-beyond-u64",
        "MANIFEST_INVALID_VALUE",
        "runtime.list_files_cache_ttl",
        '[runtime]\nlist_files_cache_ttl = "99999999999999999999m"\n',
    ),
    Case(
        "ttl-overflows-the-engine",
        "MANIFEST_INVALID_VALUE",
        "runtime.list_files_cache_ttl",
        '[runtime]\nlist_files_cache_ttl = "307445734561825861m"\n',
    ),
    Case(
        "ttl-of-five-thousand-digits",
        "MANIFEST_INVALID_VALUE",
        "runtime.list_files_cache_ttl",
        f'[runtime]\nlist_files_cache_ttl = "{"9" * 5000}s"\n',
    ),
    Case(
        "zero-ttl",
        "MANIFEST_INVALID_VALUE",
        "runtime.list_files_cache_ttl",
        '[runtime]\nlist_files_cache_ttl = "0m0s"\n',
    ),
    # -- corpus II: JSON strings holding a lone UTF-16 surrogate ---------------------------
    Case(
        "json-lone-surrogate-in-sql",
        "MANIFEST_INVALID_VALUE",
        "views.v.sql",
        '{"views": {"v": {"sql": "SELECT \\ud800 1"}}}',
        name="manifest.json",
    ),
    Case(
        "json-lone-surrogate-in-a-name",
        "MANIFEST_INVALID_VALUE",
        "views.\\udc00",
        '{"views": {"\\udc00": {"sql": "SELECT 1"}}}',
        name="manifest.json",
    ),
    Case(
        "json-lone-surrogate-in-location",
        "MANIFEST_INVALID_VALUE",
        "datasets.t.location",
        '{"datasets": {"t": {"format": "delta", "location": "t\\udfff"}}}',
        name="manifest.json",
    ),
    Case(
        "json-lone-surrogate-in-project-name",
        "MANIFEST_INVALID_VALUE",
        "project.name",
        '{"project": {"name": "\\ud83d"}, "views": {"v": {"sql": "SELECT 1"}}}',
        name="manifest.json",
    ),
    # -- sql_file --------------------------------------------------------------------------
    Case(
        "sql-file-missing",
        "MANIFEST_SQL_FILE_UNREADABLE",
        "views.v.sql_file",
        '[views.v]\nsql_file = "views/v.sql"\n',
    ),
    Case(
        "sql-file-binary",
        "MANIFEST_SQL_FILE_UNREADABLE",
        "views.v.sql_file",
        '[views.v]\nsql_file = "v.sql"\n',
        files={"v.sql": b"SELECT \xff\xfe"},
    ),
    Case(
        "sql-file-is-a-directory",
        "MANIFEST_SQL_FILE_UNREADABLE",
        "views.v.sql_file",
        '[views.v]\nsql_file = "views"\n',
        files={"views/v.sql": "SELECT 1"},
    ),
    Case(
        "sql-file-dotdot",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "views.v.sql_file",
        '[views.v]\nsql_file = "../outside/secret.sql"\n',
    ),
    Case(
        "sql-file-absolute",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "views.v.sql_file",
        f'[views.v]\nsql_file = "{OUTSIDE}/secret.sql"\n',
    ),
    Case(
        "sql-file-symlink",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "views.v.sql_file",
        '[views.v]\nsql_file = "views/v.sql"\n',
        links={"views/v.sql": f"{OUTSIDE}/secret.sql"},
    ),
    Case(
        "sql-file-over-a-mebibyte",
        "MANIFEST_LIMIT_EXCEEDED",
        "views.v.sql_file",
        '[views.v]\nsql_file = "v.sql"\n',
        files={"v.sql": "SELECT 1" + " " * (1024 * 1024)},
    ),
    # -- locations -------------------------------------------------------------------------
    Case(
        "dataset-dotdot",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "datasets.t.location",
        '[datasets.t]\nformat = "delta"\nlocation = "../outside/t"\n',
    ),
    Case(
        "dataset-absolute",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "datasets.t.location",
        f'[datasets.t]\nformat = "delta"\nlocation = "{OUTSIDE}/t"\n',
    ),
    Case(
        "dataset-symlink",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "datasets.t.location",
        T,
        links={"t": f"{OUTSIDE}/t"},
    ),
    Case(
        "output-dotdot",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "outputs.o.location",
        view("SELECT 1 AS a") + '[outputs.o]\nview = "v"\nlocation = "../outside/o"\n',
    ),
    Case(
        "output-absolute",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "outputs.o.location",
        view("SELECT 1 AS a") + f'[outputs.o]\nview = "v"\nlocation = "{OUTSIDE}/o"\n',
    ),
    Case(
        "output-symlink",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "outputs.o.location",
        view("SELECT 1 AS a") + '[outputs.o]\nview = "v"\nlocation = "out/o"\n',
        links={"out": OUTSIDE},
    ),
    # -- size limits and missing files -----------------------------------------------------
    Case("ten-thousand-views", "MANIFEST_LIMIT_EXCEEDED", "views", TEN_THOUSAND_VIEWS),
    Case("manifest-missing", "MANIFEST_NOT_FOUND", None, None, path="manifest.toml"),
    Case(
        "directory-without-manifest",
        "MANIFEST_NOT_FOUND",
        None,
        None,
        path="project",
        files={"project/readme.txt": "no manifest here"},
    ),
    # -- the engine: datasets, Delta logs, UDF providers, bootstrap ------------------------
    Case(
        "not-a-delta-table",
        "DATASET_FORMAT_MISMATCH",
        "datasets.t.format",
        T + view("SELECT a FROM t"),
        stage="engine",
        files={"t/part-0.csv": "a\n1\n"},
    ),
    Case(
        "location-is-a-file",
        "DATASET_FORMAT_MISMATCH",
        "datasets.t.format",
        T + view("SELECT a FROM t"),
        stage="engine",
        files={"t": "not a table"},
    ),
    # -- format truth: the _delta_log decides (issue 19.1) ----------------------------------
    Case(
        "delta-table-declared-parquet",
        "DATASET_FORMAT_MISMATCH",
        "datasets.t.format",
        '[datasets.t]\nformat = "parquet"\nlocation = "t"\n' + view("SELECT a FROM t"),
        stage="engine",
        tables=("t",),
    ),
    Case(
        "parquet-inside-a-delta-table",
        "DATASET_FORMAT_MISMATCH",
        "datasets.p.format",
        '[datasets.p]\nformat = "parquet"\nlocation = "t/sub"\n' + view("SELECT * FROM p"),
        stage="engine",
        tables=("t",),
        files={"t/sub/part-0.parquet": b"PAR1"},
    ),
    Case(
        "delta-log-one-level-down",
        "DATASET_FORMAT_MISMATCH",
        "datasets.t.format",
        '[datasets.t]\nformat = "delta"\nlocation = "d"\n' + view("SELECT a FROM t"),
        stage="engine",
        tables=("d/t",),
    ),
    Case(
        "parquet-directory-declared-delta",
        "DATASET_FORMAT_MISMATCH",
        "datasets.p.format",
        '[datasets.p]\nformat = "delta"\nlocation = "p"\n' + view("SELECT * FROM p"),
        stage="engine",
        setup=parquet_without_statistics,
    ),
    Case(
        "parquet-without-parquet-files",
        "DATASET_FORMAT_MISMATCH",
        "datasets.p.format",
        '[datasets.p]\nformat = "parquet"\nlocation = "p"\n' + view("SELECT * FROM p"),
        stage="engine",
        files={"p/part-0.csv": "a\n1\n"},
    ),
    Case(
        "empty-delta-log",
        "DATASET_NOT_DELTA",
        "datasets.t.location",
        T + view("SELECT a FROM t"),
        stage="engine",
        files={"t/_delta_log/README": "no commits"},
    ),
    # -- data files outside the root, loops, engine panics (issue 11.5) ---------------------
    Case(
        "delta-add-action-outside",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "datasets.t.location",
        T + view("SELECT a FROM t"),
        stage="engine",
        tables=("t",),
        setup=add_path_outside,
    ),
    Case(
        "parquet-symlink-outside",
        "MANIFEST_LOCATION_ESCAPES_ROOT",
        "datasets.p.location",
        '[datasets.p]\nformat = "parquet"\nlocation = "p"\n' + view("SELECT * FROM p"),
        stage="engine",
        setup=parquet_linking_outside,
    ),
    Case(
        "parquet-corrupt-footer",
        "DATASET_UNREADABLE",
        "datasets.p.location",
        '[datasets.p]\nformat = "parquet"\nlocation = "p"\n' + view("SELECT * FROM p"),
        stage="engine",
        setup=corrupt_parquet_footer,
    ),
    Case(
        "sql-file-symlink-loop",
        "MANIFEST_SQL_FILE_UNREADABLE",
        "views.v.sql_file",
        '[views.v]\nsql_file = "views/v.sql"\n',
        setup=symlink_loop("views/v.sql"),
    ),
    Case(
        "dataset-symlink-loop",
        "DATASET_LOCATION_UNRESOLVED",
        "datasets.t.location",
        T + view("SELECT a FROM t"),
        setup=symlink_loop("t"),
    ),
    Case(
        "output-symlink-loop",
        "OUTPUT_WRITE_FAILED",
        "outputs.o.location",
        view("SELECT 1 AS a") + '[outputs.o]\nview = "v"\nlocation = "out"\n',
        setup=symlink_loop("out"),
    ),
    Case(
        "missing-delta-table",
        "DATASET_NOT_FOUND",
        "datasets.t.location",
        T + view("SELECT a FROM t"),
        stage="engine",
    ),
    Case(
        "corrupt-delta-log",
        "DELTA_LOG_CORRUPT",
        "datasets.t.location",
        T + view("SELECT a FROM t"),
        stage="engine",
        tables=("t",),
        setup=corrupt_log,
    ),
    Case(
        "delta-protocol-too-new",
        "DELTA_PROTOCOL_UNSUPPORTED",
        "datasets.t.location",
        T + view("SELECT a FROM t"),
        stage="engine",
        tables=("t",),
        setup=newer_protocol,
    ),
    Case(
        "deleted-data-file",
        "DATASET_UNREADABLE",
        "datasets.t.location",
        T + view("SELECT a FROM t"),
        stage="engine",
        tables=("t",),
        setup=delete_data_files,
    ),
    Case(
        "parquet-that-is-not",
        "DATASET_UNREADABLE",
        "datasets.p.location",
        '[datasets.p]\nformat = "parquet"\nlocation = "p.parquet"\n' + view("SELECT * FROM p"),
        stage="engine",
        files={"p.parquet": b"PAR1 not really parquet"},
    ),
    Case(
        "udf-provider-does-not-import",
        "UDF_PROVIDER_IMPORT_ERROR",
        "udfs.f.provider",
        T + '[udfs.f]\nprovider = "broken_udfs:f"\n',
        stage="engine",
        tables=("t",),
        files={"broken_udfs.py": "import planguard_no_such_module_anywhere\n"},
    ),
    Case(
        "udf-provider-exits",
        "UDF_PROVIDER_IMPORT_ERROR",
        "udfs.f.provider",
        T + '[udfs.f]\nprovider = "exiting_udfs:f"\n',
        stage="engine",
        tables=("t",),
        files={"exiting_udfs.py": "import sys\nsys.exit(0)\n"},
    ),
    Case(
        "udf-provider-raises-a-base-exception",
        "UDF_PROVIDER_IMPORT_ERROR",
        "udfs.f.provider",
        T + '[udfs.f]\nprovider = "raising_udfs:f"\n',
        stage="engine",
        tables=("t",),
        files={
            "raising_udfs.py": (
                "class Boom(BaseException):\n    pass\n\n\nraise Boom('not an Exception')\n"
            )
        },
    ),
    # a manifest cannot grant itself trust (trust comes from --trust-module and the like;
    # tests/hostile/test_trust.py): refused at load, before os.abort or shutil.rmtree runs
    Case(
        "manifest-trusts-os-abort",
        "MANIFEST_UNKNOWN_KEY",
        "runtime.trusted_modules",
        T + '[udfs.abort]\nprovider = "os:abort"\n[runtime]\ntrusted_modules = ["os"]\n',
        tables=("t",),
    ),
    Case(
        "manifest-trusts-shutil-rmtree",
        "MANIFEST_UNKNOWN_KEY",
        "runtime.trusted_modules",
        '[project]\nbootstrap = "shutil:rmtree"\n'
        + '[datasets.t]\nformat = "delta"\nlocation = "missing"\n'
        + '[runtime]\ntrusted_modules = ["shutil"]\n',
    ),
    Case(
        "udf-provider-untrusted",
        "UDF_PROVIDER_UNTRUSTED",
        "udfs.getcwd.provider",
        T + '[udfs.getcwd]\nprovider = "os:getcwd"\n',
        stage="engine",
        tables=("t",),
    ),
    Case(
        "udf-provider-shadows-stdlib",
        "UDF_PROVIDER_UNTRUSTED",
        "udfs.loads.provider",
        T + '[udfs.loads]\nprovider = "json:loads"\n',
        stage="engine",
        tables=("t",),
        files={"json.py": "raise SystemExit('the standard json module was shadowed')\n"},
    ),
    Case(
        "udf-provider-not-a-udf",
        "UDF_PROVIDER_INVALID",
        "udfs.f.provider",
        T + '[udfs.f]\nprovider = "not_udfs:f"\n',
        stage="engine",
        tables=("t",),
        files={"not_udfs.py": "f = 42\n"},
    ),
    Case(
        "bootstrap-untrusted",
        "UDF_PROVIDER_UNTRUSTED",
        "project.bootstrap",
        '[project]\nbootstrap = "os:system"\n' + T,
        stage="engine",
    ),
    Case(
        "bootstrap-fails",
        "BOOTSTRAP_FAILED",
        "project.bootstrap",
        '[project]\nbootstrap = "boot:make"\n' + T,
        stage="engine",
        files={"boot.py": "def make(root):\n    raise OSError('disk full')\n"},
    ),
    # -- policy findings (exit 1) ----------------------------------------------------------
    Case(
        "unknown-function",
        "UDF_MISSING",
        None,
        T + CLEAN + view("SELECT planguard_no_such_fn(a) AS x FROM t"),
        stage="policy",
        tables=("t",),
        subject="view v",
    ),
    Case(
        "udfs-disabled",
        "UDFS_DISABLED",
        None,
        T
        + CLEAN
        + '[views.v]\nsql = "SELECT a FROM t"\nudfs = ["f"]\n[udfs.f]\nprovider = "nowhere:f"\n'
        + "[runtime]\nenable_udfs = false\n",
        stage="policy",
        tables=("t",),
        subject="view v",
    ),
    Case(
        "udf-called-but-not-declared",
        "UDF_UNDECLARED",
        None,
        T
        + CLEAN
        + view("SELECT plus_one(a) AS x FROM t")
        + '[udfs.plus_one]\nprovider = "plus_udfs:plus_one"\n',
        stage="policy",
        tables=("t",),
        subject="view v",
        files={
            "plus_udfs.py": (
                "import pyarrow as pa\nimport pyarrow.compute as pc\nfrom datafusion import udf\n"
                "plus_one = udf(lambda v: pc.add(v, 1), [pa.int64()], pa.int64(), "
                "'immutable', name='plus_one')\n"
            )
        },
    ),
    Case(
        "unknown-column",
        "VIEW_PLANNING_FAILED",
        None,
        T + CLEAN + view("SELECT no_such_column FROM t"),
        stage="policy",
        tables=("t",),
        subject="view v",
    ),
    Case(
        "unknown-executor",
        "EXECUTOR_UNAVAILABLE",
        None,
        T + CLEAN + '[views.v]\nsql = "SELECT a FROM t"\nexecutor = "spark"\n',
        stage="policy",
        tables=("t",),
        subject="view v",
    ),
    Case(
        "delta-protocol-beyond-support",
        "DELTA_PROTOCOL_INCOMPATIBLE",
        None,
        '[datasets.dv]\nformat = "delta"\nlocation = "dv"\n' + CLEAN + view("SELECT a FROM dv"),
        stage="policy",
        setup=deletion_vectors,
        subject="dataset dv: ",
    ),
    Case(
        "delta-support-unconfigured",
        "DELTA_PROTOCOL_SUPPORT_UNCONFIGURED",
        None,
        T + view("SELECT a FROM t"),
        stage="policy",
        tables=("t",),
        subject="dataset t: ",
    ),
    Case(
        "statistics-required-but-absent",
        "STATS_UNAVAILABLE",
        None,
        '[datasets.p]\nformat = "parquet"\nlocation = "p"\n'
        + view("SELECT * FROM p")
        + '[runtime]\ncollect_statistics = false\nstats_fallback = "error"\n',
        stage="policy",
        setup=parquet_without_statistics,
        subject="view v",
    ),
)


BY_ID: Mapping[str, Case] = {case.id: case for case in CASES}
ERRORS = tuple(case for case in CASES if case.stage != "policy")
EARLY = tuple(case for case in CASES if case.stage in ("load", "compile"))
LATE = tuple(case for case in CASES if case.stage in ("engine", "policy"))
