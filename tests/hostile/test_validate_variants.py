"""Done-when check of the hostile-input work: 42 hostile variants from the corpus (every
error code at least once), each run through a real ``planguard validate`` process, yield 42
coded errors and no traceback; a policy finding exits 1."""

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
    coded = 0
    for case in VARIANTS:
        result = done[case.id]
        assert_no_traceback(result.stdout, result.stderr)
        assert (result.returncode, result.stdout) == (2, ""), (case.id, result.stderr)
        assert len(ERROR_LINE.findall(result.stderr)) == 1, (case.id, result.stderr)
        match = assert_error_line(case, result.stderr, paths[case.id])
        codes.expect(match["code"], case.code, result.stderr)
        coded += 1
    assert coded == len(VARIANTS)
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
