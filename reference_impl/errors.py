"""The one root exception of ``reference_impl`` and its stable error codes.

Every user-facing failure of the reference pipeline is a :class:`ReferenceImplError`
carrying an :class:`ErrorCode`, the file it concerns and the dotted field path inside
that file.  Policy *findings* are not errors: they live in
:mod:`reference_impl.relspec.contracts` as :class:`~reference_impl.relspec.contracts.PolicyCode`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol, runtime_checkable

from reference_impl.redaction import redact


@runtime_checkable
class CodedError(Protocol):
    """What every user-facing error of either package offers: a stable code and its line.

    Both root exceptions (:class:`ReferenceImplError` here, ``PlanguardError`` in the
    plugin) satisfy it structurally, so the command line renders any of them without
    knowing the package it came from.  It is defined here, in the lower package, because
    the plugin may import ``reference_impl`` but ``reference_impl`` never imports the
    plugin.
    """

    @property
    def code(self) -> StrEnum:
        """The stable code (an ``ErrorCode``, ``PlanguardCode`` ... member)."""

    def render(self) -> str:
        """``error[CODE] file: field.path: message``, one line."""

    def to_dict(self) -> dict[str, object]:
        """The error as JSON-ready data, with ``code`` (what ``--json`` prints)."""


class ErrorCode(StrEnum):
    """Stable codes for bad input and failed runs (the CLI exits 2 on these)."""

    MANIFEST_NOT_FOUND = "MANIFEST_NOT_FOUND"
    MANIFEST_PARSE_ERROR = "MANIFEST_PARSE_ERROR"
    MANIFEST_TYPE_ERROR = "MANIFEST_TYPE_ERROR"
    MANIFEST_UNKNOWN_KEY = "MANIFEST_UNKNOWN_KEY"
    MANIFEST_MISSING_FIELD = "MANIFEST_MISSING_FIELD"
    MANIFEST_CONFLICTING_FIELDS = "MANIFEST_CONFLICTING_FIELDS"
    MANIFEST_INVALID_VALUE = "MANIFEST_INVALID_VALUE"
    MANIFEST_INVALID_NAME = "MANIFEST_INVALID_NAME"
    MANIFEST_RESERVED_NAME = "MANIFEST_RESERVED_NAME"
    MANIFEST_DUPLICATE_NAME = "MANIFEST_DUPLICATE_NAME"
    MANIFEST_UNKNOWN_REFERENCE = "MANIFEST_UNKNOWN_REFERENCE"
    MANIFEST_CYCLE = "MANIFEST_CYCLE"
    MANIFEST_NOT_A_QUERY = "MANIFEST_NOT_A_QUERY"
    MANIFEST_SQL_SYNTAX = "MANIFEST_SQL_SYNTAX"
    MANIFEST_SQL_TOO_COMPLEX = "MANIFEST_SQL_TOO_COMPLEX"
    MANIFEST_SQL_FILE_UNREADABLE = "MANIFEST_SQL_FILE_UNREADABLE"
    MANIFEST_LOCATION_ESCAPES_ROOT = "MANIFEST_LOCATION_ESCAPES_ROOT"
    MANIFEST_LIMIT_EXCEEDED = "MANIFEST_LIMIT_EXCEEDED"
    MANIFEST_LOCATION_NOT_ALLOWED = "MANIFEST_LOCATION_NOT_ALLOWED"
    MANIFEST_SECRET_LITERAL = "MANIFEST_SECRET_LITERAL"
    DATASET_LOCATION_UNRESOLVED = "DATASET_LOCATION_UNRESOLVED"
    DATASET_NOT_FOUND = "DATASET_NOT_FOUND"
    DATASET_NOT_DELTA = "DATASET_NOT_DELTA"
    DATASET_FORMAT_MISMATCH = "DATASET_FORMAT_MISMATCH"
    DATASET_UNREADABLE = "DATASET_UNREADABLE"
    DELTA_LOG_CORRUPT = "DELTA_LOG_CORRUPT"
    DELTA_PROTOCOL_UNSUPPORTED = "DELTA_PROTOCOL_UNSUPPORTED"
    BOOTSTRAP_FAILED = "BOOTSTRAP_FAILED"
    STORE_SECRET_MISSING = "STORE_SECRET_MISSING"
    STORE_UNREACHABLE = "STORE_UNREACHABLE"
    STORE_ACCESS_DENIED = "STORE_ACCESS_DENIED"
    STORE_BUCKET_NOT_FOUND = "STORE_BUCKET_NOT_FOUND"
    UDF_PROVIDER_UNTRUSTED = "UDF_PROVIDER_UNTRUSTED"
    UDF_PROVIDER_IMPORT_ERROR = "UDF_PROVIDER_IMPORT_ERROR"
    UDF_PROVIDER_INVALID = "UDF_PROVIDER_INVALID"
    EXECUTION_FAILED = "EXECUTION_FAILED"
    OUTPUT_WRITE_FAILED = "OUTPUT_WRITE_FAILED"
    INIT_TARGET_EXISTS = "INIT_TARGET_EXISTS"
    # the `planguard` command line itself (every command, the plugin's `diff` included)
    USAGE = "USAGE"
    INTERRUPTED = "INTERRUPTED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


COMMAND_LINE_CODES = frozenset({ErrorCode.USAGE, ErrorCode.INTERRUPTED, ErrorCode.INTERNAL_ERROR})
"""The codes of the ``planguard`` command line itself (``reference_impl.cli``): printed by
its parser and its guard around every command, never raised as a :class:`ReferenceImplError`."""


class ReferenceImplError(Exception):
    """Root exception of the reference pipeline: a code, a file, a field path, a message."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        file: str | None = None,
        field_path: str | None = None,
        subjects: tuple[str, ...] = (),
    ) -> None:
        message = redact(message)  # a store secret never reaches a message
        super().__init__(message)
        self.code = code
        self.message = message
        self.file = file
        self.field_path = field_path
        self.subjects = subjects

    def render(self) -> str:
        """``error[CODE] file: field.path: message`` (the CLI's one-line form)."""
        # one line whatever a name holds: a view named "a\n" is shown as views.a\n
        where = ": ".join(
            "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in part)
            for part in (self.file, self.field_path)
            if part
        )
        prefix = f"error[{self.code}]"
        return f"{prefix} {where}: {self.message}" if where else f"{prefix} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "code": str(self.code),
            "file": self.file,
            "field_path": self.field_path,
            "message": self.message,
            "subjects": list(self.subjects),
        }

    def with_file(self, file: str) -> ReferenceImplError:
        """Return this error, naming ``file`` when it did not name one yet."""
        if self.file is None:
            self.file = file
        return self


class ContractVersionError(RuntimeError):
    """A stage was handed a contract of another version than the one it reads.

    Each authority layer carries its own version (``SEMANTIC_CONTRACT_VERSION``,
    ``AUTHORITY_CONTRACT_VERSION``, ``EXECUTION_PLAN_CONTRACT_VERSION``) and the stage
    consuming it checks it: a mismatch is two incompatible builds of the pipeline talking
    to each other (a bug, not bad input), so it has no :class:`ErrorCode`.
    """


def check_contract_version(layer: str, found: str, expected: str) -> None:
    """Raise :class:`ContractVersionError` unless ``found == expected``."""
    if found != expected:
        raise ContractVersionError(
            f"the {layer} contract is version {found!r}; this stage reads {expected!r}"
        )
