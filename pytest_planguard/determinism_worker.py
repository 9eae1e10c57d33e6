"""``python -m pytest_planguard.determinism_worker MANIFEST [--adapter SPEC]
[--session MODULE:FACTORY] [--trust-module MODULE ...]
[--plan-cache DIR --sample-seed N --strength RxP] [--output FILE] [--nice N]``.

Runs compile -> plan -> validate once with the given adapter and prints the fingerprints
as JSON on stdout, or with ``--output`` writes them (or the error) to FILE, atomically
(:mod:`pytest_planguard.determinism_processes`); the determinism check starts one per
PYTHONHASHSEED value, at a lower priority (``--nice``), so that it takes the cores the
gate leaves idle rather than slowing the gate down.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_planguard.adapter import PipelineAdapter, PipelineFingerprints, load_adapter
from pytest_planguard.determinism_processes import fingerprints_to_json, write_result
from pytest_planguard.invariants import fingerprints_once


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_planguard.determinism_worker")
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--session", default=None, help="a session factory, MODULE:FACTORY")
    parser.add_argument("--trust-module", action="append", default=[])
    parser.add_argument("--plan-cache", type=Path, default=None, help="incremental check")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--strength", default="", help="the check's runs x processes")
    parser.add_argument("--output", type=Path, default=None, help="write the result here")
    parser.add_argument("--nice", type=int, default=0, help="lower this process's priority")
    args = parser.parse_args(argv)
    if args.nice > 0 and hasattr(os, "nice"):  # before any planning (POSIX only)
        os.nice(args.nice)

    try:
        fingerprints = _fingerprints(args)
    except Exception as exc:  # the parent shows this line in its ADAPTER_ERROR
        render = getattr(exc, "render", None)
        line = render() if callable(render) else f"{type(exc).__name__}: {exc}"
        sys.stderr.write(line + "\n")
        if args.output is not None:
            write_result(args.output, fingerprints=None, error=line)
        return 2
    if args.output is not None:
        write_result(args.output, fingerprints=fingerprints, error="")
    else:
        sys.stdout.write(fingerprints_to_json(fingerprints))
    return 0


def _fingerprints(args: argparse.Namespace) -> PipelineFingerprints:
    adapter: PipelineAdapter
    if args.session:
        from pytest_planguard.session_adapter import SessionAdapter

        adapter = SessionAdapter(args.session)
    else:
        # the parent's allowlist, passed explicitly (PLANGUARD_TRUSTED_MODULES is not read)
        adapter = load_adapter(args.adapter, trusted_modules=args.trust_module)
    with_cache = getattr(adapter, "with_plan_cache", None)
    if args.plan_cache is not None and with_cache is not None:
        from pytest_planguard.determinism_processes import Incremental

        incremental = Incremental(args.plan_cache, args.sample_seed, args.strength)
        adapter = with_cache(incremental.cache())
    return fingerprints_once(adapter, args.manifest)


if __name__ == "__main__":
    raise SystemExit(main())
