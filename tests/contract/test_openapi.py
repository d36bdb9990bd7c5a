"""The OpenAPI document: valid 3.1, complete, and true to what Patron actually answers."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import Mount, Route

from support.api import Org, item, new_mobile
from support.orgs import org_document
from patron.api import xml
from patron.api.openapi import DOCS_ASSETS, DOCUMENT, samples
from patron.codes import ITEM_ERRORS, MESSAGES, REGISTERED, RETRIEVED, UPDATED, WARNINGS, Code
from patron.customers.reading import read_item
from patron.orgs.apply import apply_org
from patron.orgs.file import parse_org_document

DOCUMENT_URI = "urn:patron:openapi"
FORMAT_SUFFIXES = (".json", ".xml")
IGNORED_METHODS = {"HEAD"}


def _registry() -> Registry:
    resource = Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
    return Registry().with_resource(DOCUMENT_URI, resource)


def documented_schema(path: str, method: str, status: int, media: str = "application/json") -> dict[str, Any]:
    response = DOCUMENT["paths"][path][method]["responses"][str(status)]
    return response["content"][media]["schema"]


def assert_matches(document: Any, schema: dict[str, Any]) -> None:
    # References in the document are local ("#/components/..."): resolve them against the document.
    validator = Draft202012Validator(_rebase(schema), registry=_registry())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def _rebase(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            key: (DOCUMENT_URI + value if key == "$ref" and value.startswith("#") else _rebase(value))
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase(value) for value in schema]
    return schema


def assert_documented_answer(response: httpx.Response, path: str, method: str) -> None:
    assert str(response.status_code) in DOCUMENT["paths"][path][method]["responses"], response.status_code
    assert_matches(response.json(), documented_schema(path, method, response.status_code))


async def test_the_served_document_is_valid_openapi_3_1(http):
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    served = response.json()
    assert served["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(served).validate()
    assert served == orjson.loads(orjson.dumps(DOCUMENT))


async def test_the_docs_page_is_served_by_patron_and_loads_the_document(http):
    response = await http.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "openapi.json" in response.text and "swagger-ui" in response.text


def _served_operations(app: Any) -> set[tuple[str, str]]:
    served = set()
    for route in app.routes:
        if isinstance(route, Mount) and route.path == DOCS_ASSETS:
            continue  # the files of the /docs page, not operations of the API
        if isinstance(route, Mount) and route.path == "/console":
            continue  # the member-care console's pages, for people, not operations of the API
        assert isinstance(route, Route), f"{route!r}: only plain routes are expected"
        for method in route.methods - IGNORED_METHODS:
            served.add((route.path, method.lower()))
    return served


def _documented_path(path: str) -> str:
    """A suffixed format variant is documented under its plain path, with a note."""
    if path in DOCUMENT["paths"]:
        return path
    for suffix in FORMAT_SUFFIXES:
        if path.endswith(suffix):
            return path.removesuffix(suffix)
    return path


async def test_every_route_the_app_serves_is_documented(app):
    for path, method in _served_operations(app):
        documented = _documented_path(path)
        assert documented in DOCUMENT["paths"], f"{path} is served but not documented"
        assert method in DOCUMENT["paths"][documented], f"{method.upper()} {path} is served but not documented"
        if documented != path:
            assert path in DOCUMENT["paths"][documented][method]["description"], f"{path} is not mentioned"


async def test_every_documented_operation_is_served(app):
    served = {(_documented_path(path), method) for path, method in _served_operations(app)}
    for path, operations in DOCUMENT["paths"].items():
        for method in operations:
            assert (path, method) in served, f"{method.upper()} {path} is documented but not served"


def test_every_code_and_message_of_patron_codes_is_in_the_document():
    text = orjson.dumps(DOCUMENT).decode()
    for code in Code:
        assert str(int(code)) in text, code
    request_status = DOCUMENT["components"]["schemas"]["RequestStatus"]["properties"]
    assert request_status["code"]["enum"] == [int(code) for code in MESSAGES]
    assert request_status["message"]["enum"] == list(MESSAGES.values())
    item_status = DOCUMENT["components"]["schemas"]["ItemStatus"]["properties"]
    assert set(item_status["code"]["enum"]) == {str(int(code)) for code in (Code.ITEM_OK, *ITEM_ERRORS)}
    warnings = DOCUMENT["components"]["schemas"]["Warnings"]["properties"]
    assert item_status["warnings"] == {"$ref": "#/components/schemas/Warnings"}
    assert set(warnings["warning"]["items"]["enum"]) == {str(int(c)) for c in WARNINGS}
    description = DOCUMENT["info"]["description"]
    for message in [*MESSAGES.values(), *ITEM_ERRORS.values(), *WARNINGS.values(), REGISTERED, UPDATED, RETRIEVED]:
        assert message in description, message


def _examples(document: dict[str, Any]):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json", {})
                examples = [e["value"] for e in content.get("examples", {}).values()]
                if "example" in content:
                    examples.append(content["example"])
                for example in examples:
                    yield path, method, status, content["schema"], example


@pytest.mark.parametrize("case", list(_examples(DOCUMENT)), ids=lambda case: f"{case[1]} {case[0]} {case[2]}")
def test_every_documented_response_example_fits_its_schema(case):
    path, method, status, schema, example = case
    assert_matches(example, schema)


async def test_a_real_add_response_fits_the_documented_schema(make_org):
    org = await make_org("seedlike")
    referrer = item(await org.add({"mobile": new_mobile(), "firstname": "Ravi"}))
    referral_code = item(await org.get(id=referrer["user_id"]))["referral_code"]
    mobile = new_mobile()
    # The document's sample request, with identifiers no other test holds and the referrer's real code.
    sent = {
        **samples.ASHA_ITEM,
        "mobile": mobile,
        "email": f"asha.{mobile}@example.com",
        "external_id": f"ACME-{mobile}",
        "referral_code": referral_code,
        "fraud_status": {"status": "Fraus_Suspected"},
    }
    registered = await org.add(sent, {"mobile": "12345"})
    assert registered.status_code == 201, registered.text
    assert item(registered)["side_effects"]["effect"], "the referral should show two side effects"
    assert_documented_answer(registered, "/v1.1/customer/add", "post")

    updated = await org.add({"mobile": mobile, "lastname": "Rao"})
    assert updated.status_code == 200
    assert_documented_answer(updated, "/v1.1/customer/add", "post")

    failed = await org.add({"firstname": "Nobody"})
    assert failed.status_code == 500
    assert_documented_answer(failed, "/v1.1/customer/add", "post")


async def test_real_get_responses_fit_the_documented_schema(org):
    mobile = new_mobile()
    await org.add({"mobile": mobile, "commChannels": [{"type": "email", "value": "a@b.example"}]})
    both = await org.get(mobile=f"{mobile},{new_mobile()}")
    assert both.status_code == 201
    assert_documented_answer(both, "/v1.1/customer/get", "get")
    missing = await org.get(email="nobody@example.com")
    assert missing.status_code == 500
    assert_documented_answer(missing, "/v1.1/customer/get", "get")


async def test_request_level_failures_fit_the_documented_schema(org, http):
    unauthenticated = await http.post("/v1.1/customer/add", content=b"{}")
    assert_documented_answer(unauthenticated, "/v1.1/customer/add", "post")
    malformed = await http.post("/v1.1/customer/add", content=b"{", headers=org.basic())
    assert_documented_answer(malformed, "/v1.1/customer/add", "post")
    ambiguous = await org.get(mobile=new_mobile(), email="a@b.example")
    assert_documented_answer(ambiguous, "/v1.1/customer/get", "get")


async def test_gateway_answers_fit_the_documented_schema(org, http):
    client = org.file.api_clients[0]
    refused = await http.post("/v3/oauth/token/generate", json={"key": client.key, "secret": "wrong-secret"})
    assert_documented_answer(refused, "/v3/oauth/token/generate", "post")
    issued = await http.post("/v3/oauth/token/generate", json={"key": client.key, "secret": "backend-secret-123"})
    assert_documented_answer(issued, "/v3/oauth/token/generate", "post")

    user_id = item(await org.add({"mobile": new_mobile()}, headers={"USER-CONTEXT-ENTITY-ID": "emp-1"}))["user_id"]
    token = {"X-CAP-API-OAUTH-TOKEN": issued.json()["data"]["accessToken"]}
    params = {"entityType": "CUSTOMER", "entityId": user_id, "includeUserContext": "true"}
    audits = await http.get("/api_gateway/v2/audits", params=params, headers=token)
    assert audits.status_code == 200 and audits.json()["data"]
    assert_documented_answer(audits, "/api_gateway/v2/audits", "get")
    denied = await http.get("/api_gateway/v2/audits", params=params, headers=org.basic())
    assert_documented_answer(denied, "/api_gateway/v2/audits", "get")

    for probe in ("/health", "/ready"):
        assert_documented_answer(await http.get(probe), probe, "get")


# --- the examples are what Patron answers for the sample requests --------------------------------

# What differs between two runs of the same request: ids Patron assigns, and the dates of the day.
VARYING = {"user_id", "customer_id", "registered_on", "updated_on", "tier_expiry_date", "slabExpiryDate", "referral_code"}


def _steady(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: "…" if key in VARYING else _steady(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_steady(child) for child in value]
    return value


@pytest.fixture
async def sample_org(http, app) -> Org:
    """The document's sample org, applied under a fresh id (drawn as the test orgs draw theirs)."""
    document = copy.deepcopy(samples.ORG_DOCUMENT)
    document["org"]["id"] = org_document("plain")["org"]["id"]
    till = document["stores"][0]["tills"][0]
    till.update(code=f"{till['code']}.{document['org']['id']}", password="Pass123")
    org_file = parse_org_document(document)
    await apply_org(app.state.services.engine, org_file)
    return Org(http, org_file, {till["code"]: "Pass123"}, app.state.services.engine)


def _documented_item(path: str, method: str, status: int, name: str) -> dict[str, Any]:
    content = DOCUMENT["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
    return content["examples"][name]["value"]["response"]["customers"]["customer"][0]


async def test_the_documented_registration_is_what_patron_answers_for_the_sample_request(sample_org):
    ravi = item(await sample_org.add({"mobile": "919812340001"}))
    code = item(await sample_org.get(id=ravi["user_id"]))["referral_code"]
    registered = await sample_org.add({**samples.ASHA_ITEM, "referral_code": code.lower()})
    assert registered.status_code == 200, registered.text
    documented = _documented_item("/v1.1/customer/add", "post", 200, "withMobileAndEmail")
    assert _steady(item(registered)) == _steady(documented)

    found = await sample_org.get(mobile=samples.ASHA.mobile)
    documented = _documented_item("/v1.1/customer/get", "get", 200, "found")
    answered = item(found)
    assert answered["registered_till"]["code"] == sample_org.till()
    answered["registered_till"]["code"] = answered["associated_with"] = samples.TILL
    assert _steady(answered) == _steady(documented)


def test_the_xml_request_example_reads_as_the_json_one():
    body = DOCUMENT["paths"]["/v1.1/customer/add"]["post"]["requestBody"]["content"]
    as_xml = xml.parse(body["application/xml"]["example"].encode())["root"]["customer"]
    as_json = body["application/json"]["examples"]["withMobileAndEmail"]["value"]["root"]["customer"][0]
    read = [read_item(sent, samples.ORG, samples.TILL, samples.REGISTERED_AT) for sent in (as_xml, as_json)]
    assert read[0] == read[1]
