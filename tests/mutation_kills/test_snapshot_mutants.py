"""The snapshot writer and reader on exact texts and real files (issue 20): the rendered
text of a bundle, signal formatting, the header, damage messages, which files count as
planguard's own (the only ones ever deleted), stale temporaries, the directory layout,
reading damaged or CRLF files, and the atomic write's failure message."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pytest_planguard.adapter import BundleView, EngineInfo
from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.gate.normalize import NORMALIZER_VERSION, settings_hash
from pytest_planguard.gate.snapshot import (
    EXTERNAL,
    FORMAT_LINE,
    PlanBundleSnapshotExtension,
    atomic_write,
    is_planguard_snapshot,
    parse_signals,
    parse_snapshot,
    read_snapshot_text,
    render_snapshot,
    snapshot_damage,
    snapshot_directory,
    snapshot_header,
    stale_temporaries,
    unused_snapshots,
    valid_snapshot_name,
)

BUNDLE = BundleView(
    view="v",
    p0="Projection: a\n  TableScan: /data/t  \n",
    p1="TableScan: data/t projection=[a]",
    p2="DataSourceExec: file_groups={1 group: [[data/t/x.parquet]]}",
    schema=(("a", "Int64", False), ("b", "Utf8", True), ("p", "Dict(data/t)", True)),
    signals={
        "operator_counts": {"Projection": 1, "TableScan": 2},
        "empty_map": {},
        "list": ["x", 2],
        "empty_list": (),
        "none": None,
        "operator_total": 3,
    },
)


def test_a_bundle_renders_to_the_exact_snapshot_text() -> None:
    text = render_snapshot(
        BUNDLE, {"engine": "e=1", "normalizer": "2"}, locations={"t": "/data/t"}, roots={}
    )
    assert text == (
        f"{FORMAT_LINE}\n# view: v\n# engine: e=1\n# normalizer: 2\n"
        "\n== P0 logical\nProjection: a\n  TableScan: $t\n"
        "\n== P1 optimized\nTableScan: $t projection=[a]\n"
        "\n== P2 physical\nDataSourceExec: files=[$t]\n"
        "\n== schema\na: Int64 not null\nb: Utf8\np: Dict($t)\n"
        "\n== signals\nempty_list: -\nempty_map: -\nlist: x, 2\nnone: -\n"
        "operator_counts: Projection=1 TableScan=2\noperator_total: 3\n"
    )
    assert snapshot_damage(text) == ()


def test_a_bundle_without_signals_ends_with_one_newline() -> None:
    bare = BundleView(view="v", p0="A", p1="B", p2="C", schema=())
    text = render_snapshot(bare, {}, locations={}, roots={})
    assert text.endswith("== schema\n\n\n== signals\n")
    assert parse_snapshot(text).sections == {
        "P0 logical": "A",
        "P1 optimized": "B",
        "P2 physical": "C",
        "schema": "",
        "signals": "",
    }


def test_the_header_sorts_engine_versions_and_hashes_the_settings() -> None:
    engine = EngineInfo(
        versions={"deltalake": "1.6", "datafusion": "55"},
        settings={"datafusion.execution.target_partitions": "8", "x": "1"},
    )
    assert snapshot_header(engine) == {
        "engine": "datafusion=55 deltalake=1.6",
        "settings-hash": settings_hash(engine.settings),
        "normalizer": str(NORMALIZER_VERSION),
    }
    strict = snapshot_header(engine, strict_settings=True)
    assert strict["settings-hash"] == settings_hash(engine.settings, strict=True)
    assert strict["settings-hash"] != settings_hash(engine.settings)


def test_parsing_reads_header_keys_and_sections_and_ignores_other_lines() -> None:
    text = (
        "# planguard plan bundle v1\n# view:  v \n# not a key\nstray\n#nospace: 1\n"
        "== P0 logical \n\nA\n  B\n\n== schema\n"
    )
    parsed = parse_snapshot(text)
    assert parsed.header == {"view": "v"}
    assert parsed.sections == {"P0 logical": "A\n  B", "schema": ""}
    assert parse_signals("a: 1\nbad line\n b : x: y ") == {"a": "1", "b": "x: y"}


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("", ("line 1 is not '# planguard plan bundle v1'",)),
        (
            f"{FORMAT_LINE}\n# view: v\n\n== P1 optimized\n",
            ("line 4: unexpected section 'P1 optimized'",),
        ),
        (
            f"{FORMAT_LINE}\n# view: v\n# colour: red\n== P0 logical\n",
            ("line 3: not a header line: '# colour: red'",),
        ),
        (f"{FORMAT_LINE}\n#view: v\n", ("line 2: not a header line: '#view: v'",)),
        (f"{FORMAT_LINE}\n# view v\n", ("line 2: not a header line: '# view v'",)),
        (
            f"{FORMAT_LINE}\n\n== P0 logical\nx\n== P1 optimized\n== P2 physical\n",
            ("missing section(s): schema, signals",),
        ),
        (
            f"{FORMAT_LINE}\n" + "x" * 100 + "\n",
            ("line 2: not a header line: " + repr("x" * 60),),
        ),
    ],
)
def test_damage_names_the_first_departure_from_the_format(
    text: str, problems: tuple[str, ...]
) -> None:
    assert snapshot_damage(text) == problems


def test_header_lines_after_the_first_section_are_section_text_not_damage() -> None:
    text = render_snapshot(BundleView("v", "# p0: a", "B", "C", ()), {}, locations={}, roots={})
    assert snapshot_damage(text) == ()


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("view_1.a-b", True),
        ("_v", True),
        ("a" * 200, True),
        ("a" * 201, False),
        ("-v", False),
        (".v", False),
        ("a..b", False),
        ("a/b", False),
        ("", False),
        ("a b", False),
    ],
)
def test_snapshot_names(name: str, valid: bool) -> None:
    assert valid_snapshot_name(name) is valid


# ---------------------------------------------------------------------------- files


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_only_regular_plan_files_with_the_format_line_are_planguards(tmp_path: Path) -> None:
    own = write(tmp_path / "a.plan", FORMAT_LINE + "\n# view: a\n")
    crlf = write(tmp_path / "c.plan", FORMAT_LINE + "\r\n")
    bare = write(tmp_path / "d.plan", FORMAT_LINE)
    assert is_planguard_snapshot(own)
    assert is_planguard_snapshot(crlf)
    assert is_planguard_snapshot(bare)
    assert not is_planguard_snapshot(write(tmp_path / "b.txt", FORMAT_LINE + "\n"))
    assert not is_planguard_snapshot(write(tmp_path / "e.plan", "# planguard plan bundle v2\n"))
    assert not is_planguard_snapshot(write(tmp_path / "f.plan", "x" + FORMAT_LINE + "\n"))
    assert not is_planguard_snapshot(write(tmp_path / "g.plan", ""))
    assert not is_planguard_snapshot(tmp_path / "missing.plan")
    (tmp_path / "dir.plan").mkdir()
    assert not is_planguard_snapshot(tmp_path / "dir.plan")
    (tmp_path / "link.plan").symlink_to(own)
    assert not is_planguard_snapshot(tmp_path / "link.plan")


def test_unused_snapshots_are_planguards_own_files_naming_no_view(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write(tmp_path / f"{name}.plan", FORMAT_LINE + "\n")
    write(tmp_path / "notes.plan", "my notes\n")
    write(tmp_path / "z.txt", FORMAT_LINE + "\n")
    assert unused_snapshots(tmp_path, {"b"}) == [tmp_path / "a.plan", tmp_path / "c.plan"]
    assert unused_snapshots(tmp_path, {"a", "b", "c"}) == []
    assert unused_snapshots(tmp_path / "missing", set()) == []


def test_stale_temporaries_are_the_writers_own_older_than_the_run(tmp_path: Path) -> None:
    old = write(tmp_path / ".v.plan.abcd_123.tmp", "x")
    young = write(tmp_path / ".w.plan.abcd_124.tmp", "x")
    write(tmp_path / ".v.plan.ABCD_123.tmp", "x")  # not the writer's pattern
    write(tmp_path / "v.plan.abcd_123.tmp", "x")
    write(tmp_path / ".v.txt.abcd_123.tmp", "x")
    write(tmp_path / ".v.plan.abcd_1234.tmp", "x")
    (tmp_path / ".d.plan.abcd_125.tmp").mkdir()
    (tmp_path / ".l.plan.abcd_126.tmp").symlink_to(old)
    now = time.time()
    for path in tmp_path.iterdir():
        os.utime(path, (now - 100, now - 100), follow_symlinks=False)
    os.utime(young, (now + 100, now + 100))
    assert stale_temporaries(tmp_path, now) == [old]
    assert stale_temporaries(tmp_path / "missing", now) == []


def test_the_snapshot_directory_mirrors_the_manifest_path(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    manifest = write(root / "pipelines" / "shop" / "manifest.toml", "")
    outside = write(tmp_path / "elsewhere" / "m.toml", "")
    snapshots = Path("snaps")
    assert snapshot_directory(snapshots, root, manifest) == snapshots / "pipelines/shop/manifest"
    assert snapshot_directory(snapshots, root, outside) == snapshots / EXTERNAL / "elsewhere/m"


def test_reading_a_snapshot_normalizes_newlines_and_survives_damage(tmp_path: Path) -> None:
    path = tmp_path / "v.plan"
    path.write_bytes(b"a\r\nb\rc\n\xff")
    assert read_snapshot_text(path) == "a\nb\nc\n\ufffd"
    assert read_snapshot_text(tmp_path / "missing.plan") is None
    assert read_snapshot_text(tmp_path) is None
    assert read_snapshot_text(path / "below") is None


def test_an_atomic_write_creates_directories_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "v.plan"
    atomic_write(target, "line\n")
    atomic_write(target, "new\n")
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["v.plan"]


def test_an_atomic_write_that_cannot_write_says_where_and_why(tmp_path: Path) -> None:
    blocker = write(tmp_path / "file", "")
    with pytest.raises(PlanguardError) as raised:
        atomic_write(blocker / "v.plan", "x")
    assert raised.value.code is PlanguardCode.SNAPSHOT_WRITE_FAILED
    assert raised.value.message == f"cannot write {str(blocker / 'v.plan')!r}: File exists"
    directory = tmp_path / "d.plan"
    directory.mkdir()
    (directory / "inner").write_text("", encoding="utf-8")
    with pytest.raises(PlanguardError) as raised:
        atomic_write(directory, "x")
    assert raised.value.code is PlanguardCode.SNAPSHOT_WRITE_FAILED
    assert raised.value.message.startswith(f"cannot write {str(directory)!r}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.plan", "file"]


def test_the_extension_refuses_non_text_and_writes_text() -> None:
    extension = PlanBundleSnapshotExtension()
    assert extension.serialize("text") == "text"
    with pytest.raises(TypeError, match=r"^plan bundle snapshots are text, got bytes$"):
        extension.serialize(b"x")


def test_a_header_key_ends_at_the_first_colon() -> None:
    text = render_snapshot(
        BundleView("v", "A", "B", "C", ()), {"engine": "e=1:2"}, locations={}, roots={}
    )
    assert "# engine: e=1:2\n" in text
    assert snapshot_damage(text) == ()
