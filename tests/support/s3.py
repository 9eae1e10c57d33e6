"""An object-store lake on the loopback S3 server (``planguard_s3_server``) for tests.

:func:`make_lake` creates a bucket holding a Delta table (``orders``) and a Parquet
dataset (``raw/customers``), and a manifest next to ``root`` that reads both and writes a
Delta output to the bucket; its secrets come from the environment variables of
:data:`SECRET_ENV`, which :meth:`Lake.env` fills with the server's key.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECRET_ENV = {"AWS_ACCESS_KEY_ID": "LAKE_KEY_ID", "AWS_SECRET_ACCESS_KEY": "LAKE_SECRET"}
_BUCKETS = itertools.count()


@dataclass(frozen=True)
class Lake:
    server: Any
    bucket: str
    manifest: Path
    endpoint: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}"

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment a run needs: this one plus the store's secrets."""
        base = {
            "LAKE_KEY_ID": self.server.access_key_id,
            "LAKE_SECRET": self.server.secret_access_key,
        }
        return {**base, **overrides}

    def options(self) -> dict[str, str]:
        return dict(self.server.storage_options())

    def table(self, path: str) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(f"{self.url}/{path}", storage_options=self.options())


def store_table(
    bucket_url: str, endpoint: str, *, extra_options: str = "", name: str = "warehouse"
) -> str:
    secrets = ", ".join(f'{option} = "{variable}"' for option, variable in SECRET_ENV.items())
    return (
        f"[storage.{name}]\n"
        f'url = "{bucket_url}"\n'
        f'options = {{ AWS_ENDPOINT_URL = "{endpoint}", AWS_REGION = "us-east-1", '
        f'AWS_ALLOW_HTTP = "true", conditional_put = "etag"{extra_options} }}\n'
        f"secrets = {{ {secrets} }}\n"
    )


def manifest_text(bucket_url: str, endpoint: str, *, output: str = "out/totals") -> str:
    return store_table(bucket_url, endpoint) + (
        "\n[datasets.orders]\n"
        'format = "delta"\n'
        f'location = "{bucket_url}/orders"\n'
        "\n[datasets.customers]\n"
        'format = "parquet"\n'
        f'location = "{bucket_url}/raw/customers"\n'
        "\n[views.totals]\n"
        'sql = "SELECT c.name, sum(o.amount) AS total FROM orders o JOIN customers c '
        'ON o.customer_id = c.id GROUP BY c.name"\n'
        "\n[outputs.totals_out]\n"
        'view = "totals"\n'
        f'location = "{bucket_url}/{output}"\n'
        "\n[policy]\nsmall_input_rows = 0\n"
        "\n[policy.delta_support]\nmax_reader_version = 3\nmax_writer_version = 7\n"
    )


def make_lake(server: Any, root: Path, *, bucket: str | None = None) -> Lake:
    """A fresh bucket with ``orders`` (Delta) and ``raw/customers`` (Parquet), and
    ``root/manifest.toml`` over them."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import write_deltalake

    name = bucket or f"lake-{os.getpid()}-{next(_BUCKETS)}"
    url = server.create_bucket(name)
    options = server.storage_options()
    write_deltalake(
        f"{url}/orders",
        pa.table(
            {"order_id": [1, 2, 3, 4], "customer_id": [1, 1, 2, 3], "amount": [1.5, 2.5, 3.0, 4.0]}
        ),
        storage_options=options,
    )
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "name": ["ada", "bo", "cy"]}), buffer)
    server.client().put_object(
        Bucket=name, Key="raw/customers/part-0.parquet", Body=buffer.getvalue()
    )
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / "manifest.toml"
    manifest.write_text(manifest_text(url, server.endpoint), encoding="utf-8")
    return Lake(server=server, bucket=name, manifest=manifest, endpoint=server.endpoint)


def artifacts_text(*roots: Path) -> str:
    """Every readable file under ``roots``, concatenated (for canary greps)."""
    chunks: list[str] = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


class KillSwitchProxy:
    """A loopback TCP proxy in front of the S3 server that dies like a killed server.

    It forwards every connection to ``upstream`` (``host``, ``port``) until a request
    starting with ``trigger`` (e.g. ``b"PUT /bucket/out/"``: the first data file of an
    output) arrives: then it drops every connection and stops listening, so the request
    in flight fails and the port refuses from then on.  Bounded: it stops by itself after
    ``lifetime`` seconds.
    """

    def __init__(self, upstream: tuple[str, int], trigger: bytes, lifetime: float = 120) -> None:
        import socket
        import threading

        self.upstream = upstream
        self.trigger = trigger
        self.killed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()
        self._timer = threading.Timer(lifetime, self.kill)
        self._timer.daemon = True
        self._timer.start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.killed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream, timeout=30)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: Any, target: Any, watch: bool) -> None:
        try:
            while not self.killed.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if watch and self.trigger in data:
                    self.kill()
                    return
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()

    def kill(self) -> None:
        """Drop every connection and stop listening (idempotent)."""
        import socket

        self.killed.set()
        self._timer.cancel()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass
