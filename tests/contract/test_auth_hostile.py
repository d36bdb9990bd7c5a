"""Hostile authentication: broken Basic headers, forged, replayed and misattributed tokens, and
credentials withdrawn by the org file; every refusal in the envelope, none a 5xx."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import jwt
import pytest

from support.api import SECRET_KEY, item, new_mobile
from support.envelope import answer, wire
from patron.codes import MESSAGES, Code
from patron.orgs.apply import apply_org
from patron.orgs.file import parse_org_document

GET = "/v1.1/customer/get"
ADD = "/v1.1/customer/add"


def basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def md5(password: str) -> str:
    return hashlib.md5(password.encode()).hexdigest()


async def refused_as(client: Any, headers: dict[str, Any], code: Code = Code.AUTHENTICATION_FAILED) -> dict[str, Any]:
    response = await client.get(GET, params={"mobile": new_mobile()}, headers=headers)
    status = answer(response)
    assert response.status_code == code, response.text
    assert (status["success"], status["code"], status["message"]) == ("false", int(code), MESSAGES[code])
    if code != Code.INVALID_INPUT:
        assert "detail" not in status  # one answer, whatever was wrong
    return status


async def reapply(app: Any, document: dict[str, Any]) -> None:
    await apply_org(app.state.services.engine, parse_org_document(document))


async def token_of(client: Any, org: Any, index: int = 0) -> str:
    api_client = org.file.api_clients[index]
    response = await client.post("/v3/oauth/token/generate", json={"key": api_client.key, "secret": api_client.secret})
    assert response.status_code == 200, response.text
    return response.json()["data"]["accessToken"]


def claims_for(of: Any, **overrides: Any) -> dict[str, Any]:
    """The claims Patron signs for the first API client of the org `of`, with `overrides`."""
    now = int(time.time())
    claims = {"iss": "patron", "sub": of.file.api_clients[0].key, "org": of.id, "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def token_header(token: str) -> dict[str, str]:
    return {"X-CAP-API-OAUTH-TOKEN": token}


# Basic headers.


async def test_a_basic_header_without_a_colon_is_401(client, org):
    await refused_as(client, basic(f"{org.till()}{md5('Pass123')}".encode()))


async def test_a_basic_header_with_an_empty_till_code_is_401(client, org):
    await refused_as(client, basic(f":{md5('Pass123')}".encode()))


async def test_a_basic_header_with_an_empty_password_is_401(client, org):
    await refused_as(client, basic(f"{org.till()}:".encode()))


@pytest.mark.parametrize(
    "header",
    ["Basic", "Basic ", "Basic !!!!", "Basic abc", "Basic YWJj=", "Basic YW Jj", "Basic\tYWJjOmRlZg==", "Digest YWJjOmRlZg==", ""],
)
async def test_a_basic_header_that_is_not_base64_credentials_is_401(client, org, header):
    await refused_as(client, {"Authorization": header})


async def test_a_basic_header_that_is_not_utf8_is_401(client, org):
    await refused_as(client, basic(b"\xff\xfe\xfd:" + md5("Pass123").encode()))
    await refused_as(client, basic(org.till().encode() + b":\xff\xfe"))


async def test_a_basic_header_with_characters_beyond_ascii_is_401(client, org):
    await refused_as(client, {"Authorization": b"Basic \xe9\xff=="})


async def test_a_basic_header_naming_a_till_with_nul_is_401(client, org):
    await refused_as(client, basic(org.till().encode() + b"\x00:" + md5("Pass123").encode()))


async def test_a_missing_authorization_is_401(client, org):
    await refused_as(client, {})


async def test_every_basic_failure_gets_the_same_answer(client, org):
    bodies = set()
    for headers in (
        {},
        basic(b"nobody:" + md5("Pass123").encode()),
        org.basic(password="wrong"),
        basic(f"{org.till()}:{md5('Pass123')}x".encode()),
        {"Authorization": "Basic !!!!"},
    ):
        response = await client.get(GET, params={"mobile": "919800000000"}, headers=headers)
        assert response.status_code == 401
        bodies.add(response.content)
    assert len(bodies) == 1


async def test_an_unknown_a_disabled_and_a_wrongly_authenticated_till_each_cost_one_slow_hash(client, make_org, app, hashes):
    org = await make_org()
    removed = org.till(1)
    document = org.file.model_dump(mode="json")
    document["stores"][0]["tills"].pop(1)
    await reapply(app, document)
    for headers in (basic(b"nobody.at.all:" + md5("x").encode()), org.basic(removed), org.basic(password="wrong")):
        hashes.clear()
        await refused_as(client, headers)
        assert len(hashes) == 1, headers


# Tokens.


async def test_a_token_replayed_after_its_client_left_the_org_file_is_401(client, make_org, app):
    org = await make_org()
    token = await token_of(client, org)
    assert (await client.get(GET, params={"mobile": new_mobile()}, headers=token_header(token))).status_code == 500
    document = org.file.model_dump(mode="json")
    document["api_clients"] = []
    await reapply(app, document)
    await refused_as(client, token_header(token))
    renewed = await client.post("/v3/oauth/token/generate", json={"key": org.file.api_clients[0].key, "secret": org.file.api_clients[0].secret})
    assert renewed.status_code == 401


async def test_a_revoked_clients_token_stays_revoked_when_the_original_file_is_applied_again(client, make_org, app):
    org = await make_org()
    token = await token_of(client, org)
    original = org.file.model_dump(mode="json")
    without = {**original, "api_clients": []}
    await reapply(app, without)
    await refused_as(client, token_header(token))
    await reapply(app, original)
    await refused_as(client, token_header(token))
    # The client itself is back: a token issued now works.
    fresh = await token_of(client, org)
    assert (await client.get(GET, params={"mobile": new_mobile()}, headers=token_header(fresh))).status_code == 500


async def test_a_new_secret_revokes_the_tokens_issued_for_the_old_one(client, make_org, app):
    org = await make_org()
    token = await token_of(client, org)
    document = org.file.model_dump(mode="json")
    document["api_clients"][0]["secret"] = "a-brand-new-secret-456"
    await reapply(app, document)
    await refused_as(client, token_header(token))


async def test_applying_the_same_org_file_again_keeps_its_clients_tokens(client, make_org, app):
    org = await make_org()
    token = await token_of(client, org)
    await reapply(app, org.file.model_dump(mode="json"))
    assert (await client.get(GET, params={"mobile": new_mobile()}, headers=token_header(token))).status_code == 500


@pytest.mark.parametrize("header", ["X-CAP-API-ATTRIBUTION-ENTITY-CODE", "X-CAP-API-ATTRIBUTION-TILL-CODE"])
async def test_a_token_of_org_a_attributed_to_a_till_of_org_b_is_400_and_writes_nothing(client, make_org, header):
    mine, theirs = await make_org(), await make_org()
    token = await token_of(client, mine)
    headers = {**token_header(token), header: theirs.till()}
    if header.endswith("ENTITY-CODE"):
        headers["X-CAP-API-ATTRIBUTION-ENTITY-TYPE"] = "TILL"
    mobile = new_mobile()
    response = await client.post(ADD, json={"root": {"customer": [{"mobile": mobile}]}}, headers=headers)
    assert answer(response)["code"] == Code.INVALID_INPUT
    for org in (mine, theirs):
        assert item(await org.get(mobile=mobile))["item_status"]["code"] == str(int(Code.CUSTOMER_NOT_FOUND))


async def test_attribution_to_another_kind_of_entity_is_400(client, org):
    token = await token_of(client, org)
    headers = {**token_header(token), "X-CAP-API-ATTRIBUTION-ENTITY-TYPE": "STORE", "X-CAP-API-ATTRIBUTION-ENTITY-CODE": "store.one"}
    await refused_as(client, headers, Code.INVALID_INPUT)


async def test_a_token_signed_with_another_key_is_401(client, org):
    forged = jwt.encode(claims_for(org), "not-patrons-key-not-patrons-key-!!", algorithm="HS256")
    await refused_as(client, token_header(forged))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
async def test_a_token_in_another_algorithm_is_401_even_with_patrons_key(client, org, algorithm):
    await refused_as(client, token_header(jwt.encode(claims_for(org), SECRET_KEY, algorithm=algorithm)))


async def test_an_alg_none_token_is_401(client, org):
    unsigned = jwt.encode(claims_for(org), None, algorithm="none")
    assert unsigned.endswith(".")
    await refused_as(client, token_header(unsigned))
    # Nor with a signature tacked on, nor with the header's alg in another case.
    header = base64.urlsafe_b64encode(b'{"alg":"None","typ":"JWT"}').rstrip(b"=").decode()
    await refused_as(client, token_header(header + "." + unsigned.split(".")[1] + ".c2ln"))


async def test_an_expired_token_is_498_in_both_envelopes(client, org):
    expired = jwt.encode(claims_for(org, iat=int(time.time()) - 7200, exp=int(time.time()) - 1), SECRET_KEY, algorithm="HS256")
    await refused_as(client, token_header(expired), Code.TOKEN_EXPIRED)
    audits = await client.get("/api_gateway/v2/audits", params={"entityId": 1}, headers=token_header(expired))
    assert audits.status_code == 498
    assert answer(audits)["errors"] == [{"code": 498, "message": MESSAGES[Code.TOKEN_EXPIRED]}]


async def test_an_expired_token_with_a_bad_signature_is_401_not_498(client, org):
    stale = jwt.encode(claims_for(org, exp=int(time.time()) - 1), "not-patrons-key-not-patrons-key-!!", algorithm="HS256")
    await refused_as(client, token_header(stale))


@pytest.mark.parametrize("missing", ["exp", "sub", "org", "iss"])
async def test_a_token_without_a_required_claim_is_401(client, org, missing):
    claims = claims_for(org)
    del claims[missing]
    await refused_as(client, token_header(jwt.encode(claims, SECRET_KEY, algorithm="HS256")))


async def test_a_token_of_another_issuer_is_401(client, org):
    await refused_as(client, token_header(jwt.encode(claims_for(org, iss="someone-else"), SECRET_KEY, algorithm="HS256")))


async def test_a_token_naming_a_client_of_another_org_is_401(client, make_org):
    mine, theirs = await make_org(), await make_org()
    crossed = jwt.encode(claims_for(mine, org=theirs.id), SECRET_KEY, algorithm="HS256")
    await refused_as(client, token_header(crossed))


async def test_a_token_naming_an_org_that_does_not_exist_is_401(client, org):
    await refused_as(client, token_header(jwt.encode(claims_for(org, org=987_654_321_000), SECRET_KEY, algorithm="HS256")))


@pytest.mark.parametrize("token", ["", "a", "a.b", "a.b.c", "...", "Bearer x.y.z", "x" * 10_000])
async def test_a_malformed_token_is_401(client, org, token):
    await refused_as(client, token_header(token))


async def test_a_token_of_bytes_beyond_ascii_is_401(client, org):
    await refused_as(client, {"X-CAP-API-OAUTH-TOKEN": b"\xe9\xff.\x80.\xfe"})


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"null", b'"key"', b"{", b'{"key": 1, "secret": 2}', b'{"key": "a\\u0000", "secret": "b"}',
     b'{"key": {"$ne": null}, "secret": {"$ne": null}}', b'{"key": "' + b"k" * 10_000 + b'", "secret": "s"}'],
)
async def test_token_generation_refuses_broken_requests_in_its_envelope(client, org, body):
    response = await client.post("/v3/oauth/token/generate", content=body, headers={"Content-Type": "application/json"})
    document = answer(response)
    assert response.status_code in (400, 401), response.text
    assert document["data"] is None


# Credentials withdrawn or changed by the org file.


async def test_a_till_removed_from_the_file_is_refused_at_once_after_the_org_is_reapplied(client, make_org, app):
    org = await make_org()
    leaving = org.till(1)
    assert (await client.get(GET, params={"mobile": new_mobile()}, headers=org.basic(leaving))).status_code == 500
    document = org.file.model_dump(mode="json")
    document["stores"][0]["tills"] = [t for t in document["stores"][0]["tills"] if t["code"] != leaving]
    await reapply(app, document)
    await refused_as(client, org.basic(leaving))
    assert (await client.get(GET, params={"mobile": new_mobile()}, headers=org.basic(org.till(0)))).status_code == 500


async def test_a_till_password_change_takes_effect_at_once_in_either_form(client, make_org, app):
    org = await make_org()
    till = org.till(0)
    assert (await client.get(GET, params={"mobile": new_mobile()}, headers=org.basic(till))).status_code == 500
    document = org.file.model_dump(mode="json")
    entry = document["stores"][0]["tills"][0]
    entry.pop("password")
    entry["password_md5"] = md5("Rotated42").upper()
    await reapply(app, document)
    await refused_as(client, org.basic(till))
    assert (await client.get(GET, params={"mobile": new_mobile()}, headers=org.basic(till, "Rotated42"))).status_code == 500


async def test_a_till_moved_to_a_read_only_store_loses_write_at_once(client, make_org, app):
    org = await make_org()
    till = org.till(0)
    assert (await org.add({"mobile": new_mobile()}, till=till)).status_code == 200
    document = org.file.model_dump(mode="json")
    document["stores"][0]["access_group"] = "lookup"
    await reapply(app, document)
    response = await client.post(ADD, json={"root": {"customer": [{"mobile": new_mobile()}]}}, headers=org.basic(till))
    assert answer(response)["code"] == Code.ACCESS_DENIED


@pytest.mark.parametrize("org_claim", ["abc", "1", 1.5, [1], {"id": 1}, True, 0, -1, 2**70])
async def test_a_signed_token_whose_org_claim_is_not_an_org_id_is_401(client, org, org_claim):
    await refused_as(client, token_header(jwt.encode(claims_for(org, org=org_claim), SECRET_KEY, algorithm="HS256")))


@pytest.mark.parametrize("sub", [1, ["x"], {"a": 1}, ""])
async def test_a_signed_token_whose_subject_is_not_a_client_key_is_401(client, org, sub):
    claims = claims_for(org)
    claims["sub"] = sub
    await refused_as(client, token_header(jwt.encode(claims, SECRET_KEY, algorithm="HS256")))


async def test_a_server_without_a_secret_key_warns_at_start_and_token_generation_says_oauth_is_not_configured(
    settings, make_org, caplog
):
    """Not the 401 of a wrong secret: the right key and secret cannot help until the operator sets the key."""
    from asgi_lifespan import LifespanManager

    from patron.api.app import create_app
    from patron.api.gateway import OAUTH_NOT_CONFIGURED

    org = await make_org()
    client_of_org = org.file.api_clients[0]
    application = create_app(settings.model_copy(update={"secret_key": ""}))
    async with LifespanManager(application), wire(application) as client:
        response = await client.post(
            "/v3/oauth/token/generate", json={"key": client_of_org.key, "secret": client_of_org.secret}
        )
    assert response.status_code == 501
    assert response.json() == {"data": None, "errors": [{"code": 501, "message": OAUTH_NOT_CONFIGURED}]}
    assert any("PATRON_SECRET_KEY is not set" in record.getMessage() for record in caplog.records)

