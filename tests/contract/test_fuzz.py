"""Property-based fuzzing of add and get: whatever the body or query string, the answer is the
envelope, never a traceback, and no 5xx but a batch whose every item failed (500) or 503."""

from __future__ import annotations

import os
import string
from typing import Any

import orjson
from support.envelope import answer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Each test's examples run against one org of its own; the examples share it (and its customers,
# so that later examples also take the update path).
# In CI the examples are the same on every run, so that a submission is judged on its own change;
# on a developer's machine they differ from run to run, to keep finding new cases.
FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# JSON values of every shape, as a client could send them.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16,
)
xml_names = st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True)
# NUL in a channel's meta is a known bug on PostgreSQL (tests/contract/test_hostile.py,
# test_nul_in_comm_channel_meta_is_refused_not_a_database_error); left out here so that the fuzzer
# looks for new ones.
no_nul_text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)
meta_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | no_nul_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(xml_names, inner, max_size=3),
    max_leaves=8,
)


def either(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value the field could take, or anything at all."""
    return st.one_of(plausible, json_values)


# A failed item echoes its identifiers as sent, and an object among them whose keys XML cannot name
# breaks the XML answer: a known bug (tests/contract/test_hostile.py,
# test_a_failed_item_echoing_an_object_answers_well_formed_xml); left out here so that the fuzzer
# looks for new ones.
echoable_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(xml_names, inner, max_size=4), max_leaves=16
)


def either_echoed(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An identifier the field could take, or anything a failed item can echo."""
    return st.one_of(plausible, echoable_values)


mobiles = st.integers(0, 99_999).map(lambda n: f"91980000{n:05d}"[:12]) | st.from_regex(r"\+?[0-9 ()\-]{0,20}", fullmatch=True)
emails = st.from_regex(r"[a-z0-9._+-]{1,12}@[a-z0-9-]{1,10}\.[a-z]{2,4}", fullmatch=True)
words = st.text(alphabet=string.ascii_letters + " -'.<>&\"", max_size=30)
moments = st.sampled_from(["2024-07-29 11:11:11", "2024-07-29", "2024/07/29", "2999-01-01", "1900-01-01", "2024-02-30", "now"])
named_fields = st.lists(
    st.fixed_dictionaries({"name": either(st.sampled_from(["City_name", "pwgConsumption", "gender", "dob", "age", "city", "age_group", "x"])),
                           "value": json_values}),
    max_size=4,
)
channels = st.lists(
    st.fixed_dictionaries(
        {"type": either(st.sampled_from(["mobile", "email"])), "value": either(words)},
        optional={"primary": json_values, "verified": json_values, "meta": meta_values},
    ),
    max_size=3,
)
subscriptions = st.lists(
    st.fixed_dictionaries(
        {"channel": either(st.sampled_from(["sms", "email"])), "priority": either(st.sampled_from(["TRANS", "BULK"])),
         "scope": json_values, "is_subscribed": json_values},
    ),
    max_size=3,
)

ITEM_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "mobile": either_echoed(mobiles),
    "email": either_echoed(emails),
    "external_id": either_echoed(st.text(alphabet=string.ascii_letters + string.digits + "-_ ", max_size=20)),
    "firstname": either(words),
    "lastname": either(words),
    "registered_on": either(moments),
    "updated_on": either(moments),
    "type": either(st.sampled_from(["loyalty", "NON_LOYALTY", "other"])),
    "source": either(st.sampled_from(["instore", "WEBSITE", "nowhere"])),
    "accountId": json_values,
    "fraud_status": either(st.sampled_from(["NONE", "fraud", {"status": "normal"}, "Fraus_Suspected"])),
    "registered_till": json_values,
    "associated_with": json_values,
    "referral_code": json_values,
    "commChannels": either(channels),
    "subscriptions": either(st.fixed_dictionaries({"subscription": subscriptions}) | subscriptions),
    "custom_fields": either(st.fixed_dictionaries({"field": named_fields}) | named_fields),
    "extended_fields": either(st.fixed_dictionaries({"field": named_fields}) | named_fields),
}
items = st.fixed_dictionaries({}, optional=ITEM_FIELDS) | json_values
bodies = st.one_of(
    st.fixed_dictionaries({"root": st.fixed_dictionaries({"customer": items | st.lists(items, min_size=1, max_size=3)})}),
    st.fixed_dictionaries({"root": json_values}),
    json_values,
)


@settings(FUZZ, max_examples=1000)
@given(body=bodies, xml_answer=st.booleans())
async def test_add_answers_every_body_in_the_envelope(client, org, body, xml_answer):
    headers = {"Content-Type": "application/json", **org.basic()}
    if xml_answer:
        headers["Accept"] = "application/xml"
    response = await client.post("/v1.1/customer/add", content=orjson.dumps(body), headers=headers)
    answer(response)


def _trips_the_isdigit_bug(value: str) -> bool:
    """Digits str.isdigit() accepts and int() refuses ('²'): a known bug of get and audits
    (tests/contract/test_hostile.py, test_an_id_of_digits_int_cannot_read_finds_nobody); left out here so
    that the fuzzer looks for new ones."""
    return any(part.strip().isdigit() and not part.strip().isdecimal() for part in value.split(","))


query_values = (
    st.text(max_size=30)
    | mobiles
    | emails
    | st.integers(-(10**20), 10**20).map(str)
    | st.lists(st.integers(0, 10**6).map(str), min_size=1, max_size=4).map(",".join)
).filter(lambda value: not _trips_the_isdigit_bug(value))
query_keys = st.sampled_from(["mobile", "email", "external_id", "id", "format", "user_id"]) | st.text(max_size=8)
queries = st.lists(st.tuples(query_keys, query_values), max_size=5)


@settings(FUZZ, max_examples=700)
@given(query=queries)
async def test_get_answers_every_query_string_in_the_envelope(client, org, query):
    response = await client.get("/v1.1/customer/get", params=query, headers=org.basic())
    answer(response)


add_query_keys = st.sampled_from(["format", "mlp_single_enroll", "user_id"]) | st.text(max_size=8)


@settings(FUZZ, max_examples=300)
@given(query=st.lists(st.tuples(add_query_keys, query_values), max_size=4), body=bodies)
async def test_add_answers_every_query_string_in_the_envelope(client, org, query, body):
    response = await client.post(
        "/v1.1/customer/add", params=query, content=orjson.dumps(body), headers={"Content-Type": "application/json", **org.basic()}
    )
    answer(response)
