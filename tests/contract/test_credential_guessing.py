"""Credential guessing (issue #20): failed till passwords and client secrets are limited per
credential and per client address, refused without a slow hash, and never at the expense of a
till that was already working; slow hashes are bounded, and cached callers never wait for them.

Each test runs its own app (create_app with small limits), so that its failures neither reach nor
come from the session's app, which every other test shares.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from support.api import new_mobile
from support.clock import Clock
from patron.auth import guard as guard_module
from patron.api.app import create_app
from patron.auth.guard import CredentialGuard
from patron.auth.ratelimit import FailureCounter, RecentKeys
from patron.codes import INVALID_CLIENT, INVALID_CLIENT_MESSAGE, MESSAGES, Code
from patron.orgs.apply import apply_org
from patron.orgs.file import parse_org_document
from patron.settings import Settings

GET = "/v1.1/customer/get"
TOKEN = "/v3/oauth/token/generate"
GUESSER = "203.0.113.66"
STORE_NAT = "198.51.100.10"
ELSEWHERE = "192.0.2.20"


@asynccontextmanager
async def guarded_app(settings: Settings, clock: Clock | None = None, **overrides: Any) -> AsyncIterator[Any]:
    """An app of the test's own, on the session's database, with the settings overridden."""
    application = create_app(settings.model_copy(update={"db_pool_size": 2, **overrides}))
    async with LifespanManager(application):
        services = application.state.services
        if clock is not None:
            services.auth.guard = CredentialGuard.from_settings(services.settings, clock=clock)
        yield application


def caller(app: Any, address: str) -> httpx.AsyncClient:
    """A client whose requests come from `address`, as the server sees it (request.client)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://patron.test")


def guard_of(app: Any) -> CredentialGuard:
    return app.state.services.auth.guard


async def get(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.get(GET, params={"mobile": new_mobile()}, headers=headers)


def wrong(org: Any, till: str | None = None) -> dict[str, str]:
    """A Basic header for `till` with a wrong password never sent before."""
    return org.basic(till, "wrong-" + secrets.token_hex(6))


ADMITTED = 500  # a get of a mobile nobody has: the caller was let in


def assert_too_many(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    if response.request.url.path == TOKEN:
        assert response.json() == {"data": None, "errors": [{"code": 429, "message": MESSAGES[Code.TOO_MANY_REQUESTS]}]}
    else:
        status = response.json()["response"]["status"]
        assert status == {"success": "false", "code": 429, "message": MESSAGES[Code.TOO_MANY_REQUESTS]}
    seconds = response.headers["Retry-After"]
    assert seconds.isdigit() and int(seconds) >= 1
    return int(seconds)


def test_the_defaults_are_ten_per_credential_and_fifty_per_address_in_five_minutes_two_hashes_at_a_time():
    defaults = {name: field.default for name, field in Settings.model_fields.items() if name.startswith("auth_")}
    assert defaults == {
        "auth_failures_per_credential": 10,
        "auth_failures_per_address": 50,
        "auth_failure_window_seconds": 300,
        "auth_hash_concurrency": 2,
        "auth_hash_queue": 64,
        "auth_unverified_hashes_per_second": 2,
        "auth_failures_per_network": 200,
        "auth_unverified_hashes_waiting_per_address": 2,
        "auth_unverified_hash_wait_seconds": 10,
    }


# 1. Per credential and per address.


async def test_repeated_wrong_passwords_for_one_till_are_429_with_retry_after(settings, org):
    async with guarded_app(settings, auth_failures_per_credential=3) as app, caller(app, GUESSER) as guesser:
        for _ in range(3):
            assert (await get(guesser, wrong(org))).status_code == 401
        assert 290 <= assert_too_many(await get(guesser, wrong(org))) <= 300
        # From the guesser's network (another address of its /24) too, and in the XML envelope.
        async with caller(app, "203.0.113.67") as neighbour:
            assert_too_many(await get(neighbour, wrong(org)))
        xml = await guesser.get(GET, params={"mobile": new_mobile(), "format": "xml"}, headers=wrong(org))
        assert xml.status_code == 429 and b"<code>429</code>" in xml.content and xml.headers["Retry-After"]
        # Another till is another credential.
        assert (await get(guesser, wrong(org, org.till(1)))).status_code == 401


async def test_a_repeated_wrong_password_is_refused_from_memory_and_counted_once(settings, org, hashes):
    """A till retrying a stale password makes no new guess: it never locks itself out."""
    async with guarded_app(settings, auth_failures_per_credential=3) as app, caller(app, STORE_NAT) as till:
        stale = wrong(org)
        answers = [await get(till, stale) for _ in range(20)]
        assert {a.status_code for a in answers} == {401}
        assert len({a.json()["response"]["status"]["message"] for a in answers}) == 1
        assert len(hashes) == 1
        assert (await get(till, org.basic())).status_code == ADMITTED


async def test_a_throttled_till_is_refused_even_with_its_password_from_the_guessing_network_until_the_window_passes(
    settings, org
):
    clock = Clock()
    async with guarded_app(settings, clock, auth_failures_per_credential=3) as app, caller(app, GUESSER) as guesser:
        for _ in range(3):
            assert (await get(guesser, wrong(org))).status_code == 401
        async with caller(app, "203.0.113.99") as till:
            # Never verified in this worker, from the guesser's /24: it could be the guesser's lucky guess.
            assert assert_too_many(await get(till, org.basic())) == 300
            clock.advance(299)
            assert assert_too_many(await get(till, org.basic())) == 1
            clock.advance(1)
            assert (await get(till, org.basic())).status_code == ADMITTED


async def test_a_throttled_till_still_gets_in_with_its_password_from_a_network_that_has_not_been_failing(settings, org):
    async with guarded_app(settings, auth_failures_per_credential=3) as app, caller(app, GUESSER) as guesser:
        for _ in range(3):
            assert (await get(guesser, wrong(org))).status_code == 401
        assert_too_many(await get(guesser, org.basic()))
        async with caller(app, STORE_NAT) as till:
            assert (await get(till, org.basic())).status_code == ADMITTED
        # A fresh network gets its check, and once it fails it is refused like the first.
        async with caller(app, ELSEWHERE) as other:
            assert (await get(other, wrong(org))).status_code == 401
            assert_too_many(await get(other, wrong(org)))


async def test_repeated_failures_from_one_address_are_429(settings, make_org):
    one, two = await make_org(), await make_org()
    async with guarded_app(settings, auth_failures_per_credential=100, auth_failures_per_address=4) as app:
        async with caller(app, GUESSER) as guesser:
            made_up = "no.such.till." + secrets.token_hex(4)
            for headers in (wrong(one), wrong(two), wrong(one, one.till(1)), wrong(two, made_up)):
                assert (await get(guesser, headers)).status_code == 401
            assert_too_many(await get(guesser, wrong(two, two.till(1))))
            # From that address, even a till's right password waits: it was never verified here.
            assert_too_many(await get(guesser, one.basic(one.till(2))))
            assert_too_many(await guesser.post(TOKEN, json={"key": one.file.api_clients[0].key, "secret": "x"}))
        async with caller(app, ELSEWHERE) as other:
            assert (await get(other, one.basic(one.till(2)))).status_code == ADMITTED
            assert (await get(other, wrong(two, two.till(1)))).status_code == 401


async def test_malformed_credentials_cost_nothing_and_count_nothing(settings, org, hashes):
    async with guarded_app(settings, auth_failures_per_address=2) as app, caller(app, GUESSER) as guesser:
        for header in ({}, {"Authorization": "Basic !!!!"}, {"Authorization": "Bearer x"}) * 5:
            assert (await get(guesser, header)).status_code == 401
        assert hashes == []
        assert (await get(guesser, org.basic())).status_code == ADMITTED


# 2. Refused without the slow hash.


async def test_a_throttled_attempt_does_no_slow_hash(settings, org, hashes):
    async with guarded_app(settings, auth_failures_per_credential=2, auth_failures_per_address=3) as app:
        async with caller(app, GUESSER) as guesser:
            for _ in range(2):
                assert (await get(guesser, wrong(org))).status_code == 401
            assert (await get(guesser, wrong(org, org.till(1)))).status_code == 401
            assert len(hashes) == 3
            for headers in [wrong(org), org.basic(), wrong(org, org.till(1)), wrong(org, "no.such.till")] * 5:
                assert_too_many(await get(guesser, headers))
            client = org.file.api_clients[0]
            assert_too_many(await guesser.post(TOKEN, json={"key": client.key, "secret": client.secret}))
            assert len(hashes) == 3


# 3. An already verified till keeps working.


async def test_a_verified_till_keeps_working_while_its_password_is_being_guessed(settings, org):
    async with guarded_app(settings, auth_failures_per_credential=3, auth_failures_per_address=5) as app:
        async with caller(app, STORE_NAT) as till, caller(app, GUESSER) as guesser:
            assert (await get(till, org.basic())).status_code == ADMITTED
            for _ in range(5):
                await get(guesser, wrong(org))
            assert_too_many(await get(guesser, wrong(org)))
            assert (await get(till, org.basic())).status_code == ADMITTED
            # Nor from the till's own address (a guesser behind the store's NAT).
            for n in range(5):
                assert (await get(till, wrong(org, f"made.up.till.{n}"))).status_code == 401
            assert_too_many(await get(till, wrong(org, org.till(1))))
            assert [(await get(till, org.basic())).status_code for _ in range(5)] == [ADMITTED] * 5


async def test_a_till_verified_before_the_guessing_keeps_working_after_its_cache_entry_expires(settings, org, hashes):
    # No credential cache at all, and no trust kept (no secret key): every request of the till is
    # checked with a slow hash.
    async with guarded_app(settings, credential_cache_seconds=0, auth_failures_per_credential=3, secret_key="") as app:
        async with caller(app, STORE_NAT) as till, caller(app, GUESSER) as guesser:
            assert (await get(till, org.basic())).status_code == ADMITTED
            for _ in range(3):
                await get(guesser, wrong(org))
            assert_too_many(await get(guesser, wrong(org)))
            hashes.clear()
            assert (await get(till, org.basic())).status_code == ADMITTED
            assert len(hashes) == 1  # still checked, only not refused


async def test_a_trusted_till_whose_password_changed_is_trusted_no_more(settings, make_org, app):
    org = await make_org()
    async with guarded_app(settings, credential_cache_seconds=0, auth_failures_per_credential=2) as guarded:
        async with caller(guarded, STORE_NAT) as till:
            assert (await get(till, org.basic())).status_code == ADMITTED
            document = org.file.model_dump(mode="json")
            document["stores"][0]["tills"][0]["password"] = "Rotated42"
            await apply_org(app.state.services.engine, parse_org_document(document))
            assert (await get(till, org.basic())).status_code == 401
            assert (await get(till, wrong(org))).status_code == 401
            assert_too_many(await get(till, org.basic()))


# 4. Equal cost whatever was wrong.


async def test_unknown_till_and_wrong_password_cost_one_slow_hash_each(settings, make_org, app, hashes):
    org = await make_org()
    disabled = org.till(1)
    document = org.file.model_dump(mode="json")
    document["stores"][0]["tills"].pop(1)
    await apply_org(app.state.services.engine, parse_org_document(document))
    async with guarded_app(settings) as guarded, caller(guarded, GUESSER) as guesser:
        unknown = org.basic("no.such.till." + secrets.token_hex(4), "Pass123")
        bodies = set()
        for headers in (unknown, org.basic(disabled), wrong(org)):
            hashes.clear()
            response = await get(guesser, headers)
            assert response.status_code == 401
            bodies.add(response.content)
            assert len(hashes) == 1, headers
            # The same again is refused from memory, alike for all three.
            hashes.clear()
            assert (await get(guesser, headers)).status_code == 401
            assert hashes == []
        assert len(bodies) == 1


async def test_unknown_client_key_and_wrong_secret_cost_one_slow_hash_each(settings, org, hashes):
    client = org.file.api_clients[0]
    async with guarded_app(settings) as guarded, caller(guarded, GUESSER) as guesser:
        unknown = {"key": f"no.such.client.{secrets.token_hex(4)}", "secret": client.secret}
        for body in (unknown, {"key": client.key, "secret": "wrong"}):
            hashes.clear()
            response = await guesser.post(TOKEN, json=body)
            assert response.status_code == 401
            assert response.json() == {"data": None, "errors": [{"code": INVALID_CLIENT, "message": INVALID_CLIENT_MESSAGE}]}
            assert len(hashes) == 1, body


# 5. Token generation.


async def test_token_generation_failures_are_throttled(settings, org):
    client = org.file.api_clients[0]
    async with guarded_app(settings, auth_failures_per_credential=3) as app, caller(app, GUESSER) as guesser:
        for n in range(3):
            refused = await guesser.post(TOKEN, json={"key": client.key, "secret": f"guess-{n}"})
            assert refused.status_code == 401
            assert refused.json()["errors"][0]["code"] == INVALID_CLIENT
        for body in ({"key": client.key, "secret": "guess-4"}, {"key": client.key, "secret": client.secret}):
            assert 290 <= assert_too_many(await guesser.post(TOKEN, json=body)) <= 300
        # A till of the same name is another namespace.
        assert (await get(guesser, org.basic())).status_code == ADMITTED


async def test_a_client_that_got_a_token_before_the_guessing_still_gets_one(settings, org):
    client = org.file.api_clients[0]
    async with guarded_app(settings, auth_failures_per_credential=2) as app, caller(app, GUESSER) as guesser:
        assert (await guesser.post(TOKEN, json={"key": client.key, "secret": client.secret})).status_code == 200
        for n in range(2):
            await guesser.post(TOKEN, json={"key": client.key, "secret": f"guess-{n}"})
        assert (await guesser.post(TOKEN, json={"key": client.key, "secret": "guess-9"})).status_code == 429
        issued = await guesser.post(TOKEN, json={"key": client.key, "secret": client.secret})
        assert issued.status_code == 200 and issued.json()["data"]["accessToken"]


# 6. Bounded memory.


def test_the_failure_table_stays_bounded():
    clock = Clock()
    counter = FailureCounter(limit=3, window=300, clock=clock, max_names=100)
    for n in range(10_000):
        clock.advance(0.001)
        counter.add(f"random.till.{n}")
    assert len(counter) <= 100
    # The names failed most recently are still counted.
    counter.add("random.till.9999")
    counter.add("random.till.9999")
    assert counter.wait("random.till.9999") > 0
    # Names whose window has closed make room first.
    clock.advance(300)
    counter.add("late.one")
    assert len(counter) == 1
    keys = RecentKeys(ttl=60, clock=clock, max_keys=50)
    for n in range(1000):
        keys.add(n)
    assert len(keys) <= 50 and 999 in keys and 0 not in keys


async def test_a_flood_of_made_up_tills_and_addresses_keeps_every_table_bounded(settings):
    async with guarded_app(settings, auth_failures_per_address=3) as app:
        auth = app.state.services.auth
        auth.guard = CredentialGuard(failures_per_credential=3, failures_per_address=3, max_entries=20)
        for n in range(60):
            async with caller(app, f"10.0.{n // 250}.{n % 250}") as flooder:
                header = {"Authorization": "Basic " + base64.b64encode(f"till.{n}:{'0' * 32}".encode()).decode()}
                assert (await get(flooder, header)).status_code == 401
        guard = auth.guard
        assert max(len(guard.credentials), len(guard.addresses), len(guard.refused)) <= 20


# 7. Bounded slow hashes.


async def test_slow_hashes_are_bounded_and_cached_callers_do_not_wait(settings, org, monkeypatch):
    async with guarded_app(
        settings,
        auth_hash_concurrency=2,
        auth_hash_queue=3,
        auth_failures_per_credential=100,
        auth_failures_per_address=100,
    ) as app:
        async with caller(app, STORE_NAT) as till, caller(app, GUESSER) as guesser:
            assert (await get(till, org.basic())).status_code == ADMITTED  # verified, now cached
            gate, lock = threading.Event(), threading.Lock()
            running, most = [0], [0]
            real = guard_module.verify_secret

            def held_hash(stored_hash: str, secret: str) -> bool:
                with lock:
                    running[0] += 1
                    most[0] = max(most[0], running[0])
                gate.wait(10)
                with lock:
                    running[0] -= 1
                return real(stored_hash, secret)

            monkeypatch.setattr(guard_module, "verify_secret", held_hash)
            guesses = [asyncio.ensure_future(get(guesser, wrong(org, org.till(n % 3)))) for n in range(10)]
            try:
                hashes = guard_of(app).hashes
                for _ in range(500):
                    if hashes.busy == 2 and hashes.waiting == 3 and sum(g.done() for g in guesses) == 5:
                        break
                    await asyncio.sleep(0.01)
                refused = [g.result() for g in guesses if g.done()]
                assert len(refused) == 5
                for response in refused:
                    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
                    assert response.json()["response"]["status"]["message"] == MESSAGES[Code.SERVICE_UNAVAILABLE]
                # Two hashes are stuck and three callers queue for them; a cached till goes straight on.
                answers = await asyncio.wait_for(asyncio.gather(*(get(till, org.basic()) for _ in range(5))), 5)
                assert {a.status_code for a in answers} == {ADMITTED}
                assert (hashes.busy, hashes.waiting) == (2, 3)
            finally:
                gate.set()
            rest = await asyncio.wait_for(asyncio.gather(*guesses), 10)
            assert sorted(r.status_code for r in rest) == [401] * 5 + [503] * 5
            assert most[0] == 2


async def test_guesses_beyond_the_budget_of_unverified_hashes_are_503_and_a_verified_till_is_not_held(settings, make_org, hashes):
    """Many addresses and made-up names each stay under their failure limits; the budget of slow
    hashes for credentials never verified here bounds them all together."""
    org = await make_org()
    clock = Clock()
    # A guess waits for the budget at most this long (real time: the queue's timer is asyncio's).
    overrides = {"auth_unverified_hashes_per_second": 1, "auth_unverified_hash_wait_seconds": 0.05}
    async with guarded_app(settings, clock, **overrides) as app:
        async with caller(app, STORE_NAT) as till:
            assert (await get(till, org.basic())).status_code == ADMITTED  # verified: one of the burst of 2
        answers = []
        for n in range(4):
            async with caller(app, f"203.0.113.{n + 1}") as guesser:
                answers.append(await get(guesser, wrong(org, "made.up." + secrets.token_hex(4))))
        assert [a.status_code for a in answers] == [401, 503, 503, 503]
        assert answers[1].headers["Retry-After"] == "1"
        assert len(hashes) == 2
        async with caller(app, STORE_NAT) as till:
            assert (await get(till, org.basic())).status_code == ADMITTED
        clock.advance(1)
        async with caller(app, "203.0.113.9") as guesser:
            assert (await get(guesser, wrong(org))).status_code == 401



async def test_hashes_for_networks_that_have_been_failing_run_at_the_lowest_priority_and_others_do_not(
    settings, org, monkeypatch
):
    import os
    import threading

    priorities: list[int] = []
    real = guard_module.verify_secret

    def observed(stored: str, secret: str) -> bool:
        priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real(stored, secret)

    monkeypatch.setattr(guard_module, "verify_secret", observed)
    clock = Clock()
    async with guarded_app(settings, clock, credential_cache_seconds=0, secret_key="") as app, caller(app, STORE_NAT) as till:
        assert (await get(till, org.basic())).status_code == ADMITTED  # first time: not yet verified here
        assert (await get(till, org.basic())).status_code == ADMITTED  # verified before: trusted
        async with caller(app, GUESSER) as guesser:
            assert (await get(guesser, wrong(org))).status_code == 401  # a first failure of its network
            assert (await get(guesser, wrong(org))).status_code == 401  # a network that has been failing
    assert priorities == [0, 0, 0, 19]


# 6. A flood from some addresses cannot shut out callers from others (issue #29, item 2).


async def until(condition: Any) -> None:
    """Lets the app's tasks run until `condition()` holds (bounded: a test never hangs on it)."""
    for _ in range(5_000):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the condition never held")


async def test_refusals_count_against_the_address_like_failures(settings, org, hashes):
    """A flood whose attempts are mostly refused for want of a slow hash still spends its own
    budget: it is shut out by its address's limit, not kept up forever."""
    clock = Clock()
    async with guarded_app(
        settings, clock, auth_unverified_hashes_per_second=1, auth_unverified_hashes_waiting_per_address=1,
        auth_unverified_hash_wait_seconds=0.01, auth_failures_per_address=5,
    ) as app, caller(app, GUESSER) as guesser:
        # The burst of two: two slow hashes, two failures. Then no token comes (the clock stands
        # still): each waits its longest and is refused, and counted.
        answers = [(await get(guesser, wrong(org, "made.up." + secrets.token_hex(4)))).status_code for _ in range(5)]
        assert answers == [401, 401, 503, 503, 503]
        assert len(hashes) == 2
        assert_too_many(await get(guesser, wrong(org, "made.up." + secrets.token_hex(4))))
        # Another address of another network is not held by it.
        clock.advance(1)
        async with caller(app, STORE_NAT) as till:
            assert (await get(till, org.basic())).status_code == ADMITTED


async def test_a_till_from_a_network_that_has_not_been_failing_gets_the_next_slow_hash_before_a_floods_guesses(
    settings, make_org, hashes
):
    """The budget of slow hashes goes first to networks in good standing, then in turn to each
    network waiting: a till never verified here waits for the next token, not behind the flood."""
    org = await make_org()
    clock = Clock()
    async with guarded_app(settings, clock, auth_unverified_hashes_per_second=1, auth_unverified_hash_wait_seconds=60) as app:
        budget = guard_of(app).budget
        flood = [caller(app, f"203.0.113.{n}") for n in (1, 2)]
        # The burst of two is spent first, on two failures of the flood's network.
        for guesser in flood:
            assert (await get(guesser, wrong(org, "made.up." + secrets.token_hex(4)))).status_code == 401
        # Then four guesses of the flood wait, and after them the till.
        guesses = [
            asyncio.ensure_future(get(guesser, wrong(org, "made.up." + secrets.token_hex(4))))
            for guesser in flood for _ in range(2)
        ]
        await until(lambda: len(budget.failing) == 4)
        till_client = caller(app, STORE_NAT)
        till = asyncio.ensure_future(get(till_client, org.basic()))
        await until(lambda: len(budget.queue) == 1)
        clock.advance(1)
        budget.wake()
        assert (await till).status_code == ADMITTED
        assert not any(g.done() for g in guesses)
        for _ in range(4):
            clock.advance(1)
            budget.wake()
        assert [r.status_code for r in await asyncio.gather(*guesses)] == [401] * 4
        for client in (*flood, till_client):
            await client.aclose()


async def test_a_network_that_has_been_failing_holds_all_slow_hash_slots_but_one(settings, make_org, monkeypatch):
    """However slowly a flood's hashes run (at the lowest priority, on a busy machine), one slot
    stays free for a caller from elsewhere."""
    org = await make_org()
    newcomer = org.till(1)
    async with guarded_app(
        settings, auth_hash_concurrency=2, auth_unverified_hashes_per_second=0, auth_failures_per_address=100
    ) as app, caller(app, GUESSER) as guesser, caller(app, STORE_NAT) as till:
        assert (await get(guesser, wrong(org, "made.up." + secrets.token_hex(4)))).status_code == 401
        gate, real = threading.Event(), guard_module.verify_secret
        good = hashlib.md5(org.passwords[newcomer].encode()).hexdigest()

        def held(stored_hash: str, secret: str) -> bool:
            if secret != good:
                gate.wait(10)
            return real(stored_hash, secret)

        monkeypatch.setattr(guard_module, "verify_secret", held)
        hashes = guard_of(app).hashes
        guesses = [asyncio.ensure_future(get(guesser, wrong(org, "made.up." + secrets.token_hex(4)))) for _ in range(3)]
        try:
            await until(lambda: hashes.busy == 1)
            assert (await asyncio.wait_for(get(till, org.basic(newcomer)), 10)).status_code == ADMITTED
            assert hashes.busy == 1
        finally:
            gate.set()
        assert [r.status_code for r in await asyncio.gather(*guesses)] == [401] * 3


# 7. Trust in a verified till or API client survives a restart (issue #29, item 2).


async def test_a_till_verified_before_a_restart_gets_in_after_it_without_a_slow_hash(settings, org, hashes):
    async with guarded_app(settings) as before, caller(before, STORE_NAT) as till:
        assert (await get(till, org.basic())).status_code == ADMITTED
    assert len(hashes) == 1
    hashes.clear()
    async with guarded_app(settings) as after, caller(after, STORE_NAT) as till:
        assert (await get(till, org.basic())).status_code == ADMITTED
        # A wrong password is checked as ever: the digest vouches for the right one only.
        assert (await get(till, wrong(org))).status_code == 401
    assert len(hashes) == 1


async def test_an_api_client_verified_before_a_restart_gets_a_token_after_it_without_a_slow_hash(settings, org, hashes):
    client = org.file.api_clients[0]
    body = {"key": client.key, "secret": client.secret}
    async with guarded_app(settings) as before, caller(before, STORE_NAT) as backend:
        assert (await backend.post(TOKEN, json=body)).status_code == 200
    hashes.clear()
    async with guarded_app(settings) as after, caller(after, STORE_NAT) as backend:
        assert (await backend.post(TOKEN, json=body)).status_code == 200
    assert hashes == []


async def test_a_new_till_password_in_the_org_file_voids_the_trust_kept_for_the_old_one(settings, make_org, app, hashes):
    org = await make_org()
    async with guarded_app(settings) as before, caller(before, STORE_NAT) as till:
        assert (await get(till, org.basic())).status_code == ADMITTED
    document = org.file.model_dump(mode="json")
    document["stores"][0]["tills"][0]["password"] = "Rotated42"
    await apply_org(app.state.services.engine, parse_org_document(document))
    hashes.clear()
    async with guarded_app(settings) as after, caller(after, STORE_NAT) as till:
        assert (await get(till, org.basic())).status_code == 401
        assert (await get(till, org.basic(password="Rotated42"))).status_code == ADMITTED
    assert len(hashes) == 2
    hashes.clear()
    async with guarded_app(settings) as again, caller(again, STORE_NAT) as till:
        assert (await get(till, org.basic(password="Rotated42"))).status_code == ADMITTED
    assert hashes == []


async def test_a_disabled_till_is_refused_whatever_trust_was_kept_for_it(settings, make_org, app):
    org = await make_org()
    removed = org.till(1)
    async with guarded_app(settings) as before, caller(before, STORE_NAT) as till:
        assert (await get(till, org.basic(removed))).status_code == ADMITTED
    document = org.file.model_dump(mode="json")
    for store in document["stores"]:
        store["tills"] = [t for t in store["tills"] if t["code"] != removed]
    await apply_org(app.state.services.engine, parse_org_document(document))
    async with guarded_app(settings) as after, caller(after, STORE_NAT) as till:
        assert (await get(till, org.basic(removed))).status_code == 401


async def test_no_trust_is_kept_without_a_secret_key(settings, org, hashes):
    for _ in range(2):
        async with guarded_app(settings, secret_key="") as app, caller(app, STORE_NAT) as till:
            assert (await get(till, org.basic())).status_code == ADMITTED
    assert len(hashes) == 2
