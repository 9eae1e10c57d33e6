"""Why a view has no plan: the one record the engine, the plan contracts and validation share.

It lives apart from :mod:`reference_impl.engine.session` so that the plan contracts
(:mod:`reference_impl.relspec.contracts`) can name it without importing the session
builder and, through it, DataFusion registration, trusted imports and the data sources.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class ViewFailure(msgspec.Struct, frozen=True, kw_only=True):
    """Why DataFusion could not register one view."""

    view: str
    kind: Literal["unknown_function", "planning_error", "upstream_failed", "budget_exceeded"]
    message: str
    function: str | None = None
    upstream: str | None = None
