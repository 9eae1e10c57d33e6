"""The source hash of a UDF provider: what changes when a UDF's code changes.

A plan does not show what a Python UDF computes (``cents_to_eur(amount)`` reads the same
whether the body divides by 100 or by 1000), so each registered UDF carries a hash of its
provider's code, recorded in the UDF snapshot, the runtime fingerprint and the plan
bundle of every view that calls it:

* a provider module **next to the manifest** (a file of the project): the sha256 of the
  module file's bytes, so any edit of that file counts, comments included;
* an **installed** (trusted) module: the sha256 of code objects, not of a file (an
  installed package may ship without sources, and reformatting it changes nothing):
  for a factory function, its code and the code of the same module's functions it names
  (followed transitively); for a ``ScalarUDF`` object, which does not expose its Python
  function, the code of every function defined in that module.  A code object hashes
  ``co_code``, ``co_consts`` (nested code objects recursively) and ``co_names``, never
  line numbers or file names.  Bytecode belongs to one Python minor version: moving to
  another one changes these hashes.
"""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

SOURCE_HASH_VERSION = b"planguard-udf-source/1"


def provider_source_hash(target: str, provided: object, *, root: str) -> str | None:
    """The source hash of provider ``target`` (``module:attribute``), whose attribute is
    ``provided``; None when nothing about its code can be read (no module, no file and no
    Python function)."""
    module = sys.modules.get(target.partition(":")[0])
    if module is None:
        return None
    file = getattr(module, "__file__", None)
    if file and _within(file, Path(root)):
        try:
            data = Path(file).read_bytes()
        except OSError:
            data = None
        if data is not None:
            return _digest(b"file", data)
    if isinstance(provided, types.FunctionType):
        starts = [provided]
    else:
        starts = sorted(
            (
                value
                for value in vars(module).values()
                if isinstance(value, types.FunctionType) and value.__module__ == module.__name__
            ),
            key=lambda function: function.__qualname__,
        )
    if not starts:
        return None
    return _digest(b"code", _code_graph(starts, module))


def _code_graph(starts: list[types.FunctionType], module: types.ModuleType) -> bytes:
    """The code of ``starts`` and of the functions of ``module`` they name, transitively,
    in a stable order."""
    seen: dict[str, bytes] = {}
    pending = list(starts)
    namespace = vars(module)
    while pending:
        function = pending.pop()
        name = function.__qualname__
        if name in seen:
            continue
        seen[name] = _code_bytes(function.__code__)
        for global_name in _names(function.__code__):
            value = namespace.get(global_name)
            if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
                pending.append(value)
    return b"".join(name.encode() + b"\0" + code + b"\0" for name, code in sorted(seen.items()))


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _code_bytes(code: types.CodeType) -> bytes:
    parts = [code.co_code, "\0".join(code.co_names).encode()]
    parts += [_const_bytes(const) for const in code.co_consts]
    return b"\x1f".join(parts)


def _const_bytes(const: object) -> bytes:
    """A constant's bytes, independent of the run: a frozenset's elements sorted (its
    order follows string hashing, which is randomized per process)."""
    if isinstance(const, types.CodeType):
        return b"<code>" + _code_bytes(const) + b"</code>"
    if isinstance(const, tuple):
        return b"(" + b",".join(_const_bytes(item) for item in const) + b")"
    if isinstance(const, frozenset):
        return b"{" + b",".join(sorted(_const_bytes(item) for item in const)) + b"}"
    return f"{type(const).__name__}:{const!r}".encode()


def _digest(kind: bytes, data: bytes) -> str:
    return hashlib.sha256(SOURCE_HASH_VERSION + b"\0" + kind + b"\0" + data).hexdigest()


def _within(file: str, root: Path) -> bool:
    try:
        return Path(file).resolve().is_relative_to(root.resolve())
    except OSError:
        return False
