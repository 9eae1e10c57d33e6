"""Stage *execution*: ``execute_plan(plan, authority) -> ExecutionReport``.

Runs the views the declared outputs need, in topological order, from fresh DataFrames (the
planned ones are never executed, so their plan texts stay free of runtime values), caches
views read by at least ``runtime.cache_min_consumers`` others with ``DataFrame.cache()``,
and writes each output to Delta with deltalake.

Executors are enforced: a view runs on the executor it declares, DataFusion or a Python
executor of the authority (``[executors.*]``, ``run_pipeline(executors=...)``), and on
no other.  An output whose view, or any view upstream of it, names an executor this run
does not have is not written (finding ``EXECUTOR_UNAVAILABLE``, in every policy mode);
the other outputs are.

Outputs are written in two phases.  *Preflight*: every output's view is executed and
collected (in memory, as Arrow), and its schema compared, under the output's
``schema_mode``, with the Delta table at its location as it is now; when one output would
fail (``OUTPUT_SCHEMA_MISMATCH``) or a view fails, nothing is committed.  *Commit*: one
Delta commit per output, in manifest order.  Delta has no multi-table transaction: if the
process dies, or a write fails for a reason preflight cannot see (disk full, a concurrent
writer), between two commits, the outputs committed before keep their new version and
the rest keep their old one; each table on its own is intact (a Delta commit is atomic).

``dry_run=True`` goes through every step (fresh frames planned and registered, input
locations required through the resolver, output schemas compared) but executes nothing:
no ``cache()``, no executor call, no collection, no write.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec

from reference_impl.engine.data_source import held_stderr
from reference_impl.engine.object_store import store_error, store_failure, store_options
from reference_impl.engine.session import query_only
from reference_impl.errors import ErrorCode, ReferenceImplError, check_contract_version
from reference_impl.relspec.authority import DATAFUSION_EXECUTOR, ExecutionAuthorityContext
from reference_impl.relspec.contracts import (
    AUTHORITY_CONTRACT_VERSION,
    EXECUTION_PLAN_CONTRACT_VERSION,
    ExecutionPlan,
    PolicyCode,
    PolicyValidationIssue,
)
from reference_impl.relspec.output_targets import (
    SCHEMA_MODE_HINT,
    delta_columns,
    read_table_columns,
    schema_problems,
)
from reference_impl.semantics.program import OutputBinding, SemanticView, StoreDeclaration

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
    schema_mode: str = "strict"


class ExecutionReport(msgspec.Struct, frozen=True, kw_only=True):
    outputs: tuple[OutputWrite, ...]
    """The outputs written (in a dry run: the outputs that would be written)."""
    cached_views: tuple[str, ...]
    dry_run: bool = False
    skipped_outputs: tuple[str, ...] = ()
    """Declared outputs this run did not write (see ``findings``)."""
    findings: tuple[PolicyValidationIssue, ...] = ()
    """Why outputs were skipped (``EXECUTOR_UNAVAILABLE``, ``OUTPUT_SCHEMA_MISMATCH``):
    always errors, whatever the policy mode, since the outputs were not written."""
    executors_by_view: Mapping[str, str] = {}
    """The executor that ran each executed view."""

    @property
    def ok(self) -> bool:
        return not self.findings


def execute_plan(
    plan: ExecutionPlan, authority: ExecutionAuthorityContext, *, dry_run: bool = False
) -> ExecutionReport:
    """Execute the plan's output views and write them (see module docs)."""
    from deltalake import DeltaTable, write_deltalake

    check_contract_version("execution plan", plan.contract_version, EXECUTION_PLAN_CONTRACT_VERSION)
    check_contract_version("authority", authority.contract_version, AUTHORITY_CONTRACT_VERSION)
    semantic = authority.semantic_context
    manifest = semantic.manifest
    resolver = semantic.dataset_resolver
    ctx = semantic.session
    nodes = {node.name: node for node in plan.view_nodes}
    functions = authority.executor_functions
    unavailable = {
        node.name
        for node in plan.view_nodes
        if not node.executor_available
        or (node.executor != DATAFUSION_EXECUTOR and node.executor not in functions)
    }
    findings: list[PolicyValidationIssue] = []
    runnable: list[OutputBinding] = []
    for output in manifest.outputs:
        blockers = sorted(_ancestors({output.view}, nodes) & unavailable)
        if blockers:
            findings.append(_executor_finding(output, blockers, nodes))
        else:
            runnable.append(output)
    needed = _ancestors({out.view for out in runnable}, nodes)
    not_runnable = sorted(name for name in needed if nodes[name].status != "planned")
    if not_runnable:
        raise ReferenceImplError(
            ErrorCode.EXECUTION_FAILED,
            f"views {', '.join(not_runnable)} were not planned; nothing was written",
            file=manifest.source_path,
            subjects=tuple(not_runnable),
        )
    locations = semantic.output_locations
    # the data-source mode of the run around the resolver this stage was handed
    source = msgspec.structs.replace(semantic.data_source, resolver=resolver)
    for unit in plan.scan_units:
        if any(view in needed for view in unit.views):
            source.resolve(unit.dataset_name)  # fail closed before any write

    cached: list[str] = []
    ran: dict[str, str] = {}
    for view in manifest.views:
        if view.name not in needed:
            continue
        executor = nodes[view.name].executor
        try:
            if executor == DATAFUSION_EXECUTOR or dry_run:
                frame = ctx.sql(view.sql, options=query_only())
                if nodes[view.name].cache and not dry_run:
                    frame = frame.cache()
                    cached.append(view.name)
            else:
                frame = ctx.from_arrow(_run_executor(view, executor, plan, authority))
        except ReferenceImplError:
            raise
        except Exception as exc:
            raise _failed(
                ErrorCode.EXECUTION_FAILED, view.name, exc, manifest.source_path
            ) from None
        ctx.deregister_table(view.name)
        ctx.register_view(view.name, frame)
        if not dry_run:
            ran[view.name] = executor

    # Preflight: every output collected and checked before the first commit.
    data_by_view: dict[str, Any] = {}
    for output in runnable:
        if dry_run:
            schema = ctx.table(output.view).schema()
            nulls: list[str] = []
        else:
            if output.view not in data_by_view:
                try:
                    data_by_view[output.view] = ctx.table(output.view).to_arrow_table()
                except Exception as exc:
                    raise _failed(
                        ErrorCode.EXECUTION_FAILED, output.view, exc, manifest.source_path
                    ) from None
            data = data_by_view[output.view]
            schema = data.schema
            nulls = [name for name in data.column_names if data.column(name).null_count]
        exists, version, table_cols, error = read_table_columns(
            locations[output.name], store=_store(output, resolver), output=output.name
        )
        problems: tuple[str, ...] = (error,) if error else ()
        if exists and not error:
            problems = schema_problems(
                delta_columns(schema), table_cols, output.schema_mode, null_columns=nulls
            )
        if problems:
            findings.append(_schema_finding(output, locations[output.name], version, problems))
    if any(f.code == PolicyCode.OUTPUT_SCHEMA_MISMATCH for f in findings):
        return ExecutionReport(
            outputs=(),
            cached_views=tuple(cached),
            dry_run=dry_run,
            skipped_outputs=tuple(output.name for output in manifest.outputs),
            findings=tuple(findings),
            executors_by_view=ran,
        )

    written: list[OutputWrite] = []
    for output in runnable:
        version = None
        rows: int | None = None
        if not dry_run:
            store = _store(output, resolver)
            # on a store, a failed first write leaves no commit: its files are invisible
            created = None if store else _first_missing(Path(locations[output.name]))
            options = store_options(store) if store else None
            try:
                # a store dying mid-write makes object_store's upload task panic on its way
                # out ("Already shut down") and print that to fd 2: the coded error below
                # says what happened, so the panic text is held back and dropped
                with held_stderr() as held:
                    try:
                        write_deltalake(
                            locations[output.name],
                            data_by_view[output.view],
                            mode=output.mode,
                            schema_mode=(
                                None if output.schema_mode == "strict" else output.schema_mode
                            ),
                            storage_options=options,
                        )
                        table = DeltaTable(locations[output.name], storage_options=options)
                    except BaseException:
                        held.drop()
                        raise
                rows = _row_count(table)
                version = int(table.version())
            except Exception as exc:
                if store is None:
                    _remove_uncommitted(created, Path(locations[output.name]))
                committed = ", ".join(f"{w.name} (version {w.delta_version})" for w in written)
                note = f"already committed by this run: {committed}" if committed else ""
                coded = store and store_error(
                    exc,
                    store,
                    field_path=f"outputs.{output.name}.location",
                    subject=output.name,
                    doing=f"writing output {output.name!r}" + (f" ({note})" if note else ""),
                )
                if coded:
                    raise coded.with_file(manifest.source_path) from None
                raise _failed(
                    ErrorCode.OUTPUT_WRITE_FAILED,
                    output.name,
                    exc,
                    manifest.source_path,
                    note=note,
                ) from None
        written.append(
            OutputWrite(
                name=output.name,
                view=output.view,
                location=locations[output.name],
                mode=output.mode,
                delta_version=version,
                rows=rows,
                schema_mode=output.schema_mode,
            )
        )
    return ExecutionReport(
        outputs=tuple(written),
        cached_views=tuple(cached),
        dry_run=dry_run,
        skipped_outputs=tuple(output.name for output in manifest.outputs if output not in runnable),
        findings=tuple(findings),
        executors_by_view=ran,
    )


def _run_executor(
    view: SemanticView, executor: str, plan: ExecutionPlan, authority: ExecutionAuthorityContext
) -> Any:
    """Run ``view`` on the Python executor ``executor``: its inputs in, an Arrow table out."""
    import pyarrow as pa

    ctx = authority.semantic_context.session
    source = authority.semantic_context.manifest.source_path
    inputs = MappingProxyType({name: ctx.table(name).to_arrow_table() for name in view.depends_on})
    try:
        result = authority.executor_functions[executor](inputs)
    except (Exception, SystemExit) as exc:
        raise _failed(
            ErrorCode.EXECUTION_FAILED,
            view.name,
            exc,
            source,
            note=f"executor {executor!r} raised {type(exc).__name__}",
        ) from None
    if not isinstance(result, pa.Table):
        try:
            result = pa.table(result)
        except Exception:
            raise _coded(
                ErrorCode.EXECUTION_FAILED,
                view.name,
                f"executor {executor!r} returned a {type(result).__name__}, not a pyarrow.Table",
                source,
            ) from None
    declared = [field.name for field in plan.plan_bundles_by_view[view.name].schema]
    if sorted(result.column_names) != sorted(declared):
        raise _coded(
            ErrorCode.EXECUTION_FAILED,
            view.name,
            f"executor {executor!r} returned columns {result.column_names}, but the view's "
            f"SQL declares {declared}",
            source,
        )
    return result.select(declared)


def _executor_finding(
    output: OutputBinding, blockers: list[str], nodes: Mapping[str, Any]
) -> PolicyValidationIssue:
    named = ", ".join(f"{name!r} (executor {nodes[name].executor!r})" for name in blockers)
    return PolicyValidationIssue(
        code=PolicyCode.EXECUTOR_UNAVAILABLE,
        severity="error",
        subject=output.name,
        subject_kind="output",
        message=f"not written: view {output.view!r} needs {named}, and this run has no such "
        "executor; no other engine runs a view in its place",
        field_path=f"views.{blockers[0]}.executor",
    )


def _schema_finding(
    output: OutputBinding, location: str, version: int | None, problems: tuple[str, ...]
) -> PolicyValidationIssue:
    return PolicyValidationIssue(
        code=PolicyCode.OUTPUT_SCHEMA_MISMATCH,
        severity="error",
        subject=output.name,
        subject_kind="output",
        message=f"writing view {output.view!r} to the Delta table at {location} "
        f"(version {version}) with schema_mode = {output.schema_mode!r} would fail: "
        f"{'; '.join(problems)}; no output was written ({SCHEMA_MODE_HINT})",
        field_path=f"outputs.{output.name}.schema_mode",
    )


def _store(output: OutputBinding, resolver: Any) -> StoreDeclaration | None:
    """The store ``output`` is written to (None: a local path)."""
    return None if output.store is None else resolver.stores[output.store]


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


def _failed(
    code: ErrorCode, subject: str, exc: BaseException, file: str, *, note: str = ""
) -> ReferenceImplError:
    found = store_failure(exc)
    if found is not None:  # an object store failed under the engine: say which way
        store_code, reason = found
        return ReferenceImplError(
            store_code,
            f"{subject!r}: an object store failed ({reason})" + (f" ({note})" if note else ""),
            file=file,
            field_path=f"{_FIELD_SECTION[code]}.{subject}",
            subjects=(subject,),
        )
    text = _PY_TRACEBACK.sub("", str(exc)).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    first = first.split(", traceback: ", 1)[0]  # an embedded traceback left unparsed
    return _coded(code, subject, f"{first} ({note})" if note else first, file)


def _coded(code: ErrorCode, subject: str, message: str, file: str) -> ReferenceImplError:
    return ReferenceImplError(
        code,
        f"{subject!r}: {message}",
        file=file,
        field_path=f"{_FIELD_SECTION[code]}.{subject}",
        subjects=(subject,),
    )
