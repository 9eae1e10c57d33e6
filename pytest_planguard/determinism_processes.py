"""The subprocesses of a determinism check, each planning the pipeline once with its own
``PYTHONHASHSEED`` and writing its fingerprints to a file of the check's directory.

They are started ahead of the check (at the end of collection), so that they use the
cores the gate's process leaves idle while it runs other tests.  Their results are files,
not pipes, so that another process can read them: under pytest-xdist, worker ``gw0``
starts them once for the run, in a directory the controller created and handed to every
worker (``planguard_run_dir`` in ``workerinput``), and whichever worker runs the
determinism item reads them there (:func:`shared_processes`), instead of that worker
starting its own when the item comes up, after the rest of the suite.

A directory holds ``started.json`` (what the subprocesses check, their seeds and process
ids), ``<n>.json`` (subprocess *n*'s fingerprints, or its error, written atomically when
it ends) and ``<n>.err`` (its standard error).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_planguard.adapter import PipelineFingerprints

STARTED = "started.json"
NICENESS = 10
"""How much lower the subprocesses' priority is: they are started ahead and run beside
the gate, on the cores it leaves idle, without slowing it down where there are none (a
check that needs their results waits for them, and then they have the cores)."""
_POLL_S = 0.02
_CLAIM_WAIT_S = 10.0
"""How long a worker waits for the pid of a subprocess another worker claimed to start."""


@dataclass(frozen=True, slots=True)
class Incremental:
    """A determinism check over a plan cache (:class:`~.gate.plan_cache.DeterminismCache`):
    its directory and the seed of the random sample its processes share."""

    directory: Path
    seed: int
    strength: str = ""
    """The check's in-process runs and subprocesses (``"2x2"``): what it establishes, only
    an equally strong check trusts."""

    def cache(self) -> Any:
        from pytest_planguard.gate.plan_cache import DeterminismCache

        return DeterminismCache(self.directory, seed=self.seed, strength=self.strength)

    def arguments(self) -> list[str]:
        return [
            "--plan-cache",
            str(self.directory),
            "--sample-seed",
            str(self.seed),
            "--strength",
            self.strength,
        ]


@dataclass(frozen=True, slots=True)
class Checked:
    """What the subprocesses of a check plan: the same for the check that reads them.
    ``session``: the ``module:factory`` of a session target (``manifest`` is then its
    module); ``trusted_modules``: the allowlist the subprocesses get, the caller's."""

    adapter_spec: str | None
    manifest: Path
    processes: int
    trusted_modules: tuple[str, ...] = ()
    session: str | None = None
    incremental: Incremental | None = None

    def to_json(self) -> dict[str, Any]:
        sample = self.incremental
        return {
            "adapter_spec": self.adapter_spec,
            "manifest": str(self.manifest),
            "processes": self.processes,
            "trusted_modules": list(self.trusted_modules),
            "session": self.session,
            "incremental": [str(sample.directory), sample.seed, sample.strength]
            if sample
            else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checked:
        sample = data["incremental"]
        return cls(
            adapter_spec=data["adapter_spec"],
            manifest=Path(data["manifest"]),
            processes=int(data["processes"]),
            trusted_modules=tuple(data["trusted_modules"]),
            session=data["session"],
            incremental=Incremental(Path(sample[0]), int(sample[1]), str(sample[2]))
            if sample
            else None,
        )


@dataclass(slots=True)
class Child:
    seed: str
    pid: int
    process: subprocess.Popen[bytes] | None = None
    """The process object, in the process that started it (elsewhere: None)."""
    pending: bool = False
    """Not started yet (see :meth:`DeterminismProcesses.start_pending`)."""


@dataclass(slots=True)
class DeterminismProcesses:
    """The subprocesses of one check and the directory they write their results to."""

    checked: Checked
    directory: Path
    children: list[Child]
    owned: bool = True
    """Whether the directory goes with the check (a shared one is the controller's)."""
    _closed: bool = field(default=False, repr=False)

    def matches(self, checked: Checked) -> bool:
        return checked == self.checked

    def outcomes(self) -> list[tuple[str, PipelineFingerprints | str]]:
        """Each started subprocess's seed and fingerprints, or what went wrong, waiting
        for it (a pending one is left out: :meth:`start_pending` was not needed)."""
        return [
            (child.seed, self._outcome(n, child))
            for n, child in enumerate(self.children)
            if not child.pending
        ]

    @property
    def pending(self) -> tuple[str, ...]:
        """The seeds of the subprocesses not started."""
        return tuple(child.seed for child in self.children if child.pending)

    def start_pending(self) -> None:
        """Start the subprocesses held back (thread-safe: the planning thread calls it on
        the run's first plan-cache miss)."""
        if not any(child.pending for child in self.children):
            return
        with _pending_lock:
            for index, child in enumerate(self.children):
                if child.pending and not self._closed:
                    self.children[index] = (
                        _start_child(self.checked, self.directory, index, child.seed)
                        if self.owned
                        else self._start_shared(index, child.seed)
                    )

    def _start_shared(self, index: int, seed: str) -> Child:
        """Start a held-back subprocess of the run's shared directory, once whichever
        pytest-xdist worker asks first: the first to create ``<index>.claim`` starts it and
        writes its pid to ``<index>.pid``; the others read that."""
        claim, pid_file = self.directory / f"{index}.claim", self.directory / f"{index}.pid"
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            deadline = time.monotonic() + _CLAIM_WAIT_S
            while time.monotonic() < deadline:
                pid = _read_pid(pid_file)
                if pid is not None:
                    return Child(seed=seed, pid=pid)
                time.sleep(_POLL_S)
            return Child(seed=seed, pid=0, pending=True)  # its claimer never started it
        child = _start_child(self.checked, self.directory, index, seed)
        _write_atomically(pid_file, str(child.pid))
        if child.process is not None:  # reaped here, so that its end is seen elsewhere
            threading.Thread(target=child.process.wait, daemon=True).start()
        return child

    def _outcome(self, index: int, child: Child) -> PipelineFingerprints | str:
        result = self.directory / f"{index}.json"
        if child.process is not None:
            code = child.process.wait()
        else:
            while not result.exists() and _alive(child.pid):
                time.sleep(_POLL_S)
            code = None
        ended = f" with exit {code}" if code is not None else ""  # another's child: unknown
        try:
            data = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            try:
                errors = (self.directory / f"{index}.err").read_text(errors="replace")
            except OSError:
                errors = ""
            tail = errors.strip()[-2000:]
            return f"ended{ended} without a result" + (f": {tail}" if tail else "")
        if "error" in data:
            return f"failed{ended}: {data['error']}"
        return fingerprints_from_json(json.dumps(data["fingerprints"]))

    def close(self) -> None:
        """Stop the subprocesses still running and remove the directory when it is the
        check's own."""
        if self._closed:
            return
        self._closed = True
        for index, child in enumerate(self.children):
            if child.pending:
                continue
            if child.process is not None:
                if child.process.poll() is None:
                    child.process.kill()
                child.process.wait()
            elif _running(child.pid, self.directory / f"{index}.json"):
                with contextlib.suppress(OSError):
                    os.kill(child.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        if self.owned:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_determinism_processes(
    checked: Checked, *, directory: Path | None = None, hold_fixed: bool = False
) -> DeterminismProcesses:
    """Start the subprocesses of a determinism check of ``checked``.

    ``directory``: where they write, shared with other processes (which read it with
    :func:`shared_processes`); by default a temporary one of this check's.

    ``hold_fixed``, for subprocesses started ahead of a check over the plan cache
    (``checked.incremental``) with two subprocesses or more: hold back the one with the
    fixed seed (1).  A plan established by a passing check was planned under
    that seed then, for these very inputs, so a re-check of established plans (the random
    sample) learns nothing new from it; the random seeds (this process's, the other
    subprocesses') are new.  It is started as soon as the run plans a view afresh
    (:meth:`DeterminismProcesses.start_pending`, on a plan-cache miss) or the check finds
    a plan not established."""
    owned = directory is None
    where = Path(tempfile.mkdtemp(prefix="planguard-determinism-")) if owned else directory
    assert where is not None
    where.mkdir(parents=True, exist_ok=True)
    hold = hold_fixed and checked.incremental is not None and checked.processes >= 2
    children: list[Child] = []
    for index, seed in enumerate(_hash_seeds(checked.processes)):
        if hold and index == 0:
            children.append(Child(seed=seed, pid=0, pending=True))
            continue
        child = _start_child(checked, where, index, seed)
        children.append(child)
        if not owned and child.process is not None:  # reaped here whoever reads it,
            threading.Thread(target=child.process.wait, daemon=True).start()  # (its end seen)
    started = DeterminismProcesses(checked, where, children, owned=owned)
    if not owned:
        _write_atomically(
            where / STARTED,
            json.dumps(
                {
                    "checked": checked.to_json(),
                    "children": [[c.seed, c.pid] for c in children],
                }
            ),
        )
    return started


def _start_child(checked: Checked, where: Path, index: int, seed: str) -> Child:
    process = _spawn(
        checked.adapter_spec,
        checked.manifest,
        seed,
        checked.trusted_modules,
        checked.session,
        incremental=checked.incremental,
        output=where / f"{index}.json",
    )
    return Child(seed=seed, pid=process.pid, process=process)


_pending_lock = threading.Lock()


def shared_processes(directory: Path) -> DeterminismProcesses | None:
    """The subprocesses another process started in ``directory`` (None: none were)."""
    try:
        data = json.loads((directory / STARTED).read_text(encoding="utf-8"))
        checked = Checked.from_json(data["checked"])
        children = [Child(seed=str(seed), pid=int(pid)) for seed, pid in data["children"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    for index, child in enumerate(children):
        if child.pid == 0:  # held back: started since by a worker, or still pending
            started = _read_pid(directory / f"{index}.pid")
            children[index] = Child(child.seed, started or 0, pending=started is None)
    return DeterminismProcesses(checked, directory, children, owned=False)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def stop_shared(root: Path) -> None:
    """At the end of a pytest-xdist run (controller): stop what is left of the
    subprocesses started under ``root`` and remove it."""
    for started in sorted(root.glob(f"*/{STARTED}")):
        found = shared_processes(started.parent)
        if found is not None:
            found.close()
    shutil.rmtree(root, ignore_errors=True)


def write_result(path: Path, *, fingerprints: PipelineFingerprints | None, error: str) -> None:
    """The determinism worker's result file (``--output``), written atomically."""
    payload: dict[str, Any] = (
        {"fingerprints": json.loads(fingerprints_to_json(fingerprints))}
        if fingerprints is not None
        else {"error": error}
    )
    _write_atomically(path, json.dumps(payload))


def fingerprints_to_json(value: PipelineFingerprints) -> str:
    return json.dumps(
        {
            "manifest": value.manifest,
            "plans": dict(sorted(value.plans.items())),
            "runtime": value.runtime,
            "validation_artifact": value.validation_artifact.decode("utf-8", "replace"),
        },
        sort_keys=True,
    )


def run_digest(fingerprints: PipelineFingerprints | None, keys: Collection[str]) -> str | None:
    """A digest of a run's fingerprints and plan cache keys (what a determinism check
    compared; None without fingerprints)."""
    if fingerprints is None:
        return None
    payload = fingerprints_to_json(fingerprints) + "\0" + "\0".join(sorted(keys))
    return hashlib.sha256(payload.encode()).hexdigest()


def fingerprints_from_json(text: str) -> PipelineFingerprints:
    data = json.loads(text)
    return PipelineFingerprints(
        manifest=data["manifest"],
        plans=data["plans"],
        runtime=data["runtime"],
        validation_artifact=data["validation_artifact"].encode("utf-8"),
    )


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (signal 0 on POSIX; on Windows, where that
    signal would be a Ctrl-C, it is taken to run: its result file is awaited)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(pid: int, output: Path) -> bool:
    """Whether ``pid`` is still the subprocess writing ``output`` (another process's
    child: its pid may have been reused since it ended).  Only where ``/proc`` tells;
    elsewhere it is left to end by itself."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(output).encode() in command


def _hash_seeds(count: int) -> list[str]:
    """``count`` PYTHONHASHSEED values other than this process's: 1 (or 2), then random
    ones.  Fixed seeds 1, 2, 3 are a poor sample: for a two-element set of strings, seeds 1
    and 2 iterate in the same order, so a second subprocess with seed 2 found nothing a
    first with seed 1 had not (measured: 13 of 24 parents caught with 1 or 2 subprocesses,
    14 with 3).  Each further seed is drawn at random and printed with any difference."""
    import random

    current = os.environ.get("PYTHONHASHSEED")
    seeds = ["1" if current != "1" else "2"]
    while len(seeds) < count:
        candidate = str(random.randrange(3, 2**32 - 1))
        if candidate != current and candidate not in seeds:
            seeds.append(candidate)
    return seeds[:count]


def _spawn(
    adapter_spec: str | None,
    manifest: Path,
    seed: str,
    trusted_modules: tuple[str, ...],
    session: str | None,
    *,
    incremental: Incremental | None = None,
    output: Path,
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = seed
    paths = [p for p in sys.path if p and Path(p).exists()]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([os.getcwd(), *paths]))
    command = [sys.executable, "-m", "pytest_planguard.determinism_worker", str(manifest)]
    if adapter_spec:
        command += ["--adapter", adapter_spec]
    if session:
        command += ["--session", session]
    for module in trusted_modules:
        command += ["--trust-module", module]
    if incremental is not None:
        command += incremental.arguments()
    command += ["--output", str(output), "--nice", str(NICENESS)]
    with output.with_suffix(".err").open("wb") as errors:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, env=env
        )
