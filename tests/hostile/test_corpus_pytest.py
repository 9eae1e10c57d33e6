"""The bad-input corpus through ``pytest --planguard``: every manifest of the corpus gated
in a few pytest subprocesses, each case's ``error[CODE] file: field.path: message`` found
in the output, no traceback, and no snapshot, output or data written.

* load/compile-stage cases are collection errors (pytest exits 2 and runs nothing);
* engine-stage cases fail every item of their manifest with the coded error (exit 1);
* policy findings fail ``policy[validation]`` with the finding's code (exit 1).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.hostile.corpus import EARLY, LATE, Case, materialize
from tests.hostile.helpers import assert_no_traceback, assert_nothing_written, tree_state
from tests.support import gate as gates
from tests.support.codes import CodeRecorder

NOT_FOUND = tuple(case for case in EARLY if case.code == "MANIFEST_NOT_FOUND")
COLLECTION = tuple(case for case in EARLY if case.code != "MANIFEST_NOT_FOUND")
ENGINE = tuple(case for case in LATE if case.stage == "engine")
POLICY = tuple(case for case in LATE if case.stage == "policy")


def gate(
    pytester: pytest.Pytester, cases: tuple[Case, ...], *extra: str
) -> tuple[pytest.RunResult, dict[str, Path]]:
    """Materialize ``cases`` and gate them all in one ``pytest --planguard`` subprocess."""
    pytester.makeini("[pytest]\n")
    base = pytester.path / "cases"
    paths = {case.id: materialize(case, base) for case in cases}
    before = tree_state(base)  # pytester keeps its own files beside it
    args = [arg for path in paths.values() for arg in ("--planguard-manifest", str(path))]
    result = gates.gate(pytester, "--planguard-snapshot-dir", "snaps", *args, *extra)
    output = result.stdout.str() + result.stderr.str()
    assert_no_traceback(output)
    assert_nothing_written(before, tree_state(base))
    assert not (pytester.path / "snaps").exists()
    return result, paths


def report_path(pytester: pytest.Pytester) -> Path:
    """Beside pytester's directory, so that the tree it checks stays untouched."""
    return pytester.path.parent / f"{pytester.path.name}-report.json"


def coded_lines(output: str, code: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if f"error[{code}] " in line]


@pytest.mark.produces_codes(*sorted({case.code for case in COLLECTION}))
def test_load_and_compile_errors_are_collection_errors(
    pytester: pytest.Pytester, codes: CodeRecorder
) -> None:
    result, paths = gate(pytester, COLLECTION, "--snapshot-update")
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED  # 2: errors during collection
    assert f"{len(COLLECTION)} errors during collection" in output
    for case in COLLECTION:
        path = paths[case.id]
        where = f"{path}: {case.field_path}: " if case.field_path else f"{path}: "
        lines = [line for line in coded_lines(output, case.code) if where in line]
        assert lines, f"{case.id}: no 'error[{case.code}] {where}...' line"
        codes.expect(case.code, case.code)


@pytest.mark.produces_codes(*sorted({case.code for case in ENGINE}))
def test_engine_errors_fail_every_item_of_their_manifest(
    pytester: pytest.Pytester, codes: CodeRecorder
) -> None:
    result, paths = gate(pytester, ENGINE, "--snapshot-update")
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED  # 2: bad input, found at the engine stage
    assert re.search(r"\b\d+ failed\b", output)
    assert " passed" not in output.splitlines()[-1], output.splitlines()[-1]
    for case in ENGINE:
        where = f"{paths[case.id]}: {case.field_path}: "
        lines = [line for line in coded_lines(output, case.code) if where in line]
        assert lines, f"{case.id}: no 'error[{case.code}] {where}...' line"
        codes.expect(case.code, case.code)


@pytest.mark.produces_codes(*sorted({case.code for case in POLICY}), "POLICY_FAILED")
def test_policy_findings_fail_the_policy_item(
    pytester: pytest.Pytester, codes: CodeRecorder
) -> None:
    result, _ = gate(pytester, POLICY, "--planguard-report", str(report_path(pytester)))
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for case in POLICY:
        assert case.subject is not None
        subject = case.subject.split(" ", 1)[1]
        lines = [
            line
            for line in coded_lines(output, case.code)
            if line.startswith(f"error[{case.code}] {subject}")
        ]
        assert lines, f"{case.id}: no 'error[{case.code}] {subject}...' line"
        codes.expect(case.code, case.code)
    failed_policy = re.findall(r"FAILED (\S+)::policy\[validation\]", output)
    assert len(failed_policy) == len(POLICY), failed_policy
    report = json.loads(report_path(pytester).read_text(encoding="utf-8"))
    for case in POLICY:
        manifest = f"cases/{case.id}/{case.name}"
        found = [f for f in report["findings"] if f["manifest"] == manifest]
        codes.expect_all((f["code"] for f in found), [case.code, "POLICY_FAILED"])


@pytest.mark.produces_codes("CONFIG_ERROR")
@pytest.mark.parametrize("case", NOT_FOUND, ids=lambda case: case.id)
def test_a_missing_manifest_is_a_usage_error(
    pytester: pytest.Pytester, case: Case, codes: CodeRecorder
) -> None:
    """pytest alone would say "file or directory not found" or, for a directory, collect it
    as tests and gate nothing."""
    result, paths = gate(pytester, (case,))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = "error[CONFIG_ERROR] planguard_manifests: "
    assert line in result.stderr.str(), result.stderr.str()
    codes.expect("CONFIG_ERROR", "CONFIG_ERROR")
    assert str(paths[case.id]) in result.stderr.str()
