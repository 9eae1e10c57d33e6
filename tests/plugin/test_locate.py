"""Where a gated view is defined (``reportinfo()``): read from the file's text alone."""

from __future__ import annotations

from pathlib import Path

from pytest_planguard.gate.locate import view_location

MANIFEST = """\
[datasets.t]
location = "data/t"

[views.reader]
sql = "SELECT * FROM first"

[views.first]
sql = "SELECT 1 AS x"

[ views . "second-one" ]
sql = "SELECT 2 AS x"

[views.from_file]
sql_file = "sql/from_file.sql"

[views.missing_file]
sql_file = "sql/nowhere.sql"
"""


def test_each_view_points_at_its_own_table_or_sql_file(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(MANIFEST)
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "from_file.sql").write_text("SELECT 3 AS x")
    assert view_location(manifest, "first") == (manifest, 6)
    assert view_location(manifest, "second-one") == (manifest, 9)
    assert view_location(manifest, "from_file") == ((tmp_path / "sql" / "from_file.sql"), 0)
    # a sql_file that does not exist: the manifest table is named instead
    assert view_location(manifest, "missing_file") == (manifest, 15)


def test_a_session_view_is_found_by_its_name_in_the_module(tmp_path: Path) -> None:
    module = tmp_path / "pipeline.py"
    module.write_text('def make():\n    ctx = 1\n    ctx.register_view("totals", df)\n')
    assert view_location(module, "totals", session=True) == (module, 2)
    assert view_location(module, "absent", session=True) == (module, None)
