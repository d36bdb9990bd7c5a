"""The Python client, sync and async, against the in-process app, as a till and as an API client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import jwt
import pytest

from conftest import SECRET_KEY, new_mobile
from patron.api.codec import error_document
from patron.api.errors import ApiError
from patron.api.gateway import INVALID_CLIENT
from patron.client import AddResult, AsyncPatronClient, GetResult, PatronClient, PatronError, password_md5
from patron.codes import ITEM_ERRORS, MESSAGES, REGISTERED, UPDATED, WARNINGS, Code

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
        patron._protocol.token = expired  # the client still believes in it; Patron answers 498
        assert (await patron.add({"mobile": new_mobile()})).all_succeeded
        assert patron._protocol.token != expired


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
