"""Delta protocol snapshots and compatibility against the configured support.

``DeltaProtocolCompatibility.compatible`` is ``True``, ``False`` or ``None``; ``None``
means the manifest configures no ``[policy.delta_support]``, and consumers handle it by
validation mode.  It is never coerced to a boolean here.  Feature lists are sorted: Delta
writers emit them in writer-dependent order.
"""

from __future__ import annotations

from typing import Any

import msgspec

from reference_impl.semantics.model import DeltaSupportSpec


class DeltaProtocol(msgspec.Struct, frozen=True, kw_only=True):
    min_reader_version: int
    min_writer_version: int
    reader_features: tuple[str, ...]
    writer_features: tuple[str, ...]


class DeltaProtocolCompatibility(msgspec.Struct, frozen=True, kw_only=True):
    compatible: bool | None
    reason: str
    required_reader_version: int
    required_writer_version: int
    supported_reader_version: int | None
    supported_writer_version: int | None
    required_reader_features: tuple[str, ...]
    required_writer_features: tuple[str, ...]
    supported_reader_features: tuple[str, ...]
    supported_writer_features: tuple[str, ...]
    missing_reader_features: tuple[str, ...]
    missing_writer_features: tuple[str, ...]


def delta_protocol_from_table(protocol: Any) -> DeltaProtocol:
    """Snapshot ``deltalake.DeltaTable.protocol()`` with sorted feature lists."""
    return DeltaProtocol(
        min_reader_version=int(protocol.min_reader_version),
        min_writer_version=int(protocol.min_writer_version),
        reader_features=tuple(sorted(set(protocol.reader_features or ()))),
        writer_features=tuple(sorted(set(protocol.writer_features or ()))),
    )


def delta_protocol_compatibility(
    protocol: DeltaProtocol, support: DeltaSupportSpec | None
) -> DeltaProtocolCompatibility:
    """Can a pipeline configured with ``support`` read (and write) a table at ``protocol``?"""
    if support is None:
        return DeltaProtocolCompatibility(
            compatible=None,
            reason="delta protocol support is not configured ([policy.delta_support] is absent)",
            required_reader_version=protocol.min_reader_version,
            required_writer_version=protocol.min_writer_version,
            supported_reader_version=None,
            supported_writer_version=None,
            required_reader_features=protocol.reader_features,
            required_writer_features=protocol.writer_features,
            supported_reader_features=(),
            supported_writer_features=(),
            missing_reader_features=(),
            missing_writer_features=(),
        )
    supported_reader = tuple(sorted(set(support.reader_features)))
    supported_writer = tuple(sorted(set(support.writer_features)))
    missing_reader = tuple(f for f in protocol.reader_features if f not in supported_reader)
    missing_writer = tuple(f for f in protocol.writer_features if f not in supported_writer)
    problems: list[str] = []
    if protocol.min_reader_version > support.max_reader_version:
        problems.append(
            f"reader version {protocol.min_reader_version} > supported {support.max_reader_version}"
        )
    if protocol.min_writer_version > support.max_writer_version:
        problems.append(
            f"writer version {protocol.min_writer_version} > supported {support.max_writer_version}"
        )
    if missing_reader:
        problems.append("unsupported reader features: " + ", ".join(missing_reader))
    if missing_writer:
        problems.append("unsupported writer features: " + ", ".join(missing_writer))
    return DeltaProtocolCompatibility(
        compatible=not problems,
        reason="; ".join(problems) if problems else "protocol within configured support",
        required_reader_version=protocol.min_reader_version,
        required_writer_version=protocol.min_writer_version,
        supported_reader_version=support.max_reader_version,
        supported_writer_version=support.max_writer_version,
        required_reader_features=protocol.reader_features,
        required_writer_features=protocol.writer_features,
        supported_reader_features=supported_reader,
        supported_writer_features=supported_writer,
        missing_reader_features=missing_reader,
        missing_writer_features=missing_writer,
    )
