"""Manifest format v1: the typed, frozen structs a manifest file decodes into.

These structs *are* the user-facing contract: ``planguard schema`` prints their JSON
Schema, unknown keys are rejected (they are usually typos), and each struct checks its
own values at construction (``__post_init__``), so a :class:`SemanticModel` that exists
is a valid one.  Cross-entity rules (names, references, cycles) belong to semantic
compile, not here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

MANIFEST_VERSION = 1

SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?[KMG]$"
TTL_PATTERN = r"^(?=.)([0-9]+m)?([0-9]+s)?$"
PROVIDER_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
# ``SIZE_PATTERN`` and the others are JSON Schema (ECMA) patterns, where ``$`` matches
# only at the very end.  Python's ``$`` also matches before a final newline (and msgspec
# checks ``Meta(pattern=...)`` with ``re.search``), so values are checked again here with
# ``re.fullmatch`` on the pattern without its anchors: ``"1M\n"`` must not reach the engine.
_SIZE_RE = re.compile(SIZE_PATTERN[1:-1])
_TTL_RE = re.compile(TTL_PATTERN[1:-1])
_PROVIDER_RE = re.compile(PROVIDER_PATTERN[1:-1])
_SIZE_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}
MAX_CACHE_BYTES = 1024**4
"""Largest cache size accepted (``1024G``, one TiB); the engine silently saturates larger
values, and no pipeline needs a bigger cache."""
MAX_CACHE_TTL_SECONDS = 365 * 24 * 3600
"""Longest cache TTL accepted (one year, ``525600m``); the engine overflows on values
near 2**64 seconds."""


class ManifestValueError(ValueError):
    """Raised by ``__post_init__`` checks; the loader maps it to its code and field path.

    ``field`` names the offending field of the struct, so that the error's path points at
    it (``views.v.sql``) rather than at the struct (``views.v``).
    """

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{code}@{field}: {message}" if field else f"{code}: {message}")


def _ttl_seconds(value: str, *, field: str | None = None) -> int:
    """Seconds of a ``1m30s``-style duration; a coded error outside 1 s .. one year."""
    match = _TTL_RE.fullmatch(value)
    if match is None:
        raise ManifestValueError(
            "MANIFEST_INVALID_VALUE",
            f"unparsable duration {value!r} (use e.g. '90s' or '1m30s')",
            field=field,
        )
    parts = ((match.group(1) or "0m")[:-1], (match.group(2) or "0s")[:-1])
    if max(len(part) for part in parts) > 20:  # int() refuses 4,300+ digits; all too long
        total = MAX_CACHE_TTL_SECONDS + 1
    else:
        total = int(parts[0]) * 60 + int(parts[1])
    if not 1 <= total <= MAX_CACHE_TTL_SECONDS:
        raise ManifestValueError(
            "MANIFEST_INVALID_VALUE",
            f"duration {_shown(value)} is {total} seconds; allowed: 1s to "
            f"{MAX_CACHE_TTL_SECONDS}s (one year)",
            field=field,
        )
    return total


def size_bytes(value: str, *, field: str | None = None) -> int:
    """Bytes of a ``1.5G``-style size; a coded error outside 0 .. ``MAX_CACHE_BYTES``."""
    if _SIZE_RE.fullmatch(value) is None:
        raise ManifestValueError(
            "MANIFEST_INVALID_VALUE",
            f"unparsable size {_shown(value)} (use e.g. '512K', '1M' or '1.5G')",
            field=field,
        )
    number, unit = value[:-1], value[-1]
    # float() of a thousand digits is slow and says nothing more: all are too large
    total = MAX_CACHE_BYTES + 1 if len(number) > 20 else int(float(number) * _SIZE_UNITS[unit])
    if total > MAX_CACHE_BYTES:
        raise ManifestValueError(
            "MANIFEST_INVALID_VALUE",
            f"size {_shown(value)} is too large; allowed: 0 to 1024G (one TiB)",
            field=field,
        )
    return total


def _check_provider(value: str | None, field: str) -> None:
    if value is not None and _PROVIDER_RE.fullmatch(value) is None:
        raise ManifestValueError(
            "MANIFEST_INVALID_VALUE",
            f"{_shown(value)} is not 'package.module:attribute'",
            field=field,
        )


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base for manifest structs: frozen, keyword-only, unknown keys rejected."""


Size = Annotated[
    str,
    msgspec.Meta(
        pattern=SIZE_PATTERN,
        description="A byte size with a K, M or G suffix, e.g. '1M', '1.5G'; at most 1024G.",
    ),
]
# Upper bounds keep values within what DataFusion accepts (its settings are 64-bit; larger
# integers made session creation fail with a raw engine error) and what a run can use.
Partitions = Annotated[int, msgspec.Meta(ge=1, le=4096)]
BatchSize = Annotated[int, msgspec.Meta(ge=1, le=1_048_576)]
Concurrency = Annotated[int, msgspec.Meta(ge=1, le=1024)]
BudgetMs = Annotated[int, msgspec.Meta(ge=1, le=86_400_000, description="At most one day.")]
Identifier = Annotated[str, msgspec.Meta(min_length=1)]
Location = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        description="A path relative to the manifest's directory, or a URL under a "
        "[storage.*] store's url (s3://warehouse/orders); a URL under no declared store is "
        "MANIFEST_LOCATION_NOT_ALLOWED.",
    ),
]
DataSourceMode = Literal["semantic-authority", "runtime-bootstrap"]


class ProjectSpec(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[project]``: optional metadata, the optional data bootstrap hook and the
    data-source mode: ``semantic-authority`` (default; every location comes from the
    manifest, an unresolved one fails closed) or ``runtime-bootstrap`` (datasets and
    outputs without ``location`` fall back under ``runtime.fallback_root``)."""

    name: str | None = None
    bootstrap: str | None = msgspec.field(
        default=None,
    )
    """``module:function`` called with the manifest directory to create missing input
    tables (the bundled examples generate their data this way).  Subject to the same
    trusted-module rule as UDF providers."""
    data_source_mode: DataSourceMode = "semantic-authority"
    """Where dataset and output locations come from.  ``semantic-authority`` (default):
    from the manifest alone; every dataset and output must declare ``location``, and one
    that cannot be resolved fails closed (``DATASET_LOCATION_UNRESOLVED``).
    ``runtime-bootstrap``: a dataset or output without ``location`` falls back to
    ``runtime.fallback_root`` (``<fallback_root>/<dataset>``,
    ``<fallback_root>/outputs/<output>``), e.g. while bootstrapping data before the
    manifest declares it; needs ``runtime.fallback_root``."""

    def __post_init__(self) -> None:
        _check_provider(self.bootstrap, "bootstrap")


STORE_URL_PATTERN = r"^s3a?://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*'()\-]+)*/?$"
"""A store prefix: ``s3://bucket`` or ``s3://bucket/some/prefix`` (``s3a`` too)."""
_STORE_URL_RE = re.compile(STORE_URL_PATTERN[1:-1])
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ENV_NAME_RE = re.compile(ENV_NAME_PATTERN[1:-1])
CREDENTIAL_OPTIONS = frozenset(
    {
        # AWS (object_store / deltalake spellings, upper or lower case)
        "aws_access_key_id", "access_key_id", "aws_secret_access_key", "secret_access_key",
        "aws_session_token", "session_token", "aws_security_token", "token",
        # Azure
        "azure_storage_account_key", "azure_storage_access_key", "azure_storage_master_key",
        "account_key", "access_key", "master_key", "azure_client_secret",
        "azure_storage_client_secret", "client_secret", "azure_storage_sas_key",
        "azure_storage_sas_token", "sas_key", "sas_token", "azure_storage_token",
        "bearer_token", "azure_federated_token",
        # Google Cloud Storage
        "google_service_account_key", "service_account_key", "google_application_credentials_json",
    }
)  # fmt: skip
"""Storage options that hold a credential: in ``[storage.*] options`` they are refused
(``MANIFEST_SECRET_LITERAL``); name them in ``secrets`` (option -> environment variable)."""


def is_credential_option(key: str) -> bool:
    return key.strip().lower() in CREDENTIAL_OPTIONS


class StorageSpec(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[storage.<name>]``: one object store, the URL prefix it serves and how to reach it.
    Dataset and output ``location``s may be URLs under ``url``; the normalizer names the
    store (``$<name>/...``) in snapshots instead of its URL."""

    url: Annotated[
        str,
        msgspec.Meta(
            pattern=STORE_URL_PATTERN,
            description="The prefix this store serves: s3://bucket or s3://bucket/prefix.",
        ),
    ]
    options: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="deltalake / object_store storage options (AWS_ENDPOINT_URL, "
            "AWS_REGION, AWS_ALLOW_HTTP, conditional_put, timeout ...). A credential here "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and the Azure and "
            "GCS equivalents) is MANIFEST_SECRET_LITERAL: name it in `secrets`. Unless given, "
            "connect_timeout = 5s, timeout = 30s, max_retries = 2, retry_timeout = 20s."
        ),
    ] = {}
    """deltalake / object_store storage options (``AWS_ENDPOINT_URL``, ``AWS_REGION``,
    ``AWS_ALLOW_HTTP``, ``conditional_put``, ``timeout`` ...).  A credential written here
    (``AWS_SECRET_ACCESS_KEY``, ``AWS_ACCESS_KEY_ID``, ``AWS_SESSION_TOKEN`` and the Azure and
    GCS equivalents) is ``MANIFEST_SECRET_LITERAL``: name it in ``secrets``."""
    secrets: Annotated[
        dict[str, Annotated[str, msgspec.Meta(pattern=ENV_NAME_PATTERN)]],
        msgspec.Meta(
            description="Option -> the name of the environment variable holding its value, "
            "read when the store is used and never written anywhere (unset: "
            "STORE_SECRET_MISSING)."
        ),
    ] = {}
    """Option -> the environment variable holding its value, read when the store is used
    (never written anywhere; an unset variable is ``STORE_SECRET_MISSING``)."""

    def __post_init__(self) -> None:
        if _STORE_URL_RE.fullmatch(self.url) is None or "//" in self.url.split("://", 1)[1]:
            raise ManifestValueError(
                "MANIFEST_INVALID_VALUE",
                f"{_shown(self.url)} is not an object-store prefix (use s3://bucket or "
                "s3://bucket/prefix)",
                field="url",
            )
        if any(part in (".", "..") for part in self.url.split("://", 1)[1].split("/")):
            raise ManifestValueError(
                "MANIFEST_INVALID_VALUE", "the url may not hold '.' or '..' segments", field="url"
            )
        for key in sorted(self.options):
            if is_credential_option(key):
                # the value is never echoed: it is a credential
                raise ManifestValueError(
                    "MANIFEST_SECRET_LITERAL",
                    f"option {key!r} is a credential written literally in the manifest; move "
                    f'it out: secrets = {{ {key} = "ENV_VARIABLE" }} reads it from the '
                    "environment",
                    field="options",
                )
            if "@" in self.options[key] and "://" in self.options[key]:
                raise ManifestValueError(
                    "MANIFEST_SECRET_LITERAL",
                    f"option {key!r} is a URL with user information (a credential written "
                    "literally); name the credentials in `secrets` instead",
                    field="options",
                )
        for key, variable in sorted(self.secrets.items()):
            if _ENV_NAME_RE.fullmatch(variable) is None:
                raise ManifestValueError(
                    "MANIFEST_INVALID_VALUE",
                    f"secrets.{key}: {_shown(variable)} is not an environment variable name",
                    field="secrets",
                )
            if key in self.options:
                raise ManifestValueError(
                    "MANIFEST_CONFLICTING_FIELDS",
                    f"option {key!r} is given both in `options` and in `secrets`",
                    field="secrets",
                )

    @property
    def bucket(self) -> str:
        return self.url.split("://", 1)[1].split("/", 1)[0]


class DatasetSpec(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[datasets.<name>]``: an input table.  ``location`` is required unless
    ``project.data_source_mode = "runtime-bootstrap"``, where a dataset without one is read
    from ``<runtime.fallback_root>/<name>``."""

    format: Literal["delta", "parquet"]
    location: Location | None = None
    """Manifest-relative path of the table, or a URL under a ``[storage.*]`` store's
    ``url`` (``s3://warehouse/orders``).  Required unless
    ``project.data_source_mode = "runtime-bootstrap"`` (then it defaults to
    ``<runtime.fallback_root>/<name>``)."""


class ViewSpec(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[views.<name>]``: one SQL query; ``sql`` or ``sql_file``, never both."""

    sql: str | None = None
    sql_file: str | None = None
    udfs: tuple[str, ...] = ()
    executor: str = "datafusion"

    def __post_init__(self) -> None:
        if self.sql is not None and self.sql_file is not None:
            raise ManifestValueError(
                "MANIFEST_CONFLICTING_FIELDS", "give either `sql` or `sql_file`, not both"
            )
        if self.sql is None and self.sql_file is None:
            raise ManifestValueError("MANIFEST_MISSING_FIELD", "a view needs `sql` or `sql_file`")
        if self.sql is not None and not self.sql.strip():
            raise ManifestValueError("MANIFEST_INVALID_VALUE", "`sql` is empty", field="sql")
        if not self.executor:
            raise ManifestValueError(
                "MANIFEST_INVALID_VALUE", "`executor` is empty", field="executor"
            )


class OutputSpec(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[outputs.<name>]``: a view written to a Delta table by ``planguard run``.
    ``location`` is required unless ``project.data_source_mode = "runtime-bootstrap"``,
    where an output without one is written to ``<runtime.fallback_root>/outputs/<name>``."""

    view: Identifier
    location: Location | None = None
    """Manifest-relative path of the Delta table written, or a URL under a
    ``[storage.*]`` store's ``url``.  Required unless
    ``project.data_source_mode = "runtime-bootstrap"`` (then it defaults to
    ``<runtime.fallback_root>/outputs/<name>``)."""
    format: Literal["delta"] = "delta"
    mode: Literal["overwrite", "append"] = "overwrite"
    schema_mode: Literal["strict", "overwrite", "merge"] = "strict"
    """What a view schema differing from the existing table does (deltalake's
    ``write_deltalake(schema_mode=...)``).  ``strict``: the schemas must match (same column
    names; types equal or losslessly widened), else ``OUTPUT_SCHEMA_MISMATCH`` and nothing
    is written.  ``merge``: new columns are added to the table, columns the view lacks are
    written as null; existing column types must still match.  ``overwrite`` (only with
    ``mode = "overwrite"``): the table's schema is replaced by the view's."""

    def __post_init__(self) -> None:
        if self.schema_mode == "overwrite" and self.mode != "overwrite":
            raise ManifestValueError(
                "MANIFEST_CONFLICTING_FIELDS",
                f"schema_mode = 'overwrite' replaces the table's schema and needs "
                f"mode = 'overwrite', not {self.mode!r} (use schema_mode = 'merge' to add "
                "columns while appending)",
                field="schema_mode",
            )


class UdfSpec(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[udfs.<name>]``: where a Python scalar UDF comes from."""

    provider: Annotated[str, msgspec.Meta(pattern=PROVIDER_PATTERN)]
    """``package.module:attribute``: a ``datafusion.ScalarUDF`` or a zero-argument factory
    returning one."""

    def __post_init__(self) -> None:
        _check_provider(self.provider, "provider")


class ExecutorSpec(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[executors.<name>]``: an engine other than DataFusion that views may name in
    ``executor``.  ``datafusion`` is built in; a view naming an executor that is not
    declared (nor passed to ``run_pipeline(executors=...)``) is never run by another
    engine: its outputs are skipped with ``EXECUTOR_UNAVAILABLE``."""

    provider: Annotated[str, msgspec.Meta(pattern=PROVIDER_PATTERN)]
    """``package.module:attribute``: a callable taking a mapping of the view's inputs
    (every dataset and view its SQL reads, by name, as ``pyarrow.Table``) and returning
    the view's result as a ``pyarrow.Table`` with the columns the view's SQL declares.
    Imported under the same trusted-module rule as UDF providers."""

    def __post_init__(self) -> None:
        _check_provider(self.provider, "provider")


class RuntimeSpec(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[runtime]``: pinned session settings and the perf policy; all optional.
    ``fallback_root`` (manifest-relative) is where ``runtime-bootstrap`` resolves
    datasets and outputs that declare no location."""

    target_partitions: Partitions = 4
    planning_concurrency: Partitions | None = None
    batch_size: BatchSize = 8192
    collect_statistics: bool = True
    meta_fetch_concurrency: Concurrency = 32
    list_files_cache_limit: Size = "1M"
    list_files_cache_ttl: str | None = None
    metadata_cache_limit: Size = "50M"
    planning_budget_ms: BudgetMs = 10_000
    enable_udfs: bool = True
    cache_min_consumers: Annotated[int, msgspec.Meta(ge=0)] = 2
    """Views read by at least this many other views are ``DataFrame.cache()``-d when the
    pipeline runs (0 disables selective caching)."""
    statistics: Literal["scan", "plan"] = "scan"
    """Where plan statistics come from.  ``scan``: one EXPLAIN (with
    ``datafusion.explain.show_statistics``) per scanned dataset, summed over a view's
    scans; cheap.  ``plan``: also the estimated output rows of each view's physical plan,
    read off the ``EXPLAIN VERBOSE`` that gives the view's rule trace (no call of its
    own)."""
    stats_fallback: Literal["warn", "error", "ignore"] = "warn"
    """What a view whose statistics are absent yields (``STATS_UNAVAILABLE``)."""
    retain_plans: tuple[Literal["P0", "P1", "P2"], ...] = ("P0", "P1", "P2")
    fallback_root: Identifier | None = None
    """Manifest-relative directory that datasets and outputs without ``location`` resolve
    under, in ``project.data_source_mode = "runtime-bootstrap"`` only (required there;
    ignored, since nothing falls back, in ``semantic-authority``)."""
    # No ``trusted_modules`` here: a manifest cannot grant itself trust.  The allowlist of
    # importable packages comes from whoever runs the tool (see engine.trusted_import).

    def __post_init__(self) -> None:
        size_bytes(self.list_files_cache_limit, field="list_files_cache_limit")
        size_bytes(self.metadata_cache_limit, field="metadata_cache_limit")
        if self.list_files_cache_ttl is not None:
            _ttl_seconds(self.list_files_cache_ttl, field="list_files_cache_ttl")


class DeltaSupportSpec(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[policy.delta_support]``: the Delta protocol this pipeline may read and write."""

    max_reader_version: Annotated[int, msgspec.Meta(ge=1)]
    max_writer_version: Annotated[int, msgspec.Meta(ge=1)]
    reader_features: tuple[str, ...] = ()
    writer_features: tuple[str, ...] = ()

    def canonical(self) -> dict[str, Any]:
        """For hashing: the feature lists are sets, so their declared order (and any
        repetition) must not move a fingerprint."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        out["reader_features"] = sorted(set(self.reader_features))
        out["writer_features"] = sorted(set(self.writer_features))
        return out


class PolicySpec(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[policy]``: validation mode and thresholds."""

    mode: Literal["error", "warn", "ignore"] = "error"
    small_input_rows: Annotated[int, msgspec.Meta(ge=0)] = 1000
    allow_external_locations: bool = False
    delta_support: DeltaSupportSpec | None = None


class ManifestDocument(_Spec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole manifest file, as decoded.  ``[storage.<name>]`` declares the object
    stores that dataset and output locations may name by URL."""

    project: ProjectSpec = ProjectSpec()
    datasets: dict[str, DatasetSpec] = {}
    views: dict[str, ViewSpec] = {}
    outputs: dict[str, OutputSpec] = {}
    udfs: dict[str, UdfSpec] = {}
    executors: dict[str, ExecutorSpec] = {}
    storage: dict[str, StorageSpec] = {}
    runtime: RuntimeSpec = RuntimeSpec()
    policy: PolicySpec = PolicySpec()


class SemanticModel(msgspec.Struct, frozen=True, kw_only=True):
    """A loaded manifest: the document, where it came from, and view SQL resolved.

    ``view_sql`` maps each view to its query text (``sql`` inline or the content of
    ``sql_file``); ``root`` is the absolute directory relative locations resolve against.
    """

    path: str
    root: str
    document: ManifestDocument
    view_sql: dict[str, str]
    manifest_version: int = MANIFEST_VERSION
