"""A real `patron serve` process on loopback, for tests that talk to it as a client would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from support import ROOT

VENV_BIN = Path(sys.executable).parent
# Debian's chromium, which Playwright drives (no browser is downloaded); .ci/run installs it.
CHROMIUM = "/usr/bin/chromium"
# Where the browser tests leave their screenshots, for a person to look at.
SCREENSHOTS = ROOT / "var" / "screenshots"
REQUIRE_BROWSER = os.environ.get("PATRON_TEST_REQUIRE_BROWSER") == "1"
# How long any one read waits: far beyond every deadline of a server under test.
WAIT = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        sock.settimeout(WAIT)
        return sock

    def rss_kib(self) -> int:
        # With one worker uvicorn serves in the `patron serve` process itself.
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


def sqlite_env(tmp: Path, **settings: str) -> dict[str, str]:
    """The environment of a server on a migrated SQLite file of its own in `tmp`."""
    env = {
        **os.environ,
        "PATRON_DATABASE_URL": f"sqlite:///{tmp / 'patron.db'}",
        "PATRON_SECRET_KEY": "served-test-secret-key-" + "k" * 32,
        "PATRON_LOG_FORMAT": "json",
        "PATRON_METRICS_DIR": str(tmp / "metrics"),
        **settings,
    }
    subprocess.run([str(VENV_BIN / "patron"), "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=60)
    return env


def start(tmp: Path, name: str, env: dict[str, str]) -> Server:
    port = free_port()
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "patron"), "serve", "--port", str(port)], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    server = Server(process, port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{server.base}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"patron serve did not start: {log.read_text()}")


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)


@contextmanager
def served(tmp: Path, name: str, env: dict[str, str]) -> Iterator[Server]:
    server = start(tmp, name, env)
    try:
        yield server
    finally:
        stop(server)


@contextmanager
def chromium(what: str) -> Iterator[Any]:
    """Debian's chromium under Playwright, headless; the test is skipped (failed, when
    PATRON_TEST_REQUIRE_BROWSER=1) where there is none, saying what is then not rendered."""
    import pytest

    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if REQUIRE_BROWSER:
            pytest.fail(f"a browser is required (PATRON_TEST_REQUIRE_BROWSER=1) but {CHROMIUM} is missing")
        pytest.skip(f"no browser at {CHROMIUM} (Debian's chromium): {what} is not rendered here")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
