"""Tables on an object store, against a real S3 server on loopback (moto): a manifest with
an ``s3://`` Delta dataset, an ``s3://`` Parquet dataset and an ``s3://`` Delta output
validates, runs (the output is readable with deltalake), and its secrets reach no output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reference_impl.semantics.compile import compile_semantic_program
from reference_impl.semantics.load import load_manifest
from tests.support.cli import run_planguard
from tests.support.s3 import artifacts_text, make_lake


@pytest.fixture
def lake(planguard_s3_server: Any, tmp_path: Path) -> Any:
    return make_lake(planguard_s3_server, tmp_path / "project")


def test_the_server_listens_on_loopback_only(planguard_s3_server: Any) -> None:
    assert planguard_s3_server.endpoint.startswith("http://127.0.0.1:")
    server = planguard_s3_server.server._server  # werkzeug's
    assert server.server_address[0] == "127.0.0.1"


def test_an_s3_manifest_validates_runs_and_writes_a_readable_output(lake: Any) -> None:
    done = run_planguard("validate", lake.manifest, env=lake.env())
    assert done.returncode == 0, done.stdout + done.stderr
    first = run_planguard("run", lake.manifest, env=lake.env())
    assert first.returncode == 0, first.stdout + first.stderr
    assert "-> s3://" in first.stdout
    table = lake.table("out/totals")
    assert table.version() == 0
    rows = dict(zip(*table.to_pyarrow_table().sort_by("name").to_pydict().values(), strict=True))
    assert rows == {"ada": 4.0, "bo": 3.0, "cy": 4.0}
    again = run_planguard("run", lake.manifest, env=lake.env())
    assert again.returncode == 0, again.stderr
    assert lake.table("out/totals").version() == 1  # overwrite committed a new version


def test_the_canary_secrets_reach_no_output_and_no_file(lake: Any, tmp_path: Path) -> None:
    secret, key = lake.server.secret_access_key, lake.server.access_key_id
    env = lake.env()
    outputs = [
        run_planguard("compile", lake.manifest, "--json", env=env),
        run_planguard("compile", lake.manifest, "--plan", "--json", env=env),
        run_planguard("validate", lake.manifest, "--json", env=env),
        run_planguard("validate", lake.manifest, env=env),
        run_planguard("run", lake.manifest, env=env),
        # wrong and missing secrets: the error paths, which quote the server
        run_planguard("validate", lake.manifest, env=lake.env(LAKE_SECRET="x" + secret)),
        run_planguard("validate", lake.manifest, env=env, unset=["LAKE_SECRET"]),
    ]
    text = "\n".join(done.stdout + done.stderr for done in outputs)
    assert json.loads(outputs[0].stdout)["storage"][0]["secrets"] == {
        "AWS_ACCESS_KEY_ID": "LAKE_KEY_ID",
        "AWS_SECRET_ACCESS_KEY": "LAKE_SECRET",
    }
    assert "x" + secret not in text
    assert secret not in text
    assert key not in text
    # the canary is really there to be found: the twin greps the environment we passed
    assert secret in json.dumps(env)
    files = artifacts_text(lake.manifest.parent)
    assert secret not in files
    assert key not in files


def test_fingerprints_hash_the_names_of_secrets_not_their_values(
    lake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = compile_semantic_program(load_manifest(lake.manifest))
    monkeypatch.setenv("LAKE_SECRET", "another-value")
    again = compile_semantic_program(load_manifest(lake.manifest))
    assert again.runtime_policy_fingerprint == program.runtime_policy_fingerprint
    renamed = lake.manifest.read_text().replace('"LAKE_SECRET"', '"LAKE_SECRET_2"')
    lake.manifest.write_text(renamed)
    other = compile_semantic_program(load_manifest(lake.manifest))
    assert other.runtime_policy_fingerprint != program.runtime_policy_fingerprint


def test_the_redactor_scrubs_registered_secrets_and_credential_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reference_impl.errors import ErrorCode, ReferenceImplError
    from reference_impl.redaction import MASK, redact, register_secret

    register_secret("registered-canary-0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "environment-canary-0002")
    error = ReferenceImplError(
        ErrorCode.STORE_ACCESS_DENIED,
        "server said: registered-canary-0001 / environment-canary-0002 \x1b[31m!\x1b[0m",
    )
    assert error.message == f"server said: {MASK} / {MASK} !"
    # short values are no credentials: scrubbing them would blank ordinary words
    register_secret("s")
    assert redact("views form a cycle") == "views form a cycle"
