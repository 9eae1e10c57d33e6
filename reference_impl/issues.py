"""The one JSON shape of an issue in ``planguard compile|validate|run --json``.

Bad input (a coded error, exit 2), policy findings (exit 1 when one is an error) and
outputs a run did not write all come out as :class:`ReportedIssue` in the payload's
``issues`` list, so a CI job reads one shape whatever went wrong:

``code``
    the stable code (an ``ErrorCode``, ``PolicyCode`` or ``PlanguardCode`` value)
``severity``
    ``error``, ``warning`` or ``info`` (bad input is always ``error``)
``message``
    what is wrong, in words
``file``
    the file the issue is about (the manifest, a SQL file ...), in the path style of
    :func:`display_path`; null only when no file is involved
``field_path``
    the dotted field inside that file to change (``views.v.udfs``,
    ``policy.delta_support.reader_features``), or null when the issue is about a thing
    rather than a field; then ``subject`` names it
``subject`` / ``subject_kind``
    what a finding is about (``subject_kind`` is ``view``, ``dataset``, ``scan_unit`` or
    ``output``); null for bad input, which names its field instead

``planguard schema --issues`` prints the JSON Schema of this shape.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:
    from reference_impl.errors import CodedError
    from reference_impl.relspec.contracts import PolicyValidationIssue


class ReportedIssue(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One issue of any ``--json`` output (see module docs)."""

    code: str
    severity: Literal["error", "warning", "info"]
    message: str
    file: str | None
    field_path: str | None
    subject: str | None
    subject_kind: Literal["view", "dataset", "scan_unit", "output"] | None


def display_path(path: str | os.PathLike[str]) -> str:
    """How every ``planguard`` command prints a path: relative to the working directory
    when the path lies inside it, absolute otherwise (never ``..``-relative)."""
    absolute = Path(os.path.abspath(path))
    here = Path.cwd()
    for base, target in ((here, absolute), (here.resolve(), absolute.resolve())):
        try:
            return str(target.relative_to(base))
        except ValueError:
            continue
    return str(absolute)


def from_error(error: CodedError) -> ReportedIssue:
    """Bad input (a coded error of either package) as an issue."""
    data = error.to_dict()
    file = data.get("file")
    field_path = data.get("field_path")
    return ReportedIssue(
        code=str(data["code"]),
        severity="error",
        message=str(data.get("message", "")),
        file=display_path(file) if isinstance(file, str) and file else None,
        field_path=field_path if isinstance(field_path, str) else None,
        subject=None,
        subject_kind=None,
    )


def from_finding(finding: PolicyValidationIssue, file: str | None) -> ReportedIssue:
    """A policy or execution finding about the manifest ``file`` as an issue."""
    return ReportedIssue(
        code=str(finding.code),
        severity=finding.severity,
        message=finding.message,
        file=display_path(file) if file else None,
        field_path=finding.field_path,
        subject=finding.subject,
        subject_kind=finding.subject_kind,
    )


def issue_json_schema() -> dict[str, Any]:
    """The JSON Schema of one entry of a ``--json`` payload's ``issues``."""
    schema: dict[str, Any] = msgspec.json.schema(ReportedIssue)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "planguard issue"
    return schema
