"""Object-store faults against a real S3 server on loopback (moto): each is one coded
error line within a bounded time, never a traceback, never a partial output; and the
manifest rules of stores (literal credentials, URLs under no store) with their twins."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pytest_planguard.s3_server import free_port
from reference_impl.errors import ReferenceImplError
from reference_impl.pipeline import execute_pipeline, plan_pipeline
from tests.hostile.helpers import ERROR_LINE, assert_no_traceback
from tests.support.cli import run_planguard
from tests.support.codes import CodeRecorder
from tests.support.s3 import KillSwitchProxy, Lake, make_lake, manifest_text, store_table

CANARY = "planguard-canary-S3CR3T-value"


@pytest.fixture
def lake(planguard_s3_server: Any, tmp_path: Path) -> Lake:
    return make_lake(planguard_s3_server, tmp_path / "project")


def error_code(done: Any) -> str:
    assert_no_traceback(done.stdout, done.stderr)
    match = ERROR_LINE.search(done.stderr)
    assert match is not None, done.stdout + done.stderr
    return match["code"]


# -- the manifest ---------------------------------------------------------------------


@pytest.mark.produces_codes("MANIFEST_SECRET_LITERAL")
@pytest.mark.parametrize(
    "option",
    [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "aws_secret_access_key",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "azure_storage_sas_token",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
    ],
)
def test_a_literal_credential_is_refused_without_echoing_it(
    tmp_path: Path, option: str, codes: CodeRecorder
) -> None:
    text = store_table(
        "s3://warehouse", "http://127.0.0.1:9", extra_options=f', {option} = "{CANARY}"'
    )
    (tmp_path / "manifest.toml").write_text(
        text.replace("secrets = {", "secrets_ = {").split("secrets_")[0]
    )
    for command in ("compile", "validate"):
        done = run_planguard(
            command, tmp_path, "--json" if command == "compile" else "--mode=error"
        )
        assert done.returncode == 2
        codes.expect(error_code(done), "MANIFEST_SECRET_LITERAL", done.stderr)
        assert f"storage.warehouse.options: option {option!r}" in done.stderr
        assert CANARY not in done.stdout + done.stderr


def test_the_twin_the_same_option_named_in_secrets_loads(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text(store_table("s3://warehouse", "http://127.0.0.1:9"))
    done = run_planguard("compile", tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.produces_codes("MANIFEST_LOCATION_NOT_ALLOWED")
@pytest.mark.parametrize(
    "location",
    [
        "s3://other/t",  # another bucket
        "s3://warehouse-evil/t",  # a bucket whose name starts like the store's
        "s3://warehouse/../other/t",  # climbing out of the prefix
        "s3://warehouse/a?versionId=1",
        "file:///etc/passwd",
        "gs://warehouse/t",
    ],
)
def test_a_url_under_no_declared_store_is_not_allowed(
    tmp_path: Path, location: str, codes: CodeRecorder
) -> None:
    text = store_table("s3://warehouse", "http://127.0.0.1:9") + (
        f'\n[datasets.t]\nformat = "delta"\nlocation = "{location}"\n'
    )
    (tmp_path / "manifest.toml").write_text(text)
    done = run_planguard("compile", tmp_path)
    assert done.returncode == 2
    codes.expect(error_code(done), "MANIFEST_LOCATION_NOT_ALLOWED", done.stderr)
    assert "datasets.t.location" in done.stderr
    # twin: the same manifest with the location under the store compiles
    (tmp_path / "manifest.toml").write_text(text.replace(location, "s3://warehouse/t"))
    assert run_planguard("compile", tmp_path).returncode == 0


@pytest.mark.produces_codes("MANIFEST_CONFLICTING_FIELDS")
def test_two_stores_on_the_same_bucket_conflict(tmp_path: Path, codes: CodeRecorder) -> None:
    one = store_table("s3://warehouse/a", "http://127.0.0.1:9")
    two = store_table("s3://warehouse/b", "http://127.0.0.1:9", name="other")
    (tmp_path / "manifest.toml").write_text(one + two)
    done = run_planguard("compile", tmp_path)
    assert done.returncode == 2
    codes.expect(error_code(done), "MANIFEST_CONFLICTING_FIELDS", done.stderr)
    assert "storage.warehouse.url" in done.stderr
    # twin: two buckets are two stores
    (tmp_path / "manifest.toml").write_text(one + two.replace("s3://warehouse/b", "s3://lake"))
    assert run_planguard("compile", tmp_path).returncode == 0


@pytest.mark.produces_codes("MANIFEST_LOCATION_NOT_ALLOWED")
def test_a_url_without_any_store_names_how_to_declare_one(
    tmp_path: Path, codes: CodeRecorder
) -> None:
    (tmp_path / "manifest.toml").write_text(
        '[outputs.o]\nview = "v"\nlocation = "s3://bucket/o"\n[views.v]\nsql = "SELECT 1"\n'
    )
    done = run_planguard("compile", tmp_path)
    codes.expect(error_code(done), "MANIFEST_LOCATION_NOT_ALLOWED", done.stderr)
    assert "[storage.NAME]" in done.stderr


@pytest.mark.produces_codes("STORE_SECRET_MISSING")
def test_an_unset_secret_variable_is_named(lake: Lake, codes: CodeRecorder) -> None:
    env = {name: value for name, value in lake.env().items() if name != "LAKE_KEY_ID"}
    done = run_planguard("validate", lake.manifest, env=env, unset=["LAKE_KEY_ID"])
    assert done.returncode == 2
    codes.expect(error_code(done), "STORE_SECRET_MISSING", done.stderr)
    assert "LAKE_KEY_ID" in done.stderr
    assert "storage.warehouse.secrets.AWS_ACCESS_KEY_ID" in done.stderr
    assert run_planguard("validate", lake.manifest, env=lake.env()).returncode == 0  # twin


# -- the server ------------------------------------------------------------------------


@pytest.mark.produces_codes("STORE_UNREACHABLE")
def test_a_dead_endpoint_ends_validate_with_a_coded_error_within_60_seconds(
    lake: Lake, codes: CodeRecorder
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    lake.manifest.write_text(lake.manifest.read_text().replace(lake.endpoint, dead))
    started = time.monotonic()
    done = run_planguard("validate", lake.manifest, env=lake.env(), timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 2
    codes.expect(error_code(done), "STORE_UNREACHABLE", done.stderr)
    assert elapsed < 60, elapsed
    assert "store 'warehouse'" in done.stderr


@pytest.mark.produces_codes("STORE_UNREACHABLE")
def test_a_hanging_endpoint_ends_validate_within_60_seconds_by_the_default_timeouts(
    lake: Lake, codes: CodeRecorder
) -> None:
    """A server that accepts connections and never answers: object_store alone would wait
    30 s per request and retry 10 times within 3 minutes; planguard's default client
    options (30 s per request, retries within 20 s) end it in about 30 s."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        lake.manifest.write_text(lake.manifest.read_text().replace(lake.endpoint, endpoint))
        started = time.monotonic()
        done = run_planguard("validate", lake.manifest, env=lake.env(), timeout=200)
        elapsed = time.monotonic() - started
    assert done.returncode == 2
    codes.expect(error_code(done), "STORE_UNREACHABLE", done.stderr)
    assert elapsed < 60, elapsed


@pytest.mark.produces_codes("STORE_ACCESS_DENIED")
@pytest.mark.parametrize("variable", ["LAKE_SECRET", "LAKE_KEY_ID"])
def test_wrong_credentials_are_access_denied(
    lake: Lake, variable: str, codes: CodeRecorder
) -> None:
    done = run_planguard(
        "validate", lake.manifest, env=lake.env(**{variable: "AKIAWRONG00" + CANARY})
    )
    assert done.returncode == 2
    codes.expect(error_code(done), "STORE_ACCESS_DENIED", done.stderr)
    assert CANARY not in done.stdout + done.stderr


@pytest.mark.produces_codes("STORE_BUCKET_NOT_FOUND")
def test_a_missing_bucket_is_named(lake: Lake, codes: CodeRecorder) -> None:
    text = manifest_text(lake.url, lake.endpoint).replace(lake.url, "s3://no-such-bucket-here")
    lake.manifest.write_text(text)
    done = run_planguard("validate", lake.manifest, env=lake.env())
    assert done.returncode == 2
    codes.expect(error_code(done), "STORE_BUCKET_NOT_FOUND", done.stderr)
    assert "'no-such-bucket-here' does not exist" in done.stderr


@pytest.mark.produces_codes("STORE_BUCKET_NOT_FOUND")
def test_an_output_to_a_missing_bucket_fails_before_anything_is_written(
    lake: Lake, codes: CodeRecorder
) -> None:
    text = lake.manifest.read_text()
    other = "s3://no-output-bucket"
    text += f'\n[storage.outbox]\nurl = "{other}"\n' + (
        f'options = {{ AWS_ENDPOINT_URL = "{lake.endpoint}", AWS_REGION = "us-east-1", '
        'AWS_ALLOW_HTTP = "true" }\n'
        'secrets = { AWS_ACCESS_KEY_ID = "LAKE_KEY_ID", AWS_SECRET_ACCESS_KEY = "LAKE_SECRET" }\n'
    )
    lake.manifest.write_text(
        text.replace(f'location = "{lake.url}/out/totals"', f'location = "{other}/t"')
    )
    done = run_planguard("run", lake.manifest, env=lake.env())
    assert done.returncode == 2
    codes.expect(error_code(done), "STORE_BUCKET_NOT_FOUND", done.stderr)
    assert "outputs.totals_out.location" in done.stderr


@pytest.mark.produces_codes("DATASET_NOT_FOUND")
def test_a_table_deleted_between_plan_and_execution_writes_nothing(
    lake: Lake, codes: CodeRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in lake.env().items():
        monkeypatch.setenv(name, value)
    assert run_planguard("run", lake.manifest, env=lake.env()).returncode == 0
    planned = plan_pipeline(lake.manifest)
    assert planned.validation.ok
    assert lake.server.delete_prefix(lake.bucket, "orders/") > 0
    with pytest.raises(ReferenceImplError) as caught:
        execute_pipeline(planned.plan, planned.authority)
    codes.expect(caught.value.code, "DATASET_NOT_FOUND", caught.value.render())
    assert caught.value.field_path == "datasets.orders.location"
    assert lake.table("out/totals").version() == 0  # the first run's, untouched


@pytest.mark.produces_codes("STORE_UNREACHABLE")
def test_the_server_killed_mid_write_leaves_the_output_at_its_committed_version(
    lake: Lake, codes: CodeRecorder
) -> None:
    assert run_planguard("run", lake.manifest, env=lake.env()).returncode == 0
    keys_before = set(lake.server.keys(lake.bucket, "out/totals/_delta_log/"))
    proxy = KillSwitchProxy(
        ("127.0.0.1", lake.server.port), trigger=f"PUT /{lake.bucket}/out/totals/".encode()
    )
    lake.manifest.write_text(lake.manifest.read_text().replace(lake.endpoint, proxy.endpoint))
    started = time.monotonic()
    done = run_planguard("run", lake.manifest, env=lake.env(), timeout=120)
    assert proxy.killed.is_set(), "the write never reached the store"
    assert done.returncode == 2, done.stdout + done.stderr
    codes.expect(error_code(done), "STORE_UNREACHABLE", done.stderr)
    assert "outputs.totals_out" in done.stderr
    assert time.monotonic() - started < 60
    # the table is at the version the first run committed; no commit was added
    assert lake.table("out/totals").version() == 0
    assert set(lake.server.keys(lake.bucket, "out/totals/_delta_log/")) == keys_before
