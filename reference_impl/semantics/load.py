"""Stage *load*: ``load_manifest(path) -> SemanticModel``.

Reads a TOML (or JSON) manifest, decodes it into the frozen structs of
:mod:`reference_impl.semantics.model` and resolves view SQL.  Every failure is a
:class:`~reference_impl.errors.ReferenceImplError` naming the file, the dotted field path
(``views.revenue.sql``) and a stable code; nothing is executed and nothing is written.
"""

from __future__ import annotations

import difflib
import errno
import json
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import msgspec.inspect

from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.model import (
    DatasetSpec,
    ExecutorSpec,
    ManifestDocument,
    OutputSpec,
    PolicySpec,
    ProjectSpec,
    RuntimeSpec,
    SemanticModel,
    StorageSpec,
    UdfSpec,
    ViewSpec,
)

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_SQL_BYTES = 1024 * 1024
MAX_VIEWS = 5000
MANIFEST_FILE_NAMES = ("manifest.toml", "manifest.json")

NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""Valid names, matched with ``fullmatch`` (``$`` would let ``"a\\n"`` through)."""
RESERVED_NAMES = frozenset({"information_schema", "datafusion", "public", "pg_catalog"})

_SECTIONS: Mapping[str, type[msgspec.Struct]] = {
    "datasets": DatasetSpec,
    "views": ViewSpec,
    "outputs": OutputSpec,
    "udfs": UdfSpec,
    "executors": ExecutorSpec,
    "storage": StorageSpec,
}
_SINGLE_SECTIONS: Mapping[str, type[msgspec.Struct]] = {
    "project": ProjectSpec,
    "runtime": RuntimeSpec,
    "policy": PolicySpec,
}
_KNOWN_KEYS = (*_SINGLE_SECTIONS, *_SECTIONS)
_VALIDATION_RE = re.compile(r"(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate; only then are strings checked one by one."""
_CODED_RE = re.compile(r"(?P<code>[A-Z_]+)(?:@(?P<field>[a-z_]+))?: (?P<msg>.*)", re.DOTALL)
_URL_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)", re.DOTALL)
_URL_SEGMENT = re.compile(r"[A-Za-z0-9!_.*'()\-]+")

_S = TypeVar("_S", bound=msgspec.Struct)

TRUST_IS_NOT_A_MANIFEST_KEY = (
    "unknown key 'trusted_modules': a manifest cannot grant itself trust; whoever runs the "
    "tool names the packages providers may be imported from: `planguard validate|run|compile "
    "--trust-module MODULE`, the pytest ini key `planguard_trusted_modules` (or "
    "`--planguard-trust-module MODULE`), or PLANGUARD_TRUSTED_MODULES=mod1,mod2"
)
"""The removed ``runtime.trusted_modules`` key is refused with this hint: a manifest must
not grant trust to the code it names, so the key moved to whoever runs the tool."""


def load_manifest(path: str | os.PathLike[str]) -> SemanticModel:
    """Read, decode and check one manifest file (or a directory holding ``manifest.toml``)."""
    manifest_path = _locate(Path(path))
    shown = str(manifest_path)  # the file read, also when ``path`` is its directory
    try:
        raw = _parse(manifest_path)
        document = _decode(raw)
        root = manifest_path.parent.resolve()
        _check_names(document)
        _check_locations(document, root)
        view_sql = _resolve_view_sql(document, root)
    except ReferenceImplError as err:
        raise err.with_file(shown) from None
    return SemanticModel(
        path=str(manifest_path.resolve()), root=str(root), document=document, view_sql=view_sql
    )


def _locate(path: Path) -> Path:
    if path.is_dir():
        for name in MANIFEST_FILE_NAMES:
            candidate = path / name
            if candidate.is_file():
                return candidate
        raise ReferenceImplError(
            ErrorCode.MANIFEST_NOT_FOUND,
            f"directory holds no {' or '.join(MANIFEST_FILE_NAMES)}",
            file=str(path),
        )
    if not path.is_file():
        raise ReferenceImplError(
            ErrorCode.MANIFEST_NOT_FOUND, "no such manifest file", file=str(path)
        )
    return path


def _parse(path: Path) -> Any:
    try:
        data = read_regular_file(path, MAX_MANIFEST_BYTES)
        if len(data) > MAX_MANIFEST_BYTES:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_LIMIT_EXCEEDED,
                f"manifest is larger than the limit of {MAX_MANIFEST_BYTES} bytes",
            )
    except OSError as exc:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_NOT_FOUND, f"cannot read manifest: {exc.strerror}"
        ) from None
    if not data.strip():
        raise ReferenceImplError(ErrorCode.MANIFEST_PARSE_ERROR, "manifest file is empty")
    if b"\x00" in data:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_PARSE_ERROR, "manifest is a binary file, not TOML or JSON"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_PARSE_ERROR, f"manifest is not UTF-8 text (byte {exc.start})"
        ) from None
    if path.suffix.lower() == ".json":
        return _parse_json(text)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ReferenceImplError(ErrorCode.MANIFEST_PARSE_ERROR, f"invalid TOML: {exc}") from None
    except RecursionError:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_PARSE_ERROR, "invalid TOML: nested too deeply"
        ) from None


class _DuplicateKey:
    """Marks a decoded JSON object in which a key appeared twice.

    Objects are decoded innermost first, so the hook cannot know where an object sits;
    it marks the object and :func:`_raise_on_duplicate` finds the path afterwards.
    """


_DUPLICATE = _DuplicateKey()


def _parse_json(text: str) -> Any:
    duplicates = False

    def pairs(items: list[tuple[str, Any]]) -> dict[Any, Any]:
        nonlocal duplicates
        out: dict[Any, Any] = {}
        for key, value in items:
            if key in out:
                duplicates = True
                out.setdefault(_DUPLICATE, key)
            else:
                out[key] = value
        return out

    try:
        tree = json.loads(text, object_pairs_hook=pairs)
        if duplicates:
            _raise_on_duplicate(tree)
        if _SURROGATE_ESCAPE.search(text):
            _raise_on_surrogate(tree)
        return tree
    except json.JSONDecodeError as exc:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_PARSE_ERROR,
            f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
        ) from None
    except RecursionError:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_PARSE_ERROR, "invalid JSON: nested too deeply"
        ) from None


def _raise_on_surrogate(tree: Any) -> None:
    """Raise ``MANIFEST_INVALID_VALUE`` at the first key or string holding a lone surrogate.

    JSON's ``\\ud800`` escapes decode to a code point no UTF-8 text can hold; it would
    fail wherever the string is encoded (SQL, paths, the fingerprint).
    """
    stack: list[tuple[Any, str]] = [(tree, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str) and not _encodable(value):
            raise ReferenceImplError(
                ErrorCode.MANIFEST_INVALID_VALUE,
                "the string holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
                "escape), which is not text",
                field_path=path or None,
            )
        if isinstance(value, dict):
            for key, item in reversed(value.items()):
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not _encodable(key):
                    raise ReferenceImplError(
                        ErrorCode.MANIFEST_INVALID_VALUE,
                        "the key holds a lone UTF-16 surrogate, which is not text",
                        field_path=escaped(where),
                    )
                stack.append((item, where))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in reversed(list(enumerate(value))))


def escaped(text: str) -> str:
    """``text`` with each non-printable character (newline, control, lone surrogate) as
    its Python escape, for field paths that name what the manifest wrote: one line, and
    writable to any stream (``views.a\\n`` for a view named ``"a\\n"``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raise_on_duplicate(tree: Any) -> None:
    """Raise ``MANIFEST_DUPLICATE_NAME`` with the field path of a duplicated JSON key."""
    stack: list[tuple[Any, str]] = [(tree, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            if _DUPLICATE in value:
                key = value[_DUPLICATE]
                raise ReferenceImplError(
                    ErrorCode.MANIFEST_DUPLICATE_NAME,
                    f"key {key!r} appears twice in one object",
                    field_path=f"{path}.{key}" if path else key,
                )
            stack.extend(
                (item, f"{path}.{key}" if path else key) for key, item in reversed(value.items())
            )
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in reversed(list(enumerate(value))))


def _decode(raw: Any) -> ManifestDocument:
    if not isinstance(raw, dict):
        raise ReferenceImplError(
            ErrorCode.MANIFEST_TYPE_ERROR,
            f"the manifest must be a table/object, got {type(raw).__name__}",
        )
    for key in sorted(raw):
        if key not in _KNOWN_KEYS:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_UNKNOWN_KEY,
                f"unknown top-level key {key!r} (expected one of {', '.join(_KNOWN_KEYS)})",
                field_path=key,
            )
    runtime = raw.get("runtime")
    if isinstance(runtime, dict) and "trusted_modules" in runtime:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_UNKNOWN_KEY,
            TRUST_IS_NOT_A_MANIFEST_KEY,
            field_path="runtime.trusted_modules",
        )
    fields: dict[str, Any] = {}
    for key, spec in _SINGLE_SECTIONS.items():
        if key in raw:
            fields[key] = _convert(raw[key], spec, key)
    for key, spec in _SECTIONS.items():
        section = raw.get(key, {})
        if not isinstance(section, dict):
            raise ReferenceImplError(
                ErrorCode.MANIFEST_TYPE_ERROR,
                f"expected a table of {key}, got {_type_name(section)}",
                field_path=key,
            )
        if key == "views" and len(section) > MAX_VIEWS:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_LIMIT_EXCEEDED,
                f"{len(section)} views; the limit is {MAX_VIEWS}",
                field_path=key,
            )
        fields[key] = {
            str(name): _convert(value, spec, f"{key}.{name}") for name, value in section.items()
        }
    return ManifestDocument(**fields)


def _convert(value: Any, spec: type[_S], path: str) -> _S:
    try:
        return msgspec.convert(value, spec)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc), path, spec) from None


def _field_type(spec: type[msgspec.Struct], rel: str) -> Any:
    """The msgspec type info at ``rel`` (``.a.b[0].c``) inside ``spec``, else None."""
    info: Any = msgspec.inspect.type_info(spec)
    for segment in re.findall(r"\.([^.\[]+)|\[\d+\]", rel):
        while isinstance(info, msgspec.inspect.UnionType):  # Optional[X] -> X
            options = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
            info = options[0] if len(options) == 1 else None
        if isinstance(info, msgspec.inspect.ListType | msgspec.inspect.VarTupleType):
            info = info.item_type
        if not segment:
            continue
        if isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        elif isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == segment), None)
        else:
            return None
    return info


def _hint(spec: type[msgspec.Struct] | None, rel: str, unknown: str | None) -> str:
    """``(allowed: ...)`` for an enum value, ``did you mean ...?`` for an unknown key."""
    if spec is None:
        return ""
    if unknown is not None:
        parent = _field_type(spec, rel)
        while isinstance(parent, msgspec.inspect.UnionType):
            parent = next(
                (t for t in parent.types if isinstance(t, msgspec.inspect.StructType)), None
            )
        if not isinstance(parent, msgspec.inspect.StructType):
            return ""
        names = [f.encode_name for f in parent.fields]
        close = difflib.get_close_matches(unknown, names, n=1)
        known = f" (known keys: {', '.join(names)})"
        return f"; did you mean {close[0]!r}?{known}" if close else known
    info = _field_type(spec, rel)
    while isinstance(info, msgspec.inspect.UnionType):
        info = next((t for t in info.types if isinstance(t, msgspec.inspect.LiteralType)), None)
    if isinstance(info, msgspec.inspect.LiteralType):
        return " (allowed: " + ", ".join(repr(v) for v in info.values) + ")"
    return ""


def _validation_error(
    text: str, prefix: str, spec: type[msgspec.Struct] | None = None
) -> ReferenceImplError:
    match = _VALIDATION_RE.fullmatch(text)
    message = match.group("msg") if match else text
    rel = (match.group("path") if match else None) or ""
    path = prefix + rel
    code = ErrorCode.MANIFEST_TYPE_ERROR
    coded = _CODED_RE.fullmatch(message)
    unknown = re.match(r"Object contains unknown field `(?P<f>[^`]*)`", message)
    missing = re.match(r"Object missing required field `(?P<f>[^`]*)`", message)
    if coded and coded.group("code") in ErrorCode.__members__:
        code = ErrorCode(coded.group("code"))
        message = coded.group("msg")
        if coded.group("field"):
            path = f"{path}.{coded.group('field')}"
    elif unknown:
        code = ErrorCode.MANIFEST_UNKNOWN_KEY
        path = f"{path}.{unknown.group('f')}"
        message = f"unknown key {unknown.group('f')!r}" + _hint(spec, rel, unknown.group("f"))
    elif missing:
        code = ErrorCode.MANIFEST_MISSING_FIELD
        path = f"{path}.{missing.group('f')}"
        message = f"missing required key {missing.group('f')!r}"
    elif message.startswith(
        (
            "Invalid enum value",
            "Expected `int` >=",
            "Expected `int` <=",
            "Expected `str` matching",
            "Expected `str` of length",  # e.g. an empty location: the right type, a bad value
        )
    ):
        code = ErrorCode.MANIFEST_INVALID_VALUE
        if message.startswith("Invalid enum value"):
            message += _hint(spec, rel, None)
    return ReferenceImplError(code, message, field_path=path)


def _type_name(value: object) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _check_names(document: ManifestDocument) -> None:
    for section in _SECTIONS:
        entries: Mapping[str, object] = getattr(document, section)
        for name in entries:
            _check_name(name, f"{section}.{name}")
    for name, view in document.views.items():
        for index, udf in enumerate(view.udfs):
            _check_name(udf, f"views.{name}.udfs[{index}]")
            if udf not in document.udfs:
                raise ReferenceImplError(
                    ErrorCode.MANIFEST_UNKNOWN_REFERENCE,
                    f"view {name!r} declares UDF {udf!r}, which no [udfs.*] table provides"
                    + _did_you_mean(udf, document.udfs),
                    field_path=f"views.{name}.udfs[{index}]",
                    subjects=(name, udf),
                )
    for name, output in document.outputs.items():
        if output.view not in document.views:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_UNKNOWN_REFERENCE,
                f"output {name!r} writes view {output.view!r}, which the manifest does not declare"
                + _did_you_mean(output.view, document.views),
                field_path=f"outputs.{name}.view",
                subjects=(name, output.view),
            )


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` (difflib) and what is declared, for an unknown reference."""
    names = sorted(known)
    if not names:
        return " (the manifest declares none)"
    close = difflib.get_close_matches(name, names, n=1)
    declared = f" (declared: {', '.join(names)})"
    return f"; did you mean {close[0]!r}?{declared}" if close else declared


def _check_name(name: str, path: str) -> None:
    if name.lower() in RESERVED_NAMES:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_RESERVED_NAME,
            f"{name!r} is reserved by the engine",
            field_path=path,
            subjects=(name,),
        )
    if NAME_RE.fullmatch(name) is None:
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise ReferenceImplError(
            ErrorCode.MANIFEST_INVALID_NAME,
            f"{shown!r} is not a valid name: use 1-63 lowercase ASCII letters, digits "
            "and '_', not starting with a digit",
            field_path=escaped(path),
            subjects=(shown,),
        )


def resolve_location(location: str, root: Path, *, allow_external: bool, field_path: str) -> Path:
    """Resolve a manifest-relative location; refuse one escaping ``root`` unless allowed.

    Symlinks are followed before the check, so a link pointing outside the root escapes
    too.  A URL (``scheme://``) is no local path: :func:`store_of` places it under a
    declared store; here it is ``MANIFEST_LOCATION_NOT_ALLOWED``.
    """
    if "://" in location:
        raise _not_allowed(location, field_path, {})
    if "\x00" in location:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_INVALID_VALUE, "location contains a NUL byte", field_path=field_path
        )
    candidate = Path(location)
    joined = candidate if candidate.is_absolute() else root / candidate
    try:
        resolved = joined.resolve()
        looping = not os.path.exists(resolved) and _loops(resolved)  # 3.13 resolves loops
    except RuntimeError:  # Python 3.11: "Symlink loop from ..."
        looping = True
    if looping:
        raise ReferenceImplError(
            _UNRESOLVABLE.get(field_path.split(".", 1)[0], ErrorCode.MANIFEST_INVALID_VALUE),
            f"{location!r} cannot be resolved: it runs into a symlink loop",
            field_path=field_path,
        )
    if not allow_external and not resolved.is_relative_to(root):
        raise ReferenceImplError(
            ErrorCode.MANIFEST_LOCATION_ESCAPES_ROOT,
            f"{location!r} resolves outside the manifest directory {str(root)!r}; set "
            "policy.allow_external_locations = true to allow it",
            field_path=field_path,
        )
    return resolved


def _check_locations(document: ManifestDocument, root: Path) -> None:
    """Every declared location resolves inside the root; a missing one is allowed only in
    ``runtime-bootstrap`` mode, which needs ``runtime.fallback_root``."""
    allow = document.policy.allow_external_locations
    bootstrap = document.project.data_source_mode == "runtime-bootstrap"
    fallback = document.runtime.fallback_root
    if bootstrap and fallback is None:
        raise ReferenceImplError(
            ErrorCode.MANIFEST_MISSING_FIELD,
            "missing required key 'fallback_root' (project.data_source_mode is "
            "'runtime-bootstrap')",
            field_path="runtime.fallback_root",
        )
    if fallback is not None:
        resolve_location(fallback, root, allow_external=allow, field_path="runtime.fallback_root")
    _check_stores(document)
    entries = [("datasets", name, spec.location) for name, spec in document.datasets.items()]
    entries += [("outputs", name, spec.location) for name, spec in document.outputs.items()]
    for section, name, location in entries:
        path = f"{section}.{name}.location"
        if location is None:
            if bootstrap:
                continue
            raise ReferenceImplError(
                ErrorCode.MANIFEST_MISSING_FIELD,
                "missing required key 'location' (project.data_source_mode is "
                "'semantic-authority': the manifest is the only source of locations)",
                field_path=path,
            )
        if "://" in location:
            store_of(location, document.storage, field_path=path)
        else:
            resolve_location(location, root, allow_external=allow, field_path=path)


def _check_stores(document: ManifestDocument) -> None:
    """Two stores may not serve the same bucket: the engine keeps one client per bucket."""
    seen: dict[str, str] = {}
    for name, store in sorted(document.storage.items()):
        key = f"{store.url.split('://', 1)[0]}://{store.bucket}"
        if key in seen:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_CONFLICTING_FIELDS,
                f"stores {seen[key]!r} and {name!r} both serve {key}: declare one store per bucket",
                field_path=f"storage.{name}.url",
                subjects=(seen[key], name),
            )
        seen[key] = name


def store_of(location: str, stores: Mapping[str, StorageSpec], *, field_path: str) -> str:
    """The name of the declared store whose ``url`` prefixes the URL ``location``.

    The location must be a plain object path under the prefix (whole segments, no ``.``,
    ``..``, query, fragment or user information); anything else, and a URL under no
    declared store, is ``MANIFEST_LOCATION_NOT_ALLOWED``.
    """
    match = _URL_RE.fullmatch(location)
    if match is None:
        raise _not_allowed(location, field_path, stores)
    segments = match.group("rest").rstrip("/").split("/")
    if not all(_URL_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise ReferenceImplError(
            ErrorCode.MANIFEST_LOCATION_NOT_ALLOWED,
            f"{escaped(location)!r} is not a plain object path (only letters, digits and "
            "!_.*'()- in '/'-separated segments; no '.', '..', '?', '#', '@' or '//')",
            field_path=field_path,
        )
    for name, store in sorted(stores.items(), key=lambda item: -len(item[1].url)):
        prefix = store.url.rstrip("/")
        if location.rstrip("/") == prefix or location.startswith(prefix + "/"):
            return name
    raise _not_allowed(location, field_path, stores)


def _not_allowed(
    location: str, field_path: str, stores: Mapping[str, StorageSpec]
) -> ReferenceImplError:
    declared = ", ".join(f"{name} = {store.url}" for name, store in sorted(stores.items()))
    shown = escaped(location if len(location) <= 80 else location[:77] + "...")
    return ReferenceImplError(
        ErrorCode.MANIFEST_LOCATION_NOT_ALLOWED,
        f"{shown!r} is a URL under no declared store"
        + (f" (declared: {declared})" if declared else "")
        + '; declare one: [storage.NAME] url = "s3://bucket" (dataset and output locations '
        "only; other locations are local paths)",
        field_path=field_path,
    )


def _resolve_view_sql(document: ManifestDocument, root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    allow = document.policy.allow_external_locations
    for name, view in document.views.items():
        if view.sql is not None:
            text = view.sql
        else:
            assert view.sql_file is not None  # ViewSpec guarantees one of the two
            path = f"views.{name}.sql_file"
            file = resolve_location(view.sql_file, root, allow_external=allow, field_path=path)
            text = _read_sql_file(file, path)
        if len(text.encode("utf-8")) > MAX_SQL_BYTES:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_LIMIT_EXCEEDED,
                f"view SQL is longer than {MAX_SQL_BYTES} bytes",
                field_path=f"views.{name}",
            )
        out[name] = text
    return out


def _read_sql_file(file: Path, field_path: str) -> str:
    try:
        data = read_regular_file(file, MAX_SQL_BYTES)
        if len(data) > MAX_SQL_BYTES:
            raise ReferenceImplError(
                ErrorCode.MANIFEST_LIMIT_EXCEEDED,
                f"{file.name} is longer than {MAX_SQL_BYTES} bytes",
                field_path=field_path,
            )
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ReferenceImplError(
            ErrorCode.MANIFEST_SQL_FILE_UNREADABLE,
            f"cannot read {str(file)!r}: {reason}",
            field_path=field_path,
        ) from None
    if not text.strip():
        raise ReferenceImplError(
            ErrorCode.MANIFEST_SQL_FILE_UNREADABLE, f"{file.name} is empty", field_path=field_path
        )
    return text


_UNRESOLVABLE: Mapping[str, ErrorCode] = {
    "views": ErrorCode.MANIFEST_SQL_FILE_UNREADABLE,
    "datasets": ErrorCode.DATASET_LOCATION_UNRESOLVED,
    "outputs": ErrorCode.OUTPUT_WRITE_FAILED,
}
"""The code of a location that cannot be resolved to a path (a symlink loop), by section:
nothing can be read from or written to it."""


def _loops(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | os.O_CLOEXEC


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path`` (more than ``limit``: too big).

    Anything but a regular file is an ``OSError`` before a byte is read: opening with
    ``O_NONBLOCK`` keeps a FIFO from blocking, and ``st_size`` is never trusted, so a
    device such as ``/dev/zero`` cannot make the read unbounded.
    """
    _require_regular(os.stat(path).st_mode)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        _require_regular(os.fstat(fd).st_mode)  # the file opened is the file checked
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _require_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    raise OSError(errno.EINVAL, f"it is {kind}, not a regular file")
