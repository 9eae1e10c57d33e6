"""``planguard explain MANIFEST VIEW``: one view's plan bundle, exactly as its snapshot
would hold it (normalized, with the header), without running the gate.

``--section P0|P1|P2|schema|signals`` prints that section alone.  The reference pipeline
plans the manifest (a dry run: nothing executes, nothing is written).
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_planguard.errors import PlanguardCode, PlanguardError

SECTION_NAMES = {
    "P0": "P0 logical",
    "P1": "P1 optimized",
    "P2": "P2 physical",
    "schema": "schema",
    "signals": "signals",
}


def run_explain(
    manifest: str, view: str, *, section: str | None, trusted_modules: Sequence[str]
) -> int:
    from pytest_planguard.gate.snapshot import (
        parse_snapshot,
        render_snapshot,
        snapshot_header,
        view_header,
    )
    from pytest_planguard.reference_adapter import ReferenceAdapter

    adapter = ReferenceAdapter(trusted_modules=trusted_modules)
    compiled = adapter.compile(Path(manifest))
    views = tuple(adapter.view_names(compiled))
    if view not in views:
        close = difflib.get_close_matches(view, views, n=3)
        hint = (
            f"; did you mean {' or '.join(map(repr, close))}?"
            if close
            else f" (views: {', '.join(views)})"
        )
        raise PlanguardError(
            PlanguardCode.VIEW_NOT_FOUND,
            f"no view {view!r} in the manifest{hint}",
            file=manifest,
        )
    context = adapter.build_context(compiled)
    bundle = adapter.bundles(adapter.plan(context))[view]
    if bundle.status != "planned":
        raise PlanguardError(
            PlanguardCode.PLAN_UNAVAILABLE,
            f"view {view!r} has no plan: {bundle.message}",
            file=manifest,
        )
    engine = adapter.engine_info(context)
    text = render_snapshot(
        bundle,
        {
            **snapshot_header(engine),
            **view_header(adapter.view_dependencies(compiled).get(view, ()), bundle.udfs),
        },
        locations=engine.locations,
        roots={"MANIFEST": str(Path(manifest).resolve().parent), "ROOT": os.getcwd()},
    )
    if section is not None:
        text = parse_snapshot(text).sections[SECTION_NAMES[section]] + "\n"
    sys.stdout.write(text)
    return 0
