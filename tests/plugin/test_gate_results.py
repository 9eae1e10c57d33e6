"""Adapter calls get codes; results travel as typed structs."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.gate.policy import ChangeClass
from pytest_planguard.gate.results import GateResult, call_adapter, received
from tests.support.gate import FAST


class Panic(BaseException):
    """Like pyo3's PanicException: not an Exception."""


class CodedByThePipeline(Exception):
    code = "MANIFEST_PARSE_ERROR"

    def render(self) -> str:
        return f"error[{self.code}] bad manifest"


class Adapter:
    def build_context(self, compiled: object) -> object:
        raise RuntimeError("boom")

    def plan(self, context: object) -> object:
        raise Panic("engine panicked")

    def compile(self, path: object) -> object:
        raise CodedByThePipeline

    def execute(self, plan: object) -> object:
        raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("build_context", "adapter.build_context raised RuntimeError: boom"),
        ("plan", "adapter.plan raised Panic: engine panicked"),
    ],
)
def test_an_uncoded_exception_in_an_adapter_method_is_adapter_error(
    method: str, message: str
) -> None:
    with pytest.raises(PlanguardError) as info:
        call_adapter(getattr(Adapter(), method), None)
    assert info.value.code == PlanguardCode.ADAPTER_ERROR
    assert info.value.render() == f"error[ADAPTER_ERROR] {message}"


def test_a_coded_pipeline_error_keeps_its_code_and_an_interrupt_passes() -> None:
    with pytest.raises(CodedByThePipeline):
        call_adapter(Adapter().compile, None)
    with pytest.raises(KeyboardInterrupt):
        call_adapter(Adapter().execute, None)


def test_a_published_result_round_trips_with_its_outcome() -> None:
    result = GateResult(
        kind="plan",
        manifest="m/manifest.toml",
        nodeid="m/manifest.toml::v",
        view="v",
        status="changed",
        codes=("PLAN_CHANGED",),
        classes=(ChangeClass.OPTIMIZER,),
        primary="optimizer",
        action="warn",
    )
    text = msgspec.json.encode(result).decode()
    assert '"class":"optimizer"' in text
    assert "findings" not in text  # defaults are left out
    back = received(text, "passed")
    assert back.outcome == "passed"
    assert back.classes == (ChangeClass.OPTIMIZER,)


USER_ADAPTER = """
from pytest_planguard.reference_adapter import ReferenceAdapter


def read_settings(context):
    raise ValueError("table 'information_schema.df_settings' not found")


class MyAdapter(ReferenceAdapter):
    def engine_info(self, context):
        return read_settings(context)
"""


@pytest.mark.parametrize("tb", ["long", "auto"])
def test_adapter_errors_show_the_users_frames_under_tb_long(
    pytester: pytest.Pytester, shop: Path, tb: str
) -> None:
    """The method is always named; the user's own frames (not planguard's, pytest's or
    the reference pipeline's) only under --tb=long."""
    pytester.makepyfile(my_adapter=USER_ADAPTER)
    result = pytester.runpytest_subprocess(
        *FAST, "--planguard", "--planguard-adapter", "my_adapter:MyAdapter", f"--tb={tb}"
    )
    out = result.stdout.str()
    assert "error[ADAPTER_ERROR] adapter.engine_info raised ValueError: table" in out
    if tb == "long":
        result.stdout.fnmatch_lines(
            [
                "*Traceback (the adapter's own frames, most recent call last):",
                '*my_adapter.py", line 10, in engine_info',
                '*my_adapter.py", line 5, in read_settings',
            ]
        )
        assert "pytest_planguard/" not in out
        assert "_pytest/" not in out
    else:
        assert "the adapter's own frames" not in out
