"""The sample org, customers and requests the document's examples are made from, and the tests reuse.

One story, on dates near one sample day: Ravi refers Asha, who registers at a Bangalore till on
SAMPLE_DAY and is updated six weeks later; Kiran is registered by external id, backdated a week.
Each request here is what a till sends; each stored customer is what Patron keeps of it (the
tests hold the two together through the reader)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

from patron.customers.inputs import CustomerItem, IdentityChangeItem
from patron.customers.model import Customer
from patron.loyalty.model import Membership
from patron.loyalty.rules import Joining
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings

ORG_ID = 100458
STORE = "blr.koramangala"
TILL = "blr.koramangala.till001"
PROGRAM_ID = 469
ORG_DOCUMENT: dict[str, Any] = {
    "org": {"id": ORG_ID, "name": "Acme", "base_country": "IN", "timezone": "Asia/Kolkata"},
    "access_groups": [{"name": "pos", "customer": "write"}],
    "stores": [{"code": STORE, "name": "Koramangala", "access_group": "pos", "tills": [{"code": TILL, "name": "Till 1"}]}],
    "custom_fields": [{"name": "City_name", "type": "string"}, {"name": "pincode", "type": "string", "max_length": 20}],
    "programs": [{
        "id": PROGRAM_ID, "name": "Acme Rewards", "default": True,
        "registration_points": 100, "referrer_points": 100, "referee_points": 0,
        "slabs": [
            {"serial": 1, "name": "Base", "description": "Tier 1", "validity_months": 12},
            {"serial": 2, "name": "Bronze", "description": "Tier 2", "validity_months": 12},
        ],
        "alternate_currencies": [{"identifier": "GEMS", "name": "Gems", "registration_award": 20}],
    }],
}
ORG = OrgSettings.from_file(parse_org_document(ORG_DOCUMENT, stored=True))

# Naive UTC, as Patron keeps times: 07:28:32 in Bangalore on the sample day.
SAMPLE_DAY = date(2026, 10, 5)
REGISTERED_AT = datetime(2026, 10, 5, 1, 58, 32)
UPDATED_AT = datetime(2026, 11, 18, 5, 4, 10)
KIRAN_SENT_AT = datetime(2026, 10, 5, 5, 41, 17)

RAVI_ID = 557401122
RAVI_REFERRAL_CODE = "R4V1K2QX"
ASHA_ID = 557408687
KIRAN_ID = 557409012
# Numbers no customer of the story holds.
UNKNOWN_MOBILE = "919800000000"

ASHA_ITEM: CustomerItem = {
    "mobile": "+91 98765 32218",
    "email": "Asha.Rao@example.com",
    "external_id": "ACME-000388",
    "firstname": "Asha",
    "lastname": "Rao",
    "source": "INSTORE",
    "referral_code": RAVI_REFERRAL_CODE.lower(),
    "commChannels": [{"type": "mobile", "value": "919876532218", "primary": "true", "verified": "true",
                      "meta": {"residence": "true"}}],
    "subscriptions": {"subscription": [{"channel": "sms", "priority": "TRANS", "is_subscribed": 1}]},
    "custom_fields": {"field": [
        {"name": "City_name", "value": "Bangalore"},
        {"name": "pincode", "value": 560034},
        {"name": "favourite_store", "value": "Koramangala"},
    ]},
    "extended_fields": {"field": [{"name": "gender", "value": "F"}]},
}
# An org whose primary identifier is the external id registers Kiran by it alone, backdated.
KIRAN_ITEM: CustomerItem = {"external_id": "ACME-000412", "registered_on": "2026-09-28 11:11:11"}
# customer/update: Asha named by her mobile, a new last name and city, and an email the org does not let change.
ASHA_UPDATE_ITEM: CustomerItem = {
    "mobile": "919876532218",
    "lastname": "Rao-Kumar",
    "email": "asha@example.org",
    "custom_fields": {"field": [{"name": "City_name", "value": "Mysuru"}]},
}

ASHA = Customer(
    org_id=ORG_ID, id=ASHA_ID, mobile="919876532218", email="asha.rao@example.com", external_id="ACME-000388",
    firstname="Asha", lastname="Rao", type="LOYALTY", source="INSTORE", account_id=None, fraud_status="NONE",
    registered_on=REGISTERED_AT, updated_on=REGISTERED_AT, registered_till=TILL, associated_with=TILL,
    referral_code="K7Q2M9XA", custom_fields={"City_name": "Bangalore", "pincode": "560034"},
    extended_fields={"gender": "Female"},
    subscriptions=[{"channel": "sms", "priority": "TRANS", "scope": "all", "is_subscribed": "1"}],
    comm_channels=[{"type": "mobile", "value": "919876532218", "primary": "true", "verified": "true",
                    "meta": {"residence": "true"}}],
)
ASHA_UPDATED = replace(
    ASHA, lastname="Rao-Kumar", updated_on=UPDATED_AT, custom_fields={**ASHA.custom_fields, "City_name": "Mysuru"}
)
KIRAN = replace(
    ASHA, id=KIRAN_ID, mobile=None, email=None, external_id="ACME-000412", firstname="", lastname="",
    registered_on=datetime(2026, 9, 28, 5, 41, 11), updated_on=KIRAN_SENT_AT, referral_code="P3N8D5TW",
    custom_fields={}, extended_fields={}, subscriptions=[], comm_channels=[],
)


def ravi_memberships() -> list[Membership]:
    """The referrer's, a few months in."""
    return [Membership(ORG_ID, RAVI_ID, PROGRAM_ID, 1, date(2027, 6, 14), 340, 340)]


def joining(referred: bool) -> Joining:
    """What joining on the sample day brings, by the org's own rules (loyalty.rules)."""
    definition = ORG.definition
    referrer = ravi_memberships() if referred else None
    return Joining.of(definition, ORG.programs, ORG_ID, SAMPLE_DAY, False, referrer)


# Kiran's org registers by external id alone.
ORG_BY_EXTERNAL_ID = OrgSettings.from_file(parse_org_document(
    {**ORG_DOCUMENT, "configs": {"CONF_REGISTRATION_PRIMARY_KEY": "external_id"}}, stored=True
))

# customer/update_identity: Asha's new mobile in the current spelling; an older client's spelling of
# her new email (the old value in `identifier`).
MOBILE_CHANGE: IdentityChangeItem = {"identifier": "mobile", "old_value": "919876532218", "new_value": "919876500001"}
EMAIL_CHANGE_OLDER: IdentityChangeItem = {"identifier": "asha.rao@example.com", "new_identifier": "asha@example.org"}
