"""The bad-input corpus through the ``planguard`` CLI, in-process: one coded error line
naming the file and the field, exit 2 (1 for policy findings), no traceback, nothing
written (real subprocesses: test_validate_variants.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.corpus import BY_ID, CASES, EARLY, ERRORS, Case, materialize
from tests.hostile.helpers import (
    assert_error_line,
    assert_no_traceback,
    assert_nothing_written,
    tree_state,
)
from tests.support.cli import run_cli
from tests.support.codes import CODES_MARKER, CodeRecorder


def params(cases: tuple[Case, ...]) -> list[object]:
    return [
        pytest.param(case, id=case.id, marks=getattr(pytest.mark, CODES_MARKER)(case.code))
        for case in cases
    ]


def test_the_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 40
    assert len(BY_ID) == len(CASES), "case ids are unique"
    assert len({case.code for case in CASES}) >= 30


@pytest.mark.parametrize("case", params(CASES))
def test_validate_gives_the_coded_error_and_writes_nothing(
    case: Case,
    tmp_path: Path,
    codes: CodeRecorder,
) -> None:
    path = materialize(case, tmp_path)
    before = tree_state(tmp_path)
    exit_code, out, err = run_cli("validate", str(path), cwd=tmp_path)
    assert_no_traceback(out, err)
    assert exit_code == case.exit, (out, err)
    if case.stage == "policy":
        assert err == ""
        line = next(
            (line for line in out.splitlines() if line.startswith(f"error[{case.code}] ")),
            None,
        )
        assert line is not None, out
        codes.expect(line.split("]", 1)[0].removeprefix("error["), case.code)
        assert line.split("] ", 1)[1].startswith(f"{case.subject}"), line
    else:
        assert out == ""
        match = assert_error_line(case, err, path, tmp_path)
        codes.expect(match["code"], case.code, err)
    assert_nothing_written(before, tree_state(tmp_path))


@pytest.mark.parametrize("case", params(ERRORS))
def test_validate_json_carries_the_code(
    case: Case,
    tmp_path: Path,
    codes: CodeRecorder,
) -> None:
    path = materialize(case, tmp_path)
    exit_code, out, _ = run_cli("validate", "--json", str(path), cwd=tmp_path)
    assert exit_code == 2
    payload = json.loads(out)
    assert payload["ok"] is False
    codes.expect(payload["error"]["code"], case.code)
    assert payload["error"]["field_path"] == case.field_path


@pytest.mark.parametrize("case", params(EARLY))
def test_compile_refuses_it_before_any_engine_work(
    case: Case,
    tmp_path: Path,
    codes: CodeRecorder,
) -> None:
    path = materialize(case, tmp_path)
    before = tree_state(tmp_path)
    exit_code, out, err = run_cli("compile", str(path), cwd=tmp_path)
    assert (exit_code, out) == (2, "")
    codes.expect(assert_error_line(case, err, path, tmp_path)["code"], case.code, err)
    assert_nothing_written(before, tree_state(tmp_path))
