"""What a dataset declares must be what it reads, and only from where it may read.

1. Format truth (issue 19.1): a Delta table declared ``parquet`` was read as a plain
   Parquet directory, removed files included (14 live rows counted as 70). The
   ``_delta_log`` decides; a disagreement is ``DATASET_FORMAT_MISMATCH`` and nothing is read.
2. Data files outside the root (issue 11.5): a Delta add action or a symlink in a Parquet
   directory leading out of the manifest's directory is ``MANIFEST_LOCATION_ESCAPES_ROOT``.
3. Symlink loops and unbounded reads (issue 11.5): a loop, a FIFO or ``/dev/zero`` named
   by the manifest is a coded error, promptly and in bounded memory.
4. Engine panics (issue 11.5): a corrupt Parquet footer panics the engine; that is
   ``DATASET_UNREADABLE`` naming the dataset, and no other ``BaseException`` escapes the
   CLI as a traceback.

End to end through the ``planguard`` CLI, in-process or (where the bug hangs or exhausts
memory) in a subprocess with a timeout and an address-space limit.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# Imported at module import, never inside a test: pytester restores sys.modules after each
# test, and deltalake's native module panics when it is initialized twice.
import deltalake
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pytest_planguard import cli
from reference_impl import cli as reference_cli
from tests.hostile.helpers import ERROR_LINE, assert_no_traceback, shown, tree_state
from tests.support.cli import run_planguard
from tests.support.codes import CodeRecorder

CLEAN = (
    "[policy]\nsmall_input_rows = 0\n"
    "[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n"
)
EXTERNAL = "[policy]\nallow_external_locations = true\n"


def project(root: Path, manifest: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest.toml"
    path.write_text(manifest, encoding="utf-8")
    return path


def dataset(name: str, fmt: str, location: str) -> str:
    return f'[datasets.{name}]\nformat = "{fmt}"\nlocation = "{location}"\n'


def copy_to_output(source: str) -> str:
    return (
        f'[views.v]\nsql = "SELECT * FROM {source}"\n'
        '[outputs.o]\nview = "v"\nlocation = "out/o"\nmode = "overwrite"\n'
    )


def cli_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str | Path
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> tuple[str, str]:
    """``(code, rest)`` of the first line of ``err``, which must be an ``error[CODE]`` line."""
    first = err.strip().splitlines()[0] if err.strip() else ""
    match = ERROR_LINE.match(first)
    assert match is not None, err
    return match["code"], match["rest"]


def run_limited(
    *args: str | Path, cwd: Path, timeout: float = 60, cap_memory: bool = False
) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess with a timeout, so that a blocking read ends in
    ``TimeoutExpired`` instead of hanging the suite. ``cap_memory`` (for engine-free
    commands only: the engine's threads reserve much address space) limits the child to
    1 GiB of address space, so that an unbounded read dies instead of taking the machine's
    memory."""

    def limit() -> None:  # pragma: no cover - runs in the child
        cap = 1024 * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return run_planguard(*args, cwd=cwd, timeout=timeout, preexec_fn=limit if cap_memory else None)


def overwritten_table(location: Path, *, times: int = 5, rows: int = 14) -> Path:
    for _ in range(times):
        deltalake.write_deltalake(
            str(location), pa.table({"a": list(range(rows))}), mode="overwrite"
        )
    return location


# -- 1. format truth ---------------------------------------------------------------------


@pytest.mark.produces_codes("DATASET_FORMAT_MISMATCH")
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_delta_table_declared_parquet_reads_no_row(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    codes: CodeRecorder,
) -> None:
    """The reported case: overwritten 5 times, 14 live rows, read as 70 when declared
    Parquet. Now refused before any row is read, and no output is written."""
    root = tmp_path / "project"
    overwritten_table(root / "t")
    path = project(root, dataset("t", "parquet", "t") + copy_to_output("t") + CLEAN)
    before = tree_state(tmp_path)
    exit_code, out, err = cli_main(capsys, monkeypatch, command, path)
    assert_no_traceback(out, err)
    assert exit_code == 2, (out, err)
    code, rest = error_line(err)
    codes.expect(code, "DATASET_FORMAT_MISMATCH", err)
    assert rest.startswith(f"{path}: datasets.t.format: "), rest
    assert "_delta_log" in rest, rest
    assert 'format = "delta"' in rest, rest
    assert tree_state(tmp_path) == before
    assert not (root / "out").exists()


def test_the_same_table_declared_delta_counts_its_live_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twin: declared as what it is, the table yields its 14 live rows, not 70."""
    root = tmp_path / "project"
    overwritten_table(root / "t")
    path = project(root, dataset("t", "delta", "t") + copy_to_output("t") + CLEAN)
    exit_code, out, err = cli_main(capsys, monkeypatch, "run", path)
    assert exit_code == 0, (out, err)
    assert deltalake.DeltaTable(str(root / "out" / "o")).to_pyarrow_table().num_rows == 14


def write_parquet(path: Path, rows: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"a": list(range(rows))}), path)
    return path


def layout_delta_partition(root: Path) -> str:
    deltalake.write_deltalake(
        str(root / "t"), pa.table({"a": [1, 2], "k": ["x", "y"]}), partition_by=["k"]
    )
    return dataset("p", "parquet", "t/k=x")


def layout_delta_data_file(root: Path) -> str:
    overwritten_table(root / "t", times=2)
    name = next((root / "t").glob("*.parquet")).name
    return dataset("p", "parquet", f"t/{name}")


def layout_nested_delta_under_parquet(root: Path) -> str:
    write_parquet(root / "p" / "part-0.parquet")
    overwritten_table(root / "p" / "k=1", times=3)
    return dataset("p", "parquet", "p")


def layout_parquet_directory_declared_delta(root: Path) -> str:
    write_parquet(root / "p" / "part-0.parquet")
    return dataset("p", "delta", "p")


def layout_parquet_file_declared_delta(root: Path) -> str:
    write_parquet(root / "p.parquet")
    return dataset("p", "delta", "p.parquet")


def layout_delta_one_level_down(root: Path) -> str:
    overwritten_table(root / "d" / "t", times=1)
    return dataset("p", "delta", "d")


def layout_no_parquet_files(root: Path) -> str:
    (root / "p").mkdir(parents=True)
    (root / "p" / "part-0.csv").write_text("a\n1\n", encoding="utf-8")
    return dataset("p", "parquet", "p")


MISMATCHES = {
    "parquet-at-a-delta-partition": (layout_delta_partition, 'format = "delta"'),
    "parquet-at-a-delta-data-file": (layout_delta_data_file, "inside the Delta table"),
    "parquet-over-a-nested-delta-table": (layout_nested_delta_under_parquet, "k=1"),
    "delta-at-a-parquet-directory": (layout_parquet_directory_declared_delta, 'format = "parquet"'),
    "delta-at-a-parquet-file": (layout_parquet_file_declared_delta, 'format = "parquet"'),
    "delta-log-one-level-down": (layout_delta_one_level_down, "d/t"),
    "parquet-without-parquet-files": (layout_no_parquet_files, "part-0.csv"),
}


@pytest.mark.produces_codes("DATASET_FORMAT_MISMATCH")
@pytest.mark.parametrize("layout", sorted(MISMATCHES))
def test_a_declaration_that_disagrees_with_the_data_is_refused(
    layout: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    codes: CodeRecorder,
) -> None:
    make, hint = MISMATCHES[layout]
    root = tmp_path / "project"
    root.mkdir()
    path = project(root, make(root) + copy_to_output("p") + CLEAN)
    exit_code, out, err = cli_main(capsys, monkeypatch, "run", path)
    assert_no_traceback(out, err)
    assert exit_code == 2, (out, err)
    code, rest = error_line(err)
    codes.expect(code, "DATASET_FORMAT_MISMATCH", err)
    assert rest.startswith(f"{path}: datasets.p.format: "), rest
    assert hint in rest, rest
    assert not (root / "out").exists()


def test_declarations_that_agree_with_the_data_plan_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twin, no false positives: a partitioned Delta table with awkward partition values, a
    Parquet directory with a marker file and hidden files, a single Parquet file, a
    ``_delta_log``-like name that is no directory, and links that stay inside the root."""
    root = tmp_path / "project"
    deltalake.write_deltalake(
        str(root / "t d"),
        pa.table({"a": [1, 2, 3], "k": ["x y", "é/z", "50%"]}),
        partition_by=["k"],
    )
    write_parquet(root / "p" / "part-0.parquet")
    write_parquet(root / "p" / "_hidden.parquet")
    (root / "p" / "_SUCCESS").write_text("", encoding="utf-8")
    (root / "p" / "x_delta_log").write_text("not a log", encoding="utf-8")
    (root / "p" / "link.parquet").symlink_to(root / "p" / "part-0.parquet")
    write_parquet(root / "one.parquet")
    manifest = (
        dataset("t", "delta", "t d")
        + dataset("p", "parquet", "p")
        + dataset("f", "parquet", "one.parquet")
        + '[views.v]\nsql = "SELECT count(*) AS n FROM t UNION ALL SELECT count(*) FROM p '
        'UNION ALL SELECT count(*) FROM f"\n' + CLEAN
    )
    path = project(root, manifest)
    exit_code, out, err = cli_main(capsys, monkeypatch, "validate", path)
    assert exit_code == 0, (out, err)


@pytest.mark.produces_codes("DATASET_NOT_DELTA")
def test_a_delta_log_without_a_version_is_not_delta(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    codes: CodeRecorder,
) -> None:
    """``DATASET_NOT_DELTA`` stays for the one case the marker cannot decide: a
    ``_delta_log`` that holds no table version."""
    root = tmp_path / "project"
    (root / "t" / "_delta_log").mkdir(parents=True)
    path = project(root, dataset("t", "delta", "t") + '[views.v]\nsql = "SELECT 1 AS x"\n')
    exit_code, out, err = cli_main(capsys, monkeypatch, "validate", path)
    assert exit_code == 2, (out, err)
    code, rest = error_line(err)
    codes.expect(code, "DATASET_NOT_DELTA", err)
    assert rest.startswith(f"{path}: datasets.t.location: "), rest


# -- 2. data files outside the root ------------------------------------------------------


def outside_file(tmp_path: Path) -> Path:
    return write_parquet(tmp_path / "outside" / "secret.parquet", rows=5)


def point_add_action(table: Path, path: str, size: int) -> None:
    log = table / "_delta_log" / "00000000000000000000.json"
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        if "add" in line:
            line["add"]["path"] = path
            line["add"]["size"] = size
            line["add"]["stats"] = None
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")


ADD_PATHS: dict[str, Callable[[Path], str]] = {
    "dotdot": lambda secret: "../../outside/secret.parquet",
    "absolute": str,
    "file-url": lambda secret: secret.as_uri(),
}


@pytest.mark.produces_codes("MANIFEST_LOCATION_ESCAPES_ROOT")
@pytest.mark.parametrize("how", sorted(ADD_PATHS))
def test_a_delta_add_action_outside_the_root_is_refused(
    how: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    codes: CodeRecorder,
) -> None:
    secret = outside_file(tmp_path)
    root = tmp_path / "project"
    deltalake.write_deltalake(str(root / "t"), pa.table({"a": [1]}))
    point_add_action(root / "t", ADD_PATHS[how](secret), secret.stat().st_size)
    path = project(root, dataset("t", "delta", "t") + copy_to_output("t") + CLEAN)
    exit_code, out, err = cli_main(capsys, monkeypatch, "run", path)
    assert_no_traceback(out, err)
    assert exit_code == 2, (out, err)
    code, rest = error_line(err)
    codes.expect(code, "MANIFEST_LOCATION_ESCAPES_ROOT", err)
    assert rest.startswith(f"{path}: datasets.t.location: "), rest
    assert "'../../outside/secret.parquet'" in rest, rest  # the file, relative to the table
    assert not (root / "out").exists()
    # Twin: the explicit way out reads it.
    path.write_text(
        dataset("t", "delta", "t") + copy_to_output("t") + CLEAN.replace("[policy]\n", EXTERNAL),
        encoding="utf-8",
    )
    exit_code, out, err = cli_main(capsys, monkeypatch, "run", path)
    assert exit_code == 0, (out, err)
    assert deltalake.DeltaTable(str(root / "out" / "o")).to_pyarrow_table().num_rows == 5


@pytest.mark.produces_codes("MANIFEST_LOCATION_ESCAPES_ROOT")
@pytest.mark.parametrize("link", ["file", "directory", "data-file-of-a-delta-table"])
def test_a_symlink_to_data_outside_the_root_is_refused(
    link: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    codes: CodeRecorder,
) -> None:
    secret = outside_file(tmp_path)
    root = tmp_path / "project"
    write_parquet(root / "p" / "part-0.parquet")
    name, manifest = "p", dataset("p", "parquet", "p")
    if link == "file":
        (root / "p" / "zz.parquet").symlink_to(secret)
    elif link == "directory":
        (root / "p" / "k=1").symlink_to(secret.parent)
    else:
        deltalake.write_deltalake(str(root / "t"), pa.table({"a": [1]}))
        data = next((root / "t").glob("*.parquet"))
        data.unlink()
        data.symlink_to(secret)
        name, manifest = "t", dataset("t", "delta", "t")
    path = project(root, manifest + copy_to_output(name) + CLEAN)
    exit_code, out, err = cli_main(capsys, monkeypatch, "run", path)
    assert_no_traceback(out, err)
    assert exit_code == 2, (out, err)
    code, rest = error_line(err)
    codes.expect(code, "MANIFEST_LOCATION_ESCAPES_ROOT", err)
    assert rest.startswith(f"{path}: datasets.{name}.location: "), rest
    assert not (root / "out").exists()


# -- 3. symlink loops and unbounded reads -------------------------------------------------


LOOPS = {
    "sql_file": ("MANIFEST_SQL_FILE_UNREADABLE", "views.v.sql_file"),
    "location": ("DATASET_LOCATION_UNRESOLVED", "datasets.p.location"),
    "inside-parquet": ("DATASET_UNREADABLE", "datasets.p.location"),
}


@pytest.mark.parametrize(
    "where",
    [pytest.param(where, marks=pytest.mark.produces_codes(LOOPS[where][0])) for where in LOOPS],
)
def test_a_symlink_loop_is_a_coded_error(
    where: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    codes: CodeRecorder,
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "a.parquet").symlink_to(root / "b.parquet")
    (root / "b.parquet").symlink_to(root / "a.parquet")
    write_parquet(root / "p" / "part-0.parquet")
    manifest = {
        "sql_file": '[views.v]\nsql_file = "a.parquet"\n',
        "location": dataset("p", "parquet", "a.parquet") + '[views.v]\nsql = "SELECT 1 AS x"\n',
        "inside-parquet": dataset("p", "parquet", "p") + '[views.v]\nsql = "SELECT 1 AS x"\n',
    }[where]
    if where == "inside-parquet":
        (root / "p" / "x.parquet").symlink_to(root / "p" / "y.parquet")
        (root / "p" / "y.parquet").symlink_to(root / "p" / "x.parquet")
    path = project(root, manifest)
    expected, field = LOOPS[where]
    exit_code, out, err = cli_main(capsys, monkeypatch, "validate", path)
    assert_no_traceback(out, err)
    assert exit_code == 2, (out, err)
    code, rest = error_line(err)
    codes.expect(code, expected, err)
    assert rest.startswith(f"{path}: {field}: "), rest


@pytest.mark.parametrize(
    "what",
    [
        pytest.param("sql_file", marks=pytest.mark.produces_codes("MANIFEST_SQL_FILE_UNREADABLE")),
        pytest.param("manifest", marks=pytest.mark.produces_codes("MANIFEST_NOT_FOUND")),
    ],
)
def test_a_fifo_is_refused_promptly(what: str, tmp_path: Path, codes: CodeRecorder) -> None:
    """A FIFO nobody writes to used to block ``compile`` forever."""
    root = tmp_path / "project"
    root.mkdir()
    os.mkfifo(root / "fifo")
    if what == "sql_file":
        target = project(root, '[views.v]\nsql_file = "fifo"\n')
        expected, field = "MANIFEST_SQL_FILE_UNREADABLE", "views.v.sql_file: "
    else:
        target, expected, field = root / "fifo", "MANIFEST_NOT_FOUND", ""
    started = time.monotonic()
    result = run_limited("compile", target, cwd=tmp_path, timeout=60, cap_memory=True)
    elapsed = time.monotonic() - started
    assert_no_traceback(result.stdout, result.stderr)
    assert result.returncode == 2, result
    code, rest = error_line(result.stderr)
    codes.expect(code, expected, result.stderr)
    assert rest.startswith(f"{shown(target, tmp_path)}: {field}"), rest
    assert elapsed < 30, elapsed


@pytest.mark.parametrize(
    "what",
    [
        pytest.param("sql_file", marks=pytest.mark.produces_codes("MANIFEST_SQL_FILE_UNREADABLE")),
        *(
            pytest.param(what, marks=pytest.mark.produces_codes("DATASET_UNREADABLE"))
            for what in ("parquet-location", "parquet-file-in-directory")
        ),
    ],
)
def test_a_character_device_is_not_read(what: str, tmp_path: Path, codes: CodeRecorder) -> None:
    """``/dev/zero`` through an allowed external location: ``st_size`` is 0, the read never
    ends. Refused without reading (the SQL file in a child limited to 1 GiB)."""
    root = tmp_path / "project"
    root.mkdir()
    if what == "sql_file":
        manifest = '[views.v]\nsql_file = "/dev/zero"\n'
        expected, field = "MANIFEST_SQL_FILE_UNREADABLE", "views.v.sql_file"
    elif what == "parquet-location":
        manifest = dataset("p", "parquet", "/dev/zero") + '[views.v]\nsql = "SELECT 1 AS x"\n'
        expected, field = "DATASET_UNREADABLE", "datasets.p.location"
    else:
        write_parquet(root / "p" / "part-0.parquet")
        (root / "p" / "zero.parquet").symlink_to("/dev/zero")
        manifest = dataset("p", "parquet", "p") + '[views.v]\nsql = "SELECT * FROM p"\n'
        expected, field = "DATASET_UNREADABLE", "datasets.p.location"
    path = project(root, manifest + EXTERNAL)
    command = "compile" if what == "sql_file" else "validate"  # compile is engine-free
    result = run_limited(command, path, cwd=tmp_path, timeout=120, cap_memory=what == "sql_file")
    assert_no_traceback(result.stdout, result.stderr)
    assert result.returncode == 2, result
    code, rest = error_line(result.stderr)
    codes.expect(code, expected, result.stderr)
    assert rest.startswith(f"{shown(path, tmp_path)}: {field}: "), rest


@pytest.mark.produces_codes("DATASET_UNREADABLE")
def test_a_fifo_among_parquet_files_is_not_opened(tmp_path: Path, codes: CodeRecorder) -> None:
    root = tmp_path / "project"
    write_parquet(root / "p" / "part-0.parquet")
    os.mkfifo(root / "p" / "part-1.parquet")
    path = project(root, dataset("p", "parquet", "p") + '[views.v]\nsql = "SELECT * FROM p"\n')
    result = run_limited("validate", path, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result
    code, rest = error_line(result.stderr)
    codes.expect(code, "DATASET_UNREADABLE", result.stderr)
    assert "part-1.parquet" in rest, rest
    assert "FIFO" in rest, rest


# -- 4. engine panics -----------------------------------------------------------------------


def corrupt_footer(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-8] + (2**31).to_bytes(4, "little") + b"PAR1")


@pytest.mark.produces_codes("DATASET_UNREADABLE")
def test_an_engine_panic_on_a_corrupt_footer_is_a_coded_error(
    tmp_path: Path, codes: CodeRecorder
) -> None:
    """The engine panics (``pyo3_runtime.PanicException``, a ``BaseException``) reading a
    footer whose length is 2**31. A real process: no traceback and no Rust panic text."""
    root = tmp_path / "project"
    corrupt_footer(write_parquet(root / "p" / "part-0.parquet"))
    path = project(root, dataset("p", "parquet", "p") + copy_to_output("p") + CLEAN)
    for command in ("validate", "run"):
        result = run_limited(command, path, cwd=tmp_path, timeout=120)
        assert_no_traceback(result.stdout, result.stderr)
        assert result.returncode == 2, result
        code, rest = error_line(result.stderr)
        codes.expect(code, "DATASET_UNREADABLE", result.stderr)
        assert rest.startswith(f"{shown(path, tmp_path)}: datasets.p.location: dataset 'p': "), rest
    assert not (root / "out").exists()


class _Escaping(BaseException):
    """Neither an Exception nor one of the interpreter's control exceptions."""


@pytest.mark.produces_codes("INTERNAL_ERROR")
@pytest.mark.parametrize("command", [
    (reference_cli, "_schema", ["schema"]),
    (cli, "_diff", ["diff", "base", "head"]),
])  # fmt: skip
def test_the_cli_reports_any_base_exception_as_an_internal_error(
    command: tuple[object, str, list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    codes: CodeRecorder,
) -> None:
    """A reference command and the plugin's ``diff`` go through the same guard."""

    def boom(args: object) -> int:
        raise _Escaping("from deep inside an engine")

    module, handler, argv = command
    monkeypatch.setattr(module, handler, boom)
    monkeypatch.delenv("PLANGUARD_DEBUG", raising=False)
    exit_code, out, err = cli_main(capsys, monkeypatch, *argv)
    assert exit_code == 2
    assert_no_traceback(out, err)
    code, rest = error_line(err)
    codes.expect(code, "INTERNAL_ERROR", err)
    assert rest.startswith("_Escaping: from deep inside an engine"), err


@pytest.mark.produces_codes("INTERRUPTED")
@pytest.mark.parametrize("command", [
    (reference_cli, "_validate", ["validate", "manifest.toml"]),
    (cli, "_diff", ["diff", "base", "head"]),
])  # fmt: skip
def test_an_interrupted_command_exits_2_with_a_code(
    command: tuple[object, str, list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    codes: CodeRecorder,
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    module, handler, argv = command
    monkeypatch.setattr(module, handler, interrupted)
    exit_code, out, err = cli_main(capsys, monkeypatch, *argv)
    assert exit_code == 2
    assert_no_traceback(out, err)
    code, rest = error_line(err)
    codes.expect(code, "INTERRUPTED", err)
    assert rest == "interrupted"


@pytest.mark.produces_codes("USAGE")
@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["validate"],
        ["validate", "m.toml", "--trust-module", "../evil"],
        ["run", "m.toml", "--mode", "loud"],
        ["diff", "only-base"],
    ],
)
def test_bad_usage_exits_2_with_a_code(
    argv: list[str], capsys: pytest.CaptureFixture[str], codes: CodeRecorder
) -> None:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == 2
    assert_no_traceback(out, err)
    assert err.startswith("usage: planguard"), err
    code, _ = error_line(err.strip().splitlines()[-1])
    codes.expect(code, "USAGE", err)


@pytest.mark.parametrize("kind", [SystemExit, GeneratorExit])
def test_the_interpreters_control_exceptions_still_propagate(
    kind: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    def stop(args: object) -> int:
        raise kind(3)

    monkeypatch.setattr(reference_cli, "_schema", stop)
    with pytest.raises(kind):
        cli.main(["schema"])


def real_panic_type(tmp_path: Path) -> type[BaseException]:
    """``pyo3_runtime.PanicException``, taken from a real engine panic."""
    from datafusion import SessionContext

    corrupt_footer(write_parquet(tmp_path / "panic" / "part-0.parquet"))
    with pytest.raises(BaseException, match="range start must not be greater") as info:
        SessionContext().register_parquet("p", str(tmp_path / "panic"))
    assert not isinstance(info.value, Exception), info.value  # a panic, not an error
    return info.type


class _PanickingSession:
    """A session whose planning panics, as the engine does on some inputs."""

    def __init__(self, panic: type[BaseException]) -> None:
        self.panic = panic

    def sql(self, query: str, options: object = None) -> object:
        raise self.panic(f"engine panic planning {query!r}")

    def register_view(self, name: str, frame: object) -> None:
        raise AssertionError("a view that panicked is not registered")


@pytest.mark.parametrize("budget_ms", [None, 5000])
def test_a_panic_planning_a_view_is_that_views_failure(
    budget_ms: int | None, tmp_path: Path
) -> None:
    """Not a traceback: the view is recorded as failed (validation reports it with a code),
    with or without the planning worker thread of ``runtime.planning_budget_ms``."""
    from reference_impl.engine.session import _register_views
    from reference_impl.semantics.compile import compile_semantic_program
    from reference_impl.semantics.load import load_manifest

    panic = real_panic_type(tmp_path)
    path = project(tmp_path / "project", '[views.v]\nsql = "SELECT 1 AS x"\n')
    program = compile_semantic_program(load_manifest(path))
    frames, failures = _register_views(_PanickingSession(panic), program, budget_ms=budget_ms)
    assert frames == {}
    assert failures["v"].kind == "planning_error"
    assert "engine panic planning" in failures["v"].message
