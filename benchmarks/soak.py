"""Soak: do planguard's processes always end by exit code, never by a signal?

``python benchmarks/soak.py [--runs N] [--json PATH]`` builds a one-table manifest in a
temporary directory (a 5-row Delta table written with deltalake, one view, one output),
accepts its snapshot once with ``pytest --planguard --snapshot-update``, then runs, N times
each and interleaved:

* ``run``: ``planguard run manifest.toml`` (the output directory is removed before each
  run, so every run writes version 0 of a new table);
* ``validate``: ``planguard validate manifest.toml``;
* ``gate``: ``pytest -p no:cacheprovider --planguard --planguard-only`` over the manifest
  with the snapshot directory of the first step (it starts the determinism subprocesses).

A CPU-burning neighbour (``--neighbours`` busy-loop processes, started and stopped here)
competes with the runs for the CPU, which widens the races of process shutdown.  Run it
under ``nice`` on a shared machine.

It prints, per command, the runs, the exit codes seen, the exits by signal, the hangs (a
run past ``--timeout``) and the mean wall time, and with ``--json PATH`` writes
``{"commands": {name: {"runs", "exit_codes", "signals", "timeouts", "mean_s"}},
"bad_runs": [{"command", "run", "result", "stderr", ...}], "wall_s", ...}``.  The stderr
tail of every run that died by a signal or hung is printed (``--faulthandler`` adds Python's thread
dumps to it).  Exit status: 1 if any run died by a signal, hung, or ended with an exit code
other than 0, 1 or 2; else 0.  Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COMMANDS = ("run", "validate", "gate")
ALLOWED_EXIT_CODES = {0, 1, 2}
MANIFEST = """\
[datasets.t]
format = "delta"
location = "t"

[views.v]
sql = "SELECT a, b FROM t WHERE a > 0"

[outputs.o]
view = "v"
location = "out/o"

[policy]
small_input_rows = 0

[policy.delta_support]
max_reader_version = 3
max_writer_version = 7
"""


def build_workdir(root: Path) -> Path:
    """The one-table manifest under ``root`` (returns its path)."""
    import deltalake
    import pyarrow as pa

    root.mkdir(parents=True, exist_ok=True)
    deltalake.write_deltalake(
        str(root / "t"),
        pa.table({"a": [1, 2, 3, 4, 5], "b": ["v", "w", "x", "y", "z"]}),
        mode="overwrite",
    )
    manifest = root / "manifest.toml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    return manifest


def planguard_command() -> list[str]:
    script = Path(sys.executable).with_name("planguard")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "pytest_planguard.cli"]


def command_lines(manifest: Path) -> dict[str, list[str]]:
    gate = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--planguard",
        "--planguard-only",
        "--planguard-manifest",
        str(manifest),
        "--planguard-snapshot-dir",
        str(manifest.parent / "snapshots"),
    ]
    return {
        "run": [*planguard_command(), "run", str(manifest)],
        "validate": [*planguard_command(), "validate", str(manifest)],
        "gate": gate,
    }


def child_env(faulthandler: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PLANGUARD_DEBUG", "PYTEST_ADDOPTS"}}
    if faulthandler:
        env["PYTHONFAULTHANDLER"] = "1"
    return env


def start_neighbours(count: int) -> list[subprocess.Popen[bytes]]:
    """Busy loops that compete with the runs for the CPU."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"]) for _ in range(count)
    ]


def stop_neighbours(neighbours: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in neighbours:
        proc.terminate()
    for proc in neighbours:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def soak(
    manifest: Path,
    *,
    runs: int,
    commands: Sequence[str],
    timeout: float,
    faulthandler: bool,
    progress: bool,
) -> dict[str, Any]:
    lines = command_lines(manifest)
    env = child_env(faulthandler)
    codes: dict[str, Counter[int]] = {name: Counter() for name in commands}
    timeouts: Counter[str] = Counter()
    seconds: dict[str, float] = dict.fromkeys(commands, 0.0)
    bad: list[dict[str, Any]] = []
    samples: dict[tuple[str, int], str] = {}
    output = manifest.parent / "out"
    for i in range(1, runs + 1):
        for name in commands:
            if name == "run":
                shutil.rmtree(output, ignore_errors=True)
            started = time.monotonic()
            try:
                done = subprocess.run(
                    lines[name],
                    cwd=manifest.parent,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                seconds[name] += time.monotonic() - started
                timeouts[name] += 1
                stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
                bad.append({"command": name, "run": i, "result": "timeout", "stderr": stderr})
                continue
            seconds[name] += time.monotonic() - started
            codes[name][done.returncode] += 1
            if done.returncode != 0 and (name, done.returncode) not in samples:
                samples[(name, done.returncode)] = done.stderr[-2000:]
            if done.returncode < 0 or done.returncode not in ALLOWED_EXIT_CODES:
                bad.append(
                    {
                        "command": name,
                        "run": i,
                        "result": describe(done.returncode),
                        "returncode": done.returncode,
                        "stdout": done.stdout[-2000:],
                        "stderr": done.stderr[-4000:],
                    }
                )
        if progress and (i % 10 == 0 or i == runs):
            signalled = sum(1 for b in bad if b.get("returncode", 0) < 0)
            print(f"  {i}/{runs} rounds, {signalled} signalled", file=sys.stderr, flush=True)
    return {
        "runs_per_command": runs,
        "commands": {
            name: {
                "runs": sum(codes[name].values()) + timeouts[name],
                "exit_codes": {str(code): n for code, n in sorted(codes[name].items())},
                "signals": sum(n for code, n in codes[name].items() if code < 0),
                "timeouts": timeouts[name],
                "mean_s": round(seconds[name] / max(1, runs), 3),
            }
            for name in commands
        },
        "bad_runs": bad,
        "nonzero_samples": [
            {"command": name, "exit_code": code, "stderr": text}
            for (name, code), text in samples.items()
        ],
    }


def print_report(report: dict[str, Any]) -> None:
    print(f"{'command':<10} {'runs':>5} {'signals':>8} {'hangs':>6} {'mean s':>7}  exit codes")
    for name, row in report["commands"].items():
        seen = ", ".join(f"{describe(int(code))}: {n}" for code, n in row["exit_codes"].items())
        print(
            f"{name:<10} {row['runs']:>5} {row['signals']:>8} {row['timeouts']:>6} "
            f"{row['mean_s']:>7.2f}  {seen}"
        )
    total = sum(row["runs"] for row in report["commands"].values())
    signals = sum(row["signals"] for row in report["commands"].values())
    print(f"exits by signal: {signals} in {total} runs; wall {report['wall_s']:.0f} s")
    for sample in report["nonzero_samples"]:
        print(f"\n--- first {sample['command']} run with exit {sample['exit_code']} ---")
        print(sample["stderr"].rstrip())
    for entry in report["bad_runs"]:
        print(f"\n--- {entry['command']} run {entry['run']}: {entry['result']} ---")
        print((entry.get("stderr") or "").rstrip()[-3000:])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/soak.py",
        description=(
            "Run planguard run/validate and a pytest --planguard gate N times each under a "
            "CPU-burning neighbour; count exits by signal (exit 1 if any)."
        ),
    )
    parser.add_argument("--runs", type=int, default=200, help="runs per command (200)")
    parser.add_argument(
        "--only",
        action="append",
        choices=COMMANDS,
        default=None,
        help="soak only this command (repeatable; default: all three)",
    )
    parser.add_argument(
        "--neighbours", type=int, default=1, help="busy-loop processes to start (1)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before a run counts as hung"
    )
    parser.add_argument(
        "--faulthandler",
        action="store_true",
        help="set PYTHONFAULTHANDLER=1 in the children (thread dumps on a fatal signal)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="build the manifest here and keep it"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = tuple(name for name in COMMANDS if args.only is None or name in args.only)
    temp = None
    if args.workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="planguard-soak-")
        root = Path(temp.name)
    else:
        root = args.workdir.resolve()
    try:
        manifest = build_workdir(root)
        if "gate" in commands:
            accept = command_lines(manifest)["gate"] + ["--snapshot-update"]
            done = subprocess.run(
                accept, check=False, cwd=root, env=child_env(False), capture_output=True, text=True
            )
            if done.returncode != 0:
                print(done.stdout + done.stderr, file=sys.stderr)
                print("soak: accepting the snapshot failed", file=sys.stderr)
                return 2
        neighbours = start_neighbours(args.neighbours)
        started = time.monotonic()
        try:
            report = soak(
                manifest,
                runs=args.runs,
                commands=commands,
                timeout=args.timeout,
                faulthandler=args.faulthandler,
                progress=not args.quiet,
            )
        finally:
            stop_neighbours(neighbours)
        report["wall_s"] = round(time.monotonic() - started, 1)
        report["neighbours"] = args.neighbours
    finally:
        if temp is not None:
            temp.cleanup()
    print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if report["bad_runs"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
