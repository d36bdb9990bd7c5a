"""The foundation, through HTTP: a customer is added and read back; envelopes, orgs and access."""

from __future__ import annotations

import time

import jwt
import orjson
from sqlalchemy import text

from support.api import SECRET_KEY, item, new_mobile
from patron.codes import MESSAGES, Code


async def test_a_registered_customer_is_read_back_with_every_field(org):
    mobile = new_mobile()
    sent = {
        "mobile": mobile,
        "email": f"asha.{mobile}@example.com",
        "external_id": f"ext-{mobile}",
        "firstname": "Asha",
        "lastname": "Rao",
        "updated_on": "2025-05-29 09:10:00",
        "registered_on": "2024-07-29 11:11:11",
        "type": "loyalty",
        "source": "WEB_ENGAGE",
        "accountId": "123456",
        "fraud_status": {"status": "normal"},
        "registered_till": org.till_named("till.two." + str(org.id)),
        "associated_with": org.till_named("till.two." + str(org.id)),
        "commChannels": [{"type": "mobile", "value": mobile, "primary": "true", "verified": "false", "meta": {"residence": "true"}}],
        "subscriptions": {"subscription": [{"channel": "sms", "priority": "TRANS", "scope": "all", "is_subscribed": 1}]},
        "custom_fields": {"field": [{"name": "city_name", "value": "Bangalore"}, {"name": "pwgConsumption", "value": 2.5}]},
        "extended_fields": {"field": [{"name": "gender", "value": "F"}, {"name": "age_group", "value": "26-40"}]},
    }
    added = await org.add(sent)
    assert added.status_code == 200, added.text
    created = item(added)
    assert created["item_status"] == {
        "success": "true", "code": "1000", "message": "Customer registration successful", "warnings": {"warning": []},
    }

    got = item(await org.get(mobile=mobile))
    assert got["user_id"] == created["user_id"]
    assert (got["mobile"], got["email"], got["external_id"]) == (mobile, sent["email"], sent["external_id"])
    assert (got["firstname"], got["lastname"], got["type"], got["source"]) == ("Asha", "Rao", "LOYALTY", "web_engage")
    assert got["registered_on"] == "2024-07-29 11:11:11"
    assert got["updated_on"] == "2025-05-29 09:10:00"
    assert got["fraud_status"] == "NORMAL" and got["fraud_details"] == {"status": "NORMAL"}
    assert got["registered_till"]["code"] == sent["registered_till"]
    assert got["registered_store"] == {"code": "store.one", "name": "Store One"}
    assert got["associated_with"] == sent["associated_with"]
    assert got["custom_fields"]["field"] == [
        {"name": "City_name", "value": "Bangalore"}, {"name": "pwgConsumption", "value": "2.5"},
    ]
    assert got["extended_fields"]["field"] == [
        {"name": "gender", "value": "Female"}, {"name": "age_group", "value": "26-40"},
    ]
    assert got["subscriptions"]["subscription"] == [
        {"channel": "sms", "priority": "TRANS", "scope": "all", "is_subscribed": "1"}
    ]
    assert got["commChannels"] == [
        {"type": "mobile", "value": mobile, "primary": "true", "verified": "false", "meta": {"residence": "true"}}
    ]
    assert {"type": "mobile", "value": mobile} in got["identifiers"]
    assert got["item_status"]["message"] == "Customer successfully retrieved"


async def test_every_response_carries_a_request_id(org, http):
    responses = [await org.add({"mobile": new_mobile()}), await org.get(mobile=new_mobile()), await http.get("/nowhere")]
    ids = [response.headers["X-Cap-Requestid"] for response in responses]
    assert all(ids) and len(set(ids)) == len(ids)


async def test_unknown_path_is_404_in_the_envelope(http):
    response = await http.get("/v1.1/customer/nothing")
    assert response.status_code == 404
    assert response.json()["response"]["status"] == {"success": "false", "code": 404, "message": MESSAGES[Code.NOT_FOUND]}


async def test_wrong_method_is_405_in_the_envelope(http):
    response = await http.delete("/v1.1/customer/add")
    assert response.status_code == 405
    assert response.json()["response"]["status"]["message"] == MESSAGES[Code.METHOD_NOT_ALLOWED]


async def test_two_orgs_cannot_see_each_others_customers(make_org):
    first, second = await make_org(), await make_org()
    mobile = new_mobile()
    in_first = item(await first.add({"mobile": mobile, "firstname": "First"}))
    assert item(await second.get(mobile=mobile))["item_status"]["code"] == "1012"
    assert item(await second.get(id=in_first["user_id"]))["item_status"]["code"] == "1012"

    in_second = item(await second.add({"mobile": mobile, "firstname": "Second"}))
    assert in_second["item_status"]["message"] == "Customer registration successful"
    assert in_second["user_id"] != in_first["user_id"]
    assert item(await first.get(mobile=mobile))["firstname"] == "First"


async def test_a_read_only_till_gets_403_on_add_and_may_get(org):
    readonly = org.till_named("till.readonly." + str(org.id))
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    denied = await org.add({"mobile": new_mobile()}, till=readonly)
    assert denied.status_code == 403
    assert denied.json()["response"]["status"] == {"success": "false", "code": 403, "message": MESSAGES[Code.ACCESS_DENIED]}
    assert item(await org.get(till=readonly, mobile=mobile))["mobile"] == mobile


async def test_wrong_or_missing_credentials_are_401_with_one_message(org, http):
    answers = [
        await http.post("/v1.1/customer/add", content=b"{}"),
        await http.post("/v1.1/customer/add", content=b"{}", headers=org.basic(password="wrong")),
        await http.post("/v1.1/customer/add", content=b"{}", headers={"Authorization": "Basic bm9ib2R5OmFiYw=="}),
        await http.post("/v1.1/customer/add", content=b"{}", headers={"Authorization": "Basic !!!"}),
        await http.post("/v1.1/customer/add", content=b"{}", headers={"Authorization": "Bearer x"}),
    ]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.json()["response"]["status"]["message"] == MESSAGES[Code.AUTHENTICATION_FAILED]


async def test_the_md5_of_the_password_may_come_in_upper_case(org):
    headers = org.basic()
    import base64

    till, md5 = base64.b64decode(headers["Authorization"][6:]).decode().split(":")
    upper = {"Authorization": "Basic " + base64.b64encode(f"{till}:{md5.upper()}".encode()).decode()}
    response = await org.http.get("/v1.1/customer/get", params={"mobile": new_mobile()}, headers=upper)
    assert response.status_code == 500  # authenticated; the customer simply does not exist
    assert item(response)["item_status"]["code"] == "1012"


async def _token(org, http, secret="backend-secret-123"):
    key = org.file.api_clients[0].key
    return await http.post("/v3/oauth/token/generate", json={"key": key, "secret": secret})


async def test_an_api_client_registers_with_an_oauth_token(org, http):
    issued = await _token(org, http)
    assert issued.status_code == 200
    data = issued.json()
    assert data["errors"] is None and data["data"]["ttlSeconds"] == 3600
    mobile = new_mobile()
    response = await http.post(
        "/v1.1/customer/add",
        json={"root": {"customer": {"mobile": mobile}}},
        headers={"X-CAP-API-OAUTH-TOKEN": data["data"]["accessToken"]},
    )
    assert response.status_code == 200, response.text
    got = item(await org.get(mobile=mobile))
    assert got["registered_till"]["code"] == org.file.api_clients[0].default_till


async def test_a_wrong_client_secret_gets_320001(org, http):
    response = await _token(org, http, secret="not-the-secret")
    assert response.status_code == 401
    assert response.json() == {"data": None, "errors": [{"code": 320001, "message": "Invalid client key and secret"}]}


async def test_an_expired_token_is_498(org, http):
    now = int(time.time())
    claims = {"iss": "patron", "sub": org.file.api_clients[0].key, "org": org.id, "iat": now - 7200, "exp": now - 3600}
    token = jwt.encode(claims, SECRET_KEY, algorithm="HS256")
    response = await http.get("/v1.1/customer/get", params={"mobile": new_mobile()}, headers={"X-CAP-API-OAUTH-TOKEN": token})
    assert response.status_code == 498
    assert response.json()["response"]["status"]["message"] == MESSAGES[Code.TOKEN_EXPIRED]


async def test_a_forged_token_is_401(org, http):
    now = int(time.time())
    claims = {"iss": "patron", "sub": org.file.api_clients[0].key, "org": org.id, "iat": now, "exp": now + 60}
    token = jwt.encode(claims, "another-key-another-key-another-key!", algorithm="HS256")
    response = await http.get("/v1.1/customer/get", params={"mobile": new_mobile()}, headers={"X-CAP-API-OAUTH-TOKEN": token})
    assert response.status_code == 401


async def test_attribution_to_a_till_of_the_same_org(org, http):
    token = (await _token(org, http)).json()["data"]["accessToken"]
    till_two = org.till(1)
    mobile = new_mobile()
    headers = {
        "X-CAP-API-OAUTH-TOKEN": token,
        "X-CAP-API-ATTRIBUTION-ENTITY-TYPE": "TILL",
        "X-CAP-API-ATTRIBUTION-ENTITY-CODE": till_two,
    }
    response = await http.post("/v1.1/customer/add", json={"root": {"customer": [{"mobile": mobile}]}}, headers=headers)
    assert response.status_code == 200
    assert item(await org.get(mobile=mobile))["registered_till"]["code"] == till_two

    legacy = {"X-CAP-API-OAUTH-TOKEN": token, "X-CAP-API-ATTRIBUTION-TILL-CODE": till_two}
    mobile = new_mobile()
    await http.post("/v1.1/customer/add", json={"root": {"customer": [{"mobile": mobile}]}}, headers=legacy)
    assert item(await org.get(mobile=mobile))["registered_till"]["code"] == till_two


async def test_attribution_to_a_till_of_another_org_is_400(make_org, http):
    mine, theirs = await make_org(), await make_org()
    token = (await _token(mine, http)).json()["data"]["accessToken"]
    headers = {
        "X-CAP-API-OAUTH-TOKEN": token,
        "X-CAP-API-ATTRIBUTION-ENTITY-TYPE": "TILL",
        "X-CAP-API-ATTRIBUTION-ENTITY-CODE": theirs.till(),
    }
    response = await http.post("/v1.1/customer/add", json={"root": {"customer": [{"mobile": new_mobile()}]}}, headers=headers)
    assert response.status_code == 400
    assert response.json()["response"]["status"]["code"] == 400


async def test_audit_records_carry_the_user_context_headers(org, http):
    mobile = new_mobile()
    context = {
        "USER-CONTEXT-ENTITY-TYPE": "STAFF",
        "USER-CONTEXT-ENTITY-ID": "emp-42",
        "USER-CONTEXT-ENTITY-SOURCE": "MEMBER_CARE",
        "USER-CONTEXT-ENTITY-SOURCE-ID": "ticket 7",
    }
    created = await org.add({"mobile": mobile, "firstname": "Old"}, headers=context)
    user_id = item(created)["user_id"]
    updated = await org.add({"mobile": mobile, "firstname": "New"})

    admin = org.till_named("till.admin." + str(org.id))
    response = await http.get(
        "/api_gateway/v2/audits",
        params={"entityType": "CUSTOMER", "entityId": user_id, "includeUserContext": "true"},
        headers=org.basic(admin),
    )
    assert response.status_code == 200, response.text
    newest, oldest = response.json()["data"]
    assert newest["requestId"] == updated.headers["X-Cap-Requestid"]
    assert oldest["requestId"] == created.headers["X-Cap-Requestid"]
    assert oldest["userContextDetails"] == {
        "entityType": "STAFF", "entityId": "emp-42", "entitySource": "MEMBER_CARE", "entitySourceId": "ticket 7",
    }
    assert oldest["till"] == org.till() and oldest["updatedByMode"] == "API"
    assert {"eventType": "CREATE", "updatedField": "mobile", "additionalFields": {"previousValue": None, "currentValue": mobile}} in oldest["events"]
    assert {"eventType": "UPDATE", "updatedField": "firstname", "additionalFields": {"previousValue": "Old", "currentValue": "New"}} in newest["events"]


async def test_audit_records_keep_the_warning_codes_the_item_was_answered_with(org, app):
    from patron.customers.audit import audit_trail

    warned, clean = new_mobile(), new_mobile()
    unknown_field = {"custom_fields": {"field": [{"name": "no_such_field", "value": "x"}]}}
    # Two new customers go through the statement that writes a batch's new customers together.
    added = await org.add({"mobile": warned, "email": "not an email", **unknown_field}, {"mobile": clean})
    assert [code for code in item(added)["item_status"]["warnings"]["warning"]] == ["1002", "1017"]
    # An update is written on its own (with a change: one that changes nothing writes no record).
    updated = await org.add({"mobile": clean, "firstname": "Asha", **unknown_field})
    storage = app.state.services.storage

    [created] = await audit_trail(org.id, item(added)["user_id"], storage)
    assert created.warnings == (1002, 1017)
    newest, first = await audit_trail(org.id, item(updated)["user_id"], storage)
    assert (newest.event_type, newest.warnings) == ("UPDATE", (1017,))
    assert (first.event_type, first.warnings) == ("CREATE", ())

    # Records without warnings hold SQL NULL, whichever path wrote them: the console's index of
    # warned records leaves them out.
    await org.add({"mobile": clean, "lastname": "Rao"})
    async with org.engine.connect() as conn:
        unwarned = await conn.scalar(
            text("SELECT count(*) FROM customer_audits WHERE org_id = :org AND customer_id = :id AND warnings IS NULL"),
            {"org": org.id, "id": item(updated)["user_id"]},
        )
    assert unwarned == 2


async def test_reading_audits_needs_audit_read(org, http):
    user_id = item(await org.add({"mobile": new_mobile()}))["user_id"]
    response = await http.get("/api_gateway/v2/audits", params={"entityId": user_id}, headers=org.basic())
    assert response.status_code == 403


async def test_health_and_ready(http):
    assert (await http.get("/health")).status_code == 200
    ready = await http.get("/ready")
    assert ready.status_code == 200 and ready.json()["data"]["status"] == "ready"


async def test_a_body_over_the_limit_is_413(org):
    huge = {"mobile": new_mobile(), "firstname": "x" * (70 * 1024)}
    response = await org.add(huge)
    assert response.status_code == 413
    assert response.json()["response"]["status"]["message"] == MESSAGES[Code.BODY_TOO_LARGE]


async def test_the_seeds_malformed_sample_is_400_naming_the_position(org, http):
    body = b'{\n    "root": {\n        "customer": [\n            {\n                "external_id": "123445901"\n                "registered_on": "2024-07-29 11:11:11"\n            }\n        ]\n    }\n}'
    response = await http.post("/v1.1/customer/add", content=body, headers={"Content-Type": "application/json", **org.basic()})
    assert response.status_code == 400
    status = response.json()["response"]["status"]
    assert status["message"] == MESSAGES[Code.INVALID_INPUT]
    assert "line 6" in status["detail"] and "column" in status["detail"]


async def test_another_media_type_is_415(org, http):
    response = await http.post("/v1.1/customer/add", content=b"mobile=1", headers={"Content-Type": "text/plain", **org.basic()})
    assert response.status_code == 415


async def test_an_xml_request_gets_an_xml_answer(org, http):
    mobile = new_mobile()
    body = f"<root><customer><mobile>{mobile}</mobile><firstname>Ravi</firstname></customer></root>".encode()
    response = await http.post("/v1.1/customer/add", content=body, headers={"Content-Type": "application/xml", **org.basic()})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert f"<mobile>{mobile}</mobile>" in response.text and "<code>1000</code>" in response.text
    assert item(await org.get(mobile=mobile))["firstname"] == "Ravi"


async def test_body_without_root_customer_is_400(org, http):
    response = await http.post("/v1.1/customer/add", content=orjson.dumps({"customer": {}}), headers=org.basic())
    assert response.status_code == 400
