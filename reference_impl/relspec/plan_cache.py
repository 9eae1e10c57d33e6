"""A content-addressed cache of view plans: what may be reused, and under which key.

Planning a view (optimizer, physical planner, statistics) is the expensive part of a plan
stage; its unoptimized plan (P0) is cheap, because registering the view already analyzed
its SQL.  A view's plan is reused when its *key* is unchanged, and the key covers
everything that can change the plan:

* the view's P0 with its schema (its SQL, upstream views inlined, column types);
* the identity of every dataset it scans (a Delta table's location, version and table
  id; a Parquet dataset's files with their sizes and modification times);
* the *context*: engine versions, every session setting, the UDF snapshot (signatures,
  volatility, source hashes) and whatever else the caller puts in (see
  :func:`context_key`).

The store itself (a directory, a database, a dict) is the caller's: anything with
``get(key) -> bytes | None`` and ``put(key, bytes)``.  A value that does not decode is a
miss.  ``verify(label)`` lets the store ask for a fresh plan of a cached view, compared
with the cached bytes (``unsound(label, key)`` is told about a mismatch).

A store shared by the processes of one run (pytest-xdist workers) may say which of them
this one is, as ``share = (index, count)``: a planner then plans ahead in
:func:`share_order`, so that each process plans about ``1/count`` of the views afresh and
reads the others' from the store instead of planning every view in every process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from reference_impl.semantics.program import ANALYSES_PREFIX

CACHE_FORMAT = 1
"""Bump when what a cached value holds, or how it is planned, changes."""

STATISTICS_PREFIX = "statistics:"
NOT_PLANS = (STATISTICS_PREFIX, ANALYSES_PREFIX)
"""Prefixes of the keys a plan cache holds besides view plans: dataset statistics and
the views' SQL analyses (:mod:`reference_impl.semantics.compile`)."""


def is_analyses(key: str) -> bool:
    """Whether ``key`` holds a manifest's SQL analyses: not a plan, a pure function of the
    views' SQL, served alike to every run."""
    return key.startswith(ANALYSES_PREFIX)


_T = TypeVar("_T")
_SCAN = re.compile(r"^\s*TableScan: (\S+)", re.MULTILINE)


class PlanCache(Protocol):
    """Where cached plans live (planguard's is a directory shared by processes)."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def verify(self, label: str) -> bool:
        """Whether the cached plan of ``label`` (a view) is to be re-planned and compared."""
        ...

    def unsound(self, label: str, key: str) -> None:
        """A fresh plan of ``label`` differs from the one cached under ``key``."""
        ...


def share_order(cache: PlanCache | None, names: Sequence[str]) -> tuple[str, ...]:
    """The order in which this process plans ``names`` ahead through ``cache`` (empty: it
    does not, the store has no ``share`` or only one process uses it).

    Process ``index`` of ``count`` plans its own slice of ``names`` first, front to back,
    then the others' back to front.  Every process writes what it plans, so once one is
    done with its slice it works through another's from the end while the owner works
    from the front: they meet once, each slice is planned about once, a faster process
    simply plans more of it, and no process waits for another.  (Going the same way as
    the owner would keep both on the same views, planning each twice.)  The order does
    not change a plan: every view's frame is registered before any is planned, and the
    view's key says which plan it is."""
    share = getattr(cache, "share", None)
    if share is None:
        return ()
    index, count = share
    if count < 2 or not names:
        return ()
    start, end = (len(names) * (index % count + n) // count for n in (0, 1))
    return (*names[start:end], *reversed((*names[end:], *names[:start])))


def context_key(
    *,
    versions: Mapping[str, str],
    settings: Mapping[str, str],
    udfs: Any,
    extra: Any = None,
) -> str:
    """The part of every view's key that the whole session shares."""
    payload = {
        "format": CACHE_FORMAT,
        "versions": dict(versions),
        "settings": dict(settings),
        "udfs": udfs,
        "extra": extra,
    }
    return _digest(payload)


def scanned_tables(p0: str) -> tuple[str, ...]:
    """The table names a P0 text scans (``TableScan: name``), sorted, without repeats."""
    return tuple(sorted(set(_SCAN.findall(p0))))


def view_key(context: str, p0: str, datasets: Mapping[str, str]) -> str:
    """A view's key: the shared context, its P0 and the identity of every table it scans.

    ``datasets`` maps each table of the session to its identity.  A scan of a table the
    map does not know (qualified names, table functions) keys the view on every known
    identity, so that a change of any dataset re-plans it."""
    scanned = scanned_tables(p0)
    if all(name in datasets for name in scanned):
        identities = {name: datasets[name] for name in scanned}
    else:
        identities = dict(datasets) | {"?": ",".join(n for n in scanned if n not in datasets)}
    return _digest({"context": context, "p0": p0, "datasets": identities})


def dataset_key(context: str, name: str, identity: str) -> str:
    """The key of a dataset's statistics: the shared context and the dataset's identity
    (``STATISTICS_PREFIX`` tells it from a view's key)."""
    return STATISTICS_PREFIX + _digest({"context": context, "name": name, "identity": identity})


def cached(
    cache: PlanCache | None,
    key: str,
    compute: Callable[[], _T],
    kind: type[_T],
    *,
    label: str,
) -> _T:
    """``compute()``, or the value cached under ``key`` (stored after computing on a miss).

    A cached value that does not decode as ``kind`` is a miss.  When the store asks to
    verify ``label``, the value is computed anyway, compared byte for byte with the cached
    one (a difference is reported to the store) and the fresh value is returned."""
    if cache is None:
        return compute()
    raw = cache.get(key)
    if raw is not None:
        try:
            hit = msgspec.msgpack.decode(raw, type=kind)
        except (msgspec.DecodeError, msgspec.ValidationError):
            hit = None
        if hit is not None:
            if not cache.verify(label):
                return hit
            fresh = compute()
            if msgspec.msgpack.encode(fresh) != raw:
                cache.unsound(label, key)
            return fresh
    value = compute()
    cache.put(key, msgspec.msgpack.encode(value))
    return value


def _digest(payload: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(payload, order="sorted")).hexdigest()
