"""The one root exception of ``pytest_planguard`` and its stable codes."""

from __future__ import annotations

import sys
from enum import StrEnum


class PlanguardCode(StrEnum):
    """Stable codes for the plugin's own errors and gate findings."""

    # configuration and usage
    CONFIG_ERROR = "CONFIG_ERROR"
    ADAPTER_ERROR = "ADAPTER_ERROR"
    """The adapter did not load, or one of its methods raised an uncoded exception."""
    MARKER_ARGUMENT = "MARKER_ARGUMENT"
    # invariants
    SINGLE_COMPILE_VIOLATION = "SINGLE_COMPILE_VIOLATION"
    RESOLVER_IDENTITY_VIOLATION = "RESOLVER_IDENTITY_VIOLATION"
    NONDETERMINISTIC = "NONDETERMINISTIC"
    POLICY_FAILED = "POLICY_FAILED"
    # the plan gate
    PLAN_UNCHANGED = "PLAN_UNCHANGED"
    PLAN_CHANGED = "PLAN_CHANGED"
    PLAN_NEW = "PLAN_NEW"
    PLAN_UPDATED = "PLAN_UPDATED"
    PLAN_REMOVED = "PLAN_REMOVED"
    PLAN_UNAVAILABLE = "PLAN_UNAVAILABLE"
    PLAN_CACHE_UNSOUND = "PLAN_CACHE_UNSOUND"
    UNSTABLE_PLAN = "UNSTABLE_PLAN"
    PLAN_COST_REGRESSION = "PLAN_COST_REGRESSION"
    SNAPSHOT_UNUSED = "SNAPSHOT_UNUSED"
    SNAPSHOT_NAME_INVALID = "SNAPSHOT_NAME_INVALID"
    SNAPSHOT_WRITE_FAILED = "SNAPSHOT_WRITE_FAILED"
    SNAPSHOT_TREE_INVALID = "SNAPSHOT_TREE_INVALID"
    SNAPSHOT_PATH_COLLISION = "SNAPSHOT_PATH_COLLISION"
    VIEW_NOT_FOUND = "VIEW_NOT_FOUND"
    # planguard report merge
    REPORT_INVALID = "REPORT_INVALID"
    """A report to merge is missing, not a regular file, not JSON or not a gate report."""
    REPORT_MERGE_INCOMPATIBLE = "REPORT_MERGE_INCOMPATIBLE"
    """Reports of different schema versions, planguard or engine versions, settings or
    targets: they are not shards of one run."""
    REPORT_MERGE_CONFLICT = "REPORT_MERGE_CONFLICT"
    """One gate item in two reports with different results."""
    REPORT_MERGE_INCOMPLETE = "REPORT_MERGE_INCOMPLETE"
    """The merged reports together did not run every item of every target."""


class PlanguardError(Exception):
    """Root exception of the plugin: a code, an optional file and field path, a message."""

    def __init__(
        self,
        code: PlanguardCode,
        message: str,
        *,
        file: str | None = None,
        field_path: str | None = None,
        detail: str = "",
    ) -> None:
        message, detail = redact(message), redact(detail)
        super().__init__(message)
        self.code = code
        self.message = message
        self.file = file
        self.field_path = field_path
        self.detail = detail
        """Extra lines shown only on request (``--tb=long``): e.g. the user's frames."""

    def render(self) -> str:
        where = ": ".join(part for part in (self.file, self.field_path) if part)
        prefix = f"error[{self.code}]"
        return f"{prefix} {where}: {self.message}" if where else f"{prefix} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "code": str(self.code),
            "file": self.file,
            "field_path": self.field_path,
            "message": self.message,
        }


def redact(text: str) -> str:
    """``text`` without the process's store secrets (``reference_impl.redaction``).

    Looked up, not imported: the plugin imports no ``reference_impl`` at start-up, and a
    process that never loaded it resolved no store secret."""
    module = sys.modules.get("reference_impl.redaction")
    scrub = getattr(module, "redact", None)
    return scrub(text) if callable(scrub) else text
