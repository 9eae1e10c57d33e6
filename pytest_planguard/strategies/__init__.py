"""Hypothesis strategies for manifest format v1: valid, hostile, runtime and Delta cases.

Fuzz your own manifest compiler with them (this project fuzzes ``reference_impl`` with the
same strategies in ``tests/property/``)::

    from hypothesis import given
    from pytest_planguard.strategies import hostile_manifests, manifests, replay_on_failure

    @given(case=manifests())
    def test_compiles(case, tmp_path_factory):
        path = case.write(tmp_path_factory.mktemp("case"))
        with replay_on_failure(case):
            my_compiler(path)

* :func:`manifests` draws valid :class:`ManifestCase` objects: random DAGs of views over
  generated Arrow schemas, SQL from a typed grammar (projection, filter, inner and left
  joins on typed keys, aggregates with GROUP BY / HAVING, UNION ALL, CTEs, window
  functions, ORDER BY / LIMIT, calls of a Python UDF the case registers).
* :func:`hostile_manifests` draws invalid :class:`HostileCase` objects by mutating a
  valid one (cycles, unknown references, wrong types, statements that are not queries,
  locations escaping the root, duplicate and reserved names, very long identifiers,
  unicode, broken files); each names the error codes a correct compiler answers with.
* :func:`runtime_profiles` draws ``[runtime]`` tables; :func:`delta_protocols` draws
  Delta table protocols (the table properties that produce them) and
  ``[policy.delta_support]`` tables.

Every case is a frozen value; ``case.write(directory)`` materializes the manifest file,
the SQL files and UDF modules it names and, for valid cases, real Delta tables and Parquet
files, and returns the manifest path.  :func:`replay_on_failure` writes the final
(shrunk) failing case to ``.planguard-failures/<hash>/`` so that
``planguard compile <that directory>`` replays it.

This package is a facade over private modules in ``_internal`` (one per concern: case
values, serialization, runtime and Delta, valid cases, hostile cases, replay, and the SQL
grammar).  Importing it is cheap: a name's module, and with it Hypothesis, is imported on
first use, so that :mod:`pytest_planguard.strategies.profiles` (which the pytest plugin
imports at start-up on CI) does not import Hypothesis.  ``pyarrow`` and ``deltalake`` are
imported only when a valid case writes its tables.
"""

from __future__ import annotations

import importlib
import typing
from typing import Any

if typing.TYPE_CHECKING:  # the names, typed, for mypy and readers; imported lazily below
    from pytest_planguard.strategies._internal.cases import (
        DeltaProtocolCase,
        HostileCase,
        ManifestCase,
        TableCase,
        ViewCase,
        manifest_case,
    )
    from pytest_planguard.strategies._internal.hostile import MUTATIONS, hostile_manifests
    from pytest_planguard.strategies._internal.replay import (
        FAILURES_DIR_ENV,
        replay_on_failure,
        write_failure,
    )
    from pytest_planguard.strategies._internal.runtime import delta_protocols, runtime_profiles
    from pytest_planguard.strategies._internal.valid import GRAMMAR_FEATURES, UDF_MODULE, manifests

__all__ = [
    "FAILURES_DIR_ENV",
    "GRAMMAR_FEATURES",
    "MUTATIONS",
    "UDF_MODULE",
    "DeltaProtocolCase",
    "HostileCase",
    "ManifestCase",
    "TableCase",
    "ViewCase",
    "delta_protocols",
    "hostile_manifests",
    "manifest_case",
    "manifests",
    "replay_on_failure",
    "runtime_profiles",
    "write_failure",
]

_HOME: dict[str, str] = {
    "DeltaProtocolCase": "cases",
    "HostileCase": "cases",
    "ManifestCase": "cases",
    "TableCase": "cases",
    "ViewCase": "cases",
    "manifest_case": "cases",
    "MUTATIONS": "hostile",
    "hostile_manifests": "hostile",
    "FAILURES_DIR_ENV": "replay",
    "replay_on_failure": "replay",
    "write_failure": "replay",
    "delta_protocols": "runtime",
    "runtime_profiles": "runtime",
    "GRAMMAR_FEATURES": "valid",
    "UDF_MODULE": "valid",
    "manifests": "valid",
}
"""Which private module under ``_internal`` defines each public name."""


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562) and cache the name here."""
    try:
        home = _HOME[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}._internal.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
