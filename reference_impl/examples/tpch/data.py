"""Deterministic TPC-H data for the bundled example, generated on first use.

``tpchgen-cli`` (a Rust generator shipped as a PyPI wheel, installed by the ``examples``
extra) writes scale factor 0.01 as
Parquet, byte-identical on every run; each table is then written as a Delta table with
deltalake under ``<manifest dir>/data/<table>``.  Generation happens in a temporary
directory and each finished table is moved into place with a rename, under a file lock,
so concurrent runs (pytest-xdist workers) never see a half-written table.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from reference_impl.errors import ErrorCode, ReferenceImplError

TABLES = ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier")
SCALE_FACTOR = "0.01"


def bootstrap(root: Path) -> None:
    """Create ``root/data/<table>`` Delta tables for the eight TPC-H tables if missing."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    with open(data / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [name for name in TABLES if not (data / name / "_delta_log").is_dir()]
        if missing:
            _generate(data, missing)


def generate_parquet(directory: Path) -> dict[str, Path]:
    """Run tpchgen-cli into ``directory``; returns table name -> parquet file."""
    subprocess.run(
        [_tpchgen(), "parquet", "-s", SCALE_FACTOR, "-o", str(directory)],
        check=True,
        capture_output=True,
    )
    return {name: directory / f"{name}.parquet" for name in TABLES}


def _generate(data: Path, names: list[str]) -> None:
    import deltalake
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(dir=data, prefix=".tmp-") as tmp:
        files = generate_parquet(Path(tmp) / "parquet")
        for name in names:
            table = pq.read_table(files[name])
            schema = pa.schema(
                pa.field(
                    field.name,
                    pa.string() if pa.types.is_string_view(field.type) else field.type,
                    field.nullable,
                )
                for field in table.schema
            )
            staged = Path(tmp) / "delta" / name
            deltalake.write_deltalake(str(staged), table.cast(schema))
            target = data / name
            if target.exists():  # a leftover without a Delta log
                shutil.rmtree(target)
            os.rename(staged, target)


def _tpchgen() -> str:
    beside = Path(sys.executable).parent / "tpchgen-cli"
    if beside.exists():
        return str(beside)
    found = shutil.which("tpchgen-cli")
    if found is None:
        # a plain install leaves the generator out: it is the `examples` extra
        raise ReferenceImplError(
            ErrorCode.BOOTSTRAP_FAILED,
            "tpchgen-cli, which generates the TPC-H example's data, is not installed: "
            "pip install 'pytest-planguard[examples]' (or 'tpchgen-cli')",
            field_path="project.bootstrap",
        )
    return found
