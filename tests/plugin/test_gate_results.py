"""Adapter calls get codes; results travel as typed structs."""

from __future__ import annotations

import msgspec
import pytest

from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.gate.policy import ChangeClass
from pytest_planguard.gate.results import GateResult, call_adapter, received


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
