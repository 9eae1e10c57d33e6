"""The allowlist of packages a manifest's UDF providers and bootstrap hook may come from.

Trust is granted by the person running the tool, never by the manifest: the ``planguard``
CLI (``--trust-module MODULE``, repeatable), the pytest plugin (ini key
``planguard_trusted_modules``, one module per line, and ``--planguard-trust-module``) and
the environment variable ``PLANGUARD_TRUSTED_MODULES`` (comma-separated module names;
blanks around names and empty entries are ignored).  The sources add up.  An entry trusts
that module and every module below it.  Modules next to the manifest and
``reference_impl`` are always trusted (see ``reference_impl.engine.trusted_import``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from pytest_planguard.errors import PlanguardCode, PlanguardError

ENV_VAR = "PLANGUARD_TRUSTED_MODULES"


def is_module_name(value: str) -> bool:
    """``package.module`` made of Python identifiers (what ``import`` accepts)."""
    return bool(value) and all(part.isidentifier() for part in value.split("."))


def parse_trusted_modules(entries: Iterable[str], *, source: str) -> tuple[str, ...]:
    """Sorted, distinct module names; ``CONFIG_ERROR`` naming ``source`` for a bad one."""
    names: set[str] = set()
    for entry in entries:
        name = str(entry).strip()
        if not name:
            continue
        if not is_module_name(name):
            raise PlanguardError(
                PlanguardCode.CONFIG_ERROR,
                f"{name!r} is not a module name (expected e.g. 'my_pkg' or 'my_pkg.udfs')",
                field_path=source,
            )
        names.add(name)
    return tuple(sorted(names))


def trusted_from_environment(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The modules ``PLANGUARD_TRUSTED_MODULES`` names (comma-separated)."""
    text = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return parse_trusted_modules(text.split(","), source=ENV_VAR)


def granted_on_command_line(given: Iterable[str]) -> tuple[str, ...]:
    """The ``planguard`` command's allowlist: ``--trust-module`` values plus the
    environment variable (what ``reference_impl.cli`` asks its ``trust`` source for)."""
    names = parse_trusted_modules(given, source="--trust-module")
    return tuple(sorted({*names, *trusted_from_environment()}))
