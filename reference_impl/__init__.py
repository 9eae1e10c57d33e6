"""Reference compile/validate pipeline for DataFusion + Delta Lake (pytest-planguard).

Public entry points are imported lazily so that ``import reference_impl`` stays cheap
and does not pull in DataFusion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reference_impl.errors import ErrorCode, ReferenceImplError
    from reference_impl.pipeline import PipelineRun, PlannedPipeline, plan_pipeline, run_pipeline
    from reference_impl.semantics.compile import compile_semantic_program
    from reference_impl.semantics.load import load_manifest

__all__ = [
    "ErrorCode",
    "PipelineRun",
    "PlannedPipeline",
    "ReferenceImplError",
    "compile_semantic_program",
    "load_manifest",
    "plan_pipeline",
    "run_pipeline",
]

_LAZY = {
    "ErrorCode": "reference_impl.errors",
    "ReferenceImplError": "reference_impl.errors",
    "PipelineRun": "reference_impl.pipeline",
    "PlannedPipeline": "reference_impl.pipeline",
    "plan_pipeline": "reference_impl.pipeline",
    "run_pipeline": "reference_impl.pipeline",
    "compile_semantic_program": "reference_impl.semantics.compile",
    "load_manifest": "reference_impl.semantics.load",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reference_impl' has no attribute {name!r}")
