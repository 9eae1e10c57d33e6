"""42 hostile variants from the corpus (every error code at least once), each run through a
real ``planguard validate`` process, yield 42 coded errors and no traceback; a policy
finding exits 1."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.hostile.corpus import BY_ID, ERRORS, Case, materialize
from tests.hostile.helpers import (
    ERROR_LINE,
    assert_error_line,
    assert_no_traceback,
    assert_nothing_written,
    tree_state,
)
from tests.support.cli import run_planguard
from tests.support.codes import CodeRecorder


def variants(count: int) -> tuple[Case, ...]:
    """The first case of every error code, then the rest of the corpus, ``count`` in all."""
    firsts = {case.code: case for case in reversed(ERRORS)}
    chosen = [case for case in ERRORS if firsts[case.code] is case]
    chosen += [case for case in ERRORS if case not in chosen][: count - len(chosen)]
    return tuple(chosen)


VARIANTS = variants(42)


@pytest.mark.produces_codes(*sorted({case.code for case in VARIANTS}))
def test_every_hostile_variant_is_one_coded_error_without_traceback(
    tmp_path: Path, codes: CodeRecorder
) -> None:
    assert len(VARIANTS) == 42
    assert {case.code for case in VARIANTS} == {case.code for case in ERRORS}
    paths = {case.id: materialize(case, tmp_path) for case in VARIANTS}
    before = tree_state(tmp_path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(
            zip(
                paths,
                pool.map(
                    lambda path: run_planguard("validate", path, cwd=tmp_path), paths.values()
                ),
                strict=True,
            )
        )
    for result in done.values():
        assert_no_traceback(result.stdout, result.stderr)
    # What each process answered: its exit code, its stdout and the codes of its error
    # lines. All 42 are compared at once, so a failure lists every variant that went wrong.
    answers = {
        case.id: (
            done[case.id].returncode,
            done[case.id].stdout,
            [match["code"] for match in ERROR_LINE.finditer(done[case.id].stderr)],
        )
        for case in VARIANTS
    }
    assert answers == {case.id: (2, "", [case.code]) for case in VARIANTS}
    for case in VARIANTS:
        match = assert_error_line(case, done[case.id].stderr, paths[case.id], tmp_path)
        codes.expect(match["code"], case.code, done[case.id].stderr)
    assert_nothing_written(before, tree_state(tmp_path))


@pytest.mark.produces_codes("UDF_MISSING")
def test_a_policy_finding_exits_1_in_a_real_process(tmp_path: Path, codes: CodeRecorder) -> None:
    case = BY_ID["unknown-function"]
    path = materialize(case, tmp_path)
    before = tree_state(tmp_path)
    result = run_planguard("validate", path, cwd=tmp_path)
    assert_no_traceback(result.stdout, result.stderr)
    assert (result.returncode, result.stderr) == (1, "")
    codes.expect_all((m["code"] for m in ERROR_LINE.finditer(result.stdout)), [case.code])
    assert f"error[{case.code}] {case.subject}: " in result.stdout
    assert_nothing_written(before, tree_state(tmp_path))
