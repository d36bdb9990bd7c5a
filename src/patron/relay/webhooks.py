"""The webhook sink (events.md §3): an org's [[webhooks]] endpoint, sent each event signed as Standard Webhooks says."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import socket
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import httpcore
import httpx

from patron import __version__
from patron.orgs.policy import Webhook
from patron.relay.sinks import ANSWER_KEPT, Delivery, Outcome, Result

# events.md §3: an attempt that has no answer within this is a timeout, retried.
ATTEMPT_TIMEOUT = 15.0
USER_AGENT = f"Patron/{__version__} (webhooks)"
SECRET_PREFIX = "whsec_"
# Standard Webhooks asks for 24 to 64 random bytes; a shorter key is a guessable one.
SECRET_MIN_BYTES = 24

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Where a cloud's instance metadata (and its credentials) answers: AWS, GCP and Azure on the first,
# AWS's IPv6 endpoint, Alibaba Cloud. Refused even with allow_private: no endpoint lives there.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address) for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
# IPv6 forms that carry an IPv4 address a router will reach: the check applies to that address too.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# (host, port) -> the host's addresses, as getaddrinfo gives them.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class SecretProblem(ValueError):
    """The environment variable named by secret_env cannot sign: its message names the variable, never its value."""


class RefusedAddress(Exception):
    """The endpoint's host resolves to an address webhooks are not sent to."""


class Unresolvable(Exception):
    """The endpoint's host has no address (now): retried, as a connection error is."""


# --- rules: pure functions -----------------------------------------------------------------------


def signing_keys(value: str | None, env_name: str) -> tuple[bytes, ...]:
    """The HMAC keys in the secret_env variable's value: one `whsec_<base64>` secret, or two separated
    by a space while a secret is rotated (each then signs, and the endpoint accepts either)."""
    secrets = (value or "").split()
    variable = f"the environment variable {env_name} (secret_env)"
    if not secrets:
        raise SecretProblem(f"{variable} is not set or empty: webhooks are signed with its {SECRET_PREFIX} secret")
    if len(secrets) > 2:
        raise SecretProblem(
            f"{variable} holds {len(secrets)} secrets: at most two (the new and the old, while rotating), "
            "separated by a space"
        )
    keys = []
    for position, secret in enumerate(secrets, start=1):
        which = f"secret {position} of {len(secrets)} in {variable}" if len(secrets) > 1 else f"the secret in {variable}"
        if not secret.startswith(SECRET_PREFIX):
            raise SecretProblem(
                f"{which} does not start with {SECRET_PREFIX}: a Standard Webhooks secret is {SECRET_PREFIX} followed by base64"
            )
        encoded = secret[len(SECRET_PREFIX):]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            # The decoder's own message is dropped (from None): nothing of the secret leaves here.
            raise SecretProblem(f"{which} is not base64 after {SECRET_PREFIX}") from None
        if len(key) < SECRET_MIN_BYTES:
            raise SecretProblem(
                f"{which} is {len(key)} bytes after {SECRET_PREFIX}: Standard Webhooks asks for "
                f"{SECRET_MIN_BYTES} to 64 random bytes"
            )
        keys.append(key)
    return tuple(keys)


def sign(message_id: str, timestamp: int, body: bytes, keys: Iterable[bytes]) -> str:
    """The webhook-signature header: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each key,
    space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why a webhook may not be sent to `address` (what kind of address it is), or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        nat64 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        embedded = address.ipv4_mapped or address.sixtofour or nat64
        if embedded is not None:
            return refusal(embedded, allow_private)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    for kind, is_kind in (
        ("an unspecified address", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a reserved address", address.is_reserved),
        ("a private address", address.is_private),
        # Shared (carrier-grade NAT), documentation and benchmarking ranges: nobody's public endpoint.
        ("not a public address", not address.is_global),
    ):
        if is_kind:
            return kind
    return None


def classify(status_code: int) -> Result:
    """What an answer's status means for the event (events.md §3)."""
    if 200 <= status_code < 300:
        return "delivered"
    if status_code == HTTPStatus.GONE:
        return "disable"
    if status_code in (HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS) or 500 <= status_code < 600:
        return "retry"
    if 300 <= status_code < 500:
        return "dead"
    # A status outside HTTP's classes: the endpoint is misbehaving, perhaps for a moment; an event
    # is not given up on an answer nobody can read.
    return "retry"


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """The wait a Retry-After header asks for, in its delta-seconds or its HTTP-date form; None when
    absent or unreadable. A date already past asks for no wait (0)."""
    if value is None or not (value := value.strip()):
        return None
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110's HTTP-date is always GMT; "-0000" reads as naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def outcome_of_answer(
    status_code: int, headers: Mapping[str, str], answer: str, latency_ms: int, now: datetime
) -> Outcome:
    """The Outcome of an attempt the endpoint answered."""
    result = classify(status_code)
    status = _status_text(status_code)
    error: str | None
    if result == "delivered":
        error = None
    elif result == "disable":
        error = f"the endpoint answered {status}: it asks to be sent no more events, so it is disabled"
    elif 300 <= status_code < 400:
        location = headers.get("location")
        to = f" to {location[:200]}" if location else ""
        error = f"the endpoint answered {status}{to}: redirects are not followed; set the webhook's url to where it points"
    else:
        error = f"the endpoint answered {status}"
    return Outcome(
        result,
        status_code=status_code,
        error=error,
        answer=answer,
        latency_ms=latency_ms,
        retry_after=retry_after_seconds(headers.get("retry-after"), now) if result == "retry" else None,
    )


def _status_text(status_code: int) -> str:
    try:
        return f"{status_code} {HTTPStatus(status_code).phrase}"
    except ValueError:
        return str(status_code)


# --- the edge: resolution, connection, the HTTP exchange -----------------------------------------


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses, in getaddrinfo's order of preference."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class _CheckedNetwork(httpcore.AsyncNetworkBackend):
    """Opens each new connection to an address of the host that was checked just before, never to the
    name: a host whose DNS answers a public address to the check and a private one to the connect
    (rebinding) reaches only the address checked. TLS still verifies and sends SNI for the name, and
    the Host header is the URL's, since httpcore takes both from the request, not from here."""

    def __init__(self, allow_private: bool, resolver: Resolver, inner: httpcore.AsyncNetworkBackend) -> None:
        self._allow_private = allow_private
        self._resolve = resolver
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except OSError as failed:
            raise Unresolvable(f"{host} could not be resolved: {failed.strerror or failed}") from None
        if not addresses:
            raise Unresolvable(f"{host} could not be resolved: no address")
        for address in addresses:
            kind = refusal(ipaddress.ip_address(address), self._allow_private)
            if kind is not None:
                hint = "" if kind == "a cloud metadata address" else (
                    " (allow_private = true in the org file's [[webhooks]] entry allows it, for an on-premises endpoint)"
                )
                raise RefusedAddress(f"{host} resolves to {address}, {kind}: webhooks are not sent there{hint}")
        failures: list[Exception] = []
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failed:
                failures.append(failed)
        raise failures[-1]

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are sent over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool that connects through _CheckedNetwork. httpx takes no network
    backend, so the pool it built is replaced by one that has it (httpx is pinned below 0.29, where
    the pool is `_pool`; tests/test_relay_webhooks.py fails if that stops holding)."""

    def __init__(self, network: httpcore.AsyncNetworkBackend) -> None:
        super().__init__(http1=True, http2=False, trust_env=False, retries=0)
        limits = httpx.Limits()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=network,
        )


class WebhookSink:
    """One [[webhooks]] entry as the relay's Sink: one pooled HTTP/1.1 client, signed POSTs."""

    def __init__(
        self,
        webhook: Webhook,
        environ: Mapping[str, str] | None = None,
        *,
        timeout: float = ATTEMPT_TIMEOUT,
        resolver: Resolver = resolve,
        network: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        """`environ` is where secret_env is read (os.environ by default); `resolver` and `network`
        (httpcore's backend the checked connections are opened with) are for tests."""
        self.name = webhook.name
        self.pii = webhook.pii
        self._webhook = webhook
        self._timeout = timeout
        self._problem: str | None = None
        self._keys = _Keys(())
        try:
            self._url = httpx.URL(webhook.url)
        except httpx.InvalidURL as unusable:
            self._url = httpx.URL()
            self._problem = f"webhook {webhook.name}: its url cannot be used: {unusable}"
        self._host = self._url.host
        secret = (os.environ if environ is None else environ).get(webhook.secret_env)
        try:
            self._keys = _Keys(signing_keys(secret, webhook.secret_env))
        except SecretProblem as problem:
            self._problem = self._problem or f"webhook {webhook.name}: {problem}"
        checked = _CheckedNetwork(webhook.allow_private, resolver, network or httpcore.AnyIOBackend())
        # Proxies and .netrc from the environment are not used (trust_env=False): the address check
        # must see the host the event goes to.
        self._client = httpx.AsyncClient(
            transport=_PinnedTransport(checked),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, host={self._host!r}, secret_env={self._webhook.secret_env!r})"

    def subscribes(self, event_name: str) -> bool:
        return self._webhook.subscribes(event_name)

    async def deliver(self, delivery: Delivery) -> Outcome:
        if self._problem is not None:
            return Outcome("disable", error=self._problem)
        timestamp = int(time.time())
        headers = {
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(delivery.event_id, timestamp, delivery.body, self._keys.keys),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            # Only the answer's first KB is kept; a compressed one would cost more to read.
            "accept-encoding": "identity",
        }
        started = time.perf_counter()
        answered: httpx.Response | None = None
        kept = bytearray()
        try:
            async with asyncio.timeout(self._timeout):
                async with self._client.stream("POST", self._url, content=delivery.body, headers=headers) as response:
                    answered = response
                    try:
                        # Enough bytes for ANSWER_KEPT characters in any UTF-8; the rest is left unread.
                        async for chunk in response.aiter_bytes():
                            kept += chunk
                            if len(kept) >= 4 * ANSWER_KEPT:
                                break
                    except httpx.HTTPError:
                        pass  # the status decides; the answer's text is only kept for the log
        except RefusedAddress as refused:
            return Outcome("disable", error=f"webhook {self.name}: {refused}", latency_ms=_since(started))
        except Unresolvable as unresolved:
            return Outcome("retry", error=str(unresolved), latency_ms=_since(started))
        except (TimeoutError, httpx.TimeoutException):
            if answered is None:
                error = f"{self._host} did not answer within {self._timeout:g} s"
                return Outcome("retry", error=error, latency_ms=_since(started))
            # The status came in time; only the answer's text was slow.
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as unusable:
            error = f"webhook {self.name}: its url cannot be used: {unusable}"
            return Outcome("disable", error=error, latency_ms=_since(started))
        except (httpx.HTTPError, OSError) as failed:
            error = f"{self._host}: {type(failed).__name__}: {failed}".rstrip(": ")
            return Outcome("retry", error=error, latency_ms=_since(started))
        assert answered is not None
        return outcome_of_answer(
            answered.status_code, answered.headers, _text_of(bytes(kept), answered.encoding), _since(started), datetime.now(UTC)
        )

    async def close(self) -> None:
        await self._client.aclose()


class _Keys:
    """The signing keys, kept out of every repr, log and traceback's locals display."""

    __slots__ = ("keys",)

    def __init__(self, keys: tuple[bytes, ...]) -> None:
        self.keys = keys

    def __repr__(self) -> str:
        return f"<{len(self.keys)} webhook signing key(s)>"


def _text_of(answer: bytes, encoding: str | None) -> str:
    try:
        text = answer.decode(encoding or "utf-8", errors="replace")
    except (LookupError, TypeError, ValueError):
        text = answer.decode("utf-8", errors="replace")
    return text[:ANSWER_KEPT]


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
