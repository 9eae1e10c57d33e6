"""The change classes and the gate policy: one vocabulary, one option, one parser.

The plugin (``--planguard-gate`` and the ``planguard_gate`` ini key) and ``planguard
diff`` (``--policy``) declare their option with :func:`add_gate_options` and read it with
:func:`parse_gate_policy`, the way pytest-benchmark shares ``add_*_options(addoption,
prefix=...)`` between its plugin and its CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, Literal

from pytest_planguard.errors import PlanguardCode, PlanguardError

GateAction = Literal["fail", "warn"]
GATE_ACTIONS: tuple[GateAction, ...] = ("fail", "warn")


class ChangeClass(StrEnum):
    """How a plan bundle changed, in priority order (the first is a change's primary)."""

    SCHEMA_BREAKING = "schema_breaking"
    """An output column was removed, retyped, reordered or became nullable."""
    SEMANTIC = "semantic"
    """P0, the unoptimized logical plan, changed."""
    UDF = "udf"
    """The code of a UDF the view calls changed (its ``udfs`` header line): the results
    may change although the plans read the same.  Ranked after ``semantic`` (a change of
    what the view computes) and before the classes that leave results alone."""
    SCHEMA_ADDITIVE = "schema_additive"
    """Columns were only added (or became not null)."""
    OPTIMIZER = "optimizer"
    """P1 changed while P0 did not."""
    PHYSICAL = "physical"
    """Only P2 changed."""
    COSMETIC = "cosmetic"
    """Every plan and schema section is equal; only the header or the signals differ."""


INHERITED = "inherited"
"""The gate entry for inherited changes (``inherited = warn|fail``): a view whose change
is fully explained by changed upstream views (see :mod:`pytest_planguard.gate.causes`)."""
DEFAULT_GATE: Mapping[str, GateAction] = {
    **dict.fromkeys(ChangeClass, "fail"),
    ChangeClass.COSMETIC: "warn",
    INHERITED: "fail",
}
DIFF_ONLY = ("new", "removed")
"""Statuses ``planguard diff`` gates like classes (a snapshot only in HEAD or BASE)."""
GATE_HELP = (
    "gate policy for one change class, CLASS=fail|warn (repeatable); classes: "
    + ", ".join(ChangeClass)
    + f"; {INHERITED}=warn lets a change explained by changed upstream views warn"
)


def add_gate_options(
    addoption: Callable[..., Any], *, prefix: str, aliases: Iterable[str] = (), extra: str = ""
) -> None:
    """Declare the gate-policy option: ``aliases`` (shown first) and ``--{prefix}gate``,
    repeatable, stored as ``{prefix}gate`` with dashes as underscores."""
    addoption(
        *aliases,
        f"--{prefix}gate",
        action="append",
        default=[],
        dest=f"{prefix}gate".replace("-", "_"),
        metavar="CLASS=fail|warn",
        help=GATE_HELP + extra,
    )


def parse_gate_policy(
    entries: Iterable[tuple[str, str]], *, extra: tuple[str, ...] = ()
) -> dict[str, GateAction]:
    """The default policy overridden by ``entries``, each ``(source, "CLASS=fail|warn")``;
    ``extra`` names more classes (``planguard diff``'s ``new`` and ``removed``)."""
    known = (*ChangeClass, INHERITED, *extra)
    gate: dict[str, GateAction] = {**DEFAULT_GATE, **dict.fromkeys(extra, "fail")}
    for source, entry in entries:
        name, sep, action = (part.strip() for part in str(entry).partition("="))
        if not sep or name not in known or action not in GATE_ACTIONS:
            raise PlanguardError(
                PlanguardCode.CONFIG_ERROR,
                f"gate entry {entry!r}: use CLASS=fail|warn with CLASS one of " + ", ".join(known),
                field_path=source,
            )
        gate[name] = "fail" if action == "fail" else "warn"
    return gate
