"""The JSON Schema of manifest format v1 (``planguard schema``), generated from the model."""

from __future__ import annotations

from typing import Any


def manifest_json_schema() -> dict[str, Any]:
    import msgspec

    from reference_impl.semantics.model import MANIFEST_VERSION, ManifestDocument

    schema: dict[str, Any] = msgspec.json.schema(ManifestDocument)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"planguard manifest v{MANIFEST_VERSION}"
    return schema
