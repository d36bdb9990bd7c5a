"""Items past BATCH_LIMIT fail with 1060 up to ten times the limit; a request with more is refused
whole with 400 while it is parsed, so that its answer (and the server's memory) stays small."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from support.envelope import answer

from support.api import item, new_mobile
from patron.codes import Code


@pytest.fixture
async def small_batches(make_org: Any) -> Any:
    return await make_org(BATCH_LIMIT=3)


async def add_json(client: Any, org: Any, customers: list[Any]) -> Any:
    headers = {"Content-Type": "application/json", **org.basic()}
    return await client.post("/v1.1/customer/add", content=orjson.dumps({"root": {"customer": customers}}), headers=headers)


async def add_xml(client: Any, org: Any, customers: list[str]) -> Any:
    body = "<root>" + "".join(f"<customer><mobile>{m}</mobile></customer>" for m in customers) + "</root>"
    headers = {"Content-Type": "application/xml", **org.basic()}
    return await client.post("/v1.1/customer/add", content=body.encode(), headers=headers)


async def test_items_past_the_batch_limit_fail_with_1060_up_to_ten_times_the_limit(client, small_batches):
    mobiles = [new_mobile() for _ in range(30)]
    response = await add_json(client, small_batches, [{"mobile": m} for m in mobiles])
    status = answer(response)
    assert (status["total"], status["success_count"]) == ("30", "3")
    codes = [entry["item_status"]["code"] for entry in response.json()["response"]["customers"]["customer"]]
    assert codes == ["1000"] * 3 + [str(int(Code.BATCH_LIMIT_EXCEEDED))] * 27


@pytest.mark.parametrize("xml", [False, True], ids=["json", "xml"])
async def test_more_than_ten_times_the_batch_limit_is_refused_whole_with_400(client, small_batches, xml):
    mobiles = [new_mobile() for _ in range(31)]
    if xml:
        response = await add_xml(client, small_batches, mobiles)
    else:
        response = await add_json(client, small_batches, [{"mobile": m} for m in mobiles])
    status = answer(response)
    assert status["code"] == Code.INVALID_INPUT
    assert status["detail"] == "more than 30 items in one request: send at most BATCH_LIMIT items at a time"
    assert item(await small_batches.get(mobile=mobiles[0]))["item_status"]["code"] == str(int(Code.CUSTOMER_NOT_FOUND))


@pytest.mark.parametrize("xml", [False, True], ids=["json", "xml"])
async def test_a_body_of_thousands_of_empty_items_gets_a_short_answer(client, org, xml):
    """The report's attack, within the test server's 64 KiB body limit: 16,000 items."""
    if xml:
        body = b"<root>" + b"<customer/>" * 5_000 + b"</root>"
        headers = {"Content-Type": "application/xml", **org.basic()}
    else:
        body = b'{"root":{"customer":[' + b",".join([b"{}"] * 16_000) + b"]}}"
        headers = {"Content-Type": "application/json", **org.basic()}
    response = await client.post("/v1.1/customer/add", content=body, headers=headers)
    assert answer(response)["code"] == Code.INVALID_INPUT
    assert len(response.content) < 1_000


async def test_a_json_body_with_more_values_than_its_items_can_hold_is_refused_before_it_is_parsed(
    client, small_batches, monkeypatch
):
    from patron.api import codec

    parsed: list[int] = []
    loads = codec.orjson.loads
    mobile = new_mobile()
    crammed = {"mobile": mobile, "custom_fields": {"field": [{}] * (codec.OBJECTS_PER_ITEM * 30 + 1)}}

    def counting_loads(text: Any) -> Any:
        # orjson is the whole process's: only the bodies of this test are counted.
        if len(text) > 2_000:
            parsed.append(len(text))
        return loads(text)

    monkeypatch.setattr(codec.orjson, "loads", counting_loads)
    status = answer(await add_json(client, small_batches, [crammed]))
    assert status["code"] == Code.INVALID_INPUT and "more values than 30 items can" in status["detail"]
    assert parsed == []
    # Thirty items of twenty named fields each are far inside the bounds.
    full = [{"mobile": new_mobile(), "custom_fields": {"field": [{"name": f"f{n}", "value": "v"} for n in range(20)]}}
            for _ in range(30)]
    response = await add_json(client, small_batches, full)
    assert answer(response)["total"] == "30" and parsed
