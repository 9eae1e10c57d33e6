"""``planguard init DIR``: a starter manifest that validates over fresh deltalake tables,
and never a file overwritten."""

from __future__ import annotations

from pathlib import Path

# Imported at module import, never inside a test (deltalake's native module panics when
# it is initialized twice, and pytester restores sys.modules).
import deltalake
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hostile.helpers import assert_no_traceback, tree_state
from tests.support.cli import run_cli
from tests.support.codes import CodeRecorder


def lake(root: Path) -> Path:
    """Fresh tables as a team has them: Delta (one with deletion vectors), Parquet."""
    deltalake.write_deltalake(
        str(root / "lake" / "sales"), pa.table({"id": [1, 2], "amount": [1.0, 2.0]})
    )
    deltalake.write_deltalake(
        str(root / "lake" / "Orders-2024"),
        pa.table({"id": [1, 2, 3]}),
        configuration={"delta.enableDeletionVectors": "true"},
        partition_by=None,
    )
    (root / "raw" / "events").mkdir(parents=True)
    pq.write_table(pa.table({"k": ["a"]}), root / "raw" / "events" / "part-0.parquet")
    return root


def test_init_writes_a_manifest_that_validates(tmp_path: Path) -> None:
    root = lake(tmp_path / "project")
    code, out, err = run_cli("init", str(root))
    assert (code, err) == (0, ""), err
    assert "dataset orders_2024: delta at lake/Orders-2024" in out
    assert (root / "pytest.ini").read_text() == "[pytest]\nplanguard_manifests = manifest.toml\n"
    text = (root / "manifest.toml").read_text()
    assert '[datasets.events]\nformat = "parquet"\nlocation = "raw/events"' in text
    assert '"deletionVectors"' in text  # filled in from the table's real protocol
    code, out, err = run_cli("validate", str(root / "manifest.toml"))
    assert code == 0, out + err
    code, out, _ = run_cli("compile", str(root / "manifest.toml"))
    assert code == 0
    assert "sales_rows" in out


@pytest.mark.produces_codes("INIT_TARGET_EXISTS", "DATASET_NOT_FOUND")
def test_init_never_overwrites_and_says_when_there_is_nothing(
    tmp_path: Path, codes: CodeRecorder
) -> None:
    root = lake(tmp_path / "project")
    (root / "pytest.ini").write_text("[pytest]\naddopts = -q\n")
    before = tree_state(root)
    code, out, err = run_cli("init", str(root))
    assert code == 2
    assert_no_traceback(out, err)
    codes.expect(err.split("]", 1)[0].removeprefix("error["), "INIT_TARGET_EXISTS", err)
    assert tree_state(root) == before  # not even the manifest was written

    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli("init", str(empty))
    assert code == 2
    codes.expect(err.split("]", 1)[0].removeprefix("error["), "DATASET_NOT_FOUND", err)
    assert list(empty.iterdir()) == []
