"""The webhook sink (events.md §3), against a real HTTP endpoint of the test's own on 127.0.0.1:
signed as Standard Webhooks says (checked with its reference package), answers classified, redirects
not followed, private and metadata addresses refused, the secret never shown."""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from ipaddress import ip_address
from typing import Any

import aiohappyeyeballs
import pytest
import standardwebhooks

from patron.orgs.policy import Webhook
from patron.relay.sinks import ANSWER_KEPT, Delivery, Sink
from patron.relay.webhooks import (
    ATTEMPT_TIMEOUT,
    WebhookSink,
    classify,
    refusal,
    retry_after_seconds,
    sign,
    signing_keys,
)

SECRET = "whsec_" + base64.b64encode(b"patron-webhook-test-secret-one!!").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"patron-webhook-test-secret-two!!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody-else's-webhook-secret!!").decode()
SECRET_ENV = "CRM_WEBHOOK_SECRET"


# --- an endpoint of the test's own -------------------------------------------------------------


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    # The client's port: one per connection.
    peer_port: int


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    # Hold the answer back until the connection is dropped (a hung endpoint).
    never: bool = False
    # Send the status, headers and the body's first half, then hang.
    stall_in_body: bool = False


class Endpoint:
    """A minimal HTTP/1.1 server on 127.0.0.1 (keep-alive, Content-Length bodies) that records each
    request and answers it with the next scripted Answer (200 when none is left)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[Answer] = deque()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def url(self, host: str = "127.0.0.1", path: str = "/hooks/patron") -> str:
        return f"http://{host}:{self.port}{path}"

    def answer(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer_port = writer.get_extra_info("peername")[1]
        try:
            while request_line := await reader.readline():
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, value = line.decode("latin-1").split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.received.append(Received(method, target, headers, body, peer_port))
                answer = self.answers.popleft() if self.answers else Answer()
                if answer.never:
                    await asyncio.Event().wait()
                head = [f"HTTP/1.1 {answer.status} X", f"Content-Length: {len(answer.body)}"]
                head += [f"{name}: {value}" for name, value in answer.headers.items()]
                sent = answer.body[: len(answer.body) // 2] if answer.stall_in_body else answer.body
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + sent)
                await writer.drain()
                if answer.stall_in_body:
                    await asyncio.Event().wait()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


@pytest.fixture(autouse=True)
def only_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the sink does (even with its checks broken), a test here connects to loopback only:
    the addresses it refuses are never tried for real (aiohttp opens every connection through
    aiohappyeyeballs.start_connection)."""
    connect = aiohappyeyeballs.start_connection

    async def to_loopback_only(addr_infos: Sequence[Any], *args: Any, **options: Any) -> Any:
        # A test's own socket factory (NoConnecting) connects nowhere: it records what is asked.
        for addr_info in addr_infos if options.get("socket_factory") is None else ():
            host = str(addr_info[4][0])
            if not _is_loopback(host):
                raise OSError(f"the tests connect to loopback only, not to {host}")
        return await connect(addr_infos, *args, **options)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", to_loopback_only)


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    served = Endpoint()
    await served.start()
    yield served
    await served.stop()


@pytest.fixture
async def make_sink() -> AsyncIterator[Callable[..., WebhookSink]]:
    made: list[WebhookSink] = []

    def make(url: str, secret: str | None = SECRET, allow_private: bool = True, **options: Any) -> WebhookSink:
        webhook = Webhook(
            name="crm", url=url, secret_env=SECRET_ENV, allow_private=allow_private, events=options.pop("events", None)
        )
        environ = {} if secret is None else {SECRET_ENV: secret}
        sink = WebhookSink(webhook, environ, **options)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        await sink.close()


def delivery(event_id: str = "evt_01JNB3K9Z8Q4", body: bytes | None = None) -> Delivery:
    if body is None:
        envelope = {"eventId": event_id, "eventName": "customerAdded", "orgId": 7, "data": {"firstName": "Åsa"}}
        body = json.dumps(envelope).encode()
    return Delivery(event_id=event_id, event_name="customerAdded", org_id=7, body=body, attempt=1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NoConnecting:
    """A socket factory that records where the sink would connect and connects nowhere (so that a
    test of a refusal never sends a packet off this machine, whatever the sink does)."""

    def __init__(self) -> None:
        self.connects: list[str] = []

    def __call__(self, addr_info: tuple[Any, ...]) -> socket.socket:
        host = str(addr_info[4][0])
        self.connects.append(host)
        raise ConnectionRefusedError(f"the test connects nowhere ({host})")


def resolving(*answers: Sequence[str]) -> Callable[[str, int], Any]:
    """A resolver that answers each lookup with the next of `answers` (DNS that changes its mind)."""
    pending = deque(answers)

    async def resolve(host: str, port: int) -> Sequence[str]:
        return pending.popleft()

    return resolve


# --- signing -----------------------------------------------------------------------------------


def test_the_signature_is_the_standard_webhooks_one():
    body = b'{"eventId":"evt_1"}'
    expected = standardwebhooks.Webhook(SECRET).sign("evt_1", datetime.fromtimestamp(1_740_830_400, UTC), body)
    assert sign("evt_1", 1_740_830_400, body, signing_keys(SECRET, SECRET_ENV)) == expected


async def test_a_delivery_is_signed_so_that_the_reference_verifier_accepts_it(endpoint, make_sink):
    sent = delivery()
    outcome = await make_sink(endpoint.url()).deliver(sent)
    assert outcome.result == "delivered"
    [received] = endpoint.received
    assert received.method == "POST" and received.target == "/hooks/patron"
    assert received.body == sent.body
    assert standardwebhooks.Webhook(SECRET).verify(received.body, received.headers) == json.loads(sent.body)


async def test_a_delivery_carries_the_event_id_the_timestamp_and_says_what_it_is(endpoint, make_sink):
    before = int(datetime.now(UTC).timestamp())
    await make_sink(endpoint.url()).deliver(delivery("evt_42"))
    headers = endpoint.received[0].headers
    assert headers["webhook-id"] == "evt_42"
    assert before <= int(headers["webhook-timestamp"]) <= int(datetime.now(UTC).timestamp())
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("Patron/")


async def test_a_tampered_body_fails_verification(endpoint, make_sink):
    await make_sink(endpoint.url()).deliver(delivery())
    received = endpoint.received[0]
    tampered = received.body.replace(b'"orgId": 7', b'"orgId": 8')
    assert tampered != received.body
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(tampered, received.headers)


async def test_another_secret_fails_verification(endpoint, make_sink):
    await make_sink(endpoint.url()).deliver(delivery())
    received = endpoint.received[0]
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(OTHER_SECRET).verify(received.body, received.headers)


async def test_during_rotation_each_secret_verifies_the_delivery(endpoint, make_sink):
    await make_sink(endpoint.url(), secret=f"{SECRET} {OLD_SECRET}").deliver(delivery())
    received = endpoint.received[0]
    signatures = received.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (SECRET, OLD_SECRET):
        standardwebhooks.Webhook(secret).verify(received.body, received.headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(OTHER_SECRET).verify(received.body, received.headers)


# --- the secret --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (None, "is not set or empty"),
        ("", "is not set or empty"),
        ("   ", "is not set or empty"),
        ("hunter2-plain-password-not-a-whsec", "does not start with whsec_"),
        ("whsec_not*base64*at~all~", "is not base64"),
        ("whsec_" + base64.b64encode(b"too-short-key").decode(), "is 13 bytes"),
        (f"{SECRET} {OLD_SECRET} {OTHER_SECRET}", "holds 3 secrets"),
        (f"{SECRET} hunter2-plain-password", "secret 2 of 2"),
    ],
)
async def test_a_secret_that_cannot_sign_disables_the_sink_naming_the_variable_not_the_secret(
    endpoint, make_sink, value, says
):
    sink = make_sink(endpoint.url(), secret=value)
    outcome = await sink.deliver(delivery())
    assert outcome.result == "disable"
    assert SECRET_ENV in outcome.error and says in outcome.error
    for secret in (value or "").split():
        assert secret not in outcome.error and secret[len("whsec_"):] not in outcome.error
    assert endpoint.received == []


async def test_the_secret_is_in_no_log_repr_or_error(endpoint, make_sink, caplog):
    caplog.set_level(logging.DEBUG)
    endpoint.answer(Answer(500, body=b"boom"))
    sink = make_sink(endpoint.url(), secret=f"{SECRET} {OLD_SECRET}")
    outcomes = [await sink.deliver(delivery()), await sink.deliver(delivery())]
    shown = [caplog.text, repr(sink), str(vars(sink))] + [repr(outcome) for outcome in outcomes]
    for secret in (SECRET, OLD_SECRET):
        key = base64.b64decode(secret.removeprefix("whsec_"))
        for text in shown:
            assert secret.removeprefix("whsec_") not in text
            assert repr(key) not in text and key.decode() not in text


# --- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "result"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (204, "delivered"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (408, "retry"),
        (429, "retry"),
        (400, "dead"),
        (401, "dead"),
        (404, "dead"),
        (422, "dead"),
        (410, "disable"),
        (301, "dead"),
        (302, "dead"),
        (307, "dead"),
        (308, "dead"),
    ],
)
async def test_each_answer_is_classified_as_the_spec_says(endpoint, make_sink, status, result):
    endpoint.answer(Answer(status, body=b"" if status == 204 else b"noted"))
    outcome = await make_sink(endpoint.url()).deliver(delivery())
    assert (outcome.result, outcome.status_code) == (result, status)
    assert (outcome.error is None) == (result == "delivered")


def test_a_status_outside_http_s_classes_is_retried():
    assert classify(199) == "retry" and classify(600) == "retry"


async def test_a_redirect_is_not_followed_and_the_event_is_dead_lettered(endpoint, make_sink):
    endpoint.answer(Answer(301, {"Location": endpoint.url(path="/moved")}))
    outcome = await make_sink(endpoint.url()).deliver(delivery())
    assert outcome.result == "dead"
    assert "redirects are not followed" in outcome.error and "/moved" in outcome.error
    assert [r.target for r in endpoint.received] == ["/hooks/patron"]


async def test_a_410_disables_the_endpoint(endpoint, make_sink):
    endpoint.answer(Answer(410))
    outcome = await make_sink(endpoint.url()).deliver(delivery())
    assert outcome.result == "disable" and "410 Gone" in outcome.error


async def test_retry_after_in_seconds_is_passed_on(endpoint, make_sink):
    endpoint.answer(Answer(503, {"Retry-After": "120"}))
    outcome = await make_sink(endpoint.url()).deliver(delivery())
    assert (outcome.result, outcome.retry_after) == ("retry", 120.0)


async def test_retry_after_as_a_date_is_passed_on_as_seconds(endpoint, make_sink):
    endpoint.answer(Answer(429, {"Retry-After": format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)}))
    outcome = await make_sink(endpoint.url()).deliver(delivery())
    assert outcome.result == "retry"
    assert 3590 < outcome.retry_after <= 3600


async def test_retry_after_is_kept_only_for_a_retry(endpoint, make_sink):
    endpoint.answer(Answer(400, {"Retry-After": "120"}))
    outcome = await make_sink(endpoint.url()).deliver(delivery())
    assert (outcome.result, outcome.retry_after) == ("dead", None)


NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Sat, 01 Mar 2025 12:01:30 GMT", 90.0),
        # A date already past asks for no wait.
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_retry_after_is_read_in_both_of_its_forms(header, seconds):
    assert retry_after_seconds(header, NOW) == seconds


async def test_the_answers_first_kb_and_the_latency_are_kept(endpoint, make_sink):
    endpoint.answer(Answer(500, body=("é" * 5000).encode()))
    outcome = await make_sink(endpoint.url()).deliver(delivery())
    assert ANSWER_KEPT == 1024
    assert outcome.answer == "é" * ANSWER_KEPT
    assert isinstance(outcome.latency_ms, int) and outcome.latency_ms >= 0


async def test_a_short_answer_is_kept_whole(endpoint, make_sink):
    endpoint.answer(Answer(400, body=b'{"error":"unknown field"}'))
    outcome = await make_sink(endpoint.url()).deliver(delivery())
    assert outcome.answer == '{"error":"unknown field"}'


async def test_a_hung_endpoint_times_out_and_is_retried(endpoint, make_sink):
    endpoint.answer(Answer(never=True))
    outcome = await make_sink(endpoint.url(), timeout=0.2).deliver(delivery())
    assert outcome.result == "retry" and outcome.status_code is None
    assert "did not answer within 0.2 s" in outcome.error


async def test_an_answer_whose_text_stalls_is_judged_by_its_status(endpoint, make_sink):
    endpoint.answer(Answer(200, body=b"accepted, queued as 1234", stall_in_body=True))
    outcome = await make_sink(endpoint.url(), timeout=0.2).deliver(delivery())
    assert (outcome.result, outcome.status_code, outcome.answer) == ("delivered", 200, "accepted, qu")


def test_an_attempt_times_out_after_15_seconds_by_default():
    assert ATTEMPT_TIMEOUT == 15
    assert inspect.signature(WebhookSink).parameters["timeout"].default == ATTEMPT_TIMEOUT


async def test_a_refused_connection_is_retried(make_sink):
    outcome = await make_sink(f"http://127.0.0.1:{free_port()}/hooks").deliver(delivery())
    assert outcome.result == "retry" and outcome.status_code is None
    assert "ConnectError" in outcome.error


async def test_an_unresolvable_host_is_retried(make_sink):
    async def no_such_host(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    sink = make_sink("https://hooks.crm.invalid/patron", resolver=no_such_host, socket_factory=NoConnecting())
    outcome = await sink.deliver(delivery())
    assert outcome.result == "retry" and "hooks.crm.invalid could not be resolved" in outcome.error


async def test_one_sink_keeps_its_connection_between_deliveries(endpoint, make_sink):
    sink = make_sink(endpoint.url())
    for n in range(3):
        assert (await sink.deliver(delivery(f"evt_{n}"))).result == "delivered"
    assert len({r.peer_port for r in endpoint.received}) == 1


async def test_a_slow_endpoint_does_not_hold_up_another(endpoint, make_sink):
    endpoint.answer(Answer(never=True))
    slow, fast = make_sink(endpoint.url(), timeout=5), make_sink(endpoint.url(path="/other"))
    hung = asyncio.create_task(slow.deliver(delivery("evt_slow")))
    while not endpoint.received:
        await asyncio.sleep(0.01)
    assert (await fast.deliver(delivery("evt_fast"))).result == "delivered"
    assert not hung.done()
    hung.cancel()
    await asyncio.gather(hung, return_exceptions=True)


def test_the_sink_is_the_relays_sink(make_sink):
    sink = make_sink("https://hooks.example.com/patron", events=["customerAdded"])
    assert isinstance(sink, WebhookSink)
    assert sink.name == "crm" and sink.pii is False
    assert sink.subscribes("customerAdded") and not sink.subscribes("pointsIssued")
    typed: Sink = sink
    assert typed is sink


# --- where webhooks are not sent ---------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_loopback_endpoint_is_refused_without_allow_private(endpoint, make_sink, host):
    outcome = await make_sink(endpoint.url(host), allow_private=False).deliver(delivery())
    assert outcome.result == "disable"
    assert "a loopback address" in outcome.error and "allow_private = true" in outcome.error
    assert endpoint.received == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_loopback_endpoint_is_sent_to_with_allow_private(endpoint, make_sink, host):
    outcome = await make_sink(endpoint.url(host), allow_private=True).deliver(delivery())
    assert outcome.result == "delivered" and len(endpoint.received) == 1


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://100.100.100.200/"]
)
async def test_a_cloud_metadata_address_is_refused_even_with_allow_private(make_sink, url, allow_private):
    network = NoConnecting()
    outcome = await make_sink(url, allow_private=allow_private, socket_factory=network).deliver(delivery())
    assert outcome.result == "disable" and "a cloud metadata address" in outcome.error
    assert network.connects == []


async def test_a_name_resolving_to_a_private_address_among_public_ones_is_refused(make_sink):
    network = NoConnecting()
    resolver = resolving(["93.184.215.14", "10.1.2.3"])
    sink = make_sink("https://hooks.example.com/patron", allow_private=False, resolver=resolver, socket_factory=network)
    outcome = await sink.deliver(delivery())
    assert outcome.result == "disable" and "10.1.2.3, a private address" in outcome.error
    assert network.connects == []


async def test_each_new_connection_is_checked_again_and_made_to_the_address_checked(make_sink):
    # DNS rebinding: the name answers a public address, then a private one.
    network = NoConnecting()
    resolver = resolving(["93.184.215.14"], ["10.0.0.7"])
    sink = make_sink("https://hooks.example.com/patron", allow_private=False, resolver=resolver, socket_factory=network)
    first = await sink.deliver(delivery())
    assert first.result == "retry" and network.connects == ["93.184.215.14"]
    second = await sink.deliver(delivery())
    assert second.result == "disable" and "10.0.0.7" in second.error
    assert network.connects == ["93.184.215.14"]


async def test_the_connection_goes_to_the_resolved_address_with_the_urls_host(endpoint, make_sink):
    sink = make_sink(endpoint.url("hooks.crm.test"), allow_private=True, resolver=resolving(["127.0.0.1"]))
    assert (await sink.deliver(delivery())).result == "delivered"
    assert endpoint.received[0].headers["host"] == f"hooks.crm.test:{endpoint.port}"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("169.254.10.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("240.0.0.1", "a reserved address"),
        ("100.64.0.1", "not a public address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        # IPv4 reached through an IPv6 form: mapped, NAT64, 6to4.
        ("::ffff:127.0.0.1", "a loopback address"),
        ("64:ff9b::a00:1", "a private address"),
        ("2002:c0a8:101::1", "a private address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("93.184.215.14", None),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_what_kind_of_address_is_refused(address, kind):
    assert refusal(ip_address(address), allow_private=False) == kind


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.0.0.1", None),
        ("::1", None),
        ("169.254.169.254", "a cloud metadata address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
    ],
)
def test_allow_private_allows_all_but_the_metadata_addresses(address, kind):
    assert refusal(ip_address(address), allow_private=True) == kind
