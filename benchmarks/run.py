"""planguard against bare DataFusion in one run: ``python benchmarks/run.py [--quick] [--json P]``.

Workloads (each measured in its own child process, so peak memory is its own):

* ``tpch``: the bundled TPC-H example (22 queries + 4 derived views over 8 Delta tables);
* ``tpcds``: the 99 TPC-DS queries as views over 24 small Delta tables of synthetic rows
  (see ``benchmarks/tpcds.py``; queries DataFusion cannot plan would be left out, and named);
* ``tpch_s3``: the same example with its 8 tables (and its output) on an S3 server on
  loopback (moto, ``pytest_planguard.s3_server``; needs ``moto[server]``), read through a
  ``[storage.warehouse]`` store whose keys come from the environment; bare DataFusion
  registers the same ``DeltaTable(s3://..., storage_options=...)``.  Runs unless
  ``--quick`` (then only with ``--only tpch_s3``);
* ``dag_100`` ... ``dag_2000``: synthetic layered DAGs (see ``benchmarks/dag.py``);
* ``pytest_gate_tpch``: ``pytest --planguard --planguard-only`` on a copy of the example
  against a plain syrupy test that snapshots the same raw plan texts; and the same gate
  with ``-n 2`` (pytest-xdist) against the gate without it;
* ``collect_2000_inactive``: ``pytest --collect-only`` of a generated 2,000-test suite with
  the plugin installed but inactive against ``-p no:planguard``.

Per pipeline workload, one child process times, with the same warm caches:

* bare DataFusion: a ``SessionContext`` with the manifest's pinned settings, the same
  tables (``DeltaTable`` / ``register_parquet``), UDFs and views registered in order and,
  for each view, ``ctx.sql`` + optimized logical plan + physical plan + their display;
* planguard: ``reference_impl.pipeline.plan_pipeline``, the one stage chain: load -> semantic
  compile -> runtime profile -> context -> authority -> execution plan (P0/P1/P2 bundles,
  statistics, lineage, fingerprints) -> policy validation.

Bare and planguard runs alternate (ABBA); each reports the minimum over its repetitions.
``--quick`` runs fewer repetitions (see ``REPS``); every workload still runs in full.
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO))

import dag  # noqa: E402  (benchmarks/ is not a package)
import tpcds  # noqa: E402

EXAMPLE = REPO / "reference_impl" / "examples" / "tpch"
DAG_SIZES = (100, 500, 1000, 2000)
COLLECT_TESTS = 2000
REPS = {
    # workload: (full, quick) repetitions of each side
    "tpch": (15, 9),
    "tpch_s3": (7, 3),
    "dag_100": (5, 3),
    "dag_500": (3, 2),
    "dag_1000": (2, 1),
    "dag_2000": (2, 2),
    "tpcds": (7, 3),
    "pytest": (3, 1),
    "collect": (9, 5),
}
TARGETS = {
    "pytest_gate": 1.5,
    "ratio": 1.3,
    "ratio_tpch": 1.25,  # issue 15's bar for tpch; dag_1000 keeps "ratio"
    "scaling_2000_500": 4.4,
    "inactive_overhead_pct": 3.0,
}


# --------------------------------------------------------------------------- memory


def _status_kb(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# ------------------------------------------------------------------- pipeline child


def _bare_spec(manifest: Path) -> dict[str, Any]:
    """What bare DataFusion needs to plan the manifest (prepared before any timing)."""
    import msgspec

    from reference_impl.pipeline import PipelineState, run_stages

    state = run_stages(PipelineState(manifest), last="runtime_profile")
    program, profile = state.program, state.runtime_profile
    assert program is not None
    assert profile is not None
    return {
        "session": dict(profile.session_settings),
        "runtime": dict(profile.runtime_settings),
        "datasets": [
            (b.name, b.format, b.location) for b in program.dataset_bindings.bindings.values()
        ],
        # tables on a store: the store's declaration (secrets by variable name only)
        "stores": {
            b.name: msgspec.to_builtins(program.dataset_bindings.stores[b.store])
            for b in program.dataset_bindings.bindings.values()
            if b.store is not None
        },
        "udfs": [u.provider for u in program.udfs],
        "views": [(v.name, v.sql) for v in program.views],
    }


def _bare(spec: dict[str, Any]) -> dict[str, str]:
    """Bare DataFusion: register everything, then plan and display every view."""
    import importlib

    import msgspec
    from datafusion import ScalarUDF, SessionConfig, SessionContext
    from deltalake import DeltaTable

    from reference_impl.engine.object_store import store_options
    from reference_impl.semantics.program import StoreDeclaration

    ctx = SessionContext(SessionConfig(spec["session"]))
    for key, value in sorted(spec["runtime"].items()):
        ctx.sql(f"SET {key} = '{value}'").collect()
    for name, fmt, location in spec["datasets"]:
        store = spec.get("stores", {}).get(name)
        if store is not None:  # the same storage options as planguard's (timeouts too)
            options = store_options(msgspec.convert(store, StoreDeclaration))
            ctx.register_table(name, DeltaTable(location, storage_options=options))
        elif fmt == "delta":
            ctx.register_table(name, DeltaTable(location))
        else:
            ctx.register_parquet(name, location)
    for provider in spec["udfs"]:
        module, _, attribute = provider.partition(":")
        udf = getattr(importlib.import_module(module), attribute)
        ctx.register_udf(udf if isinstance(udf, ScalarUDF) else udf())
    texts: dict[str, str] = {}
    for name, sql in spec["views"]:
        frame = ctx.sql(sql)
        ctx.register_view(name, frame)
        p0 = frame.logical_plan().display_indent_schema()
        # physical first, as planguard does: the optimizer numbers generated aliases
        # (__common_expr_N ...) per run, so the same order gives the same texts
        p2 = frame.execution_plan().display_indent()
        p1 = frame.optimized_logical_plan().display_indent()
        texts[name] = p0 + p1 + p2
    return texts


def _planguard(manifest: Path) -> dict[str, str]:
    """planguard: the whole stage chain, load through policy validation (``plan_pipeline``)."""
    from reference_impl.pipeline import plan_pipeline

    planned = plan_pipeline(manifest)
    if not planned.validation.ok:
        raise SystemExit(f"policy validation failed: {planned.validation.codes()}")
    return {
        name: bundle.p0 + bundle.p1 + bundle.p2
        for name, bundle in planned.plan.plan_bundles_by_view.items()
    }


def _forget_caches() -> None:
    """Start each planguard repetition cold, as a fresh process would."""
    from reference_impl.semantics import compile as semantic_compile

    clear = getattr(semantic_compile, "clear_analysis_cache", None)
    if callable(clear):
        clear()


def _child_pipeline(args: argparse.Namespace) -> int:
    # Import everything both sides use before timing anything.
    import datafusion  # noqa: F401
    import deltalake  # noqa: F401
    import sqlglot  # noqa: F401

    import reference_impl.pipeline  # noqa: F401

    manifest = Path(args.manifest)
    if args.warmup:
        warm = Path(args.warmup)
        _bare(_bare_spec(warm))
        _forget_caches()
        _planguard(warm)
    spec = _bare_spec(manifest)
    _forget_caches()
    gc.collect()
    bare_times: list[float] = []
    planguard_times: list[float] = []
    bare_cpu: list[float] = []
    planguard_cpu: list[float] = []
    peak_kb = 0
    baseline_kb = _status_kb("VmRSS")
    peak_reset = True
    bare_texts: dict[str, str] = {}
    planguard_texts: dict[str, str] = {}

    def run_bare() -> None:
        nonlocal bare_texts
        bare_texts = {}
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        bare_texts = _bare(spec)
        bare_times.append(time.perf_counter() - start)
        bare_cpu.append(time.process_time() - cpu)

    def run_planguard() -> None:
        nonlocal peak_kb, peak_reset, planguard_texts
        planguard_texts = {}
        _forget_caches()
        gc.collect()
        peak_reset = _reset_peak() and peak_reset
        start, cpu = time.perf_counter(), time.process_time()
        planguard_texts = _planguard(manifest)
        planguard_times.append(time.perf_counter() - start)
        planguard_cpu.append(time.process_time() - cpu)
        peak_kb = max(peak_kb, _status_kb("VmHWM"))

    for rep in range(args.reps):
        first, second = (run_bare, run_planguard) if rep % 2 == 0 else (run_planguard, run_bare)
        first()
        second()
    same = sum(1 for name, text in bare_texts.items() if planguard_texts.get(name) == text)
    result = {
        "name": args.name,
        "views": len(spec["views"]),
        "bare_s": min(bare_times),
        "planguard_s": min(planguard_times),
        "ratio": min(planguard_times) / min(bare_times),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "bare_samples_s": bare_times,
        "planguard_samples_s": planguard_times,
        "bare_cpu_s": min(bare_cpu),
        "planguard_cpu_s": min(planguard_cpu),
        "cpu_ratio": min(planguard_cpu) / min(bare_cpu),
        "rss_before_mb": round(baseline_kb / 1024, 1),
        "peak_rss_scope": "planguard run" if peak_reset else "whole child process",
        "identical_plan_texts": same,
    }
    print(json.dumps(result))
    return 0


# -------------------------------------------------------------------- orchestration


def _run_child(
    argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), *argv]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child {argv} failed:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _timed(
    command: Sequence[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    *,
    allowed: tuple[int, ...] = (0,),
) -> dict[str, Any]:
    """Wall time, CPU time and peak RSS (largest process of the tree) of one command
    (an exit status outside ``allowed`` stops the benchmark)."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if child.returncode not in allowed:
        raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{text[-4000:]}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "output": text,
    }


def _copy_example(target: Path) -> Path:
    """A copy of the bundled TPC-H example, data included (generated when missing)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(EXAMPLE / "manifest.toml", target / "manifest.toml")
    shutil.copytree(EXAMPLE / "views", target / "views", dirs_exist_ok=True)
    data = EXAMPLE / "data"
    if all((data / table / "_delta_log").is_dir() for table in _tpch_tables()):
        shutil.copytree(
            data,
            target / "data",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".lock", ".tmp-*"),
        )
    else:
        from reference_impl.examples.tpch.data import bootstrap

        bootstrap(target)
    return target / "manifest.toml"


def _tpch_tables() -> tuple[str, ...]:
    from reference_impl.examples.tpch.data import TABLES

    return TABLES


S3_SECRETS = {
    "AWS_ACCESS_KEY_ID": "BENCH_LAKE_KEY_ID",
    "AWS_SECRET_ACCESS_KEY": "BENCH_LAKE_SECRET",
}


def _s3_example(tpch: Path, server: Any) -> Path:
    """The TPC-H example with its tables and output on ``server`` (bucket ``tpch``)."""
    import tomllib

    from deltalake import DeltaTable, write_deltalake

    url = server.create_bucket("tpch")
    options = server.storage_options()
    for table in _tpch_tables():
        data = DeltaTable(str(tpch.parent / "data" / table)).to_pyarrow_table()
        write_deltalake(f"{url}/{table}", data, mode="overwrite", storage_options=options)
    target = tpch.parent.parent / "tpch_s3"
    shutil.copytree(tpch.parent / "views", target / "views", dirs_exist_ok=True)
    text = (tpch.parent / "manifest.toml").read_text()
    for table in (*_tpch_tables(), "out"):
        text = text.replace(f'location = "data/{table}"', f'location = "{url}/{table}"')
    text = text.replace('location = "out/', f'location = "{url}/out/')
    secrets = ", ".join(f'{option} = "{var}"' for option, var in S3_SECRETS.items())
    text += (
        f'\n[storage.warehouse]\nurl = "{url}"\n'
        f'options = {{ AWS_ENDPOINT_URL = "{server.endpoint}", AWS_REGION = "us-east-1", '
        'AWS_ALLOW_HTTP = "true", conditional_put = "etag" }\n'
        f"secrets = {{ {secrets} }}\n"
    )
    tomllib.loads(text)  # the edited manifest still parses
    (target / "manifest.toml").write_text(text)
    return target / "manifest.toml"


def pipeline_workloads(work: Path, quick: bool, only: set[str] | None) -> list[dict[str, Any]]:
    results = []
    if (only is not None and "tpch_s3" in only) or (only is None and not quick):
        results.append(s3_workload(work, quick))
        if only == {"tpch_s3"}:
            return results
    tpch = _copy_example(work / "tpch")
    dag_dir = work / "dag"
    dag.write_datasets(dag_dir / "data")
    manifests = {"tpch": tpch}
    refused: dict[str, str] = {}  # TPC-DS queries bare DataFusion cannot plan, with why
    if only is None or "tpcds" in only:
        manifests["tpcds"], refused = _tpcds(work / "tpcds")
    for size in DAG_SIZES:
        manifests[f"dag_{size}"] = dag.write_manifest(dag_dir / f"dag_{size}.toml", size)
    warm_dag = dag.write_manifest(dag_dir / "dag_warmup.toml", 20)
    for name, manifest in manifests.items():
        if only and name not in only:
            continue
        reps = REPS[name][1 if quick else 0]
        warmup = manifest if name in ("tpch", "tpcds") else warm_dag
        _log(f"{name}: {reps} repetition(s) of bare and planguard ...")
        argv = ["--child", "pipeline", "--name", name, "--manifest", str(manifest)]
        argv += ["--reps", str(reps), "--warmup", str(warmup)]
        result = _run_child(argv)
        if name.startswith("dag_"):
            result["mean_expanded_scans"] = dag.mean_scans(int(name[4:]))
        if name == "tpcds":
            result["refused"] = refused
        results.append(result)
        _log(_row(result))
    return results


def _tpcds(root: Path) -> tuple[Path, dict[str, str]]:
    """The TPC-DS manifest of the queries bare DataFusion plans, over synthetic tables,
    and the others with why (left out of the workload)."""
    data = root / "data"
    tpcds.write_datasets(data)
    numbers, refused = tpcds.plannable(data)
    if refused:
        _log(f"tpcds: {len(refused)} queries DataFusion cannot plan left out: {sorted(refused)}")
    return tpcds.write_manifest(root / "manifest.toml", data, numbers), refused


def s3_workload(work: Path, quick: bool) -> dict[str, Any]:
    """``tpch_s3``: the example on a loopback S3 server this process starts and stops."""
    from pytest_planguard.s3_server import start_s3_server

    tpch = _copy_example(work / "tpch")
    server = start_s3_server()
    try:
        manifest = _s3_example(tpch, server)
        env = {
            **os.environ,
            S3_SECRETS["AWS_ACCESS_KEY_ID"]: server.access_key_id,
            S3_SECRETS["AWS_SECRET_ACCESS_KEY"]: server.secret_access_key,
        }
        reps = REPS["tpch_s3"][1 if quick else 0]
        _log(f"tpch_s3: {reps} repetition(s) of bare and planguard against {server.endpoint} ...")
        argv = ["--child", "pipeline", "--name", "tpch_s3", "--manifest", str(manifest)]
        argv += ["--reps", str(reps), "--warmup", str(manifest)]
        result = _run_child(argv, env=env)
    finally:
        server.stop()
    _log(_row(result))
    return result


PLAIN_TEST = '''\
"""A plain syrupy test: the raw P0/P1/P2 texts of every view of the example."""

import importlib

import pytest
from datafusion import ScalarUDF, SessionConfig, SessionContext
from deltalake import DeltaTable

SPEC = {spec!r}


@pytest.fixture(scope="module")
def frames():
    ctx = SessionContext(SessionConfig(SPEC["session"]))
    for key, value in sorted(SPEC["runtime"].items()):
        ctx.sql(f"SET {{key}} = '{{value}}'").collect()
    for name, fmt, location in SPEC["datasets"]:
        ctx.register_table(name, DeltaTable(location))
    for provider in SPEC["udfs"]:
        module, _, attribute = provider.partition(":")
        udf = getattr(importlib.import_module(module), attribute)
        ctx.register_udf(udf if isinstance(udf, ScalarUDF) else udf())
    out = {{}}
    for name, sql in SPEC["views"]:
        out[name] = ctx.sql(sql)
        ctx.register_view(name, out[name])
    return ctx, out  # the session must outlive its frames (Delta providers need it)


@pytest.mark.parametrize("view", [name for name, _ in SPEC["views"]])
def test_plan(view, frames, snapshot):
    frame = frames[1][view]
    text = "\\n".join(
        [
            frame.logical_plan().display_indent_schema(),
            frame.optimized_logical_plan().display_indent(),
            frame.execution_plan().display_indent(),
        ]
    )
    assert text == snapshot
'''


def pytest_workloads(work: Path, quick: bool) -> list[dict[str, Any]]:
    """The gate against a plain syrupy test, and the gate with and without xdist."""
    gate_dir = work / "pytest_gate"
    manifest = _copy_example(gate_dir / "tpch")
    (gate_dir / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider\n"
        "planguard_manifests = tpch/manifest.toml\nplanguard_snapshot_dir = snapshots\n"
    )
    plain_dir = work / "pytest_plain"
    plain_dir.mkdir(parents=True, exist_ok=True)
    spec = _child_spec(manifest)
    (plain_dir / "test_plain.py").write_text(PLAIN_TEST.format(spec=spec))
    (plain_dir / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    pytest = [sys.executable, "-m", "pytest"]
    gate = [*pytest, "-q", "--planguard", "--planguard-only", "tpch/manifest.toml"]
    plain = [*pytest, "-q", "-p", "no:planguard", "test_plain.py"]
    # -v (not -q) so that the output names the worker of each item
    # (with its slowest items and its determinism item's message, to tell an outlier)
    gate_n2 = [*pytest, "-v", "--planguard", "--planguard-only", "tpch/manifest.toml", "-n", "2"]
    gate_n2 += ["--durations=4", "--planguard-report", "n2-report.json"]
    _log("pytest: accepting the snapshots of the gate and of the plain syrupy test ...")
    _timed([*gate, "--snapshot-update"], gate_dir)
    _timed([*plain, "--snapshot-update"], plain_dir)
    reps = REPS["pytest"][1 if quick else 0]
    # the gate without the determinism check's extra runs: what the rest of the gate costs
    gate_single = [*gate, "--planguard-runs", "1", "--planguard-processes", "0"]
    commands = {
        "plain": (plain, plain_dir),
        "gate": (gate, gate_dir),
        "gate_cold": ([*gate, "--planguard-no-cache"], gate_dir),
        "gate_single_run": (gate_single, gate_dir),
        "gate_n2": (gate_n2, gate_dir),
    }
    runs: dict[str, list[dict[str, Any]]] = {which: [] for which in commands}
    for rep in range(reps):
        order = list(commands) if rep % 2 == 0 else list(reversed(commands))
        for which in order:
            command, cwd = commands[which]
            runs[which].append(_timed(command, cwd))
            if which == "gate_n2":
                runs[which][-1]["determinism"] = _determinism_message(cwd / "n2-report.json")
            _log(f"  {which}: {runs[which][-1]['wall_s']:.2f} s")
    best = {which: min(runs[which], key=lambda r: r["wall_s"]) for which in runs}
    views = len(spec["views"])
    gate_result = {
        "name": "pytest_gate_tpch",
        "views": views,
        "bare_s": best["plain"]["wall_s"],
        "planguard_s": best["gate"]["wall_s"],
        "ratio": best["gate"]["wall_s"] / best["plain"]["wall_s"],
        "peak_rss_mb": best["gate"]["peak_rss_mb"],
        "bare_label": "pytest -p no:planguard test_plain.py (syrupy, raw plan texts)",
        "planguard_label": "pytest --planguard --planguard-only tpch/manifest.toml",
        "bare_samples_s": [r["wall_s"] for r in runs["plain"]],
        "planguard_samples_s": [r["wall_s"] for r in runs["gate"]],
        "bare_peak_rss_mb": best["plain"]["peak_rss_mb"],
        "planguard_cold_s": best["gate_cold"]["wall_s"],
        "cold_ratio": best["gate_cold"]["wall_s"] / best["plain"]["wall_s"],
        "planguard_cold_label": "the same gate with --planguard-no-cache (every view planned "
        "afresh, determinism included)",
        "planguard_single_run_s": best["gate_single_run"]["wall_s"],
        "planguard_single_run_label": "the same gate with --planguard-runs 1 "
        "--planguard-processes 0 (determinism check reduced to the shared run)",
    }
    xdist_result = {
        "name": "pytest_gate_tpch_xdist",
        "views": views,
        "bare_s": best["gate"]["wall_s"],
        "planguard_s": best["gate_n2"]["wall_s"],
        "ratio": best["gate_n2"]["wall_s"] / best["gate"]["wall_s"],
        "peak_rss_mb": best["gate_n2"]["peak_rss_mb"],
        "speedup": best["gate"]["wall_s"] / best["gate_n2"]["wall_s"],
        "bare_label": "pytest --planguard --planguard-only (no xdist)",
        "planguard_label": "pytest --planguard --planguard-only -n 2",
        "bare_samples_s": [r["wall_s"] for r in runs["gate"]],
        "planguard_samples_s": [r["wall_s"] for r in runs["gate_n2"]],
        "items_per_worker": _xdist_spread(best["gate_n2"]["output"]),
        "runs": [
            {
                "wall_s": run["wall_s"],
                # pytest's own count, from its session start: the rest is start-up and exit
                "session_s": _session_seconds(run["output"]),
                "slowest": _slowest(run["output"]),
                "determinism": run["determinism"],
            }
            for run in runs["gate_n2"]
        ],
    }
    return [gate_result, xdist_result]


INCREMENTAL_SIZE = 2000


def incremental_workloads(work: Path) -> list[dict[str, Any]]:
    """The plan cache and xdist on a 2,000-view DAG, each run a whole ``pytest --planguard``
    with the default determinism check: cold (no cache) vs warm after editing one view of
    the middle layer; serial vs ``-n 2``, both cold."""

    root = work / "gate_dag"
    dag.write_datasets(root / "data")
    manifest = dag.write_manifest(root / "manifest.toml", INCREMENTAL_SIZE)
    (root / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider\nplanguard_manifests = manifest.toml\n"
    )
    cache = root / ".planguard_cache"
    gate = [sys.executable, "-m", "pytest", "-q", "--planguard", "--planguard-only"]
    _log(f"gate_dag_{INCREMENTAL_SIZE}: accepting the snapshots ...")
    _timed([*gate, "--snapshot-update", "--planguard-no-cache"], root)
    _log("  cold, serial ...")
    shutil.rmtree(cache, ignore_errors=True)
    cold = _timed(gate, root)
    _log(f"  cold serial: {cold['wall_s']:.1f} s; cold, -n 2 ...")
    shutil.rmtree(cache, ignore_errors=True)
    cold_n2 = _timed([*gate, "-n", "2"], root)
    _log(f"  cold -n 2: {cold_n2['wall_s']:.1f} s; warming, editing one view ...")
    _timed(gate, root)  # the cache as the serial cold run leaves it (and its markers)
    middle = f"l{dag.LAYERS // 2}_v0001"
    text = manifest.read_text()
    head = text.index(f"[views.{middle}]")
    at = text.index('sql = "SELECT ', head) + len('sql = "SELECT ')
    manifest.write_text(text[:at] + "DISTINCT " + text[at:])
    report = root / "warm.json"
    warm = _timed([*gate, "--planguard-report", str(report)], root, allowed=(0, 1))
    _log(f"  warm after the edit: {warm['wall_s']:.1f} s")
    summary = json.loads(report.read_text())
    changed = summary["summary"]["changed"]["total"]
    return [
        {
            "name": f"gate_incremental_dag_{INCREMENTAL_SIZE}",
            "views": INCREMENTAL_SIZE,
            "bare_s": cold["wall_s"],
            "planguard_s": warm["wall_s"],
            "ratio": warm["wall_s"] / cold["wall_s"],
            "peak_rss_mb": warm["peak_rss_mb"],
            "bare_label": "pytest --planguard, cold (no plan cache)",
            "planguard_label": f"the same, warm, after editing {middle} ({changed} views changed)",
            "cache": summary.get("cache"),
        },
        {
            "name": f"gate_xdist_dag_{INCREMENTAL_SIZE}",
            "views": INCREMENTAL_SIZE,
            "bare_s": cold["wall_s"],
            "planguard_s": cold_n2["wall_s"],
            "ratio": cold_n2["wall_s"] / cold["wall_s"],
            "speedup": cold["wall_s"] / cold_n2["wall_s"],
            "peak_rss_mb": cold_n2["peak_rss_mb"],
            "bare_label": "pytest --planguard, cold, serial",
            "planguard_label": "pytest --planguard, cold, -n 2",
        },
    ]


def _child_spec(manifest: Path) -> dict[str, Any]:
    return _run_child(["--child", "spec", "--manifest", str(manifest)])


def _slowest(output: str) -> list[str]:
    """The ``--durations`` lines of pytest's output (``0.94s call nodeid``)."""
    return re.findall(r"^\d+\.\d+s (?:call|setup|teardown) .*$", output, re.M)


def _session_seconds(output: str) -> float | None:
    """The duration pytest reports on its last line (``... passed in 1.29s``)."""
    found = re.findall(r" in (\d+\.\d+)s", output)
    return float(found[-1]) if found else None


def _determinism_message(report: Path) -> str:
    """What the run's determinism item said (how many plans it checked afresh)."""
    try:
        items = json.loads(report.read_text())["items"]
    except (OSError, ValueError, KeyError):
        return ""
    return next((str(i.get("message", "")) for i in items if i.get("check") == "determinism"), "")


def _xdist_spread(output: str) -> dict[str, int]:
    """Items run per worker, from ``-v`` output lines ``[gw0] [ 3%] PASSED ...``."""
    counts: dict[str, int] = {}
    for worker in re.findall(r"^\[(gw\d+)\] .*(?:PASSED|FAILED|ERROR|SKIPPED)", output, re.M):
        counts[worker] = counts.get(worker, 0) + 1
    return dict(sorted(counts.items()))


def collect_workload(work: Path, quick: bool) -> dict[str, Any]:
    """Collecting a 2,000-test suite: plugin inactive vs not loaded at all."""
    suite = work / "collect"
    suite.mkdir(parents=True, exist_ok=True)
    (suite / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    per_file = 50
    for index in range(COLLECT_TESTS // per_file):
        body = "\n\n".join(
            f"def test_{index}_{n}():\n    assert {n} + 1 > {n}" for n in range(per_file)
        )
        (suite / f"test_generated_{index:03d}.py").write_text(body + "\n")
    base = [sys.executable, "-m", "pytest", "--collect-only", "-q"]
    reps = REPS["collect"][1 if quick else 0]
    without: list[dict[str, Any]] = []
    inactive: list[dict[str, Any]] = []
    _log(f"collect: {reps} x 2 collections of {COLLECT_TESTS} tests ...")
    _timed([*base, "-p", "no:planguard"], suite)  # warm the file cache and the bytecode
    for rep in range(reps):
        pair = [("without", [*base, "-p", "no:planguard"]), ("inactive", base)]
        for which, command in pair if rep % 2 == 0 else reversed(pair):
            (without if which == "without" else inactive).append(_timed(command, suite))
    wall_without = statistics.median(r["wall_s"] for r in without)
    wall_inactive = statistics.median(r["wall_s"] for r in inactive)
    cpu_without = statistics.median(r["cpu_s"] for r in without)
    cpu_inactive = statistics.median(r["cpu_s"] for r in inactive)
    # each pair ran back to back, under about the same load: the median of the pairs'
    # ratios is steadier on a shared machine than the ratio of the medians
    pairs = list(zip(without, inactive, strict=True))
    paired_wall = statistics.median(b["wall_s"] / a["wall_s"] for a, b in pairs)
    paired_cpu = statistics.median(b["cpu_s"] / a["cpu_s"] for a, b in pairs)
    return {
        "name": "collect_2000_inactive",
        "views": 0,
        "tests": COLLECT_TESTS,
        "bare_s": wall_without,
        "planguard_s": wall_inactive,
        "ratio": wall_inactive / wall_without,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in inactive),
        "bare_label": "pytest --collect-only -q -p no:planguard (median)",
        "planguard_label": "pytest --collect-only -q, plugin inactive (median)",
        "overhead_pct": (wall_inactive / wall_without - 1) * 100,
        "cpu_overhead_pct": (cpu_inactive / cpu_without - 1) * 100,
        "paired_overhead_pct": (paired_wall - 1) * 100,
        "paired_cpu_overhead_pct": (paired_cpu - 1) * 100,
        "paired_note": "median over back-to-back pairs of (inactive / without)",
        "plugin_import_ms": _plugin_import_ms(),
        "bare_samples_s": [r["wall_s"] for r in without],
        "planguard_samples_s": [r["wall_s"] for r in inactive],
    }


def _plugin_import_ms(tries: int = 5) -> float:
    """Cumulative import time of the plugin's entry module once pytest is imported (the
    least of a few ``-X importtime`` runs): the fixed cost of installing the plugin."""
    probe = "import pytest; import pytest_planguard.plugin"
    best = float("inf")
    for _ in range(tries):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", probe],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stderr.splitlines():
            parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
            if len(parts) == 3 and parts[2] == "pytest_planguard.plugin":
                best = min(best, int(parts[1]) / 1000)
    return best


def _targets(workloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {w["name"]: w for w in workloads}
    out: list[dict[str, Any]] = []

    def target(name: str, measured: float | None, limit: float | None, unit: str = "") -> None:
        met = None if measured is None or limit is None else measured <= limit
        out.append({"target": name, "measured": measured, "limit": limit, "unit": unit, "met": met})

    for name in ("tpch", "tpcds", "dag_1000"):
        if name in by_name:
            limits = {"tpch": TARGETS["ratio_tpch"], "tpcds": None}
            target(
                f"planguard / bare, {name}",
                by_name[name]["ratio"],
                limits.get(name, TARGETS["ratio"]),
            )
            target(f"  the same in CPU time, {name}", by_name[name]["cpu_ratio"], None)
    if "dag_2000" in by_name and "dag_500" in by_name:
        scaling = by_name["dag_2000"]["planguard_s"] / by_name["dag_500"]["planguard_s"]
        target("time(2000 views) / time(500 views)", scaling, TARGETS["scaling_2000_500"])
        bare = by_name["dag_2000"]["bare_s"] / by_name["dag_500"]["bare_s"]
        target("bare DataFusion: time(2000) / time(500) (reference)", bare, None)
        cpu = by_name["dag_2000"]["planguard_cpu_s"] / by_name["dag_500"]["planguard_cpu_s"]
        target("the same in CPU time (steadier on a shared machine)", cpu, None)
    if "collect_2000_inactive" in by_name:
        collect = by_name["collect_2000_inactive"]
        target(
            "inactive plugin: extra collection time, 2000 tests",
            collect["overhead_pct"],
            TARGETS["inactive_overhead_pct"],
            "%",
        )
    if "dag_2000" in by_name:
        target("peak RSS, 2000-view manifest", by_name["dag_2000"]["peak_rss_mb"], None, "MB")
    if "pytest_gate_tpch_xdist" in by_name:
        xdist = by_name["pytest_gate_tpch_xdist"]
        target("xdist -n 2 speed-up of the gate", xdist["speedup"], None)
    if "pytest_gate_tpch" in by_name:
        gate = by_name["pytest_gate_tpch"]
        target("pytest gate / plain syrupy, TPC-H", gate["ratio"], TARGETS["pytest_gate"])
        target("  the same without the plan cache", gate["cold_ratio"], None)
    incremental = by_name.get(f"gate_incremental_dag_{INCREMENTAL_SIZE}")
    if incremental is not None:
        target("warm gate after a 1-view edit / cold gate", incremental["ratio"], 0.25)
        cache = incremental.get("cache") or {}
        target("  plan cache size on disk", cache.get("bytes", 0) / 1e6, None, "MB")
        target("  plan cache hit rate", cache.get("hit_rate"), None)
    xdist_dag = by_name.get(f"gate_xdist_dag_{INCREMENTAL_SIZE}")
    if xdist_dag is not None:
        speedup = xdist_dag["speedup"]
        out.append(
            {"target": "serial / -n 2 gate, cold", "measured": speedup, "limit": 1.6,
             "unit": "", "met": speedup >= 1.6}
        )  # fmt: skip
    return out


def _row(w: dict[str, Any]) -> str:
    return (
        f"{w['name']:<24} {w['views']:>6} {w['bare_s']:>9.3f} {w['planguard_s']:>12.3f} "
        f"{w['ratio']:>7.2f} {w['peak_rss_mb']:>9.1f}"
    )


def _table(workloads: list[dict[str, Any]], targets: list[dict[str, Any]]) -> str:
    lines = [
        f"{'workload':<24} {'views':>6} {'bare s':>9} {'planguard s':>12} {'ratio':>7} "
        f"{'peak MB':>9}",
        "-" * 72,
    ]
    lines += [_row(w) for w in workloads]
    lines += ["", "targets:"]
    for t in targets:
        verdict = {True: "met", False: "NOT met", None: "reported"}[t["met"]]
        limit = f" (limit {t['limit']}{t['unit']})" if t["limit"] is not None else ""
        measured = t["measured"]
        shown = f"{measured:.2f}{t['unit']}" if isinstance(measured, float) else str(measured)
        lines.append(f"  {t['target']}: {shown}{limit} -> {verdict}")
    return "\n".join(lines)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    versions = {}
    for package in ("datafusion", "deltalake", "pyarrow", "sqlglot", "sqlglotc", "syrupy", "xdist"):
        try:
            from importlib.metadata import version

            versions[package] = version("pytest-xdist" if package == "xdist" else package)
        except Exception:
            versions[package] = "?"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": load,
        "versions": versions,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (see REPS)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write results")
    parser.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="NAME",
        help="run only these workloads (tpch, tpcds, tpch_s3, dag_100, ..., pytest, incremental, "
        "collect); repeatable",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep generated files here (default: temp)"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--name", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--manifest", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "pipeline":
        return _child_pipeline(args)
    if args.child == "spec":
        print(json.dumps(_bare_spec(Path(args.manifest))))
        return 0

    only = set(args.only) if args.only else None
    started = time.perf_counter()
    machine = _machine()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="planguard-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        workloads = pipeline_workloads(work, args.quick, only)
        if only is None or "pytest" in only:
            workloads += pytest_workloads(work, args.quick)
        if only is None or "incremental" in only:
            workloads += incremental_workloads(work)
        if only is None or "collect" in only:
            workloads.append(collect_workload(work, args.quick))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    targets = _targets(workloads)
    print(_table(workloads, targets))
    result = {
        "workloads": workloads,
        "targets": targets,
        "quick": args.quick,
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "elapsed_s": time.perf_counter() - started,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    _log(f"done in {result['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
