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
