"""Tables on object stores: ``[storage.*]`` stores resolved, read, written, failing coded.

A dataset or output whose location is a URL names its store (``DatasetBinding.store``);
everything the engine does with it goes through here:

* :func:`store_options` builds the storage options of a store: its ``options``, each of
  its ``secrets`` read from the environment variable it names (unset:
  ``STORE_SECRET_MISSING``, naming the variable, never a value) and registered with
  :mod:`reference_impl.redaction`, and bounded client timeouts unless the store sets its
  own (:data:`BOUNDED_CLIENT_OPTIONS`): a dead or hanging endpoint ends in a coded error
  within seconds, not after object_store's default 10 retries over three minutes;
* Delta tables open as ``DeltaTable(url, storage_options=...)`` and are registered in the
  session like local ones; Parquet datasets go through DataFusion's object-store
  registration (``AmazonS3``), after a bounded probe through deltalake, which also refuses
  a Delta table declared as Parquet (``DATASET_FORMAT_MISMATCH``);
* failures are classified (:func:`store_failure`): ``STORE_UNREACHABLE`` (connection
  refused, timed out, reset), ``STORE_ACCESS_DENIED`` (403, a wrong key or signature),
  ``STORE_BUCKET_NOT_FOUND`` (``NoSuchBucket``); a table that is not there is
  ``DATASET_NOT_FOUND``.  Messages carry the store's name and the server's one-line
  reason, never an option value (secrets are redacted besides).

Engine layer; engine-free callers only ever see :class:`StoreDeclaration`, which holds the
*names* of the environment variables, not their values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.redaction import redact, register_secret
from reference_impl.semantics.program import StoreDeclaration

BOUNDED_CLIENT_OPTIONS: Mapping[str, str] = {
    "connect_timeout": "5s",
    "timeout": "30s",
    "max_retries": "2",
    "retry_timeout": "20s",
}
"""object_store client options planguard sets unless a store declares them: connect
within 5 s, each request within 30 s, at most 2 retries within 20 s."""

_UNREACHABLE = re.compile(
    r"connection refused|tcp connect error|error sending request|operation timed out|"
    r"timed out|dns error|connection reset|connection closed|broken pipe|incompletemessage|"
    r"failed to lookup address|unexpected eof|hyper::Error|error reading a body",
    re.IGNORECASE,
)
_DENIED = re.compile(
    r"403 Forbidden|401 Unauthorized|InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|"
    r"lacked the necessary privileges|ExpiredToken|InvalidToken",
)
_NO_BUCKET = re.compile(r"NoSuchBucket")
_XML_REASON = re.compile(r"<Code>(?P<code>[^<]*)</Code>\s*<Message>(?P<msg>[^<]*)</Message>")
_ARROW = re.compile(r"\s*(?:\x1b\[[0-9;]*m)?↳(?:\x1b\[[0-9;]*m)?\s*")
_OPTION_ALIASES = {
    "endpoint": ("aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint"),
    "region": ("aws_region", "region", "aws_default_region", "default_region"),
    "allow_http": ("aws_allow_http", "allow_http"),
    "access_key_id": ("aws_access_key_id", "access_key_id"),
    "secret_access_key": ("aws_secret_access_key", "secret_access_key"),
    "session_token": ("aws_session_token", "session_token", "aws_security_token", "token"),
}


def is_url(location: str) -> bool:
    return "://" in location


def store_options(store: StoreDeclaration) -> dict[str, str]:
    """The storage options of ``store``, secrets read from the environment (see module)."""
    options = dict(store.options)
    for option, variable in sorted(store.secrets.items()):
        value = os.environ.get(variable)
        if not value:
            raise ReferenceImplError(
                ErrorCode.STORE_SECRET_MISSING,
                f"store {store.name!r}: environment variable {variable} (for option "
                f"{option!r}) is {'empty' if value == '' else 'not set'}",
                field_path=f"storage.{store.name}.secrets.{option}",
                subjects=(store.name, variable),
            )
        register_secret(value)
        options[option] = value
    present = {key.lower() for key in options}
    for key, value in BOUNDED_CLIENT_OPTIONS.items():
        if key not in present:
            options[key] = value
    return options


def store_failure(exc: BaseException) -> tuple[ErrorCode, str] | None:
    """(code, one-line reason) when ``exc`` is an object-store failure, else None."""
    text = str(exc)
    if _NO_BUCKET.search(text):
        return ErrorCode.STORE_BUCKET_NOT_FOUND, "the bucket does not exist"
    if _DENIED.search(text):
        return ErrorCode.STORE_ACCESS_DENIED, _reason(text)
    if _UNREACHABLE.search(text):
        return ErrorCode.STORE_UNREACHABLE, _reason(text)
    return None


def _reason(text: str) -> str:
    """The server's or the transport's own words: the XML ``<Code>: <Message>``, else the
    innermost line of deltalake's cause chain."""
    xml = _XML_REASON.search(text)
    if xml is not None:
        return f"{xml.group('code')}: {xml.group('msg')}"
    lines = [line for line in (_ARROW.sub("", part).strip() for part in text.splitlines()) if line]
    if not lines:
        return text.strip() or "no reason given"
    last = lines[-1]
    return redact(last.rsplit(": ", 1)[-1] if len(last) > 200 else last)


def store_error(
    exc: BaseException,
    store: StoreDeclaration,
    *,
    field_path: str,
    subject: str,
    doing: str,
) -> ReferenceImplError | None:
    """The coded error of an object-store failure while ``doing`` something, else None."""
    found = store_failure(exc)
    if found is None:
        return None
    code, reason = found
    what = {
        ErrorCode.STORE_BUCKET_NOT_FOUND: f"bucket {store.bucket!r} does not exist",
        ErrorCode.STORE_ACCESS_DENIED: "access denied (check the credentials in its secrets)",
        ErrorCode.STORE_UNREACHABLE: "unreachable",
    }[code]
    return ReferenceImplError(
        code,
        f"store {store.name!r} ({store.url}): {what} while {doing}: {reason}",
        field_path=field_path,
        subjects=(subject, store.name),
    )


def open_store_table(
    name: str,
    location: str,
    store: StoreDeclaration,
    *,
    version: int | None = None,
    ctx: Any = None,
) -> Any:
    """``DeltaTable(location, storage_options=...)`` with every failure coded; with
    ``ctx``, the session also gets the store's client (it reads the data files)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    options = store_options(store)
    field_path = f"datasets.{name}.location"
    try:
        table = DeltaTable(location, version=version, storage_options=options)
        if ctx is not None:
            register_store_client(ctx, store, options)
        return table
    except TableNotFoundError as exc:
        raise ReferenceImplError(
            ErrorCode.DATASET_NOT_FOUND,
            f"dataset {name!r}: no Delta table at {location}"
            + (f" (version {version})" if version is not None else "")
            + f": {_reason(str(exc))}",
            field_path=field_path,
            subjects=(name,),
        ) from None
    except Exception as exc:
        coded = store_error(
            exc, store, field_path=field_path, subject=name, doing=f"opening dataset {name!r}"
        )
        if coded is not None:
            raise coded from None
        raise ReferenceImplError(
            ErrorCode.DELTA_LOG_CORRUPT,
            f"dataset {name!r}: cannot read the Delta log at {location}: {_reason(str(exc))}",
            field_path=field_path,
            subjects=(name,),
        ) from None


def register_store_parquet(ctx: Any, name: str, location: str, store: StoreDeclaration) -> None:
    """Register the Parquet dataset ``name`` at ``location`` (a URL) on ``ctx``."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    options = store_options(store)
    field_path = f"datasets.{name}.location"
    try:  # the bounded probe: deltalake honours the timeouts, DataFusion's client cannot
        DeltaTable(location, storage_options=options)
    except TableNotFoundError:
        pass  # what a Parquet dataset must be: no Delta table
    except Exception as exc:
        coded = store_error(
            exc, store, field_path=field_path, subject=name, doing=f"probing dataset {name!r}"
        )
        if coded is not None:
            raise coded from None
    else:
        raise ReferenceImplError(
            ErrorCode.DATASET_FORMAT_MISMATCH,
            f"dataset {name!r}: format is 'parquet', but {location} is a Delta table (it has a "
            "_delta_log); reading it as Parquet would also read removed files: declare "
            'format = "delta"',
            field_path=f"datasets.{name}.format",
            subjects=(name,),
        )
    register_store_client(ctx, store, options)
    if ctx.table_exist(name):
        ctx.deregister_table(name)
    try:
        ctx.register_parquet(name, location.rstrip("/") + "/")
    except Exception as exc:
        if "No files found" in str(exc):
            raise ReferenceImplError(
                ErrorCode.DATASET_NOT_FOUND,
                f"dataset {name!r}: no Parquet files under {location}",
                field_path=field_path,
                subjects=(name,),
            ) from None
        coded = store_error(
            exc, store, field_path=field_path, subject=name, doing=f"listing dataset {name!r}"
        )
        raise coded or ReferenceImplError(
            ErrorCode.DATASET_UNREADABLE,
            f"dataset {name!r}: cannot read Parquet at {location}: {_reason(str(exc))}",
            field_path=field_path,
            subjects=(name,),
        ) from None


def register_store_client(ctx: Any, store: StoreDeclaration, options: Mapping[str, str]) -> None:
    """Give ``ctx`` a client for ``store``'s bucket: DataFusion reads Parquet datasets, and
    the data files of Delta tables registered from the store, through it."""
    from datafusion.object_store import AmazonS3

    lowered = {key.lower(): value for key, value in options.items()}

    def option(kind: str) -> str | None:
        return next((lowered[k] for k in _OPTION_ALIASES[kind] if k in lowered), None)

    client = AmazonS3(
        bucket_name=store.bucket,
        region=option("region"),
        access_key_id=option("access_key_id"),
        secret_access_key=option("secret_access_key"),
        session_token=option("session_token"),
        endpoint=option("endpoint"),
        allow_http=(option("allow_http") or "").lower() == "true",
    )
    ctx.register_object_store(f"{store.scheme}://", client, store.bucket)


def store_table_columns(location: str, store: StoreDeclaration, *, output: str) -> tuple[bool, Any]:
    """(exists, the DeltaTable or None) of the output table at ``location``; a store
    failure is its coded error (field ``outputs.<output>.location``)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    options = store_options(store)
    try:
        return True, DeltaTable(location, storage_options=options)
    except TableNotFoundError:
        return False, None
    except Exception as exc:
        coded = store_error(
            exc,
            store,
            field_path=f"outputs.{output}.location",
            subject=output,
            doing=f"reading output {output!r}",
        )
        if coded is not None:
            raise coded from None
        raise


def store_error_message(exc: BaseException) -> str:
    """A one-line, redacted reason for an engine failure that may come from a store."""
    return redact(_reason(str(exc)))
