"""Import ``module:attribute`` targets named by a manifest, from trusted places only.

A manifest may name Python code in two places: UDF providers (``[udfs.*].provider``) and
the data bootstrap hook (``[project].bootstrap``).  Such a target is imported only when
its top-level package lies in the manifest's directory, is ``reference_impl`` itself (the
bundled examples), or is granted by whoever runs the tool: ``trusted_modules``, which the
``planguard`` CLI (``--trust-module``), the pytest plugin (``planguard_trusted_modules``,
``--planguard-trust-module``) and the ``PLANGUARD_TRUSTED_MODULES`` variable fill.  An
entry names a module; it trusts that module and every module below it (``my_pkg`` trusts
``my_pkg.udfs``; ``my_pkg.udfs`` does not trust ``my_pkg.other``).  A manifest can never
grant trust itself (its ``runtime.trusted_modules`` key is refused at load).  Anything else
is refused with ``UDF_PROVIDER_UNTRUSTED`` before any import happens.

A module next to the manifest may not shadow an installed one: a ``json.py`` there named
as ``json:loads`` would otherwise replace the standard library's ``json`` for the rest of
the process (a pytest session gating several manifests, for one).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from reference_impl.errors import ErrorCode, ReferenceImplError

ALWAYS_TRUSTED = ("reference_impl",)
_LOCAL_IMPORTS: dict[str, Path] = {}
"""Top-level names imported from a manifest's directory, and from which directory."""


def import_trusted(
    target: str, *, root: str, trusted_modules: tuple[str, ...], field_path: str
) -> object:
    """Import ``package.module:attribute`` and return the attribute."""
    module_name, _, attribute = target.partition(":")
    top = module_name.split(".", 1)[0]
    local = _is_local(top, Path(root))
    if not local and not is_trusted(module_name, (*ALWAYS_TRUSTED, *trusted_modules)):
        raise ReferenceImplError(
            ErrorCode.UDF_PROVIDER_UNTRUSTED,
            f"{target!r}: module {module_name!r} is neither next to the manifest nor trusted "
            "by whoever runs the tool (planguard --trust-module MODULE, the pytest ini key "
            "planguard_trusted_modules, or PLANGUARD_TRUSTED_MODULES)",
            field_path=field_path,
            subjects=(target,),
        )
    if local:
        _refuse_shadowing(top, Path(root), target, field_path)
        _forget_foreign(top, Path(root))
    added = local and root not in sys.path
    if added:
        sys.path.insert(0, root)
    # validate and compile write nothing next to the manifest, not even __pycache__
    no_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:  # a provider must not end the process
        if isinstance(exc, KeyboardInterrupt | GeneratorExit):
            raise
        raise ReferenceImplError(
            ErrorCode.UDF_PROVIDER_IMPORT_ERROR,
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}",
            field_path=field_path,
            subjects=(target,),
        ) from None
    finally:
        sys.dont_write_bytecode = no_bytecode
        if added:
            sys.path.remove(root)
    if local:
        _LOCAL_IMPORTS[top] = Path(root)
    if local and not _within(getattr(module, "__file__", None), Path(root)):
        raise ReferenceImplError(
            ErrorCode.UDF_PROVIDER_UNTRUSTED,
            f"{module_name!r} resolved to {getattr(module, '__file__', None)!r}, outside the "
            "manifest directory",
            field_path=field_path,
            subjects=(target,),
        )
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ReferenceImplError(
            ErrorCode.UDF_PROVIDER_INVALID,
            f"module {module_name!r} has no attribute {attribute!r}",
            field_path=field_path,
            subjects=(target,),
        ) from None


def is_trusted(module_name: str, trusted: tuple[str, ...]) -> bool:
    """Is ``module_name`` one of ``trusted`` or inside one of them?"""
    return any(module_name == entry or module_name.startswith(entry + ".") for entry in trusted)


def _refuse_shadowing(top: str, root: Path, target: str, field_path: str) -> None:
    """Refuse a local module named like an installed (or standard library) one."""
    if top in _LOCAL_IMPORTS:
        return  # the name came from a manifest directory before: not an installed module
    installed: str | None = None
    if top in sys.stdlib_module_names:
        installed = "the standard library"
    else:
        cached = sys.modules.get(top)
        try:
            spec = cached.__spec__ if cached is not None else importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        origin = getattr(spec, "origin", None)
        if spec is not None and not _within(origin, root):
            installed = str(origin or "an installed package")
    if installed is not None:
        raise ReferenceImplError(
            ErrorCode.UDF_PROVIDER_UNTRUSTED,
            f"{target!r}: {top!r} next to the manifest would shadow {top!r} from "
            f"{installed}; rename the module",
            field_path=field_path,
            subjects=(target,),
        )


def _forget_foreign(top: str, root: Path) -> None:
    """Drop a same-named module cached from another manifest's directory."""
    cached = sys.modules.get(top)
    if cached is not None and not _within(getattr(cached, "__file__", None), root):
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]


def _is_local(top: str, root: Path) -> bool:
    return (root / f"{top}.py").is_file() or (root / top).is_dir()


def _within(file: str | None, root: Path) -> bool:
    return file is not None and Path(file).resolve().is_relative_to(root.resolve())
