"""The clients: async httpx, explicit per-request timeouts, retries of requests without an answer."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from infra import basic_auth

ADD = "/v1.1/customer/add"
GET = "/v1.1/customer/get"


@dataclass
class Attempt:
    started: float  # time.monotonic()
    latency: float
    status: int | None  # None: no answer
    error: str | None  # the transport error when there was no answer
    text: str = ""


@dataclass
class Stats:
    sent: int = 0  # HTTP attempts
    answered: int = 0  # attempts that got an HTTP answer
    retried: int = 0  # attempts that repeated an earlier request
    requests: int = 0  # logical requests (a request and its retries are one)
    lost: int = 0  # logical requests without a final answer by the deadline
    statuses: Counter = field(default_factory=Counter)  # HTTP status of every answer
    item_codes: Counter = field(default_factory=Counter)  # item_status.code of every final item
    no_answer: Counter = field(default_factory=Counter)  # transport errors, by kind
    unexpected: list[str] = field(default_factory=list)  # samples of answers that should not happen
    unexpected_count: int = 0
    max_latency: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    keep_attempts: bool = False

    def note_unexpected(self, what: str) -> None:
        self.unexpected_count += 1
        if len(self.unexpected) < 8:
            self.unexpected.append(what[:600])

    def line(self) -> str:
        return f"requests sent {self.sent}, answered {self.answered}, retried {self.retried}, lost {self.lost}"


@dataclass
class Answer:
    status: int
    body: Any
    text: str


def client(base: str, timeout: float, connect: float = 2.0) -> httpx.AsyncClient:
    """One connection per simulated client; every request bounded by an explicit timeout."""
    return httpx.AsyncClient(
        base_url=base,
        timeout=httpx.Timeout(timeout, connect=min(connect, timeout)),
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        headers={"Authorization": basic_auth(), "Content-Type": "application/json"},
    )


async def send(
    http: httpx.AsyncClient,
    body: bytes,
    stats: Stats,
    deadline: float,
    *,
    retry_statuses: tuple[int, ...] = (503,),
    pause: float = 0.2,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> Answer | None:
    """POST an add until it is answered (other than with a status in `retry_statuses`) or the
    deadline passes (then it is lost). Add is an upsert: re-sending the same body is safe."""
    stats.requests += 1
    first = True
    while True:
        if not first:
            if time.monotonic() > deadline:
                stats.lost += 1
                return None
            stats.retried += 1
        first = False
        stats.sent += 1
        started = time.monotonic()
        try:
            response = await http.post(ADD, content=body)
        except httpx.TransportError as exc:
            latency = time.monotonic() - started
            stats.max_latency = max(stats.max_latency, latency)
            stats.no_answer[type(exc).__name__] += 1
            attempt = Attempt(started, latency, None, type(exc).__name__)
            if stats.keep_attempts:
                stats.attempts.append(attempt)
            if on_attempt:
                on_attempt(attempt)
            await asyncio.sleep(pause * (0.5 + random.random()))
            continue
        latency = time.monotonic() - started
        stats.max_latency = max(stats.max_latency, latency)
        stats.answered += 1
        stats.statuses[response.status_code] += 1
        text = response.text
        attempt = Attempt(started, latency, response.status_code, None, text if response.status_code != 200 else "")
        if stats.keep_attempts:
            stats.attempts.append(attempt)
        if on_attempt:
            on_attempt(attempt)
        if response.status_code in retry_statuses:
            await asyncio.sleep(pause * (0.5 + random.random()))
            continue
        try:
            parsed = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            parsed = None
        return Answer(response.status_code, parsed, text)


def items_of(answer: Answer) -> list[dict[str, Any]]:
    try:
        return answer.body["response"]["customers"]["customer"]
    except (KeyError, TypeError):
        return []


def envelope_code(answer_text: str) -> int | None:
    """response.status.code of an answer, when it is Patron's envelope."""
    try:
        return int(orjson.loads(answer_text)["response"]["status"]["code"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def mobiles(scenario: int, client_index: int) -> Iterator[str]:
    """Fresh, valid Indian mobiles: 91 9 <scenario> <client, 2 digits> <counter, 6 digits>."""
    for n in range(1_000_000):
        yield f"919{scenario % 10}{client_index:02d}{n:06d}"


def new_item(mobile: str, referral_code: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "mobile": mobile,
        "email": f"c{mobile}@stress.example",
        "firstname": "Stress",
        "lastname": "Client",
        "custom_fields": {"field": [{"name": "city", "value": "Pune"}]},
    }
    if referral_code is not None:
        item["referral_code"] = referral_code
    return item


def body_of(items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"root": {"customer": items}})


async def referral_codes(http: httpx.AsyncClient, mobiles_: list[str]) -> dict[str, str]:
    """The referral codes of some customers (code -> mobile), read back with GET; {} on any failure."""
    try:
        response = await http.get(GET, params={"mobile": ",".join(mobiles_)}, timeout=5)
        found = response.json()["response"]["customers"]["customer"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return {}
    return {c["referral_code"]: c["mobile"] for c in found if isinstance(c, dict) and c.get("referral_code")}
