"""Normalization of DataFusion 55 + Delta plan texts, so snapshots do not depend on the
machine, the checkout directory or the run.

What varies, and what replaces it (``NORMALIZER_VERSION`` changes when this list does, or
when the snapshot text gains something new: 3 added the ``depends-on`` and ``udfs`` header
lines, 4 the rule ``trace`` section, whose stage hashes are of texts normalized like the
plan sections):

* partition counts: ``RoundRobinBatch(N)``, ``Hash([...], N)``, ``input_partitions=N``
  -> ``<N>`` (DataFusion defaults target_partitions to the CPU count);
* file groups: ``file_groups={N groups: [[a, b], [c]]}`` -> ``files=[<dirs>]``, the sorted
  set of directories the files lie in: the grouping follows the partition count, and
  DataFusion elides groups past the fifth (``...``), so the file list itself varies;
* absolute paths (printed without their leading slash): a dataset's location becomes
  ``$<dataset>``, the manifest directory ``$MANIFEST``, the rootdir ``$ROOT``;
* object stores (``stores``: name -> URL prefix, from the manifest's ``[storage.*]`` or the
  ini key ``planguard_stores``): the URL becomes ``$<store>``, and a file a scan lists by
  its object key (DataFusion prints ``raw/part-0.parquet``, without scheme, endpoint or
  bucket) becomes ``$<store>/raw/part-0.parquet`` when the key lies under the store's
  prefix, so a snapshot names the store, never the endpoint, port or bucket.  A dataset
  on a store keeps its store's token (``$warehouse/orders``), not ``$<dataset>``.  (No
  snapshot taken before stores existed can hold a store URL, so the version stays 3.)
* generated aliases: ``__common_expr_N``, ``__correlated_sq_N``, ``__scalar_sq_N`` ...
  count up per session (every optimizer run takes the next number), so they are renumbered
  from 1 in order of appearance within each plan;
* UUIDs (Delta data file names, ``delta.columnMapping.physicalName`` values such as
  ``col-<uuid>``) -> ``<uuid>``;
* Delta feature lists (writer-dependent order) -> sorted;
* session settings that depend on the machine (``target_partitions``,
  ``planning_concurrency``, temp directories) are left out of the settings hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

NORMALIZER_VERSION = 4

_PARTITIONS = [
    (re.compile(r"RoundRobinBatch\(\d+\)"), "RoundRobinBatch(<N>)"),
    (re.compile(r"input_partitions=\d+"), "input_partitions=<N>"),
    (re.compile(r"partition_count=\d+"), "partition_count=<N>"),
]
_HASH_PARTITIONING = "Hash(["
_FILE_GROUPS = "file_groups={"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUID_HINT = re.compile(r"-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-")
"""A part of every ``_UUID`` match, found fast (it begins with a literal)."""
_FEATURES = re.compile(r"(?P<key>(?:reader|writer)_?[fF]eatures\s*[=:]\s*)\[(?P<items>[^\]]*)\]")
_MACHINE_SETTINGS = ("target_partitions", "planning_concurrency", "temp_directory")
_GENERATED_ALIAS = re.compile(r"\b(__[a-z]+(?:_[a-z]+)*_)(\d+)\b")


def normalize_plan_text(
    text: str,
    *,
    locations: Mapping[str, str] = {},
    roots: Mapping[str, str] = {},
    stores: Mapping[str, str] = {},
) -> str:
    """Normalize one displayed plan (see module docs for the rules)."""
    if stores:
        prefixes = tuple(url.rstrip("/") + "/" for url in stores.values())
        locations = {
            name: location
            for name, location in locations.items()
            if not (location.rstrip("/") + "/").startswith(prefixes)
        }
        roots = {**roots, **stores}
    out = _replace_paths(text, locations, roots)
    out = _normalize_file_groups(out, _store_keys(stores))
    out = _normalize_hash_partitioning(out)
    for pattern, replacement in _PARTITIONS:
        out = pattern.sub(replacement, out)
    out = _uuids(out)
    out = _renumber_aliases(out)
    out = _features(out)
    return "\n".join(line.rstrip() for line in out.strip("\n").splitlines())


# Each substitution below is skipped when a cheap test shows its pattern cannot match (the
# text lacks a part every match holds): a rule trace normalizes hundreds of plan texts,
# most of which hold no UUID, no generated alias and no feature list.


def _uuids(text: str) -> str:
    return _UUID.sub("<uuid>", text) if _UUID_HINT.search(text) else text


def _features(text: str) -> str:
    return _FEATURES.sub(_sorted_features, text) if "eatures" in text else text


def settings_hash(settings: Mapping[str, str], *, strict: bool = False) -> str:
    """sha256 of the session settings, machine-dependent ones left out (16 hex digits).

    ``strict`` keeps ``target_partitions`` (for a team that pins it in every
    environment); ``planning_concurrency`` and temporary directories always go."""
    left_out = tuple(s for s in _MACHINE_SETTINGS if not (strict and s == "target_partitions"))
    kept = sorted(
        (name, value)
        for name, value in settings.items()
        if not any(part in name for part in left_out)
    )
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()[:16]


def _replace_paths(text: str, locations: Mapping[str, str], roots: Mapping[str, str]) -> str:
    pairs: list[tuple[str, str]] = []
    for name, location in locations.items():
        pairs.append((location.rstrip("/"), f"${name}"))
    for token, root in roots.items():
        pairs.append((root.rstrip("/"), f"${token}"))
    # Longest first, so a dataset inside the manifest directory wins over $MANIFEST.
    for path, token in sorted(pairs, key=lambda pair: len(pair[0]), reverse=True):
        stripped = path.lstrip("/")  # DataFusion prints absolute paths without the slash
        if not stripped or stripped not in text:  # no occurrence: the regex cannot match
            continue
        # Whole path components only: "data" must not match inside "metadata".
        pattern = rf"(?<![\w.\-/$])/?{re.escape(stripped)}(?![\w.\-])"
        text = re.sub(pattern, token.replace("\\", "\\\\"), text)
    return text


def _closing(text: str, start: int, open_char: str, close_char: str) -> int:
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == open_char:
            depth += 1
        elif char == close_char:
            depth -= 1
            if depth == 0:
                return index
    return -1


def _normalize_hash_partitioning(text: str) -> str:
    out: list[str] = []
    position = 0
    while (start := text.find(_HASH_PARTITIONING, position)) != -1:
        bracket = start + len("Hash(")
        end_list = _closing(text, bracket, "[", "]")
        end_call = _closing(text, start + len("Hash"), "(", ")")
        if end_list == -1 or end_call == -1:
            break
        out.append(text[position : end_list + 1])
        tail = text[end_list + 1 : end_call]
        out.append(re.sub(r",\s*\d+\s*$", ", <N>", tail) + ")")
        position = end_call + 1
    out.append(text[position:])
    return "".join(out)


def _store_keys(stores: Mapping[str, str]) -> list[tuple[str, str]]:
    """(object key prefix, token) per store, the longest prefix first: ``s3://b/lake`` is
    ``("lake/", "$name/")``, a whole bucket ``("", "$name/")``."""
    keys = []
    for name, url in sorted(stores.items()):
        rest = url.split("://", 1)[-1].rstrip("/")
        prefix = rest.split("/", 1)[1] + "/" if "/" in rest else ""
        keys.append((prefix, f"${name}/"))
    return sorted(keys, key=lambda pair: -len(pair[0]))


def _store_directory(entry: str, keys: list[tuple[str, str]]) -> str | None:
    """The directory of a listed file's object key under a store's prefix, as
    ``$<store>/<key dir>`` (``raw/c/part-0.parquet`` -> ``$warehouse/raw/c``); None when
    the entry is no key under a store."""
    if not keys or entry.startswith("$") or entry in ("", "..."):
        return None
    for prefix, token in keys:
        if entry.startswith(prefix):
            return (token + entry[len(prefix) :]).rsplit("/", 1)[0]
    return None


def _normalize_file_groups(text: str, keys: list[tuple[str, str]] | None = None) -> str:
    out: list[str] = []
    position = 0
    while (start := text.find(_FILE_GROUPS, position)) != -1:
        brace = start + len("file_groups=")
        end = _closing(text, brace, "{", "}")
        if end == -1:
            break
        body = text[brace + 1 : end]
        listed = re.split(r"[\[\],]", body.partition(":")[2])
        dirs = sorted(
            {
                _store_directory(entry.strip(), keys or []) or _directory(entry.strip())
                for entry in listed
                if entry.strip() not in ("", "...")
            }
        )
        out.append(text[position:start])
        out.append("files=[" + ", ".join(dirs) + "]")
        position = end + 1
    out.append(text[position:])
    return "".join(out)


def _renumber_aliases(text: str) -> str:
    if "__" not in text:  # every generated alias begins with two underscores
        return text
    numbers: dict[tuple[str, str], int] = {}
    counts: dict[str, int] = {}

    def renumber(match: re.Match[str]) -> str:
        prefix, number = match.group(1), match.group(2)
        key = (prefix, number)
        if key not in numbers:
            counts[prefix] = counts.get(prefix, 0) + 1
            numbers[key] = counts[prefix]
        return f"{prefix}{numbers[key]}"

    return _GENERATED_ALIAS.sub(renumber, text)


def _directory(entry: str) -> str:
    """``$events/part-0.parquet:0..100`` -> ``$events``; ``a/b/c.parquet`` -> ``a/b``."""
    if entry.startswith("$"):
        return entry.split("/", 1)[0]
    return entry.rsplit("/", 1)[0] if "/" in entry else entry


def _sorted_features(match: re.Match[str]) -> str:
    items = [item.strip() for item in match.group("items").split(",") if item.strip()]
    return f"{match.group('key')}[{', '.join(sorted(items))}]"
