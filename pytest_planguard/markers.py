"""The plugin's markers: names, help text and the allowlist of their arguments."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_planguard.errors import PlanguardCode, PlanguardError


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive_int(value: Any) -> bool:
    return _non_negative_int(value) and value >= 1


def _strings(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    )


def _path_like(value: Any) -> bool:
    return isinstance(value, str) or hasattr(value, "__fspath__")


@dataclass(frozen=True, slots=True)
class MarkerSpec:
    name: str
    help: str
    arguments: Mapping[str, tuple[Callable[[Any], bool], str]]


SINGLE_COMPILE = MarkerSpec(
    name="planguard_single_compile",
    help=(
        "planguard_single_compile(max_compiles=1, entrypoints=None): fail the test when the "
        "configured compile entrypoints are called more than max_compiles times during it"
    ),
    arguments={
        "max_compiles": (_non_negative_int, "a whole number >= 0"),
        "entrypoints": (_strings, "'module:function' or a list of them"),
    },
)
RESOLVER_IDENTITY = MarkerSpec(
    name="planguard_resolver_identity",
    help=(
        "planguard_resolver_identity(stages=None): fail the test when the configured stages "
        "(registration, scan override, execution by default) do not all receive one and the "
        "same resolver object"
    ),
    arguments={"stages": (_strings, "stage names or 'name=module:function(param)' specs")},
)
DETERMINISTIC = MarkerSpec(
    name="planguard_deterministic",
    help=(
        "planguard_deterministic(runs=2, processes=2, manifest=None, adapter=None, "
        "session=None): compare fingerprints of compile -> plan -> validate over runs "
        "in-process and in processes with other PYTHONHASHSEED values (automatically after "
        "the test when manifest, or session='module:factory' of a SessionContext factory, "
        "is given, else through the planguard_determinism fixture)"
    ),
    arguments={
        "runs": (_positive_int, "a whole number >= 1"),
        "processes": (_non_negative_int, "a whole number >= 0"),
        "manifest": (_path_like, "a path"),
        "adapter": (lambda v: isinstance(v, str), "'package.module:factory'"),
        "session": (lambda v: isinstance(v, str), "'package.module:factory'"),
    },
)
GATE_ITEM = MarkerSpec(
    name="planguard",
    help=(
        "planguard: set by the plugin on every item of `pytest --planguard` (select the gate "
        "with -m planguard, the rest of the suite with -m 'not planguard')"
    ),
    arguments={},
)
MARKERS = (SINGLE_COMPILE, RESOLVER_IDENTITY, DETERMINISTIC, GATE_ITEM)


def marker_arguments(item: pytest.Item, spec: MarkerSpec) -> dict[str, Any] | None:
    """The checked keyword arguments of ``spec`` on ``item`` (None when not marked)."""
    marker = item.get_closest_marker(spec.name)
    if marker is None:
        return None
    if marker.args:
        raise PlanguardError(
            PlanguardCode.MARKER_ARGUMENT,
            f"@pytest.mark.{spec.name} takes keyword arguments only "
            f"({', '.join(spec.arguments)}), got positional {marker.args!r}",
        )
    for key, value in marker.kwargs.items():
        if key not in spec.arguments:
            raise PlanguardError(
                PlanguardCode.MARKER_ARGUMENT,
                f"@pytest.mark.{spec.name} has no argument {key!r}; allowed: "
                + ", ".join(spec.arguments),
            )
        check, expected = spec.arguments[key]
        if not check(value):
            raise PlanguardError(
                PlanguardCode.MARKER_ARGUMENT,
                f"@pytest.mark.{spec.name}({key}={value!r}): expected {expected}",
            )
    return dict(marker.kwargs)


def as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)
