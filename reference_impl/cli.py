"""The reference pipeline's commands: ``schema``, ``compile``, ``validate``, ``run``.

They are mounted on the ``planguard`` command (``pytest_planguard.cli``, which adds its
own ``diff``) by :func:`register_commands`, the way HypoFuzz mounts ``fuzz`` on
Hypothesis' command line.  Each command drives the one stage chain of
:mod:`reference_impl.pipeline`.  This module also holds what every ``planguard`` command
shares: the parser that reports ``error[USAGE]`` (:class:`CodedParser`) and the guard that
turns whatever a command raises into one coded line (:func:`run_command`).

Exit codes everywhere: 0 clean (warnings allowed), 1 findings (policy errors, gate
failures), 2 bad input or usage.  Errors print ``error[CODE] file: field.path: message``
on stderr and never a traceback (set ``PLANGUARD_DEBUG=1`` to see one for an internal
error).  ``--json`` output carries a ``code`` on every issue.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from reference_impl.errors import CodedError, ErrorCode

if TYPE_CHECKING:
    from reference_impl.execution import ExecutionReport
    from reference_impl.relspec.contracts import PolicyValidationResult

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2

Handler = Callable[[argparse.Namespace], int]


class TrustSource(Protocol):
    """Where a command's trusted modules come from (granted by whoever runs it, never by
    the manifest).  ``pytest_planguard.trust`` is one: the plugin decides the sources."""

    def is_module_name(self, value: str) -> bool:
        """Whether ``--trust-module VALUE`` names a module."""

    def granted_on_command_line(self, given: Iterable[str]) -> tuple[str, ...]:
        """The allowlist for a run given the ``--trust-module`` values."""


class CodedParser(argparse.ArgumentParser):
    """argparse that exits 2 with an ``error[USAGE]`` line."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"error[{ErrorCode.USAGE}] {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def register_commands(sub: argparse._SubParsersAction[Any], *, trust: TrustSource) -> None:
    """Add ``schema``, ``compile``, ``validate`` and ``run`` to a ``planguard`` parser.

    Each sets ``handler`` (run it with :func:`run_command`)."""
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the manifest format",
        description="Print the JSON Schema of manifest format v1.",
    )
    schema.add_argument(
        "--issues",
        action="store_true",
        help="print the JSON Schema of one issue of the commands' --json output instead",
    )
    schema.set_defaults(handler=_schema)

    init = sub.add_parser(
        "init",
        help="write a starter manifest.toml and pytest.ini for the tables in DIR",
        description="Find the Delta tables and Parquet datasets under DIR (at most 4 levels "
        "down) and write DIR/manifest.toml (a dataset and a starter view per table, "
        "[policy.delta_support] from the tables' own protocols) and DIR/pytest.ini (the "
        "gate on it). Never overwrites: when either file exists nothing is written (exit 2).",
    )
    init.add_argument("directory", metavar="DIR")
    init.set_defaults(handler=_init)

    compile_ = sub.add_parser(
        "compile",
        help="compile a manifest; print its views in topological order",
        description="Load and semantically compile MANIFEST (engine-free). With --plan, also "
        "build the DataFusion session and print the execution plan contract.",
    )
    compile_.add_argument("manifest", metavar="MANIFEST", help="manifest file or directory")
    compile_.add_argument("--json", action="store_true", help="print JSON")
    compile_.add_argument(
        "--plan", action="store_true", help="also compile the execution plan (uses DataFusion)"
    )
    add_trust_option(compile_, trust)
    compile_.set_defaults(handler=_compile)

    validate = sub.add_parser(
        "validate",
        help="plan a manifest and check its policies",
        description="Compile and plan MANIFEST, then validate policies. Exit 0 when clean or "
        "only warnings, 1 on policy errors, 2 on bad input.",
    )
    validate.add_argument("manifest", metavar="MANIFEST")
    validate.add_argument("--json", action="store_true", help="print the validation artifact")
    validate.add_argument(
        "--mode",
        choices=("error", "warn", "ignore"),
        help="override policy.mode (rollout switch: warn reports errors as warnings)",
    )
    add_trust_option(validate, trust)
    validate.set_defaults(handler=_validate)

    run = sub.add_parser(
        "run",
        help="compile, plan, validate and execute; write the declared outputs",
        description="Run the pipeline once: one compile, plan, validation, then execution "
        "writing every declared output to Delta. Nothing is executed when validation fails.",
    )
    run.add_argument("manifest", metavar="MANIFEST")
    run.add_argument("--json", action="store_true")
    run.add_argument("--mode", choices=("error", "warn", "ignore"))
    add_trust_option(run, trust)
    run.set_defaults(handler=_run)


def add_trust_option(parser: argparse.ArgumentParser, trust: TrustSource) -> None:
    def module_name(value: str) -> str:
        if not trust.is_module_name(value):
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a module name (expected e.g. 'my_pkg' or 'my_pkg.udfs')"
            )
        return value

    parser.add_argument(
        "--trust-module",
        action="append",
        default=[],
        type=module_name,
        metavar="MODULE",
        help="allow UDF providers and the bootstrap hook to be imported from MODULE and "
        "below (repeatable; adds to PLANGUARD_TRUSTED_MODULES, comma-separated). Modules "
        "next to the manifest and reference_impl are always allowed; a manifest cannot "
        "grant trust itself",
    )
    parser.set_defaults(trust=trust)


def _trusted_modules(args: argparse.Namespace) -> tuple[str, ...]:
    source: TrustSource = args.trust
    return source.granted_on_command_line(args.trust_module)


# ---------------------------------------------------------------------- the guard


def run_command(handler: Handler, args: argparse.Namespace) -> int:
    """Run one command; whatever it raises becomes one ``error[CODE]`` line, never a
    traceback: a coded error its own code (exit 2), Ctrl-C ``INTERRUPTED``, anything else
    ``INTERNAL_ERROR`` (a bug; ``PLANGUARD_DEBUG=1`` shows the traceback)."""
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(f"error[{ErrorCode.INTERRUPTED}] interrupted", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader went away (`planguard compile ... | head`): stop quietly, and keep
        # the interpreter's final flush of stdout from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        # Exception, and also what is not one: an engine panic (pyo3's PanicException)
        # or a provider's own BaseException subclass; none is shown as a traceback.
        return _report_exception(exc, getattr(args, "json", False))


def _report_exception(exc: BaseException, as_json: bool) -> int:
    if isinstance(exc, CodedError):
        from reference_impl.issues import display_path, from_error

        file = getattr(exc, "file", None)
        if isinstance(file, str) and file:
            exc.file = display_path(file)  # type: ignore[attr-defined]  # one path style
        print(exc.render(), file=sys.stderr)
        if as_json:
            # ``error`` is the error's own record; ``issues`` the shape every command shares
            emit({"ok": False, "error": exc.to_dict(), "issues": [from_error(exc)]})
        return EXIT_BAD_INPUT
    if os.environ.get("PLANGUARD_DEBUG"):
        traceback.print_exc()
    print(
        f"error[{ErrorCode.INTERNAL_ERROR}] {type(exc).__name__}: {exc} "
        "(a bug in planguard; rerun with PLANGUARD_DEBUG=1 for the traceback)",
        file=sys.stderr,
    )
    return EXIT_BAD_INPUT


def emit(payload: Any) -> None:
    """``payload`` as indented JSON with sorted keys on stdout."""
    import msgspec

    sys.stdout.write(msgspec.json.format(msgspec.json.encode(payload, order="sorted")).decode())
    sys.stdout.write("\n")


# ------------------------------------------------------------------- the commands


def _init(args: argparse.Namespace) -> int:
    from reference_impl.scaffold import scaffold_project

    done = scaffold_project(Path(args.directory))
    for dataset in done.datasets:
        print(f"dataset {dataset.name}: {dataset.format} at {dataset.location}")
    print(f"wrote {done.manifest} and {done.pytest_ini}")
    print(f"next: planguard validate {done.manifest}")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from reference_impl.issues import issue_json_schema
    from reference_impl.schema import manifest_json_schema

    emit(issue_json_schema() if args.issues else manifest_json_schema())
    return EXIT_OK


def _compile(args: argparse.Namespace) -> int:
    import msgspec

    from reference_impl.issues import display_path
    from reference_impl.pipeline import PipelineOptions, PipelineState, run_stages

    # load and compile only (engine-free); --plan carries on to the execution plan
    if args.plan:
        options = PipelineOptions(trusted_modules=_trusted_modules(args))
        state = run_stages(PipelineState(args.manifest, options), last="execution_plan")
    else:
        state = run_stages(PipelineState(args.manifest), last="compile")
    manifest = state.program
    assert manifest is not None
    summary: dict[str, Any] = {
        "manifest_version": manifest.manifest_version,
        "semantic_contract_version": manifest.semantic_contract_version,
        "project": manifest.project_name,
        "fingerprint": manifest.fingerprint,
        "fingerprints": {
            # semantics only (datasets, views, outputs, UDF declarations)
            "semantic": manifest.fingerprint,
            # the declared rest: [runtime], [policy], [project], [executors]
            "runtime_policy": manifest.runtime_policy_fingerprint,
        },
        "views": [
            {
                "name": view.name,
                "depends_on": list(view.depends_on),
                "view_dependencies": list(view.view_dependencies),
                "dataset_dependencies": list(view.dataset_dependencies),
                "declared_udfs": list(view.declared_udfs),
                "executor": view.executor,
            }
            for view in manifest.views
        ],
        "datasets": [
            {"name": b.name, "format": b.format, "location": b.declared_location}
            for b in manifest.dataset_bindings.bindings.values()
        ],
        "outputs": [
            {"name": o.name, "view": o.view, "location": o.declared_location, "mode": o.mode}
            for o in manifest.outputs
        ],
        "udfs": [{"name": u.name, "provider": u.provider} for u in manifest.udfs],
        # stores: secrets by the names of their environment variables, never a value
        "storage": [
            {"name": s.name, "url": s.url, "options": dict(s.options), "secrets": dict(s.secrets)}
            for s in manifest.dataset_bindings.stores.values()
        ],
        "issues": [],  # compile has no findings: bad input is an error (exit 2)
    }
    if args.plan:
        assert state.authority is not None
        summary["execution_plan"] = msgspec.to_builtins(state.plan)
        summary["capabilities"] = msgspec.to_builtins(state.authority.capabilities)
        # the session's effective runtime/policy fingerprint (settings as the engine has them)
        summary["fingerprints"]["runtime"] = state.authority.runtime_fingerprint
    if args.json:
        emit(summary)
        return EXIT_OK
    print(
        f"manifest {display_path(manifest.source_path)}: {len(manifest.views)} views, "
        f"{len(manifest.dataset_bindings.bindings)} datasets, fingerprint {manifest.fingerprint} "
        f"(runtime/policy {manifest.runtime_policy_fingerprint})"
    )
    for view in manifest.views:
        print(f"  {view.name} <- {', '.join(view.depends_on) or '(nothing)'}")
    if args.plan:
        plan_summary = summary["execution_plan"]
        print(
            f"execution plan: {len(plan_summary['view_nodes'])} view nodes, "
            f"{len(plan_summary['scan_units'])} scan units, "
            f"fingerprint {plan_summary['fingerprint']}"
        )
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from reference_impl.pipeline import plan_pipeline

    planned = plan_pipeline(args.manifest, mode=args.mode, trusted_modules=_trusted_modules(args))
    return _print_validation(planned.validation, args.json, planned.program.source_path)


def _print_validation(
    result: PolicyValidationResult,
    as_json: bool,
    manifest: str,
    execution: ExecutionReport | None = None,
) -> int:
    import msgspec

    from reference_impl.issues import display_path, from_finding

    # a run that skipped outputs has findings too
    ok = result.ok and (execution is None or execution.ok)
    code = EXIT_OK if ok else EXIT_FINDINGS
    if as_json:
        findings = (*result.issues, *(execution.findings if execution is not None else ()))
        payload = {
            "ok": ok,
            "validation": msgspec.to_builtins(result.artifact()),
            "issues": [from_finding(finding, manifest) for finding in findings],
        }
        if execution is not None:
            payload["execution"] = msgspec.to_builtins(execution)
        emit(payload)
        return code
    for issue in result.issues:
        print(
            f"{issue.severity}[{issue.code}] {issue.subject_kind} {issue.subject}: {issue.message}"
        )
    errors = len(result.errors)
    print(
        f"{display_path(manifest)}: {len(result.issues)} finding(s), {errors} error(s) "
        f"(mode {result.mode}); "
        f"runtime {result.runtime_hash[:16]}"
    )
    return code


def _run(args: argparse.Namespace) -> int:
    from reference_impl.pipeline import run_pipeline

    run = run_pipeline(
        args.manifest, execute=True, mode=args.mode, trusted_modules=_trusted_modules(args)
    )
    code = _print_validation(
        run.validation, args.json, run.planned.program.source_path, run.execution
    )
    if not args.json:
        if run.execution is None:
            print("nothing executed: validation failed")
        else:
            for issue in run.execution.findings:  # outputs not written, whatever the mode
                print(f"error[{issue.code}] output {issue.subject}: {issue.message}")
            for out in run.execution.outputs:
                print(
                    f"wrote {out.name} ({out.rows} rows, {out.mode}) -> {out.location} "
                    f"version {out.delta_version}"
                )
    return code
