"""The gate's plan cache on disk: one file per view plan, named by its key.

``<dir>/v<format>/<key[:2]>/<key>``: the key is a content address
(:mod:`reference_impl.relspec.plan_cache` says what it covers), salted with planguard's
cache format and normalizer version.  An entry is written to a temporary file in the same
directory and renamed into place, so a reader sees a whole entry or none: processes of one
run (pytest-xdist workers) and concurrent CI jobs share a directory safely, and two
writers of one key write the same bytes.  Each entry carries a checksum: one that does not
match (a torn or edited file) is a miss, never an error.  Reading an entry touches it; at
the end of a run the least recently used entries are removed while the directory is over
its size bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from pytest_planguard.gate.normalize import NORMALIZER_VERSION
from reference_impl.relspec.plan_cache import NOT_PLANS, is_analyses

STORE_FORMAT = 1
_MAGIC = b"planguard-plan-cache\0"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    corrupt: int = 0
    verified: int = 0
    unsound: dict[str, str] = field(default_factory=dict)
    """View -> the key whose cached plan differed from a fresh one."""

    def counts(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "writes": self.writes,
            "corrupt": self.corrupt,
            "verified": self.verified,
        }


class PlanCacheStore:
    """A :class:`reference_impl.relspec.plan_cache.PlanCache` in a directory."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        verify: Collection[str] = (),
        share: tuple[int, int] | None = None,
        on_miss: Callable[[], None] | None = None,
    ) -> None:
        self.root = directory
        self.directory = directory / f"v{STORE_FORMAT}"
        self.max_bytes = max_bytes
        self.to_verify = frozenset(verify)
        self.share = share
        """(index, count) of this process among the pytest-xdist workers sharing the
        directory in this run (:func:`reference_impl.relspec.plan_cache.share_order`)."""
        self.on_miss = on_miss
        """Called on each miss of a view plan (from the planning thread)."""
        self.stats = CacheStats()
        self.keys: set[str] = set()
        """The keys looked up since the last :meth:`record` (the plans of one run)."""
        self._salt = f"{STORE_FORMAT}:{NORMALIZER_VERSION}\0".encode()

    def _path(self, key: str) -> Path:
        name = hashlib.sha256(self._salt + key.encode()).hexdigest()
        return self.directory / name[:2] / name

    def get(self, key: str) -> bytes | None:
        """The entry under ``key``; hits and misses count view plans (not the dataset
        statistics the same store keeps)."""
        self.keys.add(key)
        counted = not key.startswith(NOT_PLANS)
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:
            self._missed(counted)
            return None
        payload = _unwrap(data)
        if payload is None:
            self.stats.corrupt += 1
            self._missed(counted)
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used
        self.stats.hits += counted
        return payload

    def _missed(self, counted: bool) -> None:
        self.stats.misses += counted
        if counted and self.on_miss is not None:
            self.on_miss()

    def record(self) -> set[str]:
        """Start collecting the keys looked up from now on (one run's); returns the set."""
        self.keys = set()
        return self.keys

    def put(self, key: str, value: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(_wrap(value))
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError:
            return  # a cache that cannot be written is no cache, not a failure
        self.stats.writes += 1

    def verify(self, label: str) -> bool:
        if label in self.to_verify:
            self.stats.verified += 1
            return True
        return False

    def unsound(self, label: str, key: str) -> None:
        self.stats.unsound[label] = key
        self._path(key).unlink(missing_ok=True)

    def size(self) -> tuple[int, int]:
        """(entries, bytes) on disk."""
        entries = total = 0
        for path in _entries(self.directory):
            try:
                total += path.stat().st_size
            except OSError:
                continue
            entries += 1
        return entries, total

    def trim(self) -> int:
        """Remove the least recently used entries until the store is under 80% of its
        bound (when over it); returns how many were removed."""
        found: list[tuple[float, int, Path]] = []
        for path in _entries(self.directory):
            try:
                info = path.stat()
            except OSError:
                continue
            found.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in found)
        if total <= self.max_bytes:
            return 0
        removed = 0
        for _, size, path in sorted(found):
            if total <= self.max_bytes * 0.8:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed


def choose_verified(views: Collection[str], count: int, seed: int | None = None) -> list[str]:
    """``count`` views picked at random (all when there are fewer)."""
    pool = sorted(views)
    return random.Random(seed).sample(pool, min(count, len(pool)))


def _wrap(value: bytes) -> bytes:
    return _MAGIC + hashlib.sha256(value).digest() + value


def _unwrap(data: bytes) -> bytes | None:
    head = len(_MAGIC)
    if not data.startswith(_MAGIC) or len(data) < head + 32:
        return None
    digest, payload = data[head : head + 32], data[head + 32 :]
    return payload if hashlib.sha256(payload).digest() == digest else None


def _entries(directory: Path) -> list[Path]:
    try:
        shards = [p for p in directory.iterdir() if p.is_dir()]
    except OSError:
        return []
    out: list[Path] = []
    for shard in shards:
        try:
            out.extend(p for p in shard.iterdir() if not p.name.startswith("."))
        except OSError:
            continue
    return out


SAMPLE_RATE = 0.02
"""Share of the views with established determinism that a determinism check re-plans."""


class DeterminismCache:
    """The plan cache as the determinism check sees it: a view is planned afresh unless
    a passing determinism check already planned *these exact inputs* afresh (a marker
    next to the entry) and it is not in this check's random sample (``rate``, drawn per
    key with ``seed``: the subprocesses of one check draw the same sample).  Nothing the
    check plans is written as a plan; :meth:`establish` writes the markers once it passed.

    So a view whose SQL, data, UDFs, settings or engine changed is always checked afresh
    in every process, and an unchanged one is re-checked at random; ``--planguard-no-cache``
    checks every view afresh."""

    def __init__(
        self, directory: Path, *, seed: int, strength: str = "", rate: float = SAMPLE_RATE
    ) -> None:
        self.store = PlanCacheStore(directory)
        self.seed = seed
        self.rate = rate
        self.marker = f"{_MARKER}{strength}\0"
        """Markers are kept per check strength: a check trusts only what a check with the
        same in-process runs and subprocesses established (a check without subprocesses
        must not vouch for a later one with them)."""

    def get(self, key: str) -> bytes | None:
        if is_analyses(key):  # not a plan: a pure function of the SQL
            return self.store.get(key)
        if self._sampled(key) or not self.established(key):
            return None
        return self.store.get(key)

    def established(self, key: str) -> bool:
        return self.store.get(self.marker + key) is not None

    def put(self, key: str, value: bytes) -> None:
        """The check's own plans are not cached (the gate's run caches); the views' SQL
        analyses are (:mod:`reference_impl.semantics.compile`)."""
        if is_analyses(key):
            self.store.put(key, value)

    def verify(self, label: str) -> bool:
        return False

    def unsound(self, label: str, key: str) -> None:
        """Never asked: the check does not verify."""

    def count(self, keys: Collection[str]) -> tuple[int, int, int]:
        """(view plans among ``keys``, those not established, established ones drawn in
        the sample): what a check plans afresh is the last two."""
        plans = [key for key in keys if not key.startswith(NOT_PLANS)]
        new = {key for key in plans if not self.established(key)}
        return (
            len(plans),
            len(new),
            sum(1 for key in plans if key not in new and self._sampled(key)),
        )

    def run_established(self, run: str) -> bool:
        """Whether a passing check saw a run with exactly these plans and fingerprints
        (``run``: a digest of them)."""
        return self.established(_RUN_MARKER + run)

    def establish(self, keys: Collection[str], run: str | None = None) -> None:
        """A check passed over the plans of ``keys`` (every process planned afresh those
        not established before) and, when given, over the run of digest ``run``: they are
        established now."""
        for key in sorted(keys) + ([_RUN_MARKER + run] if run is not None else []):
            if not is_analyses(key) and not self.established(key):
                self.store.put(self.marker + key, b"")

    def _sampled(self, key: str) -> bool:
        digest = hashlib.sha256(f"{self.seed}\0{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") < self.rate * 2**64


_MARKER = "deterministic\0"
_RUN_MARKER = "run\0"
