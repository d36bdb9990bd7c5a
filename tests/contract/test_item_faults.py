"""One item can never lose a batch: values at the ends of every date, time and number field are
answered with their documented codes, and a fault of Patron's while reading, planning or writing
an item fails that item alone (1099), logged with the request id, the others processed as usual."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from support.envelope import answer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.api import item, new_mobile
from patron.codes import Code

EXTREMES = settings(
    deadline=None,
    database=None,
    derandomize=True,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def fields_org(make_org: Any) -> Any:
    return await make_org("fields")


async def add(client: Any, org: Any, *customers: dict[str, Any], xml: bool = False) -> Any:
    if xml:
        body = "<root>" + "".join(_xml_customer(c) for c in customers) + "</root>"
        headers = {"Content-Type": "application/xml", **org.basic()}
        return await client.post("/v1.1/customer/add", content=body.encode(), headers=headers)
    headers = {"Content-Type": "application/json", **org.basic()}
    body = orjson.dumps({"root": {"customer": list(customers)}})
    return await client.post("/v1.1/customer/add", content=body, headers=headers)


def _xml_customer(customer: dict[str, Any]) -> str:
    parts = []
    for key, value in customer.items():
        if key in ("custom_fields", "extended_fields"):
            fields = "".join(f"<field><name>{f['name']}</name><value>{f['value']}</value></field>" for f in value["field"])
            parts.append(f"<{key}>{fields}</{key}>")
        else:
            parts.append(f"<{key}>{value}</{key}>")
    return "<customer>" + "".join(parts) + "</customer>"


def codes(response: Any) -> list[str]:
    answer(response)
    return [entry["item_status"]["code"] for entry in _items(response)]


def _items(response: Any) -> list[dict[str, Any]]:
    if response.headers["content-type"].startswith("application/xml"):
        from xml.etree.ElementTree import fromstring

        return [
            {"item_status": {"code": c.findtext("item_status/code")}, "mobile": c.findtext("mobile")}
            for c in fromstring(response.content).iter("customer")
        ]
    return response.json()["response"]["customers"]["customer"]


async def stored(org: Any, mobile: str) -> dict[str, Any] | None:
    response = await org.get(mobile=mobile)
    found = item(response)
    return found if found["item_status"]["code"] == "1000" else None


# Out-of-range dates: the report's very requests.

OUT_OF_RANGE = [
    ("updated_on", "9999-12-31T23:59:59Z", Code.ITEM_OK),
    ("updated_on", "0001-01-01", Code.ITEM_OK),
    ("registered_on", "0001-01-01", Code.REGISTRATION_DATE_OUT_OF_RANGE),
    ("registered_on", "9999-12-31T23:59:59Z", Code.REGISTRATION_DATE_OUT_OF_RANGE),
]


@pytest.mark.parametrize("xml", [False, True], ids=["json", "xml"])
@pytest.mark.parametrize(("field", "value", "code"), OUT_OF_RANGE)
async def test_an_out_of_range_date_is_answered_for_its_item_and_the_batch_is_written(
    client, org, field, value, code, xml
):
    first, second = new_mobile(), new_mobile()
    response = await add(client, org, {"mobile": first}, {"mobile": second, field: value}, xml=xml)
    assert codes(response) == ["1000", str(int(code))]
    assert await stored(org, first) is not None
    assert (await stored(org, second) is not None) == (code == Code.ITEM_OK)


async def test_an_updated_on_off_the_calendar_is_warning_1024_and_now(client, org):
    mobile = new_mobile()
    response = await add(client, org, {"mobile": mobile, "updated_on": "9999-12-31T23:59:59Z"})
    answer(response)
    assert item(response)["item_status"]["warnings"]["warning"] == [str(int(Code.INVALID_FIELD_VALUE))]
    assert item(response)["updated_on"].startswith(str(datetime.now(timezone.utc).year))


# Every date, time and number field through its extremes, on both databases, in JSON and XML.

instants = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))
offsets = st.sampled_from(["", "Z", "+14:00", "-12:00", "+05:30"])
spellings = st.sampled_from(["%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y/%m/%d", "iso"])


@st.composite
def moments(draw: Any) -> str:
    moment, spelling, offset = draw(instants), draw(spellings), draw(offsets)
    if spelling == "iso":
        return moment.strftime("%Y-%m-%dT%H:%M:%S").zfill(19) + offset
    # strftime does not pad years before 1000 on every platform.
    return f"{moment.year:04d}" + moment.strftime(spelling)[len(str(moment.year)):]


# Integers past 64 bits cannot be JSON numbers a client's encoder writes: they come as text.
numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=2**64, max_value=2**200).map(str),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**64 - 1, str(10**250), str(-(10**249))]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1e308", "1e309", "-1e309", "NaN", "inf", "-0", "0x10", "1_000", "٣", "²"]),
)


@st.composite
def extreme_items(draw: Any) -> dict[str, Any]:
    customer: dict[str, Any] = {"mobile": new_mobile()}
    for field in draw(st.sets(st.sampled_from(["registered_on", "updated_on"]))):
        customer[field] = draw(moments())
    custom = [
        {"name": name, "value": draw(moments() if name in ("anniversary", "last_visit") else numbers)}
        for name in draw(st.sets(st.sampled_from(["anniversary", "last_visit", "visits", "pwgConsumption"]), min_size=1))
    ]
    extended = [
        {"name": name, "value": draw(moments() if name in ("dob", "wedding_date") else numbers)}
        for name in draw(st.sets(st.sampled_from(["dob", "wedding_date", "age", "shoe_size"])))
    ]
    customer["custom_fields"] = {"field": custom}
    if extended:
        customer["extended_fields"] = {"field": extended}
    return customer


@EXTREMES
@given(customer=extreme_items(), xml=st.booleans())
async def test_every_date_time_and_number_field_at_its_extremes_is_answered_without_losing_the_batch(
    client, fields_org, customer, xml
):
    companion = new_mobile()
    response = await add(client, fields_org, {"mobile": companion}, customer, xml=xml)
    first, second = codes(response)
    assert first == "1000"
    # A value is the caller's to get wrong, never Patron's: no item of these fails as a fault.
    assert second in ("1000", str(int(Code.REGISTRATION_DATE_OUT_OF_RANGE))), response.text
    assert await stored(fields_org, companion) is not None
    if second == "1000":
        back = await stored(fields_org, customer["mobile"])
        assert back is not None
        datetime.strptime(back["registered_on"], "%Y-%m-%d %H:%M:%S")
        datetime.strptime(back["updated_on"], "%Y-%m-%d %H:%M:%S")


async def test_a_registration_date_at_the_earliest_allowed_moment_registers(client, org):
    mobile = new_mobile()
    response = await add(client, org, {"mobile": mobile, "registered_on": "1995-01-01 00:00:00"})
    assert codes(response) == ["1000"]
    assert item(response)["registered_on"] == "1995-01-01 00:00:00"


async def test_a_registration_date_a_day_ahead_is_allowed_and_two_are_not(client, org):
    soon = (datetime.now(timezone.utc) + timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(timezone.utc) + timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = await add(client, org, {"mobile": new_mobile(), "registered_on": soon},
                         {"mobile": new_mobile(), "registered_on": later})
    assert codes(response) == ["1000", str(int(Code.REGISTRATION_DATE_OUT_OF_RANGE))]


# A fault of Patron's while reading, planning or writing one item fails that item alone.

FAULTY = "Faulty"


@pytest.fixture
def fault_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.ERROR, logger="patron.customers")
    return caplog


def _assert_fault_answered(response: Any, faulty_index: int, logs: pytest.LogCaptureFixture) -> None:
    answer(response)
    customers = _items(response)
    assert response.status_code == Code.PARTIAL_SUCCESS
    for index, entry in enumerate(customers):
        expected = str(int(Code.ITEM_NOT_PROCESSED)) if index == faulty_index else "1000"
        assert entry["item_status"]["code"] == expected, customers
    faulty = customers[faulty_index]
    assert faulty["item_status"]["success"] == "false"
    assert faulty["item_status"]["message"].startswith("Unable to register. This customer could not be processed")
    request_id = response.headers["x-cap-requestid"]
    assert any(request_id in record.getMessage() and record.exc_info for record in logs.records), logs.text


async def test_a_fault_while_reading_an_item_fails_that_item_alone_with_1099(client, org, monkeypatch, fault_logs):
    from patron.customers import registration

    read_item = registration.read_item

    def faulty_read(raw: Any, *args: Any, **kwargs: Any) -> Any:
        if raw.get("firstname") == FAULTY:
            raise ValueError("a fault of Patron's")
        return read_item(raw, *args, **kwargs)

    monkeypatch.setattr(registration, "read_item", faulty_read)
    mobiles = [new_mobile() for _ in range(3)]
    response = await add(client, org, {"mobile": mobiles[0]}, {"mobile": mobiles[1], "firstname": FAULTY},
                         {"mobile": mobiles[2]})
    _assert_fault_answered(response, 1, fault_logs)
    assert _items(response)[1]["mobile"] == mobiles[1]
    assert [await stored(org, m) is not None for m in mobiles] == [True, False, True]


async def test_a_fault_while_planning_a_new_customer_fails_that_item_alone_with_1099(
    client, org, monkeypatch, fault_logs
):
    from patron.customers import registration

    plan_new = registration._plan_new

    def faulty_plan(item: Any, *args: Any) -> Any:
        if item.firstname == FAULTY:
            raise OverflowError("date value out of range")
        return plan_new(item, *args)

    monkeypatch.setattr(registration, "_plan_new", faulty_plan)
    mobiles = [new_mobile() for _ in range(3)]
    response = await add(client, org, {"mobile": mobiles[0], "firstname": FAULTY}, {"mobile": mobiles[1]},
                         {"mobile": mobiles[2]})
    _assert_fault_answered(response, 0, fault_logs)
    assert [await stored(org, m) is not None for m in mobiles] == [False, True, True]


@pytest.fixture
def faulty_audits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing the audit record of a customer named FAULTY fails, as a serializer's fault would."""
    from patron.store import customers

    audit_changes = customers.audit_changes

    def faulty_audit(changes: Any) -> str:
        if any(change["current"] == FAULTY for change in changes):
            raise TypeError("Type is not JSON serializable: datetime")
        return audit_changes(changes)

    monkeypatch.setattr(customers, "audit_changes", faulty_audit)


async def test_a_fault_while_writing_one_item_fails_that_item_alone_and_writes_the_others(
    client, org, faulty_audits, fault_logs
):
    """The statement that writes a batch's new customers together fails as a whole on one faulty
    item: the items are then written one by one, and only the faulty one fails."""
    mobiles = [new_mobile() for _ in range(4)]
    response = await add(client, org, {"mobile": mobiles[0]}, {"mobile": mobiles[1]},
                         {"mobile": mobiles[2], "firstname": FAULTY}, {"mobile": mobiles[3]})
    _assert_fault_answered(response, 2, fault_logs)
    assert [await stored(org, m) is not None for m in mobiles] == [True, True, False, True]


async def test_a_fault_on_the_update_path_rolls_the_item_back_and_fails_it_alone(client, org, faulty_audits, fault_logs):
    mobile, other = new_mobile(), new_mobile()
    answer(await add(client, org, {"mobile": mobile, "firstname": "Asha"}))
    response = await add(client, org, {"mobile": other}, {"mobile": mobile, "firstname": FAULTY})
    _assert_fault_answered(response, 1, fault_logs)
    assert (await stored(org, mobile))["firstname"] == "Asha"
    assert await stored(org, other) is not None


async def test_a_database_outage_is_still_503_for_the_whole_request(client, org, app, monkeypatch):
    from patron.store.db import DatabaseUnavailable

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseUnavailable("connection refused")

    monkeypatch.setattr(app.state.services.storage, "insert_new", unavailable)
    response = await add(client, org, {"mobile": new_mobile()})
    assert response.status_code == Code.SERVICE_UNAVAILABLE
    assert answer(response)["code"] == Code.SERVICE_UNAVAILABLE
