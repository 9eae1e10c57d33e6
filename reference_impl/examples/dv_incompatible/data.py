"""Data of the ``dv_incompatible`` example: one Delta table with deletion vectors enabled.

``delta.enableDeletionVectors = true`` upgrades the table to reader version 3 / writer
version 7 with the ``deletionVectors`` table feature, which this example's
``[policy.delta_support]`` deliberately does not list, so validating the example reports
``DELTA_PROTOCOL_INCOMPATIBLE`` from a real table's real protocol.

Like the TPC-H example, the table is written in a temporary directory under a file lock
and moved into place with a rename, so concurrent runs (pytest-xdist workers) never see a
half-written table.  The rows are fixed: every run writes the same data.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

TABLE = "events"
ROWS = 5000
CONFIGURATION = {"delta.enableDeletionVectors": "true"}


def bootstrap(root: Path) -> None:
    """Create ``root/data/events`` (a deletion-vector Delta table) if it is missing."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    with open(data / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (data / TABLE / "_delta_log").is_dir():
            _generate(data)


def _generate(data: Path) -> None:
    import deltalake
    import pyarrow as pa

    table = pa.table(
        {
            "event_id": pa.array(range(ROWS), pa.int64()),
            "kind": pa.array([("click", "view", "purchase")[i % 3] for i in range(ROWS)]),
            "amount": pa.array([float(i % 97) for i in range(ROWS)], pa.float64()),
        }
    )
    with tempfile.TemporaryDirectory(dir=data, prefix=".tmp-") as tmp:
        staged = Path(tmp) / TABLE
        deltalake.write_deltalake(str(staged), table, configuration=CONFIGURATION)
        target = data / TABLE
        if target.exists():  # a leftover without a Delta log
            shutil.rmtree(target)
        os.rename(staged, target)
