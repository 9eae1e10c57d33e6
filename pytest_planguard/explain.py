"""``planguard explain TARGET VIEW``: one view's plan bundle, exactly as its snapshot
would hold it (normalized, with the header), without running the gate.

``TARGET`` is a manifest, planned by the reference pipeline (a dry run: nothing executes,
nothing is written), or ``package.module:factory``, a SessionContext factory planned as
the session gate plans it.  ``--section P0|P1|P2|schema|signals`` prints one section.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_planguard.errors import PlanguardCode, PlanguardError

if TYPE_CHECKING:
    from pytest_planguard.adapter import PipelineAdapter

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

    adapter, path, where = _adapter(manifest, trusted_modules)
    compiled = adapter.compile(path)
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
            f"no view {view!r} in {where}{hint}",
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
            **view_header(_dependencies(adapter, compiled).get(view, ()), bundle.udfs),
        },
        locations=engine.locations,
        roots={"MANIFEST": str(path.resolve().parent), "ROOT": os.getcwd()},
        stores=engine.stores,
    )
    if section is not None:
        text = parse_snapshot(text).sections[SECTION_NAMES[section]] + "\n"
    sys.stdout.write(text)
    return 0


def _adapter(target: str, trusted_modules: Sequence[str]) -> tuple[PipelineAdapter, Path, str]:
    """The adapter that plans ``target``, the file it stands for, and how to name it."""
    path = Path(target)
    if ":" in target and not path.exists():
        from pytest_planguard.config import session_target
        from pytest_planguard.session_adapter import SessionAdapter

        session = session_target(target, Path.cwd(), "TARGET")
        return SessionAdapter(str(session.spec)), session.path, f"session {session.spec!r}"
    from pytest_planguard.reference_adapter import ReferenceAdapter

    return ReferenceAdapter(trusted_modules=trusted_modules), path, "the manifest"


def _dependencies(adapter: PipelineAdapter, compiled: Any) -> Mapping[str, tuple[str, ...]]:
    """View -> the views it reads, when the adapter tells (``view_dependencies``)."""
    found = getattr(adapter, "view_dependencies", None)
    return found(compiled) if callable(found) else {}
