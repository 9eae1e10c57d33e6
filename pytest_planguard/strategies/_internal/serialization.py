"""Canonical serialization of case documents: TOML and JSON text, frozen and thawed
mappings, Arrow type names.

Hand-written TOML (the standard library only reads it) so that a written manifest decodes
to exactly the case's document, key order included."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(item) for item in value]
    return value


_ORDER_FREE_LISTS = re.compile(
    r"^(views\.[^.]+\.udfs|runtime\.retain_plans"
    r"|policy\.delta_support\.(reader|writer)_features)$"
)


def _shuffle(value: Any, path: tuple[str, ...], rng: random.Random) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: _shuffle(value[key], (*path, key), rng) for key in keys}
    if isinstance(value, list) and _ORDER_FREE_LISTS.fullmatch(".".join(path)):
        items = list(value)
        rng.shuffle(items)
        return items
    return value


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_string(text: str) -> str:
    """A TOML basic string holding ``text`` exactly."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    """One TOML value (inline tables for mappings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_dumps(document: Mapping[str, Any], *, inline: bool = False) -> str:
    """Write a manifest document as TOML: ``[section.entity]`` tables, or inline tables."""
    lines: list[str] = []

    def emit(table: Mapping[str, Any], path: tuple[str, ...]) -> None:
        scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
        if path and (scalars or not tables):
            lines.append("[" + ".".join(_toml_key(part) for part in path) + "]")
        for key, value in scalars:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        if scalars or (path and not tables):
            lines.append("")
        if inline and len(path) == 1 and tables:
            if not scalars:
                lines.append("[" + _toml_key(path[0]) + "]")
            for key, value in tables:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
            lines.append("")
            return
        for key, value in tables:
            emit(value, (*path, key))

    emit(document, ())
    return "\n".join(lines).rstrip("\n") + "\n"


def _arrow_type(name: str) -> Any:
    import pyarrow as pa

    simple = {
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "float32": pa.float32(),
        "string": pa.string(),
        "large_string": pa.large_string(),
        "bool": pa.bool_(),
        "date32": pa.date32(),
        "timestamp[us]": pa.timestamp("us"),
        "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
    }
    return simple[name]
