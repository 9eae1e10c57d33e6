"""The old import path of :mod:`pytest_planguard.strategies.profiles`, kept for users (the
README names ``pytest_planguard.hypothesis_profiles.scaled_examples``).  Importing it does
not import Hypothesis."""

from __future__ import annotations

from pytest_planguard.strategies.profiles import (
    PROFILE_ENV,
    PROFILES,
    register_profiles,
    scaled_examples,
)

__all__ = ["PROFILES", "PROFILE_ENV", "register_profiles", "scaled_examples"]
