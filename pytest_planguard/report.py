"""The JSON report of ``--planguard-report PATH`` (schema: ``report_schema.json``).

Every finding carries its ``code``, its ``manifest`` and its ``view`` (``null`` for
manifest-level checks).  ``schema_version`` changes whenever the structure does.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_planguard import __version__

if TYPE_CHECKING:
    from pytest_planguard.config import PlanguardConfig

SCHEMA_VERSION = 1
CHECKED = ("unchanged", "changed", "new", "updated", "unstable")
"""Plan statuses of a view whose bundle was built and compared with its snapshot; the
others (``unavailable``, ``error``) were not checked and are never counted as passed."""
SCHEMA_PATH = Path(__file__).with_name("report_schema.json")


def summarize(
    results: Sequence[dict[str, Any]], unused: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    plans = [r for r in results if r.get("kind") == "plan"]
    statuses = Counter(r["status"] for r in plans)
    by_class = Counter(r.get("class", "unknown") for r in plans if r["status"] == "changed")
    checks = {
        f"{r['manifest']}::{r['check']}": r["status"] for r in results if r.get("kind") != "plan"
    }
    return {
        "views": len(plans),
        "views_checked": sum(statuses[status] for status in CHECKED),
        "unchanged": statuses["unchanged"],
        "changed": {"total": statuses["changed"], "by_class": dict(sorted(by_class.items()))},
        "new": statuses["new"],
        "updated": statuses["updated"],
        "unstable": statuses["unstable"],
        "unavailable": statuses["unavailable"],
        "errors": statuses["error"],
        "unused": len(unused),
        "checks": dict(sorted(checks.items())),
        "failed": sum(1 for r in results if r.get("outcome") == "failed"),
    }


def findings(
    results: Sequence[dict[str, Any]], unused: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for result in results:
        severity = (
            "error"
            if result.get("outcome") == "failed"
            else ("warning" if result.get("action") == "warn" else "info")
        )
        for code in result.get("codes", []):
            out.append(
                {
                    "code": code,
                    "severity": severity,
                    "manifest": result["manifest"],
                    "view": result.get("view"),
                    "check": result.get("check", "plan"),
                    "class": result.get("class"),
                    "classes": result.get("classes", []),
                    "message": result.get("message", ""),
                    "nodeid": result["nodeid"],
                }
            )
        for finding in result.get("findings", []):
            out.append(
                {
                    "code": finding["code"],
                    "severity": finding["severity"],
                    "manifest": result["manifest"],
                    "view": finding["subject"]
                    if not finding["subject"].startswith("scan::")
                    else None,
                    "check": "policy",
                    "class": None,
                    "classes": [],
                    "message": finding["message"],
                    "nodeid": result["nodeid"],
                }
            )
    for entry in unused:
        out.append(
            {
                "code": entry["code"],
                "severity": "info" if entry["deleted"] else "error",
                "manifest": None,
                "view": entry["view"],
                "check": "snapshot",
                "class": None,
                "classes": [],
                "message": ("deleted " if entry["deleted"] else "unused ") + entry["snapshot"],
                "nodeid": None,
            }
        )
    return out


def build_report(
    results: Sequence[dict[str, Any]], unused: Sequence[dict[str, Any]], config: PlanguardConfig
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "planguard_version": __version__,
        "manifests": [str(p) for p in config.manifests],
        "snapshot_dir": str(config.snapshot_dir),
        "gate": dict(sorted(config.gate.items())),
        "summary": summarize(results, unused),
        "findings": findings(results, unused),
        "items": sorted(results, key=lambda r: r["nodeid"]),
        "unused_snapshots": list(unused),
    }


def write_report(
    path: Path,
    results: Sequence[dict[str, Any]],
    unused: Sequence[dict[str, Any]],
    config: PlanguardConfig,
) -> None:
    from pytest_planguard.snapshot import atomic_write

    atomic_write(
        path, json.dumps(build_report(results, unused, config), indent=2, sort_keys=True) + "\n"
    )
