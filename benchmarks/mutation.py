"""Mutation testing of the modules whose mistakes are silent (issue 20), with mutmut 3.

    pip install mutmut==3.8.1          # once; also in the dev extras
    python benchmarks/mutation.py      # from the repository root of a fresh clone

mutmut copies the source and the tests into ``./mutants``, runs the test selection of
``[tool.mutmut]`` in pyproject.toml once to learn which test calls which function, then
runs, for each mutant, only the tests that called its function.  This script asks it for
the mutants of the functions in scope (``MODULES`` below) and prints, per module,
killed / (total - equivalent).  Mutants judged equivalent are listed, each with its
reason, in ``benchmarks/mutation_equivalents.toml``; an entry whose mutant no longer
makes the recorded change is reported as stale and not subtracted.

Options: ``--module NAME`` (repeatable) runs only some modules; ``--score-only`` prints
the scores of the last run in ./mutants without running anything; ``--survivors`` lists
every surviving mutant with its diff; ``--keep`` reuses ./mutants (mutmut then reruns
only what changed) instead of starting afresh; ``--max-children N`` (default 2).

Not part of CI: a full run takes tens of minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "benchmarks" / "mutation_equivalents.toml"
PINNED = "mutmut==3.8.1"


@dataclass(frozen=True)
class Scope:
    """The functions of one source file that a module's score counts (fnmatch patterns on
    mutmut's function keys: ``x_name`` for a function, ``xǁClassǁname`` for a method)."""

    path: str
    functions: tuple[str, ...] = ("*",)

    @property
    def dotted(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")

    def globs(self) -> list[str]:
        return [f"{self.dotted}.{pattern}__mutmut_*" for pattern in self.functions]

    def covers(self, mutant: str) -> bool:
        return any(fnmatch(mutant, glob) for glob in self.globs())


MODULES: dict[str, tuple[Scope, ...]] = {
    "classify": (Scope("pytest_planguard/gate/classify.py"),),
    "normalize": (Scope("pytest_planguard/gate/normalize.py"),),
    "invariants": (
        Scope(
            "pytest_planguard/invariants.py",
            (
                # the compile counter
                "xǁCompileCounterǁ*",
                # the resolver spy
                "xǁResolverSpyǁ*",
                "x__record",
                "x_parse_stage",
                # the determinism comparison
                "xǁDeterminismReportǁ*",
                "x_check_determinism",
                "x__first_difference",
                "x__fields",
            ),
        ),
        Scope(
            "pytest_planguard/determinism_processes.py",
            ("xǁDeterminismProcessesǁmatches", "x__hash_seeds"),
        ),
    ),
    "policy_validation": (Scope("reference_impl/relspec/policy_validation.py"),),
    "cost_limit": (Scope("pytest_planguard/config.py", ("xǁCostLimitǁ*", "x__cost_limit")),),
    "location_rules": (
        Scope(
            "reference_impl/engine/data_source.py",
            (
                "x__stat_location",
                "x__check_delta_location",
                "x__survey_directory",
                "x__check_parquet_location",
                "x__delta_ancestor",
                "xǁ_ParquetWalkǁ*",
                "x__check_delta_files",
                "x__local_path",
                "x__inside",
                "x__kind",
            ),
        ),
    ),
    "trust": (
        Scope("pytest_planguard/trust.py"),
        Scope("reference_impl/engine/trusted_import.py"),
    ),
    "snapshot_writer": (Scope("pytest_planguard/gate/snapshot.py"),),
    "unused_snapshots": (
        Scope(
            "pytest_planguard/gate/state.py",
            ("xǁGateStateǁ_complete_manifests", "xǁGateStateǁ_unused_snapshots"),
        ),
    ),
}

KILLED = {"killed", "timeout", "caught by type check", "segfault"}
SURVIVED = {"survived", "no tests", "suspicious"}


@dataclass(frozen=True)
class Equivalent:
    mutant: str
    change: str
    reason: str


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(MODULES), default=[])
    parser.add_argument("--score-only", action="store_true")
    parser.add_argument("--survivors", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--max-children", type=int, default=2)
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    try:
        import mutmut
    except ImportError:
        print(f"mutmut is not installed: pip install {PINNED}", file=sys.stderr)
        return 2
    if not mutmut.__version__.startswith("3."):
        print(f"mutmut {mutmut.__version__} found; this needs {PINNED}", file=sys.stderr)
        return 2
    names = args.module or sorted(MODULES)
    if not args.score_only:
        installed = _installed_checkout()
        if installed is not None and installed != ROOT:
            print(
                f"note: pytest_planguard is installed from {installed}, not {ROOT}: tests "
                "that start a fresh interpreter with their own PYTHONPATH run that copy",
                file=sys.stderr,
            )
        if not args.keep:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        globs = [glob for name in names for scope in MODULES[name] for glob in scope.globs()]
        started = time.monotonic()
        command = [sys.executable, "-m", "mutmut", "run", f"--max-children={args.max_children}"]
        done = subprocess.run([*command, *globs], check=False)
        print(f"\nmutmut run: exit {done.returncode}, {time.monotonic() - started:.0f} s")
    return report(names, survivors=args.survivors)


def report(names: list[str], *, survivors: bool) -> int:
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    equivalents = load_equivalents()
    stale: list[str] = []
    rows: list[tuple[str, int, int, int, int, int]] = []
    left: list[tuple[str, str]] = []
    for name in names:
        killed = total = equivalent = survived = unchecked = 0
        for scope in MODULES[name]:
            meta = ROOT / "mutants" / f"{scope.path}.meta"
            if not meta.exists():
                continue
            codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
            for mutant, code in sorted(codes.items()):
                if not scope.covers(mutant):
                    continue
                total += 1
                status = status_by_exit_code[code]
                known = equivalents.get(mutant)
                if known is not None:
                    diff = get_diff_for_mutant(mutant, path=scope.path)
                    if known.change in added_lines(diff):
                        equivalent += 1
                        continue
                    stale.append(mutant)
                if status in KILLED:
                    killed += 1
                elif status in SURVIVED:
                    survived += 1
                    left.append((mutant, status))
                else:
                    unchecked += 1
        rows.append((name, killed, total, equivalent, survived, unchecked))
    print(
        f"\n{'module':<20}{'killed':>8}{'total':>7}{'equiv':>7}{'left':>6}{'unrun':>7}{'score':>8}"
    )
    for name, killed, total, equivalent, survived, unchecked in rows:
        counted = total - equivalent - unchecked
        score = f"{100 * killed / counted:.1f}%" if counted else "-"
        print(
            f"{name:<20}{killed:>8}{total:>7}{equivalent:>7}{survived:>6}{unchecked:>7}{score:>8}"
        )
    print("score = killed / (total - equivalent - unrun); left = survived or no tests")
    for mutant in stale:
        print(f"stale equivalent entry (the mutant no longer makes that change): {mutant}")
    if survivors:
        for mutant, status in left:
            print(f"\n# {mutant}: {status}")
            scope_path = next(s.path for n in names for s in MODULES[n] if s.covers(mutant))
            print(get_diff_for_mutant(mutant, path=scope_path))
    return 0


def _installed_checkout() -> Path | None:
    """The checkout the installed (editable) pytest_planguard imports from, as a fresh
    interpreter outside this directory sees it."""
    found = subprocess.run(
        [sys.executable, "-c", "import pytest_planguard; print(pytest_planguard.__file__)"],
        cwd="/",
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0 or not found.stdout.strip():
        return None
    return Path(found.stdout.strip()).resolve().parent.parent


def added_lines(diff: str) -> str:
    return "\n".join(
        line[1:].strip()
        for line in diff.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    )


def load_equivalents() -> dict[str, Equivalent]:
    if not EQUIVALENTS.exists():
        return {}
    data = tomllib.loads(EQUIVALENTS.read_text(encoding="utf-8"))
    found: dict[str, Equivalent] = {}
    for entry in data.get("equivalent", []):
        item = Equivalent(entry["mutant"], entry["change"].strip(), entry["reason"])
        if not item.reason.strip():
            raise SystemExit(f"{EQUIVALENTS}: {item.mutant} has no reason")
        found[item.mutant] = item
    return found


if __name__ == "__main__":
    raise SystemExit(main())
