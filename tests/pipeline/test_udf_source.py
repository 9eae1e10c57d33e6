"""The code hash of UDF providers (:mod:`reference_impl.engine.udf_source`) and where it
goes: the UDF snapshot, the runtime fingerprint and the plan bundles of calling views."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_impl import run_pipeline
from reference_impl.engine.udf_source import provider_source_hash
from tests.support.shop import edit, write_shop

FACTORY_MODULE = """\
import pyarrow.compute as pc
from datafusion import udf
import pyarrow as pa


def _scale(value):
    return pc.divide(value, 100.0)


def unrelated():
    return 1


def make():
    return udf(_scale, [pa.float64()], pa.float64(), "immutable", name="cents_to_eur")


instance = make()
"""


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A module importable from ``tmp_path/site`` (not next to any manifest)."""
    site = tmp_path / "site"
    site.mkdir()
    name = f"udf_provider_{abs(hash(tmp_path)) % 10**8}"
    sys.path.insert(0, str(site))
    try:
        yield site / f"{name}.py", name
    finally:
        sys.path.remove(str(site))
        sys.modules.pop(name, None)


def hash_of(file: Path, name: str, text: str, attribute: str, root: Path) -> str | None:
    file.write_text(text)
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    module = importlib.import_module(name)
    return provider_source_hash(f"{name}:{attribute}", getattr(module, attribute), root=str(root))


def test_installed_factory_hashes_its_code_and_the_functions_it_names(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    file, name = installed
    root = tmp_path / "project"  # the manifest's directory: not where the module is
    base = hash_of(file, name, FACTORY_MODULE, "make", root)
    assert base is not None
    # the body of the function the factory names changes the hash
    assert hash_of(file, name, FACTORY_MODULE.replace("100.0", "1000.0"), "make", root) != base
    # twins: comments, blank lines and an unrelated function do not
    commented = FACTORY_MODULE.replace("def _scale", "# cents\n\n\ndef _scale")
    assert hash_of(file, name, commented, "make", root) == base
    other = FACTORY_MODULE.replace("return 1", "return 2")
    assert hash_of(file, name, other, "make", root) == base


def test_an_installed_scalar_udf_object_hashes_every_function_of_its_module(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    file, name = installed
    root = tmp_path / "project"
    base = hash_of(file, name, FACTORY_MODULE, "instance", root)
    assert base is not None
    changed = FACTORY_MODULE.replace("return 1", "return 2")
    assert hash_of(file, name, changed, "instance", root) != base
    assert hash_of(file, name, FACTORY_MODULE + "\n# a comment\n", "instance", root) == base


def test_a_module_next_to_the_manifest_hashes_its_file_bytes(
    installed: tuple[Path, str],
) -> None:
    file, name = installed
    root = file.parent  # the module lies in the manifest's directory
    base = hash_of(file, name, FACTORY_MODULE, "make", root)
    assert hash_of(file, name, FACTORY_MODULE, "make", root) == base
    # twin of the installed case: here a comment counts (any edit of the file)
    assert hash_of(file, name, FACTORY_MODULE + "\n# a comment\n", "make", root) != base


def test_the_code_hash_does_not_depend_on_string_hashing(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    """A frozenset constant (``x in {...}``) iterates in an order that follows the
    process's string hash seed; the hash must not."""
    file, name = installed
    file.write_text("def f(x):\n    return x in {'a', 'b', 'c', 'd', 'e', 'f', 'g'}\n")
    script = (
        f"import sys; sys.path.insert(0, {str(file.parent)!r}); import {name} as m; "
        "from reference_impl.engine.udf_source import provider_source_hash as h; "
        f"print(h({name + ':f'!r}, m.f, root={str(tmp_path / 'project')!r}))"
    )
    hashes = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert len(hashes) == 1
    assert "None" not in hashes


VIEWS = """\
[views.eur_totals]
sql = "SELECT customer_id, cents_to_eur(total) AS eur FROM order_totals"
udfs = ["cents_to_eur"]

[udfs.cents_to_eur]
provider = "shop_udfs_pipeline:cents_to_eur"

[runtime]"""


def test_a_udf_edit_changes_the_udf_snapshot_runtime_fingerprint_and_calling_bundles(
    tmp_path: Path,
) -> None:
    write_shop(tmp_path)
    edit(tmp_path / "manifest.toml", "[runtime]", VIEWS)
    provider = tmp_path / "shop_udfs_pipeline.py"

    def run(divisor: str) -> tuple[str | None, str, dict[str, str]]:
        provider.write_text(
            FACTORY_MODULE.replace("100.0", divisor).replace("make", "cents_to_eur")
        )
        sys.modules.pop("shop_udfs_pipeline", None)
        result = run_pipeline(tmp_path / "manifest.toml", execute=False)
        bundles = result.plan.plan_bundles_by_view
        return (
            result.authority.capabilities.udf_snapshot["cents_to_eur"].source_hash,
            result.authority.runtime_fingerprint,
            {view: bundle.fingerprint for view, bundle in bundles.items()},
        )

    try:
        source, runtime, plans = run("100.0")
        again = run("100.0")
        changed = run("1000.0")
    finally:
        sys.modules.pop("shop_udfs_pipeline", None)
    assert source is not None
    assert again == (source, runtime, plans)
    assert changed[0] != source
    assert changed[1] != runtime
    assert {view for view in plans if plans[view] != changed[2][view]} == {"eur_totals"}
