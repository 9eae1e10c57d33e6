"""The trust rules on exact inputs (issue 20): which names are module names, how the
allowlist sources parse and add up, and ``import_trusted``'s decisions and messages for a
local module, a trusted one, an untrusted one, a shadowing one, a missing attribute and
a module that fails to import.  Real imports from real files in ``tmp_path``."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.trust import (
    ENV_VAR,
    granted_on_command_line,
    is_module_name,
    parse_trusted_modules,
    trusted_from_environment,
)
from reference_impl.engine.trusted_import import import_trusted, is_trusted
from reference_impl.errors import ErrorCode, ReferenceImplError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pkg", True),
        ("pkg.sub_2.mod", True),
        ("", False),
        ("pkg.", False),
        (".pkg", False),
        ("pkg..mod", False),
        ("pkg-mod", False),
        ("1pkg", False),
    ],
)
def test_module_names_are_dotted_identifiers(value: str, expected: bool) -> None:
    assert is_module_name(value) is expected


def test_entries_are_stripped_deduplicated_and_sorted() -> None:
    assert parse_trusted_modules([" b ", "a", "", "  ", "b", "a.c"], source="s") == (
        "a",
        "a.c",
        "b",
    )


def test_a_bad_entry_is_a_config_error_naming_its_source() -> None:
    with pytest.raises(PlanguardError) as raised:
        parse_trusted_modules(["ok", " my-pkg "], source="planguard_trusted_modules")
    assert raised.value.code is PlanguardCode.CONFIG_ERROR
    assert raised.value.field_path == "planguard_trusted_modules"
    assert raised.value.message == (
        "'my-pkg' is not a module name (expected e.g. 'my_pkg' or 'my_pkg.udfs')"
    )


def test_the_environment_variable_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert trusted_from_environment({ENV_VAR: " b, a ,,a.x "}) == ("a", "a.x", "b")
    assert trusted_from_environment({}) == ()
    monkeypatch.setenv(ENV_VAR, "from_env")
    assert trusted_from_environment() == ("from_env",)
    with pytest.raises(PlanguardError) as raised:
        trusted_from_environment({ENV_VAR: "a b"})
    assert raised.value.field_path == ENV_VAR


def test_the_command_line_and_the_environment_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "zeta,alpha")
    assert granted_on_command_line(["mid", "alpha"]) == ("alpha", "mid", "zeta")
    monkeypatch.delenv(ENV_VAR)
    assert granted_on_command_line(["mid"]) == ("mid",)
    with pytest.raises(PlanguardError) as raised:
        granted_on_command_line(["not a module"])
    assert raised.value.field_path == "--trust-module"


@pytest.mark.parametrize(
    ("module", "trusted", "expected"),
    [
        ("pkg", ("pkg",), True),
        ("pkg.udfs", ("pkg",), True),
        ("pkg.udfs.deep", ("pkg.udfs",), True),
        ("pkg.other", ("pkg.udfs",), False),
        ("pkgx", ("pkg",), False),
        ("pkg", ("pkg.udfs",), False),
        ("pkg", (), False),
    ],
)
def test_an_entry_trusts_itself_and_what_lies_below(
    module: str, trusted: tuple[str, ...], expected: bool
) -> None:
    assert is_trusted(module, trusted) is expected


# ---------------------------------------------------------------------- import_trusted


@pytest.fixture
def name() -> Iterator[str]:
    """A fresh top-level module name, forgotten afterwards."""
    value = f"mk_{uuid.uuid4().hex[:10]}"
    yield value
    for loaded in [n for n in sys.modules if n == value or n.startswith(value + ".")]:
        del sys.modules[loaded]


def _import(target: str, root: Path, trusted: tuple[str, ...] = ()) -> object:
    return import_trusted(target, root=str(root), trusted_modules=trusted, field_path="udfs.f")


def test_a_module_next_to_the_manifest_is_imported_without_writing_bytecode(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    (tmp_path / f"{name}.py").write_text("VALUE = 41 + 1\n", encoding="utf-8")
    before = list(sys.path)
    assert _import(f"{name}:VALUE", tmp_path) == 42
    assert sys.path == before
    assert not (tmp_path / "__pycache__").exists()
    assert sys.dont_write_bytecode is False


def test_a_local_package_is_imported_and_its_submodule_too(tmp_path: Path, name: str) -> None:
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "udfs.py").write_text("F = 'f'\n", encoding="utf-8")
    assert _import(f"{name}.udfs:F", tmp_path) == "f"


def test_an_untrusted_module_is_refused_before_it_is_imported(tmp_path: Path) -> None:
    with pytest.raises(ReferenceImplError) as raised:
        _import("email.utils:parseaddr", tmp_path, ("emailx", "email.mime"))
    assert raised.value.code is ErrorCode.UDF_PROVIDER_UNTRUSTED
    assert raised.value.field_path == "udfs.f"
    assert raised.value.subjects == ("email.utils:parseaddr",)
    assert raised.value.message == (
        "'email.utils:parseaddr': module 'email.utils' is neither next to the manifest nor "
        "trusted by whoever runs the tool (planguard --trust-module MODULE, the pytest ini key "
        "planguard_trusted_modules, or PLANGUARD_TRUSTED_MODULES)"
    )


def test_a_trusted_installed_module_is_imported(tmp_path: Path) -> None:
    import json

    assert _import("json:loads", tmp_path, ("json",)) is json.loads
    assert _import("reference_impl.errors:ErrorCode", tmp_path) is ErrorCode


def test_a_local_module_may_not_shadow_the_standard_library(tmp_path: Path) -> None:
    (tmp_path / "json.py").write_text("loads = None\n", encoding="utf-8")
    with pytest.raises(ReferenceImplError) as raised:
        _import("json:loads", tmp_path)
    assert raised.value.code is ErrorCode.UDF_PROVIDER_UNTRUSTED
    assert raised.value.message == (
        "'json:loads': 'json' next to the manifest would shadow 'json' from the standard "
        "library; rename the module"
    )
    assert raised.value.subjects == ("json:loads",)
    assert raised.value.field_path == "udfs.f"


def test_a_local_module_may_not_shadow_an_installed_package(tmp_path: Path) -> None:
    (tmp_path / "msgspec").mkdir()
    (tmp_path / "msgspec" / "__init__.py").write_text("", encoding="utf-8")
    with pytest.raises(ReferenceImplError) as raised:
        _import("msgspec:Struct", tmp_path)
    import msgspec

    assert raised.value.message == (
        f"'msgspec:Struct': 'msgspec' next to the manifest would shadow 'msgspec' from "
        f"{msgspec.__spec__.origin}; rename the module"
    )


def test_a_missing_attribute_is_an_invalid_provider(tmp_path: Path, name: str) -> None:
    (tmp_path / f"{name}.py").write_text("OTHER = 1\n", encoding="utf-8")
    with pytest.raises(ReferenceImplError) as raised:
        _import(f"{name}:missing", tmp_path)
    assert raised.value.code is ErrorCode.UDF_PROVIDER_INVALID
    assert raised.value.message == f"module {name!r} has no attribute 'missing'"
    assert (raised.value.field_path, raised.value.subjects) == ("udfs.f", (f"{name}:missing",))


def test_a_module_that_fails_to_import_is_an_import_error_and_leaves_no_trace(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    (tmp_path / f"{name}.py").write_text("raise SystemExit(3)\n", encoding="utf-8")
    before = list(sys.path)
    with pytest.raises(ReferenceImplError) as raised:
        _import(f"{name}:F", tmp_path)
    assert raised.value.code is ErrorCode.UDF_PROVIDER_IMPORT_ERROR
    assert raised.value.message == f"cannot import {name!r}: SystemExit: 3"
    assert (raised.value.field_path, raised.value.subjects) == ("udfs.f", (f"{name}:F",))
    assert sys.path == before
    assert sys.dont_write_bytecode is False


def test_the_same_local_name_from_another_manifest_directory_is_that_directorys(
    tmp_path: Path, name: str
) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    for directory, value in ((first, 1), (second, 2)):
        directory.mkdir()
        (directory / f"{name}.py").write_text(f"VALUE = {value}\n", encoding="utf-8")
    assert _import(f"{name}:VALUE", first) == 1
    assert _import(f"{name}:VALUE", second) == 2
    assert _import(f"{name}:VALUE", first) == 1
