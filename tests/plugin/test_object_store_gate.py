"""The plan gate over tables on an object store (a moto server on loopback): snapshots
name the store, never its endpoint, port or bucket, so the same snapshots hold against
another server and bucket; secrets reach no snapshot and no report."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.gate import FAST, gate
from tests.support.s3 import Lake, artifacts_text, make_lake, manifest_text

pytest_plugins = ["pytester"]


@pytest.fixture
def lake(
    planguard_s3_server: Any, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> Lake:
    made = make_lake(planguard_s3_server, pytester.path / "project")
    for name, value in made.env().items():
        monkeypatch.setenv(name, value)
    pytester.makeini(
        "[pytest]\nplanguard_manifests = project/manifest.toml\n"
        "planguard_snapshot_dir = snapshots\n"
    )
    return made


def snapshots(pytester: pytest.Pytester) -> dict[str, str]:
    root = pytester.path / "snapshots"
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*.plan")}


def test_the_gate_over_an_s3_manifest_snapshots_no_endpoint_port_or_bucket(
    lake: Lake, pytester: pytest.Pytester, planguard_s3_server: Any
) -> None:
    report, html = pytester.path / "report.json", pytester.path / "report.html"
    first = gate(
        pytester,
        "--snapshot-update",
        "--planguard-report",
        str(report),
        "--planguard-html",
        str(html),
        options=FAST,
    )
    assert first.ret == 0, first.stdout.str()
    written = snapshots(pytester)
    assert list(written) == ["project/manifest/totals.plan"]
    text = written["project/manifest/totals.plan"]
    assert "DeltaScanExec" in text
    assert "files=[$warehouse/raw/customers]" in text
    port = str(planguard_s3_server.port)
    everything = artifacts_text(pytester.path / "snapshots") + report.read_text() + html.read_text()
    for leak in (lake.endpoint, port, lake.bucket, planguard_s3_server.secret_access_key):
        assert leak not in text
    for secret in (planguard_s3_server.secret_access_key, planguard_s3_server.access_key_id):
        assert secret not in everything + first.stdout.str() + first.stderr.str()

    # the same snapshots hold against another endpoint (a proxy on another port) and
    # another bucket holding the same tables
    other = make_lake(planguard_s3_server, pytester.path / "elsewhere")
    from tests.support.s3 import KillSwitchProxy

    proxy = KillSwitchProxy(("127.0.0.1", planguard_s3_server.port), trigger=b"\0never\0")
    try:
        lake.manifest.write_text(manifest_text(other.url, proxy.endpoint))
        again = gate(pytester, options=FAST)
        assert again.ret == 0, again.stdout.str()
        assert snapshots(pytester) == written
    finally:
        proxy.kill()


FACTORY = """
import os

from datafusion import SessionContext
from datafusion.object_store import AmazonS3
from deltalake import DeltaTable


def make_context():
    options = {
        "AWS_ENDPOINT_URL": os.environ["LAKE_ENDPOINT"],
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": os.environ["LAKE_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["LAKE_SECRET"],
    }
    bucket = os.environ["LAKE_BUCKET"]
    ctx = SessionContext()
    ctx.register_table("orders", DeltaTable(f"s3://{bucket}/orders", storage_options=options))
    ctx.register_object_store("s3://", AmazonS3(
        bucket_name=bucket, region="us-east-1", endpoint=options["AWS_ENDPOINT_URL"],
        access_key_id=options["AWS_ACCESS_KEY_ID"],
        secret_access_key=options["AWS_SECRET_ACCESS_KEY"], allow_http=True,
    ), bucket)
    ctx.register_parquet("customers", f"s3://{bucket}/raw/customers/")
    ctx.register_view("totals", ctx.sql(
        "SELECT c.name, sum(o.amount) AS total FROM orders o "
        "JOIN customers c ON o.customer_id = c.id GROUP BY c.name"
    ))
    return ctx
"""


def test_the_session_gate_over_s3_tables_names_the_store_from_the_ini(
    lake: Lake,
    pytester: pytest.Pytester,
    planguard_s3_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKE_ENDPOINT", lake.endpoint)
    monkeypatch.setenv("LAKE_BUCKET", lake.bucket)
    pytester.makepyfile(lakeside=FACTORY)
    pytester.makeini(
        "[pytest]\nplanguard_sessions = lakeside:make_context\n"
        "planguard_snapshot_dir = snapshots\nplanguard_stores = warehouse = s3://ignored\n"
    )
    first = gate(pytester, "--snapshot-update")
    assert first.ret == 0, first.stdout.str()
    text = snapshots(pytester)["lakeside/make_context/totals.plan"]
    assert "files=[$warehouse/raw/customers]" in text
    for leak in (lake.endpoint, str(planguard_s3_server.port), lake.bucket):
        assert leak not in text
    for secret in (planguard_s3_server.secret_access_key, planguard_s3_server.access_key_id):
        assert secret not in text + first.stdout.str() + first.stderr.str()
    # another bucket holding the same tables: the same snapshot
    other = make_lake(planguard_s3_server, pytester.path / "elsewhere")
    monkeypatch.setenv("LAKE_BUCKET", other.bucket)
    assert gate(pytester).ret == 0
    # twin: without planguard_stores the object key is left as DataFusion prints it
    pytester.makeini(
        "[pytest]\nplanguard_sessions = lakeside:make_context\nplanguard_snapshot_dir = snapshots\n"
    )
    assert gate(pytester, "--snapshot-update").ret == 0
    bare = snapshots(pytester)["lakeside/make_context/totals.plan"]
    assert "files=[raw/customers]" in bare
