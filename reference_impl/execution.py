"""Stage *execution*: ``execute_plan(plan, authority) -> ExecutionReport``.

Runs the views the declared outputs need, in topological order, from fresh DataFrames (the
planned ones are never executed, so their plan texts stay free of runtime values), caches
views read by at least ``runtime.cache_min_consumers`` others with ``DataFrame.cache()``,
and writes each output to Delta with deltalake.  A Delta write commits atomically: when a
run fails midway, every output keeps its earlier versions, intact and readable.

``dry_run=True`` goes through every step (fresh frames planned and registered, input
locations required through the resolver) but executes nothing: no ``cache()``, no write.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import msgspec

from reference_impl.engine.session import query_only
from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.relspec.authority import ExecutionAuthorityContext
from reference_impl.relspec.contracts import ExecutionPlan

_PY_TRACEBACK = re.compile(r', traceback: Some\("(?:[^"\\]|\\.)*"\)')
"""The Python traceback DataFusion embeds (``PyErr { ..., traceback: Some("...") }``) when
a Python UDF raises during execution: user-facing errors never show a traceback."""
_FIELD_SECTION = {ErrorCode.EXECUTION_FAILED: "views", ErrorCode.OUTPUT_WRITE_FAILED: "outputs"}


class OutputWrite(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    view: str
    location: str
    mode: str
    delta_version: int | None
    """The table version this run committed (None in a dry run)."""
    rows: int | None
    """Rows in the table after the write (None in a dry run)."""


class ExecutionReport(msgspec.Struct, frozen=True, kw_only=True):
    outputs: tuple[OutputWrite, ...]
    cached_views: tuple[str, ...]
    dry_run: bool = False


def execute_plan(
    plan: ExecutionPlan, authority: ExecutionAuthorityContext, *, dry_run: bool = False
) -> ExecutionReport:
    """Execute the plan's output views and write them (see module docs)."""
    from deltalake import DeltaTable, write_deltalake

    semantic = authority.semantic_context
    manifest = semantic.manifest
    resolver = semantic.dataset_resolver
    ctx = semantic.session
    nodes = {node.name: node for node in plan.view_nodes}
    needed = _ancestors({out.view for out in manifest.outputs}, nodes)
    not_runnable = sorted(name for name in needed if nodes[name].status != "planned")
    if not_runnable:
        raise ReferenceImplError(
            ErrorCode.EXECUTION_FAILED,
            f"views {', '.join(not_runnable)} were not planned; nothing was written",
            file=manifest.source_path,
            subjects=tuple(not_runnable),
        )
    for unit in plan.scan_units:
        if any(view in needed for view in unit.views):
            resolver.require_location(unit.dataset_name)  # fail closed before any write

    cached: list[str] = []
    for view in manifest.views:
        if view.name not in needed:
            continue
        try:
            frame = ctx.sql(view.sql, options=query_only())
            if nodes[view.name].cache and not dry_run:
                frame = frame.cache()
                cached.append(view.name)
        except Exception as exc:
            raise _failed(
                ErrorCode.EXECUTION_FAILED, view.name, exc, manifest.source_path
            ) from None
        ctx.deregister_table(view.name)
        ctx.register_view(view.name, frame)

    written: list[OutputWrite] = []
    for output in manifest.outputs:
        version: int | None = None
        rows: int | None = None
        if not dry_run:
            created = _first_missing(Path(output.location))
            try:
                write_deltalake(output.location, ctx.table(output.view), mode=output.mode)
                table = DeltaTable(output.location)
                rows = _row_count(table)
                version = int(table.version())
            except Exception as exc:
                _remove_uncommitted(created, Path(output.location))
                raise _failed(
                    ErrorCode.OUTPUT_WRITE_FAILED, output.name, exc, manifest.source_path
                ) from None
        written.append(
            OutputWrite(
                name=output.name,
                view=output.view,
                location=output.location,
                mode=output.mode,
                delta_version=version,
                rows=rows,
            )
        )
    return ExecutionReport(outputs=tuple(written), cached_views=tuple(cached), dry_run=dry_run)


def _first_missing(path: Path) -> Path | None:
    """The topmost directory of ``path`` that does not exist yet (None if it exists)."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _remove_uncommitted(created: Path | None, location: Path) -> None:
    """After a failed first write, remove what the write created, unless it committed.

    A Delta write commits atomically, so files without a commit are invisible debris; a
    table that did not exist before the run must not be left as an empty directory.
    """
    if created is None or not created.exists():
        return
    log = location / "_delta_log"
    if log.is_dir() and any(log.glob("*.json")):
        return
    shutil.rmtree(created, ignore_errors=True)


def _ancestors(roots: set[str], nodes: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(dep for dep in nodes[name].dependencies if dep in nodes)
    return seen


def _row_count(table: Any) -> int:
    actions = table.get_add_actions(flatten=True)
    return int(sum(actions.column("num_records").to_pylist() or [0]))


def _failed(code: ErrorCode, subject: str, exc: BaseException, file: str) -> ReferenceImplError:
    text = _PY_TRACEBACK.sub("", str(exc)).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    first = first.split(", traceback: ", 1)[0]  # an embedded traceback left unparsed
    return ReferenceImplError(
        code,
        f"{subject!r}: {first}",
        file=file,
        field_path=f"{_FIELD_SECTION[code]}.{subject}",
        subjects=(subject,),
    )
