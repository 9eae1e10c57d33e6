"""Headless Chromium (Debian's ``chromium`` package) for the report tests.

Every run is sealed off: a fresh profile, Chromium's own background traffic (updates, sync,
spelling dictionaries) switched off, every host name resolving to nothing and every request
sent to a closed port on the loopback address, so that nothing leaves this machine; the
network log (``--log-net-log``) still records each URL the page asked for, which is how a
test sees that the report loads nothing from outside.

Where Chromium is missing: under CI (``CI=true``) the tests fail loudly (``.ci/run``
installs it); elsewhere they skip with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SEALED = (
    "--headless",
    "--no-sandbox",  # root in CI and in containers
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)


def chromium() -> str:
    """The Chromium binary, or fail (under CI) / skip (elsewhere) saying why."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    reason = "headless Chromium is not installed (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: .ci/run installs it, so CI must have it", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Page:
    dom: str
    """The document after its scripts ran (``--dump-dom``)."""
    requests: tuple[str, ...]
    """Every URL the browser asked for while loading it."""


def load(url: str, *, timeout: float = 60) -> Page:
    """Open ``url`` in a sealed headless Chromium; its DOM after the scripts ran and the
    URLs it requested."""
    binary = chromium()
    with tempfile.TemporaryDirectory(prefix="planguard-chromium-") as tmp:
        netlog = Path(tmp) / "net.json"
        done = subprocess.run(
            [
                binary,
                *SEALED,
                f"--user-data-dir={tmp}/profile",
                f"--log-net-log={netlog}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        urls = page_requests(netlog)
    return Page(dom=done.stdout, requests=urls)


def page_requests(netlog: Path) -> tuple[str, ...]:
    """The URLs the page asked for: the network log's request jobs whose initiator is an
    origin (Chromium's own background requests have none; under :data:`SEALED` they go
    to a closed loopback port)."""
    text = netlog.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:  # a log cut short lacks its closing brackets
        data = json.loads(text.rstrip().rstrip(",") + "]}")
    kinds = {value: name for name, value in data["constants"]["logEventTypes"].items()}
    urls = set()
    for event in data.get("events", []):
        params = event.get("params") or {}
        if (
            kinds.get(event.get("type")) == "URL_REQUEST_START_JOB"
            and params.get("initiator") != "not an origin"
            and params.get("url")
        ):
            urls.add(str(params.get("url")))
    return tuple(sorted(urls))


def screenshot(url: str, target: Path, *, size: str = "1400,1800", timeout: float = 60) -> float:
    """Save a PNG of ``url`` to ``target``; seconds Chromium took (start to exit)."""
    import time

    binary = chromium()
    with tempfile.TemporaryDirectory(prefix="planguard-chromium-") as tmp:
        started = time.perf_counter()
        done = subprocess.run(
            [
                binary,
                *SEALED,
                f"--user-data-dir={tmp}/profile",
                f"--window-size={size}",
                f"--screenshot={target}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        took = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    return took


def outside(requests: tuple[str, ...]) -> list[str]:
    """The requested URLs that are not the page's own file or inline data."""
    return [url for url in requests if not url.startswith(("file://", "data:", "blob:"))]
