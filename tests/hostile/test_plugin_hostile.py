"""Hostile adapters and hostile inputs to the plugin: view names that would escape the
snapshot directory, adapters that crash, recompile, swap the resolver, drift or plan
unstably, bad marker arguments, an adapter that does not load, and ``planguard diff`` over
damaged trees.  Each fails with its code, without a traceback, and writes nothing it
should not."""

from __future__ import annotations

import json
from pathlib import Path

# Imported at module import, never inside a test: pytester restores sys.modules after each
# test, and deltalake's native module panics when it is initialized twice.
import deltalake
import pyarrow as pa
import pytest

from pytest_planguard.cli import main
from tests.hostile.helpers import assert_no_traceback
from tests.support.codes import CodeRecorder

FAST = ("-p", "no:cacheprovider", "--planguard-processes", "0")
ESCAPING = ("../../escaped", "nested/view", "..", ".hidden", "x" * 250)
KINDS = ("escape", "crash", "panic", "recompile", "swap", "drift", "flaky")

HOSTILE_ADAPTER = f'''
import dataclasses
import uuid
from pathlib import Path

import msgspec

from pytest_planguard.reference_adapter import ReferenceAdapter

ESCAPING = {ESCAPING!r}


class EnginePanic(BaseException):
    """Like pyo3's PanicException: a BaseException, not an Exception."""


def kind_of(compiled):
    return compiled.project_name or ""


class HostileAdapter(ReferenceAdapter):
    """Misbehaves according to the gated manifest's project name."""

    kind = ""

    def view_names(self, compiled):
        names = tuple(super().view_names(compiled))
        return names + ESCAPING if kind_of(compiled) == "escape" else names

    def build_context(self, compiled):
        self.kind = kind_of(compiled)
        if self.kind == "crash":
            raise RuntimeError("the adapter crashed while building the session")
        if self.kind == "panic":
            raise EnginePanic("the engine panicked while building the session")
        return super().build_context(compiled)

    def plan(self, context):
        if self.kind == "recompile":
            self.compile(Path(context.authority.semantic_context.manifest.source_path))
        return super().plan(context)

    def execute(self, plan, context, *, dry_run):
        if self.kind != "swap":
            return super().execute(plan, context, dry_run=dry_run)
        from reference_impl.execution import execute_plan

        semantic = context.authority.semantic_context
        stray = msgspec.structs.replace(semantic.dataset_resolver)
        swapped = dataclasses.replace(semantic, dataset_resolver=stray)
        authority = dataclasses.replace(context.authority, semantic_context=swapped)
        return execute_plan(plan, authority, dry_run=dry_run)

    def fingerprints(self, compiled, context, plan, validation):
        found = super().fingerprints(compiled, context, plan, validation)
        if kind_of(compiled) == "drift":
            found = dataclasses.replace(found, runtime=uuid.uuid4().hex)
        return found

    def bundles(self, plan):
        out = dict(super().bundles(plan))
        if self.kind == "escape":
            template = out["v"]
            for name in ESCAPING:
                out[name] = dataclasses.replace(template, view=name)
        if self.kind == "flaky":
            out = {{
                name: dataclasses.replace(b, p2=b.p2 + "\\n" + uuid.uuid4().hex)
                for name, b in out.items()
            }}
        return out
'''

BAD_MARKER = """
import pytest


@pytest.mark.planguard_single_compile(max_compiles=-1)
def test_marked_with_a_bad_argument():
    pass
"""


def write_manifests(root: Path) -> dict[str, Path]:
    deltalake.write_deltalake(str(root / "data" / "t"), pa.table({"a": [1, 2, 3]}))
    paths = {}
    for kind in KINDS:
        path = root / kind / "manifest.toml"
        path.parent.mkdir()
        path.write_text(
            f'[project]\nname = "{kind}"\n'
            '[datasets.t]\nformat = "delta"\nlocation = "t"\n'
            '[views.v]\nsql = "SELECT a FROM t"\n'
            "[policy]\nsmall_input_rows = 0\nallow_external_locations = true\n"
            "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n",
            encoding="utf-8",
        )
        (path.parent / "t").symlink_to(root / "data" / "t")
        paths[kind] = path
    return paths


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.produces_codes(
    "SNAPSHOT_NAME_INVALID",
    "ADAPTER_ERROR",
    "SINGLE_COMPILE_VIOLATION",
    "RESOLVER_IDENTITY_VIOLATION",
    "NONDETERMINISTIC",
    "UNSTABLE_PLAN",
    "PLAN_NEW",
    "MARKER_ARGUMENT",
)
def test_a_hostile_adapter_gets_a_code_for_each_misbehaviour(
    pytester: pytest.Pytester, codes: CodeRecorder
) -> None:
    paths = write_manifests(pytester.path)
    pytester.makepyfile(hostile_adapter=HOSTILE_ADAPTER, test_bad_marker=BAD_MARKER)
    pytester.makeini("[pytest]\n")
    report = pytester.path.parent / f"{pytester.path.name}-report.json"
    before = files_under(pytester.path.parent)
    manifests = [arg for path in paths.values() for arg in ("--planguard-manifest", str(path))]
    result = pytester.runpytest_subprocess(
        *FAST,
        "--planguard-runs",
        "2",
        "--planguard",
        "--planguard-adapter",
        "hostile_adapter:HostileAdapter",
        "--planguard-snapshot-dir",
        "snaps",
        "--planguard-report",
        str(report),
        "--snapshot-update",
        *manifests,
        "test_bad_marker.py",
    )
    output = result.stdout.str()
    assert_no_traceback(output)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # 2: the adapter's errors are bad input

    findings = json.loads(report.read_text(encoding="utf-8"))["findings"]

    def found(kind: str, *, view: str | None = None, check: str | None = None) -> set[str]:
        return {
            f["code"]
            for f in findings
            if f["manifest"] == f"{kind}/manifest.toml"
            and (view is None or f["view"] == view)
            and (check is None or f["check"] == check)
        }

    for name in ESCAPING:  # each escaping name is refused; nothing is written for it
        codes.expect_all(found("escape", view=name), ["SNAPSHOT_NAME_INVALID"])
    codes.expect_all(found("escape", view="v"), ["PLAN_NEW"])
    # an uncoded exception inside the adapter is the adapter's error, naming its method
    codes.expect_all(found("crash"), ["ADAPTER_ERROR"])
    assert (
        "error[ADAPTER_ERROR] adapter.build_context raised RuntimeError: the adapter crashed"
        in output
    )
    codes.expect_all(found("panic"), ["ADAPTER_ERROR"])
    assert (
        "error[ADAPTER_ERROR] adapter.build_context raised EnginePanic: the engine panicked"
        in output
    )
    codes.expect_all(found("recompile", check="single_compile"), ["SINGLE_COMPILE_VIOLATION"])
    codes.expect_all(found("swap", check="resolver_identity"), ["RESOLVER_IDENTITY_VIOLATION"])
    codes.expect_all(found("drift", check="determinism"), ["NONDETERMINISTIC"])
    codes.expect_all(found("flaky", view="v"), ["UNSTABLE_PLAN"])
    assert "error[MARKER_ARGUMENT]" in output
    codes.expect("MARKER_ARGUMENT", "MARKER_ARGUMENT")

    written = files_under(pytester.path.parent) - before
    snapshots = sorted(name for name in written if name.endswith(".plan"))
    prefix = f"{pytester.path.name}/snaps/"
    assert all(name.startswith(prefix) for name in snapshots), snapshots
    # only the well-named, stable view of each well-behaved manifest got a snapshot
    assert {Path(name).name for name in snapshots} == {"v.plan"}
    assert not any("escaped" in name or "hidden" in name for name in written)
    assert not (pytester.path / "flaky" / "v.plan").exists()
    assert f"{prefix}flaky/manifest/v.plan" not in snapshots


@pytest.mark.produces_codes("ADAPTER_ERROR")
@pytest.mark.parametrize(
    "spec",
    ["planguard_no_such_module:Adapter", "hostile_adapter:Missing", "not a spec", "os:sep"],
)
def test_an_adapter_that_does_not_load_is_a_coded_collection_error(
    pytester: pytest.Pytester, spec: str, codes: CodeRecorder
) -> None:
    paths = write_manifests(pytester.path)
    pytester.makepyfile(hostile_adapter=HOSTILE_ADAPTER)
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess(
        *FAST,
        "--planguard",
        "--planguard-adapter",
        spec,
        "--planguard-manifest",
        str(paths["swap"]),
    )
    output = result.stdout.str()
    assert_no_traceback(output)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    line = next(line for line in output.splitlines() if line.startswith("error["))
    codes.expect(line.split("]", 1)[0].removeprefix("error["), "ADAPTER_ERROR", output)
    assert "planguard_adapter" in line


# -- planguard diff over damaged trees -----------------------------------------------------


def plan_text(view: str, body: str) -> str:
    return f"# planguard plan bundle v1\n# view: {view}\n\n== P0 logical\n{body}\n"


@pytest.mark.produces_codes("SNAPSHOT_TREE_INVALID")
@pytest.mark.parametrize("damage", ["missing", "a-file", "binary-plan"])
def test_diff_refuses_a_damaged_tree_with_a_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, codes: CodeRecorder
) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    head.mkdir()
    (head / "v.plan").write_text(plan_text("v", "Projection: a"), encoding="utf-8")
    if damage == "a-file":
        base.write_text("not a directory", encoding="utf-8")
    elif damage == "binary-plan":
        base.mkdir()
        (base / "v.plan").write_bytes(b"\xff\xfe\x00\x80 not text")
    assert main(["diff", str(base), str(head)]) == 2
    out, err = capsys.readouterr()
    assert_no_traceback(out, err)
    codes.expect(err.split("]", 1)[0].removeprefix("error["), "SNAPSHOT_TREE_INVALID", err)


@pytest.mark.produces_codes("PLAN_REMOVED")
def test_diff_names_a_removed_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], codes: CodeRecorder
) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    for tree in (base, head):
        tree.mkdir()
        (tree / "kept.plan").write_text(plan_text("kept", "Projection: a"), encoding="utf-8")
    (base / "gone.plan").write_text(plan_text("gone", "Projection: b"), encoding="utf-8")
    assert main(["diff", "--json", str(base), str(head)]) == 1
    payload = json.loads(capsys.readouterr().out)
    (change,) = payload["changes"]
    assert change["snapshot"] == "gone.plan"
    codes.expect(change["code"], "PLAN_REMOVED", change)
