"""Semantic compile keeps its views' SQL analyses in a store between runs (a plan gate's
cache): a stored analysis serves only the same name and SQL from the same analysing code,
and a compile served entirely from the store gives the same program without importing
sqlglot."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from reference_impl.errors import ErrorCode, ReferenceImplError
from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
from reference_impl.semantics.program import ANALYSES_PREFIX, SemanticProgramManifest

WriteManifest = Callable[..., Path]

MANIFEST = """
[datasets.orders]
format = "delta"
location = "data/orders"

[datasets.customers]
format = "delta"
location = "data/customers"

[views.totals]
sql = "SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id"

[views.named]
sql = "WITH t AS (SELECT * FROM totals) SELECT c.name, t.total FROM t JOIN customers c ON true"
"""


class MemoryStore:
    """A store as the compile sees one: bytes by key."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.puts = 0

    def get(self, key: str) -> bytes | None:
        return self.entries.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.puts += 1
        self.entries[key] = value


def _compile(path: Path, store: MemoryStore | None = None) -> SemanticProgramManifest:
    from reference_impl.semantics.compile import clear_analysis_cache

    clear_analysis_cache()  # what this process kept: the store alone may serve
    return compile_semantic_program(load_manifest(path), analyses=store)


def _shape(program: SemanticProgramManifest) -> object:
    return [
        (v.name, v.sql, v.depends_on, v.view_dependencies, v.dataset_dependencies)
        for v in program.views
    ], program.fingerprint


def test_a_warm_compile_gives_the_cold_program_and_writes_nothing(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest(MANIFEST)
    store = MemoryStore()
    fresh = _compile(path)
    cold = _compile(path, store)
    assert store.puts == 1  # one entry per manifest, all its views
    warm = _compile(path, store)
    assert store.puts == 1
    assert _shape(cold) == _shape(warm) == _shape(fresh)
    assert msgspec.to_builtins(cold) == msgspec.to_builtins(warm) == msgspec.to_builtins(fresh)


def test_a_changed_view_is_analysed_again(write_manifest: WriteManifest) -> None:
    """Twin: the edited view's SQL reads another table; its stored analysis (under the old
    SQL) must not serve it."""
    path = write_manifest(MANIFEST)
    store = MemoryStore()
    _compile(path, store)
    path.write_text(MANIFEST.replace("FROM orders GROUP", "FROM customers GROUP"))
    warm = _compile(path, store)
    assert _shape(warm) == _shape(_compile(path))
    assert next(v for v in warm.views if v.name == "totals").depends_on == ("customers",)
    assert store.puts == 2


def test_a_stored_analysis_still_meets_the_manifest_s_names(
    write_manifest: WriteManifest,
) -> None:
    """Twin: the SQL is unchanged (its analysis served) but the dataset it reads is gone:
    the compile still refuses the unknown name."""
    path = write_manifest(MANIFEST)
    store = MemoryStore()
    _compile(path, store)
    gone = '[datasets.customers]\nformat = "delta"\nlocation = "data/customers"\n'
    assert gone in MANIFEST
    path.write_text(MANIFEST.replace(gone, ""))
    with pytest.raises(ReferenceImplError) as info:
        _compile(path, store)
    assert info.value.code == ErrorCode.MANIFEST_UNKNOWN_REFERENCE
    assert info.value.field_path == "views.named.sql"


def _stored(store: MemoryStore) -> tuple[str, dict[str, object]]:
    (key,) = [k for k in store.entries if k.startswith(ANALYSES_PREFIX)]
    return key, json.loads(store.entries[key])


def test_analyses_from_other_code_are_not_used(write_manifest: WriteManifest) -> None:
    """Stored by another version of the analysing code (or of sqlglot): ignored, though
    they name a table the view does not read."""
    path = write_manifest(MANIFEST)
    store = MemoryStore()
    _compile(path, store)
    key, payload = _stored(store)
    views = payload["views"]
    assert isinstance(views, dict)
    for entry in views.values():
        entry[0] = ["elsewhere"]
    store.entries[key] = json.dumps({**payload, "version": "other"}).encode()
    assert _shape(_compile(path, store)) == _shape(_compile(path))
    # the same tampered entries under this code's version are used: what the test above
    # relies on to tell the version check from the analysis
    store.entries[key] = json.dumps(payload).encode()
    with pytest.raises(ReferenceImplError) as info:
        _compile(path, store)
    assert info.value.code == ErrorCode.MANIFEST_UNKNOWN_REFERENCE


@pytest.mark.parametrize("garbage", [b"", b"{", b"[]", b'{"version": 1}', b"\xff\xfe"])
def test_a_corrupt_entry_is_analysed_afresh(write_manifest: WriteManifest, garbage: bytes) -> None:
    path = write_manifest(MANIFEST)
    store = MemoryStore()
    store.entries[ANALYSES_PREFIX + str(load_manifest(path).path)] = garbage
    assert _shape(_compile(path, store)) == _shape(_compile(path))


def test_a_view_that_fails_analysis_fails_every_time(write_manifest: WriteManifest) -> None:
    """An error is not stored: the next compile raises it again, coded."""
    path = write_manifest(MANIFEST + '\n[views.broken]\nsql = "DELETE FROM orders"\n')
    store = MemoryStore()
    for _ in range(2):
        with pytest.raises(ReferenceImplError) as info:
            _compile(path, store)
        assert info.value.code == ErrorCode.MANIFEST_NOT_A_QUERY
        assert info.value.field_path == "views.broken.sql"


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pytest_planguard.gate.plan_cache import PlanCacheStore
    from reference_impl.semantics.compile import compile_semantic_program
    from reference_impl.semantics.load import load_manifest

    store = PlanCacheStore(Path(sys.argv[2]))
    program = compile_semantic_program(load_manifest(sys.argv[1]), analyses=store)
    print(program.fingerprint, "sqlglot" in sys.modules)
    """
)


def test_a_compile_served_by_the_store_does_not_import_sqlglot(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """In fresh processes over a plan-cache directory: the first compile analyses (and
    imports sqlglot), the second reads the analyses back and never imports it."""
    path = write_manifest(MANIFEST)
    runs = [
        subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(tmp_path / "cache")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for _ in range(2)
    ]
    assert runs[0][1] == "True"
    assert runs[1] == [runs[0][0], "False"]
