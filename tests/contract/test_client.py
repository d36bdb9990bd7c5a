"""The Python client, sync and async, against the in-process app, as a till and as an API client.

The operations past add and get run through both clients alike (the `both` fixture): each is one
flow in patron.client, which each client runs on its own httpx client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import httpx
import jwt
import pytest

from support.api import SECRET_KEY, new_mobile
from patron.api.codec import error_document
from patron.api.gateway import INVALID_CLIENT
from patron.client import (
    AddResult,
    AsyncPatronClient,
    GetResult,
    IdentityResult,
    PatronClient,
    PatronError,
    SearchResult,
    UpdateResult,
    password_md5,
)
from patron.codes import IDENTITY_CHANGE_TAKEN, ITEM_ERRORS, MESSAGES, REGISTERED, UPDATED, USER_UPDATED, WARNINGS, Code
from patron.errors import ApiError
from test_event_feed import positioned

BASE_URL = "http://patron.test"
API_CLIENT_SECRET = "backend-secret-123"
T = TypeVar("T")


def as_till(app: Any, org: Any, till: str | None = None, **credentials: str) -> AsyncPatronClient:
    till = till or org.till()
    credentials = credentials or {"password": org.passwords[till]}
    return AsyncPatronClient(BASE_URL, till=till, transport=httpx.ASGITransport(app=app), **credentials)


def as_api_client(app: Any, org: Any, secret: str = API_CLIENT_SECRET, **more: Any) -> AsyncPatronClient:
    key = org.file.api_clients[0].key
    return AsyncPatronClient(BASE_URL, api_key=key, api_secret=secret, transport=httpx.ASGITransport(app=app), **more)


class BlockingASGITransport(httpx.BaseTransport):
    """Lets the blocking client reach the app that runs on the test's event loop, from another thread."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def forward() -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return asyncio.run_coroutine_threadsafe(forward(), self.loop).result(timeout=30)


async def off_the_loop(work: Callable[[], T]) -> T:
    return await asyncio.to_thread(work)


async def test_a_till_registers_a_batch_and_reads_it_back(app, org):
    mobile = new_mobile()
    async with as_till(app, org) as patron:
        added = await patron.add(
            [{"mobile": mobile, "firstname": "Asha", "custom_fields": {"field": [{"name": "nope", "value": 1}]}}, {"mobile": "12"}]
        )
        assert isinstance(added, AddResult)
        assert (added.code, added.message, added.success) == (Code.PARTIAL_SUCCESS, MESSAGES[Code.PARTIAL_SUCCESS], True)
        assert (added.total, added.success_count) == (2, 1)
        registered, refused = added.items
        assert registered.success and registered.status.code == Code.ITEM_OK
        assert registered.status.warnings == (Code.INVALID_CUSTOM_FIELD,)
        assert registered.status.message == f"{REGISTERED}, {WARNINGS[Code.INVALID_CUSTOM_FIELD]}"
        assert registered.mobile == mobile and registered.raw["firstname"] == "Asha"
        assert not refused.success and refused.status.code == Code.INVALID_MOBILE
        assert refused.status.message == ITEM_ERRORS[Code.INVALID_MOBILE] and refused.user_id is None
        assert added.request_id

        again = await patron.add({"mobile": mobile, "lastname": "Rao"})
        assert again.all_succeeded and again.items[0].status.message == UPDATED

        got = await patron.get(mobile=[mobile, new_mobile()])
        assert isinstance(got, GetResult) and got.code == Code.PARTIAL_SUCCESS
        found, missing = got.items
        assert found.user_id == registered.user_id and found.raw["lastname"] == "Rao"
        assert missing.status.code == Code.CUSTOMER_NOT_FOUND
        assert (await patron.get(id=registered.user_id)).items[0].mobile == mobile


async def test_the_md5_of_the_password_works_like_the_password(app, org):
    till = org.till()
    async with as_till(app, org, till, password_md5=password_md5(org.passwords[till]).upper()) as patron:
        assert (await patron.add({"mobile": new_mobile()})).all_succeeded


async def test_an_api_client_fetches_a_token_and_reads_audits(app, org):
    admin = org.till_named("till.admin." + str(org.id))
    async with as_api_client(app, org, attribution_till=admin) as patron:
        added = await patron.add({"mobile": new_mobile()}, headers={"USER-CONTEXT-ENTITY-ID": "emp-7"})
        user_id = added.items[0].user_id
        records = await patron.audits(user_id)
    (record,) = records
    assert record.request_id == added.request_id and record.till == admin
    assert record.api_client == org.file.api_clients[0].key
    assert record.user_context["entityId"] == "emp-7"
    assert any(event.event_type == "CREATE" and event.field == "mobile" for event in record.events)


async def test_an_expired_token_is_renewed_and_the_call_retried_once(app, org):
    async with as_api_client(app, org) as patron:
        assert (await patron.add({"mobile": new_mobile()})).all_succeeded
        now = int(time.time())
        claims = {"iss": "patron", "sub": org.file.api_clients[0].key, "org": org.id, "iat": now - 90, "exp": now - 30}
        expired = jwt.encode(claims, SECRET_KEY, algorithm="HS256")
        patron._session.token = expired  # the client still believes in it; Patron answers 498
        assert (await patron.add({"mobile": new_mobile()})).all_succeeded
        assert patron._session.token != expired


async def test_wrong_credentials_raise_patron_error_with_code_and_message(app, org):
    async with as_till(app, org, password="wrong") as patron:
        with pytest.raises(PatronError) as refused:
            await patron.add({"mobile": new_mobile()})
    assert (refused.value.code, refused.value.http_status) == (Code.AUTHENTICATION_FAILED, 401)
    assert refused.value.message == MESSAGES[Code.AUTHENTICATION_FAILED]

    async with as_api_client(app, org, secret="not-the-secret") as patron:
        with pytest.raises(PatronError) as refused:
            await patron.get(mobile=new_mobile())
    assert (refused.value.code, refused.value.http_status) == (INVALID_CLIENT, 401)


async def test_a_denied_or_malformed_request_raises_patron_error(app, org):
    readonly = org.till_named("till.readonly." + str(org.id))
    async with as_till(app, org, readonly) as patron:
        with pytest.raises(PatronError) as denied:
            await patron.add({"mobile": new_mobile()})
        assert (denied.value.code, denied.value.message) == (Code.ACCESS_DENIED, MESSAGES[Code.ACCESS_DENIED])
        with pytest.raises(PatronError) as invalid:
            await patron.get(mobile=new_mobile(), user_id="maybe")
        assert invalid.value.code == Code.INVALID_INPUT and invalid.value.detail
        with pytest.raises(PatronError) as denied:
            await patron.audits(1)
        assert denied.value.code == Code.ACCESS_DENIED


async def test_the_blocking_client_works_as_a_till_and_as_an_api_client(app, org):
    transport = BlockingASGITransport(app, asyncio.get_running_loop())
    till = org.till()
    mobile = new_mobile()

    def as_till_blocking() -> GetResult:
        with PatronClient(BASE_URL, till=till, password=org.passwords[till], transport=transport) as patron:
            assert patron.add([{"mobile": mobile}], mlp_single_enroll=True).all_succeeded
            return patron.get(mobile=mobile)

    got = await off_the_loop(as_till_blocking)
    assert got.items[0].mobile == mobile

    def as_api_client_blocking() -> list:
        key = org.file.api_clients[0].key
        with PatronClient(BASE_URL, api_key=key, api_secret=API_CLIENT_SECRET, transport=transport) as patron:
            return patron.audits(got.items[0].user_id)

    assert len(await off_the_loop(as_api_client_blocking)) == 1


def test_unavailable_database_is_a_patron_error_503():
    def answer(request: httpx.Request) -> httpx.Response:
        document = error_document(ApiError(Code.SERVICE_UNAVAILABLE))
        return httpx.Response(503, json=document, headers={"X-Cap-Requestid": "r-1"})

    with PatronClient(BASE_URL, till="t", password="p", transport=httpx.MockTransport(answer)) as patron:
        with pytest.raises(PatronError) as unavailable:
            patron.add({"mobile": new_mobile()})
    assert (unavailable.value.code, unavailable.value.request_id) == (Code.SERVICE_UNAVAILABLE, "r-1")
    assert unavailable.value.message == MESSAGES[Code.SERVICE_UNAVAILABLE]


def test_a_client_needs_one_kind_of_credentials_and_one_lookup():
    with pytest.raises(ValueError):
        PatronClient(BASE_URL)
    with pytest.raises(ValueError):
        PatronClient(BASE_URL, till="t", password="p", api_key="k", api_secret="s")
    with pytest.raises(ValueError):
        PatronClient(BASE_URL, till="t", password_md5="not-hex")
    with PatronClient(BASE_URL, till="t", password="p") as patron, pytest.raises(ValueError):
        patron.get(mobile="1", email="a@b.example")


# --- update, update_identity, search and the event feed, through both clients ------------------


class Either:
    """A client of one kind, as a till of the org; `await patron.call("update", ...)` runs the
    operation on the test's loop (async) or from a thread of its own (blocking)."""

    def __init__(self, kind: str, app: Any, org: Any, till: str) -> None:
        self.kind = kind
        if kind == "async":
            self.client: Any = AsyncPatronClient(
                BASE_URL, till=till, password=org.passwords[till], transport=httpx.ASGITransport(app=app)
            )
        else:
            transport = BlockingASGITransport(app, asyncio.get_running_loop())
            self.client = PatronClient(BASE_URL, till=till, password=org.passwords[till], transport=transport)

    async def call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.client, operation)
        if self.kind == "async":
            return await method(*args, **kwargs)
        return await off_the_loop(lambda: method(*args, **kwargs))

    async def close(self) -> None:
        if self.kind == "async":
            await self.client.aclose()
        else:
            self.client.close()


@pytest.fixture(params=["async", "sync"])
async def both(request: pytest.FixtureRequest, app: Any) -> AsyncIterator[Callable[..., Either]]:
    """Opens clients of one kind, then of the other: each test using it runs once per kind."""
    opened: list[Either] = []

    def open_as(org: Any, till: str | None = None) -> Either:
        opened.append(Either(request.param, app, org, till or org.till()))
        return opened[-1]

    yield open_as
    for either in opened:
        await either.close()


def a_name() -> str:
    """A first name no other test's customer has: letters only, as names must be."""
    return "Zq" + "".join(chr(ord("a") + int(digit)) for digit in str(uuid.uuid4().int)[:12])


async def test_update_changes_one_customer_and_never_registers_one(both, org):
    patron = both(org)
    mobile = new_mobile()
    registered = (await patron.call("add", {"mobile": mobile, "firstname": "Asha"})).items[0]

    updated = await patron.call("update", {"mobile": mobile, "lastname": "Rao"}, headers={"USER-CONTEXT-ENTITY-ID": "emp-7"})
    assert isinstance(updated, UpdateResult) and updated.all_succeeded
    (customer,) = updated.items
    assert customer.user_id == registered.user_id and customer.status.message == USER_UPDATED
    assert (customer.raw["firstname"], customer.raw["lastname"]) == ("Asha", "Rao")

    nobody = await patron.call("update", {"mobile": new_mobile(), "lastname": "Rao"})
    assert nobody.code == Code.ALL_FAILED and nobody.items[0].status.code == Code.CUSTOMER_NOT_FOUND
    assert (await patron.call("get", mobile=nobody.items[0].mobile)).items[0].status.code == Code.CUSTOMER_NOT_FOUND


async def test_update_identity_asks_for_a_change_that_waits_for_review(both, org):
    patron = both(org)
    mobile, wanted = new_mobile(), new_mobile()
    registered = (await patron.call("add", {"mobile": mobile})).items[0]

    asked = await patron.call("update_identity", {"identifier": "mobile", "old_value": mobile, "new_value": wanted})
    assert isinstance(asked, IdentityResult) and asked.success
    (change,) = asked.items
    assert change.waiting_for_review and not change.updated
    assert change.status.message == IDENTITY_CHANGE_TAKEN
    assert (change.user_id, change.identifier, change.old_value, change.new_value) == (registered.user_id, "mobile", mobile, wanted)

    unknown = await patron.call("update_identity", [{"identifier": "mobile", "old_value": new_mobile(), "new_value": wanted}])
    assert not unknown.items[0].success and unknown.items[0].status.code == Code.CUSTOMER_NOT_FOUND


async def test_search_finds_customers_a_page_at_a_time(both, org):
    patron = both(org)
    name = a_name()
    await patron.call("add", [{"mobile": new_mobile(), "firstname": name} for _ in range(3)])

    first = await patron.call("search", f"firstname:EQUALS:{name}", rows=2)
    assert isinstance(first, SearchResult)
    assert (first.count, first.count_capped, first.start, first.rows, first.next_start) == (3, False, 0, 2, 2)
    assert [found.firstname for found in first.customers] == [name, name]
    last = await patron.call("search", [f"firstname:EQUALS:{name}", "type:EQUALS:LOYALTY"], start=first.next_start, rows=2)
    assert (len(last.customers), last.next_start) == (1, None)
    found = {customer.user_id for customer in (*first.customers, *last.customers)}
    got = await patron.call("get", id=sorted(found))
    assert {item.raw["firstname"] for item in got.items} == {name} and len(found) == 3

    with pytest.raises(PatronError) as refused:
        await patron.call("search", "nickname:EQUALS:x")
    assert refused.value.code == Code.INVALID_INPUT and "nickname" in (refused.value.detail or "")


async def test_the_event_feed_is_read_a_page_at_a_time_after_a_cursor(both, app, make_org):
    org = await make_org("feed")
    till, reader = both(org), both(org, org.till_named("till.crm." + str(org.id)))
    added = await till.call("add", [{"mobile": new_mobile()}, {"mobile": new_mobile()}])
    await positioned(app, org)

    first = await reader.call("events", limit=1)
    assert len(first.events) == 1 and first.request_id
    rest = await reader.call("events", after=first.next)
    events = (*first.events, *rest.events)
    # A customer registered writes customerAdded, then its enrolment's event: in order, per customer.
    assert {event.customer_id for event in events} == {item.user_id for item in added.items}
    assert all(event.org_id == org.id and event.api_request_id == added.request_id for event in events)
    assert events[0].name == "customerAdded" and events[0].sequence == 1
    assert len({event.event_id for event in events}) == len(events)
    empty = await reader.call("events", after=rest.next)
    assert (empty.events, empty.next) == ((), rest.next)

    with pytest.raises(PatronError) as denied:
        await till.call("events")
    assert (denied.value.code, denied.value.http_status) == (Code.ACCESS_DENIED, 403)
    with pytest.raises(PatronError) as refused:
        await reader.call("events", after="not-a-cursor")
    assert refused.value.code == Code.INVALID_INPUT and "cursor" in (refused.value.detail or "")


def test_both_clients_send_the_same_requests_for_every_operation():
    """One flow per operation: whatever a blocking client sends, the async one sends too."""
    answers = {
        "/v1.1/customer/search": {"response": {"status": {"success": "true", "code": 200, "message": "m"},
                                               "customer": {"count": 0, "count_capped": False, "start": 0, "rows": 5,
                                                            "results": {"item": []}}}},
        "/v1.1/events": {"events": [], "next": "MS4w"},
        "/api_gateway/v2/audits": {"data": [], "errors": None},
    }
    batch = {"response": {"status": {"success": "true", "code": 200, "message": "m", "total": 0, "success_count": 0},
                          "customers": {"customer": []}}}

    def recorder(sent: list[tuple[str, str, str, bytes]]) -> Callable[[httpx.Request], httpx.Response]:
        def answer(request: httpx.Request) -> httpx.Response:
            sent.append((request.method, str(request.url), request.headers.get("Authorization", ""), request.content))
            return httpx.Response(200, json=answers.get(request.url.path, batch))
        return answer

    operations: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("add", ([{"mobile": "919800000001"}],), {"mlp_single_enroll": True}),
        ("get", (), {"email": ["a@example.com", "b@example.com"]}),
        ("update", ({"email": "a@example.com", "lastname": "Rao"},), {"headers": {"USER-CONTEXT-ENTITY-ID": "e"}}),
        ("update_identity", ({"identifier": "email", "old_value": "a@example.com", "new_value": "c@example.com"},), {}),
        ("search", (["firstname:EQUALS:asha", "type:EQUALS:LOYALTY"],), {"start": 5, "rows": 5}),
        ("events", (), {"after": "MS4w", "limit": 10}),
        ("audits", (7,), {}),
    ]
    blocking_sent: list[tuple[str, str, str, bytes]] = []
    async_sent: list[tuple[str, str, str, bytes]] = []
    with PatronClient(BASE_URL, till="t", password="p", transport=httpx.MockTransport(recorder(blocking_sent))) as patron:
        for name, args, kwargs in operations:
            getattr(patron, name)(*args, **kwargs)

    async def run_async() -> None:
        transport = httpx.MockTransport(recorder(async_sent))
        async with AsyncPatronClient(BASE_URL, till="t", password="p", transport=transport) as patron:
            for name, args, kwargs in operations:
                await getattr(patron, name)(*args, **kwargs)

    asyncio.run(run_async())
    assert len(blocking_sent) == len(operations) and blocking_sent == async_sent
    assert "q=firstname%3AEQUALS%3Aasha%26type%3AEQUALS%3ALOYALTY" in blocking_sent[4][1]


def test_each_operation_shows_its_parameters_and_docstring_on_both_clients():
    import inspect

    with PatronClient(BASE_URL, till="t", password="p") as blocking:
        asynchronous = AsyncPatronClient(BASE_URL, till="t", password="p")
        for name in ("add", "get", "update", "update_identity", "search", "events", "audits"):
            shown = inspect.signature(getattr(blocking, name))
            assert "session" not in shown.parameters, name
            assert shown == inspect.signature(getattr(asynchronous, name)), name
            assert getattr(blocking, name).__doc__ and getattr(blocking, name).__name__ == name
        assert list(inspect.signature(blocking.search).parameters) == ["q", "start", "rows"]
