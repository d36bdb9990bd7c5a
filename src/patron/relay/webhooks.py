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
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import aiohttp
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

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
# An address as getaddrinfo gives it -> an unconnected socket for it (aiohttp's socket_factory).
SocketFactory = Callable[[tuple[Any, ...]], socket.socket]
# Connections open at once to one endpoint (as many as the relay's deliveries in flight by default).
MAX_CONNECTIONS = 100


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


def _refuse(host: str, address: str, allow_private: bool) -> None:
    """RefusedAddress when `address` (of `host`) is one webhooks are not sent to."""
    kind = refusal(ipaddress.ip_address(address), allow_private)
    if kind is not None:
        hint = "" if kind == "a cloud metadata address" else (
            " (allow_private = true in the org file's [[webhooks]] entry allows it, for an on-premises endpoint)"
        )
        raise RefusedAddress(f"{host} resolves to {address}, {kind}: webhooks are not sent there{hint}")


class _CheckedResolver(AbstractResolver):
    """aiohttp's resolver for one endpoint: asked again for each new connection (the connector keeps
    no DNS cache), it checks every address of the host and hands the connector those addresses, which
    it connects to, never to the name: a host whose DNS answers a public address to the check and a
    private one to the connect (rebinding) reaches only the address checked. TLS still verifies and
    sends SNI for the name, and the Host header is the URL's: aiohttp takes both from the request."""

    def __init__(self, allow_private: bool, resolver: Resolver) -> None:
        self._allow_private = allow_private
        self._resolve = resolver

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        try:
            addresses = await self._resolve(host, port)
        except OSError as failed:
            raise Unresolvable(f"{host} could not be resolved: {failed.strerror or failed}") from None
        if not addresses:
            raise Unresolvable(f"{host} could not be resolved: no address")
        for address in addresses:
            _refuse(host, address, self._allow_private)
        return [
            ResolveResult(hostname=host, host=address, port=port,
                          family=socket.AF_INET6 if ":" in address else socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST)
            for address in addresses
        ]

    async def close(self) -> None:
        pass


def _ip_literal(host: str | None) -> str | None:
    """The URL's host when it is an address rather than a name (aiohttp does not resolve those)."""
    try:
        return str(ipaddress.ip_address((host or "").strip("[]")))
    except ValueError:
        return None


class WebhookSink:
    """One [[webhooks]] entry as the relay's Sink: one pooled HTTP/1.1 client (aiohttp's, whose
    requests cost a fraction of the CPU of httpx's when a hundred are in flight), signed POSTs."""

    def __init__(
        self,
        webhook: Webhook,
        environ: Mapping[str, str] | None = None,
        *,
        timeout: float = ATTEMPT_TIMEOUT,
        resolver: Resolver = resolve,
        socket_factory: SocketFactory | None = None,
    ) -> None:
        """`environ` is where secret_env is read (os.environ by default); `resolver` and
        `socket_factory` (what the connector makes each connection's socket with, given the
        address checked) are for tests."""
        self.name = webhook.name
        self.pii = webhook.pii
        self._webhook = webhook
        self._timeout = timeout
        self._problem: str | None = None
        self._keys = _Keys(())
        self._resolver = _CheckedResolver(webhook.allow_private, resolver)
        self._socket_factory = socket_factory
        self._session: aiohttp.ClientSession | None = None
        try:
            self._url = URL(webhook.url)
        except (TypeError, ValueError) as unusable:
            self._url = URL()
            self._problem = f"webhook {webhook.name}: its url cannot be used: {unusable}"
        self._host = self._url.host or ""
        # An address in the URL is not resolved, so it is checked here, once.
        self._literal_refused: str | None = None
        if (address := _ip_literal(self._url.host)) is not None:
            try:
                _refuse(self._host, address, webhook.allow_private)
            except RefusedAddress as refused:
                self._literal_refused = str(refused)
        secret = (os.environ if environ is None else environ).get(webhook.secret_env)
        try:
            self._keys = _Keys(signing_keys(secret, webhook.secret_env))
        except SecretProblem as problem:
            self._problem = self._problem or f"webhook {webhook.name}: {problem}"

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, host={self._host!r}, secret_env={self._webhook.secret_env!r})"

    def subscribes(self, event_name: str) -> bool:
        return self._webhook.subscribes(event_name)

    def _client(self) -> aiohttp.ClientSession:
        """The sink's session, made on first use (aiohttp's belong to the running loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=self._resolver,
                # Each new connection resolves, and so is checked, again.
                use_dns_cache=False,
                ssl=ssl.create_default_context(cafile=certifi.where()),
                limit=MAX_CONNECTIONS,
                socket_factory=self._socket_factory,
            )
            # Proxies and .netrc from the environment are not used (trust_env=False): the address
            # check must see the host the event goes to. No cookie is kept between deliveries. The
            # attempt's time limit is the asyncio.timeout around it.
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),
            )
        return self._session

    async def deliver(self, delivery: Delivery) -> Outcome:
        if self._problem is not None:
            return Outcome("disable", error=self._problem)
        if self._literal_refused is not None:
            return Outcome("disable", error=f"webhook {self.name}: {self._literal_refused}")
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
        answered: aiohttp.ClientResponse | None = None
        kept = bytearray()
        try:
            async with asyncio.timeout(self._timeout):
                async with self._client().post(self._url, data=delivery.body, headers=headers, allow_redirects=False) as response:
                    answered = response
                    try:
                        # Enough bytes for ANSWER_KEPT characters in any UTF-8; the rest is left unread.
                        async for chunk in response.content.iter_any():
                            kept += chunk
                            if len(kept) >= 4 * ANSWER_KEPT:
                                break
                    except aiohttp.ClientError:
                        pass  # the status decides; the answer's text is only kept for the log
        except RefusedAddress as refused:
            return Outcome("disable", error=f"webhook {self.name}: {refused}", latency_ms=_since(started))
        except Unresolvable as unresolved:
            return Outcome("retry", error=str(unresolved), latency_ms=_since(started))
        except TimeoutError:
            if answered is None:
                error = f"{self._host} did not answer within {self._timeout:g} s"
                return Outcome("retry", error=error, latency_ms=_since(started))
            # The status came in time; only the answer's text was slow.
        except aiohttp.InvalidURL as unusable:
            error = f"webhook {self.name}: its url cannot be used: {unusable}"
            return Outcome("disable", error=error, latency_ms=_since(started))
        except aiohttp.ClientConnectorError as failed:
            error = f"{self._host}: ConnectError: {failed.os_error}"
            return Outcome("retry", error=error, latency_ms=_since(started))
        except (aiohttp.ClientError, OSError) as failed:
            error = f"{self._host}: {type(failed).__name__}: {failed}".rstrip(": ")
            return Outcome("retry", error=error, latency_ms=_since(started))
        assert answered is not None
        return outcome_of_answer(
            answered.status, answered.headers, _text_of(bytes(kept), answered.charset), _since(started), datetime.now(UTC)
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


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
