"""Hypothesis settings profiles registered by planguard: ``ci``, ``dev`` and ``nightly``.

* ``ci``: derandomized, 20 examples, 5 s deadline, no example database, ``print_blob``
  on (a failure prints the blob that reproduces it), no ``too_slow`` health check (CI
  machines are shared and slow; the example count already bounds the run);
* ``dev``: random, 50 examples, 2 s deadline, the local example database;
* ``nightly``: random, 1000 examples, no deadline, the local example database.

Choose one with Hypothesis' own ``--hypothesis-profile=NAME``, or with the
``PLANGUARD_HYPOTHESIS_PROFILE`` environment variable.  Which one is active:

1. ``--hypothesis-profile`` when given (Hypothesis loads it itself);
2. otherwise ``$PLANGUARD_HYPOTHESIS_PROFILE`` when set;
3. otherwise ``ci`` when Hypothesis detects a CI environment (``CI`` set, GitHub
   Actions, ...): Hypothesis then auto-loads its built-in ``ci`` profile, which planguard
   replaces with the bounded one above;
4. otherwise Hypothesis' ``default`` profile, untouched.

Properties that run the engine should ask for a fraction of the active profile's
examples with :func:`scaled_examples` and set ``deadline=None`` (planning time varies).

This module imports Hypothesis only inside its functions, so that the pytest plugin can
import it without making Hypothesis a start-up cost.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from typing import Any

PROFILE_ENV = "PLANGUARD_HYPOTHESIS_PROFILE"
PROFILES = ("ci", "dev", "nightly")

_PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "ci": {
        "max_examples": 20,
        "derandomize": True,
        "deadline": timedelta(seconds=5),
        "database": None,
        "print_blob": True,
        "suppress_health_check": ("too_slow",),
    },
    "dev": {"max_examples": 50, "deadline": timedelta(seconds=2), "print_blob": True},
    "nightly": {"max_examples": 1000, "deadline": None, "print_blob": True},
}


def register_profiles() -> None:
    """Register ``ci``, ``dev`` and ``nightly``; load the one the environment selects.

    Idempotent and cheap.  A profile of the same name that the user registered
    themselves is kept (Hypothesis' built-in ``ci`` is replaced).  Raises
    :class:`~pytest_planguard.errors.PlanguardError` (``CONFIG_ERROR``) when
    ``$PLANGUARD_HYPOTHESIS_PROFILE`` names no registered profile.
    """
    from hypothesis import HealthCheck, settings

    builtin_ci = _builtin_ci()
    base = settings.get_profile("default")
    for name, values in _PROFILE_SETTINGS.items():
        existing = _profile(name)
        if existing is None or (builtin_ci is not None and existing is builtin_ci):
            options = dict(values)
            if "suppress_health_check" in options:
                options["suppress_health_check"] = [
                    getattr(HealthCheck, check) for check in options["suppress_health_check"]
                ]
            settings.register_profile(name, parent=base, **options)
    wanted = os.environ.get(PROFILE_ENV, "").strip()
    if wanted:
        if _profile(wanted) is None:
            from pytest_planguard.errors import PlanguardCode, PlanguardError

            raise PlanguardError(
                PlanguardCode.CONFIG_ERROR,
                f"{PROFILE_ENV}={wanted!r} names no registered Hypothesis profile "
                f"(planguard registers {', '.join(PROFILES)})",
            ) from None
        if settings.get_current_profile_name() in ("default", "ci"):
            settings.load_profile(wanted)
    elif settings.get_current_profile_name() == "ci":
        settings.load_profile("ci")


def scaled_examples(fraction: float, *, minimum: int = 1) -> int:
    """``fraction`` of the active profile's ``max_examples``, at least ``minimum``."""
    from hypothesis import settings

    return max(minimum, math.ceil(settings().max_examples * fraction))


def _profile(name: str) -> object | None:
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    try:
        return settings.get_profile(name)
    except InvalidArgument:
        return None


def _builtin_ci() -> object | None:
    try:
        from hypothesis import _settings

        return getattr(_settings, "CI", None)
    except ImportError:  # pragma: no cover - private module moved
        return None
