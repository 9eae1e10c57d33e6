"""``planguard diff BASE_DIR HEAD_DIR``: compare two plan-bundle snapshot trees.

Every ``*.plan`` file is matched by its path relative to the tree root and classified
like the gate does (:mod:`pytest_planguard.gate.classify`); a file only in HEAD is ``new``, one
only in BASE is ``removed``.  The exit code follows the gate policy: 1 when a change has a
class whose action is ``fail``, else 0; 2 for bad input.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pytest_planguard.errors import PlanguardCode, PlanguardError
from pytest_planguard.gate.classify import classify
from pytest_planguard.gate.policy import DIFF_ONLY, GateAction, parse_gate_policy
from pytest_planguard.gate.snapshot import snapshot_damage

DIFF_SCHEMA_VERSION = 2  # 2: raw_diffs beside the tree diffs of plan sections


def run_diff(base: str, head: str, *, policies: Sequence[str], as_json: bool) -> int:
    gate = parse_gate_policy((("--policy", entry) for entry in policies), extra=DIFF_ONLY)
    base_tree, head_tree = _tree(base, "BASE_DIR"), _tree(head, "HEAD_DIR")
    changes = diff_trees(base_tree, head_tree, gate)
    summary = _summary(changes, len(set(base_tree) | set(head_tree)))
    if as_json:
        payload = {
            "schema_version": DIFF_SCHEMA_VERSION,
            "base": str(Path(base).resolve()),
            "head": str(Path(head).resolve()),
            "gate": dict(sorted(gate.items())),
            "summary": summary,
            "changes": changes,
        }
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    else:
        for change in changes:
            classes = ", ".join(change["classes"])
            action = change["action"].upper()
            print(f"{action:<5} {change['snapshot']}: {change['status']} ({classes})")
            for section, diff in change["diffs"].items():
                print(f"  --- {section} ---")
                print("\n".join("  " + line for line in diff.splitlines()))
        by_class = ", ".join(f"{k} {v}" for k, v in summary["by_class"].items()) or "none"
        print(
            f"{summary['compared']} snapshot(s) compared: {summary['unchanged']} unchanged, "
            f"{summary['changed']} changed ({by_class}), {summary['failing']} failing the gate"
        )
    return 1 if summary["failing"] else 0


MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
"""Largest snapshot file ``planguard diff`` reads (the biggest real ones are a few KiB)."""


def _tree(path: str, label: str) -> dict[str, str]:
    """Every ``*.plan`` file under ``path``, by relative path.  Only regular files inside
    the tree are read, each bounded: a symbolic link (which could lead out of the tree), a
    FIFO or a device is bad input, never followed or read."""
    root = Path(path)
    if not root.is_dir():
        raise PlanguardError(
            PlanguardCode.SNAPSHOT_TREE_INVALID, f"{label} {path!r} is not a directory"
        )
    files: dict[str, str] = {}
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(directory)
        for name in sorted(dirnames):
            if (here / name).is_symlink():
                _refuse(
                    here / name, "is a symbolic link (the tree is read without following links)"
                )
        for name in sorted(filenames):
            file = here / name
            if file.suffix != ".plan":
                continue
            files[file.relative_to(root).as_posix()] = _read_snapshot(file)
    return dict(sorted(files.items()))


def _read_snapshot(file: Path) -> str:
    try:
        info = file.lstat()
        if stat.S_ISLNK(info.st_mode):
            _refuse(file, "is a symbolic link (the tree is read without following links)")
        if not stat.S_ISREG(info.st_mode):
            _refuse(file, "is not a regular file")
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                _refuse(file, "is not a regular file")
            data = handle.read(MAX_SNAPSHOT_BYTES + 1)
        if len(data) > MAX_SNAPSHOT_BYTES:
            _refuse(file, f"is larger than {MAX_SNAPSHOT_BYTES} bytes")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanguardError(
            PlanguardCode.SNAPSHOT_TREE_INVALID, f"cannot read {str(file)!r}: {exc}"
        ) from None


def _refuse(file: Path, why: str) -> NoReturn:
    raise PlanguardError(PlanguardCode.SNAPSHOT_TREE_INVALID, f"{str(file)!r} {why}")


def diff_trees(
    base: Mapping[str, str], head: Mapping[str, str], gate: Mapping[str, GateAction]
) -> list[dict[str, Any]]:
    """Every snapshot that differs between the two trees, classified and gated."""
    changes: list[dict[str, Any]] = []
    for name in sorted(set(base) | set(head)):
        old, new = base.get(name), head.get(name)
        if old == new:
            continue
        view = Path(name).stem
        damage: tuple[str, ...] = ()
        if old is None or new is None:
            status = "new" if old is None else "removed"
            classes: tuple[str, ...] = (status,)
            diffs: dict[str, str] = {}
            raw: dict[str, str] = {}
        else:
            found = classify(old, new, name=view)
            status, classes, diffs = "changed", found.classes, dict(found.diffs)
            raw = dict(found.raw_diffs or {})
            damage = found.damage or snapshot_damage(new)
            if damage:
                diffs["damage"] = "\n".join(damage)
        failing = any(gate.get(c, "fail") == "fail" for c in classes) or bool(damage)
        changes.append(
            {
                "code": _CODES[status],
                "snapshot": name,
                "view": view,
                "status": status,
                "classes": list(classes),
                "action": "fail" if failing else "warn",
                "diffs": diffs,
                "raw_diffs": raw,
            }
        )
    return changes


_CODES = {
    "changed": str(PlanguardCode.PLAN_CHANGED),
    "new": str(PlanguardCode.PLAN_NEW),
    "removed": str(PlanguardCode.PLAN_REMOVED),
}


def _summary(changes: Sequence[Mapping[str, Any]], compared: int) -> dict[str, Any]:
    by_class = Counter(c for change in changes for c in change["classes"])
    return {
        "compared": compared,
        "unchanged": compared - len(changes),
        "changed": len(changes),
        "by_class": dict(sorted(by_class.items())),
        "failing": sum(1 for c in changes if c["action"] == "fail"),
    }
