"""X-Forwarded-For and X-Forwarded-Proto through a real `patron serve`: believed only from the
proxies named in PATRON_TRUSTED_PROXIES, ignored from every other peer, this host included.

Two servers on one SQLite file: `direct` names no proxy (the default), `proxied` names loopback
among its proxies, so that this test's requests come from a named proxy. What a forwarded header
changes is seen where Patron uses the address and the scheme: the per-address failure limit of
credential checks, /metrics' answer to local clients only, and the console cookies' Secure flag.
"""

from __future__ import annotations

import base64
import itertools
import subprocess
from collections.abc import Callable

import httpx
import pytest

from patron.settings import Settings
from support.processes import ROOT, VENV_BIN, Server, sqlite_env

FAILURES_PER_ADDRESS = 3
_guesses = itertools.count()


SETTINGS = {
    "PATRON_AUTH_FAILURES_PER_ADDRESS": str(FAILURES_PER_ADDRESS),
    "PATRON_AUTH_FAILURES_PER_CREDENTIAL": "0",
    # Every guess here is a first one; the budget for those is tested on its own.
    "PATRON_AUTH_UNVERIFIED_HASHES_PER_SECOND": "0",
    "PATRON_TRUSTED_PROXIES": None,
}


@pytest.fixture(scope="module")
def direct(serve: Callable[..., Server]) -> Server:
    return serve("direct", **SETTINGS)


@pytest.fixture(scope="module")
def proxied(serve: Callable[..., Server]) -> Server:
    # A list, with a network: loopback is named by its /8.
    return serve("proxied", **{**SETTINGS, "PATRON_TRUSTED_PROXIES": "192.0.2.10, 127.0.0.0/8"})


def a_wrong_guess(server: Server, forwarded_for: str | None = None) -> int:
    """A Basic-auth check that fails (an unknown till, a new wrong MD5 each time, so that every
    guess costs a check and is counted); its status."""
    n = next(_guesses)
    credentials = base64.b64encode(f"no-such-till-{n}:{n:032x}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return httpx.get(f"{server.base}/v1.1/customer/get", params={"mobile": "919800000000"}, headers=headers).status_code


def login_cookie(server: Server, **headers: str) -> str:
    response = httpx.get(f"{server.base}/console/login", headers=headers)
    assert response.status_code == 200
    return next(c for c in response.headers.get_list("set-cookie") if c.startswith("patron_console_login="))


# --- no proxy named: the headers are ignored -------------------------------------------------------


def test_a_forwarded_address_from_a_peer_not_named_is_not_the_address_failures_are_counted_on(direct):
    # Each guess names another address; all of them are the peer's own, so its limit is reached.
    statuses = [a_wrong_guess(direct, f"198.51.100.{n}") for n in range(FAILURES_PER_ADDRESS + 1)]
    assert statuses == [401] * FAILURES_PER_ADDRESS + [429]


def test_a_forwarded_address_from_a_peer_not_named_does_not_make_a_local_client_remote(direct):
    assert httpx.get(f"{direct.base}/metrics", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 200


def test_a_forwarded_https_from_a_peer_not_named_does_not_make_the_console_cookie_secure(direct):
    assert "Secure" not in login_cookie(direct, **{"X-Forwarded-Proto": "https"})


# --- a named proxy: the headers are believed ------------------------------------------------------------


def test_a_named_proxys_forwarded_address_is_the_address_failures_are_counted_on(proxied):
    # Callers of other addresses behind the proxy do not share one limit ...
    assert [a_wrong_guess(proxied, f"198.51.100.{n}") for n in range(FAILURES_PER_ADDRESS + 1)] == [401] * 4
    # ... while one caller reaches its own, and only its own.
    statuses = [a_wrong_guess(proxied, "198.51.100.200") for _ in range(FAILURES_PER_ADDRESS + 1)]
    assert statuses == [401] * FAILURES_PER_ADDRESS + [429]
    assert a_wrong_guess(proxied, "198.51.100.201") == 401


def test_a_named_proxys_forwarded_address_is_the_client_metrics_checks(proxied):
    assert httpx.get(f"{proxied.base}/metrics", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 403
    # The proxy's own requests, forwarding no one, are still local.
    assert httpx.get(f"{proxied.base}/metrics").status_code == 200


def test_an_address_a_client_wrote_before_the_named_proxys_entry_is_not_believed(proxied):
    # The caller wrote 127.0.0.1 itself; the proxy appended the address it saw.
    forged = {"X-Forwarded-For": "127.0.0.1, 203.0.113.8"}
    assert httpx.get(f"{proxied.base}/metrics", headers=forged).status_code == 403


def test_a_named_proxys_forwarded_https_makes_the_console_cookie_secure(proxied):
    assert "Secure" in login_cookie(proxied, **{"X-Forwarded-Proto": "https"})
    assert "Secure" not in login_cookie(proxied, **{"X-Forwarded-Proto": "http"})
    assert "Secure" not in login_cookie(proxied)


# --- the setting ---------------------------------------------------------------------------------------------------


def test_trusted_proxies_are_addresses_or_networks_separated_by_commas_and_none_by_default(monkeypatch):
    monkeypatch.delenv("PATRON_TRUSTED_PROXIES", raising=False)
    assert Settings().trusted_proxies == ()
    named = Settings(trusted_proxies=" 10.0.0.5, 10.8.0.0/16 ,fd00::/8")
    assert [str(network) for network in named.trusted_proxies] == ["10.0.0.5/32", "10.8.0.0/16", "fd00::/8"]


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.5/8", "*", "10.0.0.300"])
def test_a_trusted_proxy_that_is_no_address_or_network_stops_serve_at_start_naming_the_setting(tmp_path, value):
    env = {**sqlite_env(tmp_path), "PATRON_TRUSTED_PROXIES": value}
    done = subprocess.run(
        [str(VENV_BIN / "patron"), "serve", "--port", "1"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: settings refused: PATRON_TRUSTED_PROXIES: ")
    assert "Traceback" not in done.stderr
