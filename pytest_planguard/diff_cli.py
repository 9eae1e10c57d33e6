"""``planguard diff BASE_DIR HEAD_DIR``: compare two plan-bundle snapshot trees.

Every ``*.plan`` file is matched by its path relative to the tree root and classified
like the gate does (:mod:`pytest_planguard.gate.classify`); a file only in HEAD is ``new``, one
only in BASE is ``removed``.  A changed snapshot names, in ``caused_by``, the changed
snapshots of its upstream views: the lineage comes from the ``depends-on`` header lines
(HEAD's, BASE's for a removed view) of the snapshots in the same directory (one manifest's
or session's); ``inherited`` says whether those explain all of the change
(:mod:`pytest_planguard.gate.causes`).  The exit code follows the gate policy: 1 when a
change has a class whose action is ``fail`` (unless it is inherited and the policy says
``inherited=warn``), else 0; 2 for bad input.

When both snapshots of a changed view carry a rule trace, the change names the stage
where it first diverged (``first_divergence``) and the rules that started or stopped
firing; the summary groups the changed snapshots by first divergence, and ``--summary``
prints only those groups: an engine upgrade that changed 40 plans reads as the few
stages that changed them ("31 views: physical_plan after EnforceDistribution").
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
from pytest_planguard.gate.causes import caused_by, is_inherited
from pytest_planguard.gate.classify import classify
from pytest_planguard.gate.policy import DIFF_ONLY, INHERITED, GateAction, parse_gate_policy
from pytest_planguard.gate.snapshot import header_names, parse_snapshot, snapshot_damage

DIFF_SCHEMA_VERSION = 4
# 2: raw_diffs beside the tree diffs; 3: caused_by and inherited; 4: first_divergence,
# rules_started, rules_stopped, trace_disagreement, summary.by_first_divergence
NO_TRACE = "(no trace)"
"""The group of changed snapshots without a rule trace on both sides."""


def run_diff(
    base: str,
    head: str,
    *,
    policies: Sequence[str],
    as_json: bool,
    html: str | None = None,
    summary_only: bool = False,
) -> int:
    gate = parse_gate_policy((("--policy", entry) for entry in policies), extra=DIFF_ONLY)
    base_tree, head_tree = _tree(base, "BASE_DIR"), _tree(head, "HEAD_DIR")
    changes = diff_trees(base_tree, head_tree, gate)
    summary = _summary(changes, len(set(base_tree) | set(head_tree)))
    if html is not None:  # the HTML report of the two trees (issue 14)
        from pytest_planguard.gate.diff_review import diff_review, write_diff_html

        review = diff_review(
            base,
            head,
            base_tree=base_tree,
            head_tree=head_tree,
            changes=changes,
            summary=summary,
            gate=gate,
        )
        write_diff_html(html, review)
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
    elif summary_only:
        print("\n".join(summary_lines(summary)))
    else:
        for change in changes:
            classes = ", ".join(change["classes"])
            action = change["action"].upper()
            print(f"{action:<5} {change['snapshot']}: {change['status']} ({classes})")
            if change["caused_by"]:
                how = "inherited" if change["inherited"] else "changed"
                print(f"  {how} through upstream {', '.join(change['caused_by'])}")
            if change["first_divergence"]:
                print(f"  first diverged at {change['first_divergence']}")
            for key in ("rules_started", "rules_stopped"):
                if change[key]:
                    print(f"  {key.replace('_', ' ')} firing: {', '.join(change[key])}")
            if change["trace_disagreement"]:
                print(f"  trace and sections disagree: {change['trace_disagreement']}")
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
    changed = {name for name in set(base) | set(head) if base.get(name) != head.get(name)}
    lineage = _lineage(base, head)
    for name in sorted(set(base) | set(head)):
        old, new = base.get(name), head.get(name)
        if old == new:
            continue
        view = Path(name).stem
        damage: tuple[str, ...] = ()
        trace: dict[str, Any] = {
            "first_divergence": None,
            "rules_started": [],
            "rules_stopped": [],
            "trace_disagreement": "",
        }
        if old is None or new is None:
            status = "new" if old is None else "removed"
            classes: tuple[str, ...] = (status,)
            diffs: dict[str, str] = {}
            raw: dict[str, str] = {}
        else:
            found = classify(old, new, name=view)
            status, classes, diffs = "changed", found.classes, dict(found.diffs)
            raw = dict(found.raw_diffs or {})
            trace = {
                "first_divergence": found.first_divergence,
                "rules_started": list(found.rules_started),
                "rules_stopped": list(found.rules_stopped),
                "trace_disagreement": found.trace_disagreement,
            }
            damage = found.damage or snapshot_damage(new)
            if damage:
                diffs["damage"] = "\n".join(damage)
        causes = _causes(name, lineage, changed)
        inherited = (
            status == "changed"
            and old is not None
            and new is not None
            and is_inherited(
                old,
                new,
                causes,
                _upstream_texts(name, lineage, base),
                _upstream_texts(name, lineage, head),
            )
        )
        excused = inherited and gate.get(INHERITED, "fail") == "warn"
        failing = (any(gate.get(c, "fail") == "fail" for c in classes) and not excused) or bool(
            damage
        )
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
                "caused_by": list(causes),
                "inherited": inherited,
                **trace,
            }
        )
    return changes


def _lineage(base: Mapping[str, str], head: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Snapshot path -> the views it reads directly, from its ``depends-on`` header line
    (HEAD's version, else BASE's)."""
    return {
        name: header_names(parse_snapshot(text).header.get("depends-on"))
        for name, text in {**base, **head}.items()
    }


def _sibling(name: str, view: str) -> str:
    """The path of view ``view``'s snapshot next to ``name``'s (the same manifest's)."""
    return (Path(name).parent / f"{view}.plan").as_posix()


def _causes(
    name: str, lineage: Mapping[str, tuple[str, ...]], changed: set[str]
) -> tuple[str, ...]:
    """The changed upstream views of snapshot ``name``, among its directory's snapshots."""
    dependencies = {
        Path(other).stem: views
        for other, views in lineage.items()
        if Path(other).parent == Path(name).parent
    }
    changed_views = {
        Path(other).stem for other in changed if Path(other).parent == Path(name).parent
    }
    return caused_by(Path(name).stem, dependencies, changed_views)


def _upstream_texts(
    name: str, lineage: Mapping[str, tuple[str, ...]], tree: Mapping[str, str]
) -> dict[str, str | None]:
    """The snapshot texts, in ``tree``, of the views ``name`` reads directly."""
    return {view: tree.get(_sibling(name, view)) for view in lineage.get(name, ())}


_CODES = {
    "changed": str(PlanguardCode.PLAN_CHANGED),
    "new": str(PlanguardCode.PLAN_NEW),
    "removed": str(PlanguardCode.PLAN_REMOVED),
}


def _summary(changes: Sequence[Mapping[str, Any]], compared: int) -> dict[str, Any]:
    by_class = Counter(c for change in changes for c in change["classes"])
    groups: dict[str, list[str]] = {}
    for change in changes:
        key = (
            change["status"]
            if change["status"] != "changed"
            else change["first_divergence"] or NO_TRACE
        )
        groups.setdefault(key, []).append(change["snapshot"])
    return {
        "by_first_divergence": dict(
            sorted(groups.items(), key=lambda group: (-len(group[1]), group[0]))
        ),
        "compared": compared,
        "unchanged": compared - len(changes),
        "changed": len(changes),
        "by_class": dict(sorted(by_class.items())),
        "failing": sum(1 for c in changes if c["action"] == "fail"),
    }


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The changed snapshots grouped by first divergence (``new``, ``removed`` and
    ``(no trace)`` are groups too), largest group first, then the totals."""
    lines = []
    for stage, names in summary["by_first_divergence"].items():
        count = f"{len(names)} view{'s' if len(names) != 1 else ''}"
        lines.append(f"{count}: {stage}")
        lines += [f"  {name}" for name in names]
    lines.append(
        f"{summary['compared']} snapshot(s) compared: {summary['unchanged']} unchanged, "
        f"{summary['changed']} changed, {summary['failing']} failing the gate"
    )
    return lines
