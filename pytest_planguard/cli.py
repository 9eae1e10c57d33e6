"""The ``planguard`` command line: schema, compile, validate, run, diff.

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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from pytest_planguard.gate.policy import add_gate_options

if TYPE_CHECKING:
    from reference_impl.relspec.contracts import PolicyValidationResult

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2

_DESCRIPTION = """\
Compile, plan, validate and run DataFusion + Delta Lake pipelines described by a manifest
(format v1, TOML or JSON), and compare plan-bundle snapshot trees.

exit codes: 0 clean (warnings allowed), 1 findings (policy errors, gate failures),
2 bad input or usage.  Errors print `error[CODE] file: field.path: message`."""


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with an ``error[USAGE]`` line."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"error[USAGE] {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="planguard",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sub.add_parser(
        "schema",
        help="print the JSON Schema of the manifest format",
        description="Print the JSON Schema of manifest format v1.",
    )

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
    _add_trust(compile_)

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
    _add_trust(validate)

    run = sub.add_parser(
        "run",
        help="compile, plan, validate and execute; write the declared outputs",
        description="Run the pipeline once: one compile, plan, validation, then execution "
        "writing every declared output to Delta. Nothing is executed when validation fails.",
    )
    run.add_argument("manifest", metavar="MANIFEST")
    run.add_argument("--json", action="store_true")
    run.add_argument("--mode", choices=("error", "warn", "ignore"))
    _add_trust(run)

    diff = sub.add_parser(
        "diff",
        help="compare two plan-bundle snapshot trees",
        description="Compare the *.plan snapshots under BASE_DIR and HEAD_DIR (for example "
        "before and after a DataFusion upgrade), classify each change like the gate does, and "
        "exit 1 when the gate policy fails any of them.",
    )
    diff.add_argument("base", metavar="BASE_DIR")
    diff.add_argument("head", metavar="HEAD_DIR")
    diff.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_gate_options(
        diff.add_argument,
        prefix="",
        aliases=("--policy",),
        extra=", new, removed; default fail, cosmetic warn",
    )
    return parser


def _add_trust(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-module",
        action="append",
        default=[],
        type=_module_name,
        metavar="MODULE",
        help="allow UDF providers and the bootstrap hook to be imported from MODULE and "
        "below (repeatable; adds to PLANGUARD_TRUSTED_MODULES, comma-separated). Modules "
        "next to the manifest and reference_impl are always allowed; a manifest cannot "
        "grant trust itself",
    )


def _module_name(value: str) -> str:
    from pytest_planguard.trust import is_module_name

    if not is_module_name(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a module name (expected e.g. 'my_pkg' or 'my_pkg.udfs')"
        )
    return value


def _trusted_modules(args: argparse.Namespace) -> tuple[str, ...]:
    """``--trust-module`` values plus ``PLANGUARD_TRUSTED_MODULES``."""
    from pytest_planguard.trust import parse_trusted_modules, trusted_from_environment

    given = parse_trusted_modules(args.trust_module, source="--trust-module")
    return tuple(sorted({*given, *trusted_from_environment()}))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "schema": _schema,
        "compile": _compile,
        "validate": _validate,
        "run": _run,
        "diff": _diff,
    }
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("error[INTERRUPTED] interrupted", file=sys.stderr)
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
    from pytest_planguard.errors import PlanguardError
    from reference_impl.errors import ReferenceImplError

    if isinstance(exc, ReferenceImplError | PlanguardError):
        print(exc.render(), file=sys.stderr)
        if as_json:
            _emit({"ok": False, "error": exc.to_dict()})
        return EXIT_BAD_INPUT
    if os.environ.get("PLANGUARD_DEBUG"):
        traceback.print_exc()
    print(
        f"error[INTERNAL_ERROR] {type(exc).__name__}: {exc} "
        "(a bug in planguard; rerun with PLANGUARD_DEBUG=1 for the traceback)",
        file=sys.stderr,
    )
    return EXIT_BAD_INPUT


def _emit(payload: Any) -> None:
    import msgspec

    sys.stdout.write(msgspec.json.format(msgspec.json.encode(payload, order="sorted")).decode())
    sys.stdout.write("\n")


def _schema(args: argparse.Namespace) -> int:
    from pytest_planguard.schema import manifest_json_schema

    _emit(manifest_json_schema())
    return EXIT_OK


def _compile(args: argparse.Namespace) -> int:
    import msgspec

    from reference_impl.semantics.compile import compile_semantic_program
    from reference_impl.semantics.load import load_manifest

    manifest = compile_semantic_program(load_manifest(args.manifest))
    summary: dict[str, Any] = {
        "manifest_version": manifest.manifest_version,
        "semantic_contract_version": manifest.semantic_contract_version,
        "project": manifest.project_name,
        "fingerprint": manifest.fingerprint,
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
    }
    if args.plan:
        from reference_impl.engine.runtime import build_runtime_profile
        from reference_impl.engine.session import build_semantic_execution_context
        from reference_impl.relspec.authority import build_execution_authority
        from reference_impl.relspec.execution_plan import compile_execution_plan

        profile = build_runtime_profile(manifest, trusted_modules=_trusted_modules(args))
        authority = build_execution_authority(build_semantic_execution_context(manifest, profile))
        plan = compile_execution_plan(authority)
        summary["execution_plan"] = msgspec.to_builtins(plan)
        summary["capabilities"] = msgspec.to_builtins(authority.capabilities)
    if args.json:
        _emit(summary)
        return EXIT_OK
    print(
        f"manifest {args.manifest}: {len(manifest.views)} views, "
        f"{len(manifest.dataset_bindings.bindings)} datasets, fingerprint {manifest.fingerprint}"
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
    from reference_impl.pipeline import run_pipeline

    result = run_pipeline(
        args.manifest, execute=False, mode=args.mode, trusted_modules=_trusted_modules(args)
    ).validation
    return _print_validation(result, args.json, args.manifest)


def _print_validation(
    result: PolicyValidationResult,
    as_json: bool,
    manifest: str,
    extra: Any = None,
    *,
    executed_ok: bool = True,
) -> int:
    import msgspec

    ok = result.ok and executed_ok  # a run that skipped outputs has findings too
    code = EXIT_OK if ok else EXIT_FINDINGS
    if as_json:
        payload = {"ok": ok, "validation": msgspec.to_builtins(result.artifact())}
        if extra is not None:
            payload["execution"] = extra
        _emit(payload)
        return code
    for issue in result.issues:
        print(
            f"{issue.severity}[{issue.code}] {issue.subject_kind} {issue.subject}: {issue.message}"
        )
    errors = len(result.errors)
    print(
        f"{manifest}: {len(result.issues)} finding(s), {errors} error(s) (mode {result.mode}); "
        f"runtime {result.runtime_hash[:16]}"
    )
    return code


def _run(args: argparse.Namespace) -> int:
    import msgspec

    from reference_impl.pipeline import run_pipeline

    run = run_pipeline(
        args.manifest, execute=True, mode=args.mode, trusted_modules=_trusted_modules(args)
    )
    execution = msgspec.to_builtins(run.execution) if run.execution is not None else None
    executed_ok = run.execution is None or run.execution.ok
    code = _print_validation(
        run.validation, args.json, args.manifest, extra=execution, executed_ok=executed_ok
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


def _diff(args: argparse.Namespace) -> int:
    from pytest_planguard.diff_cli import run_diff

    return run_diff(args.base, args.head, policies=args.gate, as_json=args.json)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
