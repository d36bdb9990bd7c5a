"""Reading an item's fields (spec customer-add.md §2, and §3's required identifiers), rule by rule,
over the reader (customers/reading.py read_item) in orgs read from the org files users write
(tests/orgs/). One HTTP sample of each section stays in tests/contract/test_registration.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from patron.codes import Code
from patron.customers.model import CustomerInput, ItemRejected
from patron.customers.reading import read_item
from patron.orgs.model import OrgSettings
from support.orgs import org_settings

# The reader's clock, in UTC as the service passes it; the test orgs' timezone is Asia/Kolkata.
NOW = datetime(2026, 12, 5, 10, 0)
MOBILE = "919812345678"
RETAIL = org_settings("retail")
FIELDS = org_settings("fields")
TILL = next(iter(RETAIL.tills))


def read(raw: Any, org: OrgSettings = RETAIL, **configs: Any) -> tuple[CustomerInput, list[Code]]:
    """The item as read, with its warnings' codes; configs override the org file's."""
    if configs:
        org = org_settings("fields" if org is FIELDS else "retail", **configs)
    item, warnings = read_item(raw, org, TILL, NOW)
    return item, warnings.codes


def refused(raw: Any, org: OrgSettings = RETAIL, **configs: Any) -> Code:
    """The code the item fails with."""
    with pytest.raises(ItemRejected) as rejected:
        read(raw, org, **configs)
    return rejected.value.code


def till_code(org: OrgSettings, suffix: str) -> str:
    return next(code for code in org.tills if code.startswith(suffix))


# ---------------------------------------------------------------- §2 mobile


@pytest.mark.parametrize(
    "form",
    ["+91 98123-45678", "(+91) 98123 45678", "+91-981-234-5678", "91 (98123) 45678", 919812345678],
    ids=["plus-space-dash", "bracketed-code", "dashes", "bracketed-national", "json-number"],
)
def test_a_mobile_in_any_written_form_is_stored_as_e164_digits(form):
    assert read({"mobile": form}) == (CustomerInput(mobile=MOBILE), [])


@pytest.mark.parametrize("mobile", ["971501234567", "447400123456", "+44 7400 123456"])
def test_a_mobile_of_a_supported_country_is_accepted(mobile):
    assert read({"mobile": mobile})[0].mobile == mobile.replace("+", "").replace(" ", "")


def test_a_mobile_of_another_country_is_1001():
    assert refused({"mobile": "14155552671"}) == Code.INVALID_MOBILE


def test_supported_countries_star_accepts_any_country():
    assert read({"mobile": "+1 415 555 2671"}, FIELDS)[0].mobile == "14155552671"


@pytest.mark.parametrize(
    "mobile",
    ["9198123", "91981234567890123", "91 98123 4567x", "abc", "0000000000", "910123456789", "9198123456789", True,
     {"n": 1}],
)
def test_invalid_primary_mobile_is_error_1001(mobile):
    assert refused({"mobile": mobile, "email": "someone@example.com"}) == Code.INVALID_MOBILE


def test_a_landline_is_not_a_mobile():
    assert refused({"mobile": "911123456789"}) == Code.INVALID_MOBILE


def test_a_national_number_without_country_code_is_1001_by_default():
    assert refused({"mobile": MOBILE[2:]}) == Code.INVALID_MOBILE


def test_conf_client_default_countrycode_passed_gives_a_national_number_the_base_country_code():
    assert read({"mobile": MOBILE[2:]}, CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED=True)[0].mobile == MOBILE
    assert read({"mobile": "+" + MOBILE}, CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED=True)[0].mobile == MOBILE


def test_invalid_secondary_mobile_is_dropped_with_warning_1001():
    item, warnings = read({"email": "asha@example.com", "mobile": "12345"}, CONF_REGISTRATION_PRIMARY_KEY="email")
    assert (item.mobile, item.email, warnings) == (None, "asha@example.com", [Code.INVALID_MOBILE])


# ---------------------------------------------------------------- §2 email


@pytest.mark.parametrize(
    "email",
    ["plain", "two@@example.com", "a@b", "a b@example.com", "ünï@example.com", "a!b@example.com",
     "a@example..com", "@example.com", "a@.com", "x" * 244 + "@example.com"],
)
def test_invalid_primary_email_is_error_1002(email):
    assert refused({"email": email, "mobile": MOBILE}, CONF_REGISTRATION_PRIMARY_KEY="email") == Code.INVALID_EMAIL


def test_invalid_secondary_email_is_dropped_with_warning_1002():
    item, warnings = read({"mobile": MOBILE, "email": "not-an-email"})
    assert (item.email, warnings) == (None, [Code.INVALID_EMAIL])


def test_an_email_with_every_allowed_character_is_accepted_lower_cased():
    email = "A.b-c_d+e9@Mail-1.Example.co.in"
    assert read({"mobile": MOBILE, "email": email}) == (CustomerInput(mobile=MOBILE, email=email.lower()), [])


def test_an_email_of_255_characters_is_accepted():
    email = "x" * 243 + "@example.com"
    assert len(email) == 255 and read({"mobile": MOBILE, "email": email})[0].email == email


# ---------------------------------------------------------------- §2 external id


@pytest.mark.parametrize("external_id", ["x" * 251, {"id": 1}])
def test_invalid_primary_external_id_is_error_1003(external_id):
    assert refused({"external_id": external_id}, CONF_REGISTRATION_PRIMARY_KEY="external_id") == Code.INVALID_EXTERNAL_ID


def test_invalid_secondary_external_id_is_dropped_with_warning_1003():
    item, warnings = read({"mobile": MOBILE, "external_id": "x" * 251})
    assert (item.external_id, warnings) == (None, [Code.INVALID_EXTERNAL_ID])


def test_an_external_id_of_250_characters_is_accepted():
    assert read({"external_id": "e" * 250}, CONF_REGISTRATION_PRIMARY_KEY="external_id")[0].external_id == "e" * 250


@pytest.mark.parametrize(("sent", "stored"), [("  ext-42  ", "ext-42"), (123445901, "123445901")])
def test_an_external_id_is_trimmed_and_may_be_a_number(sent, stored):
    assert read({"external_id": sent}, CONF_REGISTRATION_PRIMARY_KEY="external_id")[0].external_id == stored


@pytest.mark.parametrize("minimum", [0, 5])
def test_conf_client_external_id_min_length(minimum):
    configs = {"CONF_REGISTRATION_PRIMARY_KEY": "external_id", "CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH": minimum}
    if minimum:
        assert refused({"external_id": "abcd"}, **configs) == Code.INVALID_EXTERNAL_ID
    else:
        assert read({"external_id": "abcd"}, **configs)[0].external_id == "abcd"
    assert read({"external_id": "abcde"}, **configs)[0].external_id == "abcde"


@pytest.mark.parametrize("maximum", [0, 8])
def test_conf_client_external_id_max_length(maximum):
    configs = {"CONF_REGISTRATION_PRIMARY_KEY": "external_id", "CONF_CLIENT_EXTERNAL_ID_MAX_LENGTH": maximum}
    if maximum:
        assert refused({"external_id": "abcdefghi"}, **configs) == Code.INVALID_EXTERNAL_ID
    else:
        assert read({"external_id": "abcdefghi"}, **configs)[0].external_id == "abcdefghi"
    assert read({"external_id": "abcdefgh"}, **configs)[0].external_id == "abcdefgh"


def test_the_external_id_length_configs_apply_to_a_secondary_external_id_too():
    item, warnings = read({"mobile": MOBILE, "external_id": "abc"}, CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH=5)
    assert (item.external_id, warnings) == (None, [Code.INVALID_EXTERNAL_ID])


# ---------------------------------------------------------------- §2 names


@pytest.mark.parametrize(
    ("firstname", "lastname"),
    [("अनन्या", "शर्मा"), ("Zoë", "O'Brien-Smith"), ("李", "小龙"), ("محمد", "علي"), ("Anne Marie", "D’Souza 2nd")],
)
def test_names_in_any_script_are_accepted_trimmed(firstname, lastname):
    item, warnings = read({"mobile": MOBILE, "firstname": f"  {firstname} ", "lastname": lastname})
    assert (item.firstname, item.lastname, warnings) == (firstname, lastname, [])


@pytest.mark.parametrize(
    ("field", "value"),
    [("firstname", "<script>"), ("firstname", "a" * 101), ("lastname", "Rao; DROP TABLE"), ("lastname", "x@y"),
     ("firstname", ["Asha"]), ("lastname", "Ra\to")],
)
def test_an_invalid_name_is_not_applied_with_warning_1024(field, value):
    item, warnings = read({"mobile": MOBILE, field: value})
    assert (getattr(item, field), warnings) == (None, [Code.INVALID_FIELD_VALUE])


def test_a_name_of_100_characters_is_accepted():
    assert read({"mobile": MOBILE, "firstname": "अ" * 100})[0].firstname == "अ" * 100


def test_an_empty_name_is_a_value_that_clears_the_name():
    assert read({"mobile": MOBILE, "firstname": ""})[0].firstname == ""


# ---------------------------------------------------------------- §2 registered_on, updated_on


@pytest.mark.parametrize(
    ("sent", "utc"),
    [
        ("2024-07-29 11:11:11", datetime(2024, 7, 29, 5, 41, 11)),
        ("2024-07-29", datetime(2024, 7, 28, 18, 30)),
        ("2024-07-29T11:11:11", datetime(2024, 7, 29, 5, 41, 11)),
        ("2024-07-29T05:41:11Z", datetime(2024, 7, 29, 5, 41, 11)),
        ("2024-07-29T11:11:11+05:30", datetime(2024, 7, 29, 5, 41, 11)),
    ],
)
def test_registered_on_is_read_in_each_accepted_format_in_the_orgs_timezone(sent, utc):
    assert read({"mobile": MOBILE, "registered_on": sent}) == (CustomerInput(mobile=MOBILE, registered_on=utc), [])


def local(moment: datetime) -> str:
    return (moment + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S")


def test_registered_on_more_than_24_hours_ahead_is_out_of_range():
    item, _ = read({"mobile": MOBILE, "registered_on": local(NOW + timedelta(hours=25))})
    assert (item.registered_on, item.registered_on_out_of_range) == (None, True)


def test_registered_on_less_than_24_hours_ahead_is_accepted():
    item, _ = read({"mobile": MOBILE, "registered_on": local(NOW + timedelta(hours=23))})
    assert (item.registered_on, item.registered_on_out_of_range) == (NOW + timedelta(hours=23), False)


def test_registered_on_before_the_default_minimum_registration_date_is_out_of_range():
    assert read({"mobile": MOBILE, "registered_on": "1994-12-31 23:59:59"})[0].registered_on_out_of_range
    assert not read({"mobile": MOBILE, "registered_on": "1995-01-01"})[0].registered_on_out_of_range


def test_conf_min_registration_date():
    configs = {"CONF_MIN_REGISTRATION_DATE": "2020-01-01"}
    assert read({"mobile": MOBILE, "registered_on": "2019-12-31 23:59:59"}, **configs)[0].registered_on_out_of_range
    item, _ = read({"mobile": MOBILE, "registered_on": "2020-01-01 00:00:00"}, **configs)
    assert item.registered_on == datetime(2019, 12, 31, 18, 30)


def test_an_unparseable_registered_on_is_out_of_range():
    assert read({"mobile": MOBILE, "registered_on": "yesterday"})[0].registered_on_out_of_range


@pytest.mark.parametrize(("sent", "utc"), [("2025-05-29 09:10:00", datetime(2025, 5, 29, 3, 40)),
                                           ("2025-06-01", datetime(2025, 5, 31, 18, 30))])
def test_updated_on_is_read_as_given_in_the_orgs_timezone(sent, utc):
    assert read({"mobile": MOBILE, "updated_on": sent})[0].updated_on == utc


def test_an_unparseable_updated_on_is_warning_1024_and_not_applied():
    item, warnings = read({"mobile": MOBILE, "updated_on": "29/05/2025 9am"})
    assert (item.updated_on, warnings) == (None, [Code.INVALID_FIELD_VALUE])


# ---------------------------------------------------------------- §2 type, source, fraud_status


@pytest.mark.parametrize(("sent", "stored"), [("loyalty", "LOYALTY"), ("LOYALTY", "LOYALTY"),
                                              ("Non_Loyalty", "NON_LOYALTY"), ("non_loyalty", "NON_LOYALTY")])
def test_type_is_read_in_any_case(sent, stored):
    assert read({"mobile": MOBILE, "email": "a@example.com", "type": sent}) == (
        CustomerInput(mobile=MOBILE, email="a@example.com", type=stored), []
    )


def test_an_unknown_type_is_not_applied_with_warning_1024():
    item, warnings = read({"mobile": MOBILE, "type": "gold"})
    assert (item.type, warnings) == (None, [Code.INVALID_FIELD_VALUE])


SOURCES = ["INSTORE", "WEB_ENGAGE", "WECHAT", "FACEBOOK", "MARTJACK", "TMALL", "TAOBAO", "JD", "ECOMMERCE",
           "WEBSITE", "LINE", "MOBILE_APP"]


@pytest.mark.parametrize("source", SOURCES)
def test_source_is_read_in_any_case(source):
    assert read({"mobile": MOBILE, "source": source.title()}) == (CustomerInput(mobile=MOBILE, source=source), [])


def test_an_unknown_source_is_instore_with_warning_1024():
    assert read({"mobile": MOBILE, "source": "CARRIER_PIGEON"}) == (
        CustomerInput(mobile=MOBILE, source="INSTORE"), [Code.INVALID_FIELD_VALUE]
    )


FRAUD_STATUSES = ["NONE", "NORMAL", "OUTLIER", "FRAUD", "INTERNAL", "INVALID", "MARKED", "CONFIRMED", "RECONFIRMED",
                  "NOT_FRAUD"]


@pytest.mark.parametrize("status", FRAUD_STATUSES)
def test_fraud_status_is_read_in_any_case_as_a_string_or_an_object(status):
    assert read({"mobile": MOBILE, "fraud_status": status.lower()})[0].fraud_status == status
    assert read({"mobile": MOBILE, "fraud_status": {"status": status.capitalize()}})[0].fraud_status == status


@pytest.mark.parametrize("status", ["Fraus_Suspected", {"status": "Fraus_Suspected"}])
def test_an_unknown_fraud_status_is_warning_1061_and_not_applied(status):
    assert read({"mobile": MOBILE, "fraud_status": status}) == (CustomerInput(mobile=MOBILE), [Code.INVALID_FRAUD_STATUS])


# ---------------------------------------------------------------- §2 accountId, tills


def test_account_id_is_read_as_text():
    assert read({"mobile": MOBILE, "accountId": 123456})[0].account_id == "123456"


@pytest.mark.parametrize("account_id", ["a" * 256, {"id": 1}])
def test_an_account_id_that_cannot_be_stored_is_warning_1024(account_id):
    assert read({"mobile": MOBILE, "accountId": account_id}) == (CustomerInput(mobile=MOBILE), [Code.INVALID_FIELD_VALUE])


def test_registered_till_and_associated_with_of_the_org_are_used():
    two = till_code(RETAIL, "till.two")
    item, warnings = read({"mobile": MOBILE, "registered_till": f" {two} ", "associated_with": two})
    assert (item.registered_till, item.associated_with, warnings) == (two, two, [])


UNKNOWN_TILLS = ["rutuja_capillary", till_code(FIELDS, "till.one"), "t" * 51]


@pytest.mark.parametrize("unknown", UNKNOWN_TILLS, ids=["unknown", "another-orgs", "too-long"])
def test_an_unknown_registered_till_is_warning_91020_and_the_calling_till_is_used(unknown):
    assert read({"mobile": MOBILE, "registered_till": unknown}) == (
        CustomerInput(mobile=MOBILE, registered_till=TILL), [Code.INVALID_REGISTERED_TILL]
    )


@pytest.mark.parametrize("unknown", UNKNOWN_TILLS, ids=["unknown", "another-orgs", "too-long"])
def test_an_unknown_associated_with_is_warning_91021_and_the_calling_till_is_used(unknown):
    assert read({"mobile": MOBILE, "associated_with": unknown}) == (
        CustomerInput(mobile=MOBILE, associated_with=TILL), [Code.INVALID_ATTRIBUTION_TILL]
    )


# ---------------------------------------------------------------- §2 commChannels, subscriptions


def test_comm_channels_are_read_with_booleans_read_leniently():
    channels = [
        {"type": "mobile", "value": MOBILE, "primary": "true", "verified": "TRUE", "meta": {"residence": "true"}},
        {"type": "EMAIL", "value": "a@example.com", "primary": False, "verified": 0},
    ]
    assert read({"mobile": MOBILE, "commChannels": channels})[0].comm_channels == [
        {"type": "mobile", "value": MOBILE, "primary": "true", "verified": "true", "meta": {"residence": "true"}},
        {"type": "email", "value": "a@example.com", "primary": "false", "verified": "false", "meta": {}},
    ]


@pytest.mark.parametrize("sent", [{"type": "email", "value": "x@example.com"},
                                  {"commChannel": {"type": "email", "value": "x@example.com"}}], ids=["bare", "xml-shaped"])
def test_a_single_comm_channel_object_is_read_as_a_list_of_one(sent):
    item, _ = read({"mobile": MOBILE, "commChannels": sent})
    assert [channel["value"] for channel in item.comm_channels or []] == ["x@example.com"]


def nested(depth: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"residence": "true"}
    for _ in range(depth):
        meta = {"a": meta}
    return meta


def test_a_comm_channel_with_meta_nested_too_deep_to_store_is_skipped_with_warning_1024():
    channels = [{"type": "mobile", "value": MOBILE, "meta": nested(300)}, {"type": "email", "value": "a@example.com"}]
    item, warnings = read({"mobile": MOBILE, "commChannels": channels})
    assert ([c["type"] for c in item.comm_channels or []], warnings) == (["email"], [Code.INVALID_FIELD_VALUE])


def test_a_comm_channel_whose_meta_keys_xml_cannot_name_is_skipped_with_warning_1024():
    channels = [
        {"type": "mobile", "value": MOBILE, "meta": {"my key": "1", "a<b": "2"}},
        {"type": "email", "value": "a@example.com", "meta": {"since_2020": {"verified-by": "otp"}}},
    ]
    item, warnings = read({"mobile": MOBILE, "commChannels": channels})
    assert ([c["type"] for c in item.comm_channels or []], warnings) == (["email"], [Code.INVALID_FIELD_VALUE])


def test_subscriptions_are_read_with_channel_lower_and_priority_upper_case():
    subscriptions = [
        {"channel": "sms", "priority": "TRANS", "scope": "all", "is_subscribed": 1},
        {"channel": "EMAIL", "priority": "bulk", "scope": "offers", "is_subscribed": "0"},
        {"channel": "sms", "priority": "bulk", "is_subscribed": True},
    ]
    assert read({"mobile": MOBILE, "subscriptions": {"subscription": subscriptions}})[0].subscriptions == [
        {"channel": "sms", "priority": "TRANS", "scope": "all", "is_subscribed": "1"},
        {"channel": "email", "priority": "BULK", "scope": "offers", "is_subscribed": "0"},
        {"channel": "sms", "priority": "BULK", "scope": "all", "is_subscribed": "1"},
    ]


@pytest.mark.parametrize(
    "subscription",
    [{"channel": "pigeon", "priority": "TRANS", "is_subscribed": 1}, {"channel": "sms", "priority": "urgent", "is_subscribed": 1},
     {"channel": "sms", "priority": "TRANS", "is_subscribed": "perhaps"}, "sms"],
)
def test_an_unreadable_subscription_is_skipped_with_warning_1024(subscription):
    item, warnings = read({"mobile": MOBILE, "subscriptions": {"subscription": [subscription]}})
    assert (item.subscriptions, warnings) == ([], [Code.INVALID_FIELD_VALUE])


# ---------------------------------------------------------------- §2 custom fields


def test_custom_field_names_are_matched_case_insensitively_and_stored_as_declared():
    fields = [{"name": "CITY_NAME", "value": "Bangalore"}, {"name": "pwgconsumption", "value": 2.5}]
    item, warnings = read({"mobile": MOBILE, "custom_fields": {"field": fields}})
    assert (item.custom_fields, warnings) == ({"City_name": "Bangalore", "pwgConsumption": "2.5"}, [])


def test_an_unknown_custom_field_is_skipped_with_warning_1017_and_the_others_are_kept():
    fields = [{"name": "address", "value": "BTM"}, {"name": "City_name", "value": "Bangalore"}]
    item, warnings = read({"mobile": MOBILE, "custom_fields": {"field": fields}})
    assert (item.custom_fields, warnings) == ({"City_name": "Bangalore"}, [Code.INVALID_CUSTOM_FIELD])


@pytest.mark.parametrize(
    ("name", "value", "stored"),
    [
        ("City_name", "Pune", "Pune"),
        ("pincode", "560034", "560034"),
        ("pincode", 560034, "560034"),
        ("visits", "12", "12"),
        ("visits", 12, "12"),
        ("pwgConsumption", "2.75", "2.75"),
        ("newsletter", "YES", "true"),
        ("newsletter", False, "false"),
        ("anniversary", "2015/02/14", "2015-02-14"),
        ("last_visit", "2025-01-02 10:11:12", "2025-01-02 10:11:12"),
        ("club", "gold", "Gold"),
    ],
)
def test_a_custom_field_value_of_its_type_is_stored(name, value, stored):
    item, warnings = read({"mobile": MOBILE, "custom_fields": {"field": [{"name": name, "value": value}]}}, FIELDS)
    assert (item.custom_fields, warnings) == ({name: stored}, [])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("City_name", "x" * 21),  # max_length
        ("pincode", "56003A"),  # regex
        ("visits", "twelve"),
        ("visits", "1.5"),
        ("pwgConsumption", "lots"),
        ("newsletter", "sometimes"),
        ("anniversary", "14-02-2015"),
        ("last_visit", "soon"),
        ("club", "Bronze"),
        ("City_name", None),
        ("City_name", {"v": 1}),
    ],
)
def test_an_invalid_custom_field_value_is_skipped_with_warning_1017_and_the_others_are_kept(name, value):
    fields = [{"name": "visits", "value": "3"}, {"name": name, "value": value}, {"name": "club", "value": "Silver"}]
    item, warnings = read({"mobile": MOBILE, "custom_fields": {"field": fields}}, FIELDS)
    assert (item.custom_fields, warnings) == ({"visits": "3", "club": "Silver"}, [Code.INVALID_CUSTOM_FIELD])


# ---------------------------------------------------------------- §2 extended fields


@pytest.mark.parametrize(
    ("name", "value", "stored"),
    [
        ("gender", "M", "Male"),
        ("gender", "female", "Female"),
        ("gender", "O", "Other"),
        ("marital_status", "married", "Married"),
        ("dob", "1990-05-17", "1990-05-17"),
        ("dob", "1990/05/17", "1990-05-17"),
        ("wedding_date", "2015/02/14", "2015-02-14"),
        ("age", "25", "25"),
        ("age", 0, "0"),
        ("age", 150, "150"),
        ("city", "Bangalore", "Bangalore"),
        ("state", "Karnataka", "Karnataka"),
        ("area", "BTM", "BTM"),
        ("zip", "560076", "560076"),
        ("profession", "Engineer", "Engineer"),
        ("religion", "None", "None"),
        ("ethnicity", "Kannadiga", "Kannadiga"),
        ("ssnNumber", "123-45-6789", "123-45-6789"),
        ("nationality", "IN", "IN"),
        ("born_in", "india", "IN"),
        ("country_of_residence", "United Arab Emirates", "AE"),
        ("preferred_language", "EN", "en"),
        ("preferred_currency", "inr", "INR"),
        ("preferred_store", "store.one", "store.one"),
        ("kid_status", "yes", "Yes"),
        ("city", "x" * 250, "x" * 250),
    ],
)
def test_a_standard_extended_field_is_stored(name, value, stored):
    item, warnings = read({"mobile": MOBILE, "extended_fields": {"field": [{"name": name, "value": value}]}})
    assert (item.extended_fields, warnings) == ({name: stored}, [])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("gender", "X"),
        ("marital_status", "complicated"),
        ("dob", "17-05-1990"),
        ("dob", "1990-02-30"),
        ("age", "-1"),
        ("age", "151"),
        ("age", "twenty"),
        ("city", "x" * 251),
        ("nationality", "Atlantis"),
        ("preferred_language", "xx"),
        ("preferred_language", "english"),
        ("preferred_currency", "ABC"),
        ("preferred_store", "store.nowhere"),
        ("kid_status", "maybe"),
        ("age_group", "12-17"),
        ("shoe_size", "9"),
    ],
)
def test_an_invalid_extended_field_is_skipped_with_warning_91015(name, value):
    fields = [{"name": name, "value": value}] + ([{"name": "age", "value": "30"}] if name != "age" else [])
    item, warnings = read({"mobile": MOBILE, "extended_fields": {"field": fields}})
    assert (item.extended_fields, warnings) == ({} if name == "age" else {"age": "30"}, [Code.INVALID_EXTENDED_FIELD])


def test_an_extended_field_the_org_declares_is_stored_under_its_declared_name():
    fields = [{"name": "AGE_GROUP", "value": "41+"}, {"name": "shoe_size", "value": "9"}]
    item, warnings = read({"mobile": MOBILE, "extended_fields": {"field": fields}}, FIELDS)
    assert (item.extended_fields, warnings) == ({"age_group": "41+", "shoe_size": "9"}, [])


# ---------------------------------------------------------------- §3 required identifiers


@pytest.mark.parametrize("required", [True, False])
def test_conf_users_is_mobile_required_else_1006(required):
    configs = {"CONF_REGISTRATION_PRIMARY_KEY": "email", "CONF_USERS_IS_MOBILE_REQUIRED": required}
    if required:
        assert refused({"email": "a@example.com"}, **configs) == Code.MOBILE_REQUIRED
    else:
        assert read({"email": "a@example.com"}, **configs)[0].email == "a@example.com"


@pytest.mark.parametrize("required", [True, False])
def test_conf_users_is_email_required_else_1039(required):
    if required:
        assert refused({"mobile": MOBILE}, CONF_USERS_IS_EMAIL_REQUIRED=required) == Code.EMAIL_REQUIRED
    else:
        assert read({"mobile": MOBILE}, CONF_USERS_IS_EMAIL_REQUIRED=required)[0].mobile == MOBILE


@pytest.mark.parametrize("required", [True, False])
def test_conf_users_is_external_id_required_else_1043(required):
    if required:
        assert refused({"mobile": MOBILE}, CONF_USERS_IS_EXTERNAL_ID_REQUIRED=required) == Code.EXTERNAL_ID_REQUIRED
    else:
        assert read({"mobile": MOBILE}, CONF_USERS_IS_EXTERNAL_ID_REQUIRED=required)[0].mobile == MOBILE


def test_a_required_secondary_that_is_invalid_counts_as_missing():
    assert refused({"mobile": MOBILE, "email": "nope"}, CONF_USERS_IS_EMAIL_REQUIRED=True) == Code.EMAIL_REQUIRED


@pytest.mark.parametrize(
    ("primary", "code", "sent"),
    [
        ("mobile", Code.MOBILE_REQUIRED, {"email": "p@example.com", "external_id": "p-1"}),
        ("email", Code.EMAIL_REQUIRED, {"mobile": MOBILE, "external_id": "p-1"}),
        ("external_id", Code.EXTERNAL_ID_REQUIRED, {"mobile": MOBILE, "email": "p@example.com"}),
    ],
)
def test_the_primary_identifier_is_required(primary, code, sent):
    for item in (sent, {**sent, primary: None}, {**sent, primary: "  "}):
        assert refused(item, CONF_REGISTRATION_PRIMARY_KEY=primary) == code


@pytest.mark.parametrize("allowed", [True, False])
def test_conf_allow_registration_from_any_identifiers(allowed):
    for sent in ({"email": "a@example.com"}, {"external_id": "ext-1"}):
        if allowed:
            assert read(sent, CONF_ALLOW_REGISTRATION_FROM_ANY_IDENTIFIERS=allowed) == (CustomerInput(**sent), [])
        else:
            assert refused(sent, CONF_ALLOW_REGISTRATION_FROM_ANY_IDENTIFIERS=allowed) == Code.MOBILE_REQUIRED


def test_required_configs_still_apply_when_any_identifier_may_register():
    configs = {"CONF_ALLOW_REGISTRATION_FROM_ANY_IDENTIFIERS": True, "CONF_USERS_IS_MOBILE_REQUIRED": True}
    assert refused({"email": "a@example.com"}, **configs) == Code.MOBILE_REQUIRED


def test_an_invalid_primary_is_an_error_even_when_any_identifier_may_register():
    sent = {"mobile": "12345", "email": "a@example.com"}
    assert refused(sent, CONF_ALLOW_REGISTRATION_FROM_ANY_IDENTIFIERS=True) == Code.INVALID_MOBILE


@pytest.mark.parametrize(
    "customer",
    [{}, {"firstname": "Asha"}, {"email": "not-an-email"}, {"external_id": "x" * 251, "email": "@"},
     {"mobile": None, "email": "", "external_id": "   "}],
)
def test_no_valid_identifier_left_is_1007(customer):
    assert refused(customer, CONF_ALLOW_REGISTRATION_FROM_ANY_IDENTIFIERS=True) == Code.NO_VALID_IDENTIFIER


@pytest.mark.parametrize("customer", ["919812345678", 42, None, ["919812345678"]])
def test_an_item_that_is_not_an_object_is_1007(customer):
    assert refused(customer) == Code.NO_VALID_IDENTIFIER


def test_a_non_loyalty_customer_without_mobile_or_email_is_1045():
    configs = {"CONF_REGISTRATION_PRIMARY_KEY": "external_id"}
    assert refused({"external_id": "ext-1", "type": "non_loyalty"}, **configs) == Code.NON_LOYALTY_WITHOUT_IDENTIFIER
    assert refused({"external_id": "ext-1", "type": "NON_LOYALTY", "mobile": "123"}, **configs) == (
        Code.NON_LOYALTY_WITHOUT_IDENTIFIER
    )
    with_email = {"external_id": "ext-1", "type": "non_loyalty", "email": "a@example.com"}
    assert read(with_email, **configs)[0].type == "NON_LOYALTY"
    assert read({"external_id": "ext-1"}, **configs)[0].external_id == "ext-1"  # LOYALTY needs neither
