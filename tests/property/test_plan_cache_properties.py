"""The plan cache over generated manifests: a hit gives byte-identical bundles to fresh
planning, for every view of every manifest the strategies generate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings

from pytest_planguard.gate.plan_cache import PlanCacheStore
from pytest_planguard.hypothesis_profiles import scaled_examples
from pytest_planguard.reference_adapter import ReferenceAdapter
from pytest_planguard.strategies import ManifestCase, manifests, replay_on_failure

SMALL = {"max_views": 3, "max_datasets": 2, "max_columns": 3, "max_rows": 3}


def _bundles(manifest: Path, cache: PlanCacheStore | None) -> bytes:
    adapter = ReferenceAdapter(plan_cache=cache)
    context = adapter.build_context(adapter.compile(manifest))
    found = adapter.bundles(adapter.plan(context))
    return msgspec.json.encode({view: repr(bundle) for view, bundle in sorted(found.items())})


@settings(
    max_examples=scaled_examples(0.5, minimum=5),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=manifests(**SMALL))
def test_a_cache_hit_gives_the_bundles_of_fresh_planning(
    case: ManifestCase, case_dir: Callable[[], Path]
) -> None:
    directory = case_dir()
    path = case.write(directory)
    with replay_on_failure(case):
        fresh = _bundles(path, None)
        cold_store = PlanCacheStore(directory / ".cache")
        cold = _bundles(path, cold_store)
        warm_store = PlanCacheStore(directory / ".cache")
        warm = _bundles(path, warm_store)
        assert warm == fresh == cold
        # every view that planned was served from the cache the second time
        assert warm_store.stats.misses == 0
        assert warm_store.stats.hits == cold_store.stats.misses
