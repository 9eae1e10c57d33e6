"""The ``planguard`` command line: the reference pipeline's commands, plus ``diff``,
``explain`` and ``report merge``.

``schema``, ``compile``, ``validate`` and ``run`` belong to the reference pipeline and are
mounted from :mod:`reference_impl.cli`; this module adds what belongs to the gate
(``diff``, ``explain``, ``report merge``) and the trust sources the plugin grants
(``pytest_planguard.trust``).

Exit codes everywhere: 0 clean (warnings allowed), 1 findings (policy errors, gate
failures), 2 bad input or usage.  Errors print ``error[CODE] file: field.path: message``
on stderr and never a traceback (set ``PLANGUARD_DEBUG=1`` to see one for an internal
error).  ``--json`` output carries a ``code`` on every issue.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pytest_planguard import trust
from pytest_planguard.gate.policy import add_gate_options
from reference_impl.cli import CodedParser, add_trust_option, register_commands, run_command

_DESCRIPTION = """\
Compile, plan, validate and run DataFusion + Delta Lake pipelines described by a manifest
(format v1, TOML or JSON), and compare plan-bundle snapshot trees.

exit codes: 0 clean (warnings allowed), 1 findings (policy errors, gate failures),
2 bad input or usage.  Errors print `error[CODE] file: field.path: message`."""


_MERGE_DESCRIPTION = """\
Combine the JSON reports of the shards of one split gate run, e.g.

  pytest --planguard --splits 2 --group 1 --planguard-report s1.json
  pytest --planguard --splits 2 --group 2 --planguard-report s2.json
  planguard report merge s1.json s2.json -o all.json --html all.html

The merged report has the union of the items and their findings, the summary recomputed
from them, and the unused snapshots of every target whose items the shards ran together
(a shard alone reports none for a target it ran only part of; the merge deletes nothing).

Refused (exit 2): a file that is missing, not JSON or not a gate report (REPORT_INVALID);
reports of another schema_version, planguard or engine version, configuration or
checkout (REPORT_MERGE_INCOMPATIBLE); an item in two reports with different results
(REPORT_MERGE_CONFLICT).  Exit 1: failed items, unused snapshots (unless --warn-unused),
or a target with items that ran in no report (REPORT_MERGE_INCOMPLETE, unless
--allow-partial: a shard that crashed or was not merged).  Exit 0 otherwise."""


def build_parser() -> argparse.ArgumentParser:
    parser = CodedParser(
        prog="planguard",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CodedParser)
    sub.required = True
    register_commands(sub, trust=trust)

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
    diff.add_argument(
        "--html",
        metavar="PATH",
        help="also write a self-contained HTML report of the changes (base/head side by side)",
    )
    diff.add_argument(
        "--summary",
        action="store_true",
        help="print the changed snapshots grouped by the planner stage where they first "
        "diverged (an engine upgrade as a handful of causes), without the diffs",
    )
    add_gate_options(
        diff.add_argument,
        prefix="",
        aliases=("--policy",),
        extra=", new, removed; default fail, cosmetic warn",
    )
    diff.set_defaults(handler=_diff)

    report = sub.add_parser(
        "report",
        help="work with the gate's JSON reports (merge the shards of a split suite)",
        description="Work with the JSON reports of pytest --planguard --planguard-report.",
    )
    report_sub = report.add_subparsers(
        dest="report_command", metavar="SUBCOMMAND", parser_class=CodedParser
    )
    report_sub.required = True
    merge = report_sub.add_parser(
        "merge",
        help="combine the JSON reports of a split suite's shards into one",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_MERGE_DESCRIPTION,
    )
    merge.add_argument("reports", metavar="REPORT.json", nargs="+")
    merge.add_argument(
        "-o", "--output", metavar="PATH", required=True, help="where to write the merged report"
    )
    merge.add_argument(
        "--html", metavar="PATH", help="also write the merged HTML report (as --planguard-html)"
    )
    merge.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 although the reports did not run every item of every target",
    )
    merge.add_argument(
        "--warn-unused",
        action="store_true",
        help="report unused snapshots without failing (as --snapshot-warn-unused)",
    )
    merge.set_defaults(handler=_report_merge)

    explain = sub.add_parser(
        "explain",
        help="print one view's plan bundle as its snapshot would hold it",
        description="Plan TARGET (a dry run) and print VIEW's plan bundle exactly as the "
        "gate's snapshot would hold it: normalized, with its header. TARGET is a manifest, "
        "or package.module:factory, a zero-argument function returning a "
        "datafusion.SessionContext (as in planguard_sessions). Exit 0, or 2 for bad input "
        "(an unknown view names the closest one).",
    )
    explain.add_argument(
        "manifest", metavar="TARGET", help="a manifest path, or package.module:factory"
    )
    explain.add_argument("view", metavar="VIEW")
    explain.add_argument(
        "--section",
        choices=("P0", "P1", "P2", "schema", "signals"),
        help="print only this section (P0 logical, P1 optimized, P2 physical, schema, signals)",
    )
    add_trust_option(explain, trust)
    explain.set_defaults(handler=_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.handler, args)


def _explain(args: argparse.Namespace) -> int:
    from pytest_planguard.explain import run_explain

    return run_explain(
        args.manifest,
        args.view,
        section=args.section,
        trusted_modules=trust.granted_on_command_line(args.trust_module),
    )


def _report_merge(args: argparse.Namespace) -> int:
    from pytest_planguard.report_cli import run_merge

    return run_merge(
        args.reports,
        output=args.output,
        html=args.html,
        allow_partial=args.allow_partial,
        warn_unused=args.warn_unused,
    )


def _diff(args: argparse.Namespace) -> int:
    from pytest_planguard.diff_cli import run_diff

    return run_diff(
        args.base,
        args.head,
        policies=args.gate,
        as_json=args.json,
        html=args.html,
        summary_only=args.summary,
    )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
