"""The location rules of ``reference_impl.engine.data_source`` on real files, directories,
symlinks, FIFOs and Delta tables (issue 20): what each check accepts, what it refuses,
and the exact message, code and field path it refuses with.  tests/hostile/
test_data_truth.py covers the same rules end to end through the CLI; these pin the edges
(boundaries of the root, hints, first-found examples) where mutants lived."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Imported at module import, never inside a test (see tests/hostile/test_data_truth.py).
import deltalake
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reference_impl.engine.data_source import (
    DataFileScope,
    _check_delta_files,
    _check_delta_location,
    _check_parquet_location,
    _delta_ancestor,
    _inside,
    _kind,
    _local_path,
    _ParquetWalk,
    _stat_location,
    _survey_directory,
)
from reference_impl.errors import ErrorCode, ReferenceImplError

TABLE = pa.table({"a": [1, 2, 3]})


def parquet(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(TABLE, path)
    return path


def delta(path: Path) -> Path:
    deltalake.write_deltalake(str(path), TABLE)
    return path


def refused(call: object, *args: object) -> ReferenceImplError:
    with pytest.raises(ReferenceImplError) as raised:
        call(*args)  # type: ignore[operator]
    return raised.value


def assert_location_error(error: ReferenceImplError, code: ErrorCode, message: str) -> None:
    assert (error.code, error.message) == (code, message)
    assert (error.field_path, error.subjects) == ("datasets.d.location", ("d",))


def assert_mismatch(error: ReferenceImplError, message: str) -> None:
    assert (error.code, error.message) == (ErrorCode.DATASET_FORMAT_MISMATCH, message)
    assert (error.field_path, error.subjects) == ("datasets.d.format", ("d",))


# ----------------------------------------------------------------------- _stat_location


def test_stat_accepts_files_and_directories(tmp_path: Path) -> None:
    assert stat.S_ISDIR(_stat_location("d", str(tmp_path)).st_mode)
    assert stat.S_ISREG(_stat_location("d", str(parquet(tmp_path / "x.parquet"))).st_mode)


def test_stat_of_nothing_is_not_found(tmp_path: Path) -> None:
    where = str(tmp_path / "none")
    assert_location_error(
        refused(_stat_location, "d", where),
        ErrorCode.DATASET_NOT_FOUND,
        f"dataset 'd': nothing at {where!r}",
    )


def test_stat_of_a_symlink_loop_is_unreadable(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert_location_error(
        refused(_stat_location, "d", str(loop)),
        ErrorCode.DATASET_UNREADABLE,
        f"dataset 'd': cannot read {str(loop)!r}: Too many levels of symbolic links",
    )


def test_stat_of_a_fifo_is_unreadable(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_location_error(
        refused(_stat_location, "d", str(fifo)),
        ErrorCode.DATASET_UNREADABLE,
        f"dataset 'd': {str(fifo)!r} is a FIFO, not a regular file or a directory",
    )


def test_kinds_are_named() -> None:
    assert _kind(stat.S_IFIFO) == "a FIFO"
    assert _kind(stat.S_IFCHR) == "a character device"
    assert _kind(stat.S_IFBLK) == "a block device"
    assert _kind(stat.S_IFSOCK) == "a socket"
    assert _kind(stat.S_IFDIR) == "a directory"
    assert _kind(stat.S_IFLNK) == "not a regular file"


# ------------------------------------------------------------------------- delta rules


def check_delta(location: Path) -> None:
    _check_delta_location("d", str(location), os.stat(location))


def test_a_delta_table_directory_is_delta(tmp_path: Path) -> None:
    check_delta(delta(tmp_path / "t"))


def test_a_parquet_file_declared_delta_hints_at_parquet(tmp_path: Path) -> None:
    file = parquet(tmp_path / "x.PARQUET")
    assert_mismatch(
        refused(check_delta, file),
        f"dataset 'd': format is 'delta', but {str(file)!r} is a Parquet file, not a Delta "
        'table: declare format = "parquet"',
    )


def test_another_file_declared_delta_hints_at_a_directory(tmp_path: Path) -> None:
    file = tmp_path / "x.csv"
    file.write_text("a\n", encoding="utf-8")
    assert_mismatch(
        refused(check_delta, file),
        f"dataset 'd': format is 'delta', but {str(file)!r} is a file, not a Delta table: "
        "point location at a Delta table directory",
    )


def test_a_directory_above_delta_tables_points_at_the_first(tmp_path: Path) -> None:
    delta(tmp_path / "b")
    delta(tmp_path / "a")
    parquet(tmp_path / "x.parquet")
    (tmp_path / "c").mkdir()
    assert_mismatch(
        refused(check_delta, tmp_path),
        f"dataset 'd': format is 'delta', but {str(tmp_path)!r} has no _delta_log directory: "
        f"a Delta table is one level down at {str(tmp_path / 'a')!r}: point location at it",
    )
    assert _survey_directory(str(tmp_path)) == (
        [str(tmp_path / "a"), str(tmp_path / "b")],
        1,
    )


def test_a_parquet_directory_declared_delta_counts_its_files(tmp_path: Path) -> None:
    parquet(tmp_path / "x.parquet")
    parquet(tmp_path / "y.parquet")
    (tmp_path / "notes.txt").write_text("", encoding="utf-8")
    (tmp_path / "sub.parquet").mkdir()
    (tmp_path / "sub.parquet" / "_delta_log").write_text("", encoding="utf-8")  # a file
    assert_mismatch(
        refused(check_delta, tmp_path),
        f"dataset 'd': format is 'delta', but {str(tmp_path)!r} has no _delta_log directory: "
        'it holds 3 Parquet file(s): declare format = "parquet" if it is a plain Parquet '
        "directory",
    )


def test_an_empty_directory_declared_delta_holds_nothing(tmp_path: Path) -> None:
    assert_mismatch(
        refused(check_delta, tmp_path),
        f"dataset 'd': format is 'delta', but {str(tmp_path)!r} has no _delta_log directory: "
        "it holds no Delta table and no Parquet files",
    )


def test_a_delta_log_that_is_a_dangling_link_still_marks_a_delta_table(tmp_path: Path) -> None:
    (tmp_path / "_delta_log").symlink_to(tmp_path / "gone")
    check_delta(tmp_path)


def test_surveying_an_unreadable_directory_finds_nothing(tmp_path: Path) -> None:
    assert _survey_directory(str(tmp_path / "missing")) == ([], 0)


# ----------------------------------------------------------------------- parquet rules


def check_parquet(location: Path, scope: DataFileScope | None = None) -> None:
    _check_parquet_location("d", str(location), os.stat(location), scope)


def test_a_parquet_file_and_a_parquet_directory_are_parquet(tmp_path: Path) -> None:
    check_parquet(parquet(tmp_path / "x.parquet"))
    parquet(tmp_path / "dir" / "a" / "y.parquet")
    (tmp_path / "dir" / "_SUCCESS").write_text("", encoding="utf-8")
    check_parquet(tmp_path / "dir")


def test_a_delta_table_declared_parquet_is_refused(tmp_path: Path) -> None:
    table = delta(tmp_path / "t")
    assert_mismatch(
        refused(check_parquet, table),
        f"dataset 'd': format is 'parquet', but {str(table)!r} is a Delta table (it has a "
        "_delta_log); reading it as Parquet would also read removed files: declare format = "
        '"delta" and location = the table\'s directory',
    )


def test_a_directory_inside_a_delta_table_declared_parquet_names_the_table(
    tmp_path: Path,
) -> None:
    table = delta(tmp_path / "t")
    inner = table / "part"
    inner.mkdir()
    assert _delta_ancestor(str(inner)) == str(table)
    assert _delta_ancestor(str(tmp_path)) is None
    assert_mismatch(
        refused(check_parquet, inner),
        f"dataset 'd': format is 'parquet', but {str(inner)!r} is inside the Delta table at "
        f"{str(table)!r} (it has a _delta_log); reading it as Parquet would also read removed "
        'files: declare format = "delta" and location = the table\'s directory',
    )


def test_a_delta_table_inside_a_parquet_directory_is_its_own_dataset(tmp_path: Path) -> None:
    parquet(tmp_path / "a.parquet")
    delta(tmp_path / "z" / "t")
    assert_mismatch(
        refused(check_parquet, tmp_path),
        f"dataset 'd': format is 'parquet', but {str(tmp_path)!r} holds a Delta table at "
        f"{str(tmp_path / 'z' / 't')!r}: declare it as its own dataset with format = "
        '"delta"',
    )


def test_a_directory_without_parquet_files_names_its_first_file(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("", encoding="utf-8")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "z.csv").write_text("", encoding="utf-8")
    (tmp_path / "c.csv").write_text("", encoding="utf-8")
    assert_mismatch(
        refused(check_parquet, tmp_path),
        f"dataset 'd': format is 'parquet', but {str(tmp_path)!r} holds 3 file(s) and none "
        "named *.parquet (e.g. 'b.csv')",
    )


def test_an_empty_parquet_directory_passes_the_location_check(tmp_path: Path) -> None:
    check_parquet(tmp_path)  # registration reports it as not found


def walk(location: Path, scope: DataFileScope | None = None) -> _ParquetWalk:
    found = _ParquetWalk("d", str(location), scope)
    found.run()
    return found


def test_the_walk_counts_files_follows_links_once_and_skips_dangling_ones(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    parquet(root / "data" / "a.parquet")
    parquet(root / "data" / "deep" / "b.parquet")
    (root / "data" / "x.txt").write_text("", encoding="utf-8")
    (root / "again").symlink_to(root / "data")
    (root / "self").symlink_to(root)
    (root / "dangling.parquet").symlink_to(root / "gone.parquet")
    (root / "link.parquet").symlink_to(root / "data" / "a.parquet")
    (root / "notes.txt").symlink_to(tmp_path / "outside.txt")
    found = walk(root, DataFileScope(root=str(tmp_path / "root") + os.sep))
    assert (found.parquet_files, found.other_files, found.delta_tables) == (3, 1, [])
    assert found.other_example == os.path.join("again", "x.txt")


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = parquet(tmp_path / "rootx" / "o.parquet")
    (root / "o.parquet").symlink_to(outside)
    error = refused(walk, root, DataFileScope(root=str(root)))
    assert error.code is ErrorCode.MANIFEST_LOCATION_ESCAPES_ROOT
    assert error.message == (
        "dataset 'd': data file 'o.parquet' (a symlink) resolves outside the manifest "
        "directory; set policy.allow_external_locations = true to allow it"
    )
    assert walk(root, DataFileScope(root=str(root), allow_external=True)).parquet_files == 1
    assert walk(root).parquet_files == 1


def test_a_symlink_loop_in_the_walk_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert_location_error(
        refused(walk, tmp_path),
        ErrorCode.DATASET_UNREADABLE,
        "dataset 'd': 'loop' is a symlink that cannot be followed (Too many levels of "
        "symbolic links)",
    )


def test_a_fifo_named_like_parquet_is_unreadable_and_another_fifo_is_other(
    tmp_path: Path,
) -> None:
    os.mkfifo(tmp_path / "pipe")
    assert walk(tmp_path).other_files == 1
    os.mkfifo(tmp_path / "x.parquet")
    assert_location_error(
        refused(walk, tmp_path),
        ErrorCode.DATASET_UNREADABLE,
        "dataset 'd': 'x.parquet' is a FIFO, not a regular file",
    )


def test_an_unlistable_directory_is_unreadable(tmp_path: Path) -> None:
    assert_location_error(
        refused(walk, tmp_path / "missing"),
        ErrorCode.DATASET_UNREADABLE,
        "dataset 'd': '.' No such file or directory",
    )


# ------------------------------------------------------------------- delta data files


def test_local_paths_of_add_actions(tmp_path: Path) -> None:
    base = str(tmp_path)
    assert _local_path("part%20one.parquet", base) == str(tmp_path / "part one.parquet")
    assert _local_path("a/../b.parquet", base) == str(tmp_path / "b.parquet")
    assert _local_path("/abs/x.parquet", base) == "/abs/x.parquet"
    assert _local_path("file:///abs/%41.parquet", base) == "/abs/A.parquet"
    assert _local_path("FILE:///abs/b.parquet", base) == "/abs/b.parquet"
    assert _local_path("s3://bucket/x.parquet", base) is None


def test_inside_the_root_means_the_root_or_below_it() -> None:
    scope = DataFileScope(root="/m/")
    assert _inside(scope, "/m")
    assert _inside(scope, "/m/x")
    assert not _inside(scope, "/mx")
    assert not _inside(scope, "/")
    assert not _inside(scope, None)
    assert _inside(DataFileScope(root="/m", allow_external=True), None)
    assert _inside(None, None)


def test_a_tables_own_files_pass(tmp_path: Path) -> None:
    table = deltalake.DeltaTable(str(delta(tmp_path / "t")))
    _check_delta_files("d", table, str(tmp_path / "t"), DataFileScope(root=str(tmp_path)))
    _check_delta_files("d", table, str(tmp_path / "t"), None)


def only_file(location: Path) -> Path:
    (found,) = [p for p in location.iterdir() if p.suffix == ".parquet"]
    return found


def test_a_deleted_data_file_is_missing(tmp_path: Path) -> None:
    location = delta(tmp_path / "t")
    table = deltalake.DeltaTable(str(location))
    data = only_file(location)
    data.unlink()
    assert_location_error(
        refused(_check_delta_files, "d", table, str(location), None),
        ErrorCode.DATASET_UNREADABLE,
        f"dataset 'd': data file {data.name!r} referenced by Delta version 0 is missing",
    )


def test_a_data_file_replaced_by_a_directory_is_not_regular(tmp_path: Path) -> None:
    location = delta(tmp_path / "t")
    table = deltalake.DeltaTable(str(location))
    data = only_file(location)
    data.unlink()
    data.mkdir()
    assert_location_error(
        refused(_check_delta_files, "d", table, str(location), None),
        ErrorCode.DATASET_UNREADABLE,
        f"dataset 'd': data file {data.name!r} is a directory, not a regular file",
    )


def test_a_data_file_symlinked_out_of_the_root_escapes(tmp_path: Path) -> None:
    location = delta(tmp_path / "root" / "t")
    table = deltalake.DeltaTable(str(location))
    data = only_file(location)
    outside = tmp_path / "outside.parquet"
    data.rename(outside)
    data.symlink_to(outside)
    scope = DataFileScope(root=str(tmp_path / "root"))
    error = refused(_check_delta_files, "d", table, str(location), scope)
    assert error.code is ErrorCode.MANIFEST_LOCATION_ESCAPES_ROOT
    assert error.message == (
        f"dataset 'd': data file {data.name!r} (a symlink in the table) resolves outside the "
        "manifest directory; set policy.allow_external_locations = true to allow it"
    )
    _check_delta_files("d", table, str(location), None)  # without a scope it is read
    inside = tmp_path / "root" / "elsewhere.parquet"
    outside.rename(inside)
    data.unlink()
    data.symlink_to(inside)
    _check_delta_files("d", table, str(location), scope)


def test_a_symlinked_table_directory_is_judged_by_where_it_resolves(tmp_path: Path) -> None:
    real = delta(tmp_path / "real" / "t")
    root = tmp_path / "root"
    root.mkdir()
    (root / "t").symlink_to(real)
    table = deltalake.DeltaTable(str(root / "t"))
    error = refused(_check_delta_files, "d", table, str(root / "t"), DataFileScope(root=str(root)))
    assert error.code is ErrorCode.MANIFEST_LOCATION_ESCAPES_ROOT
    assert error.message.startswith(
        f"dataset 'd': data file {only_file(real).name!r} (a Delta log add action) resolves "
        "outside the manifest directory"
    )
