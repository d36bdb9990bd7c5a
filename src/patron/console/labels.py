"""How the console names things for people, not in the org file's keys: fields by their label (the
org file's, else their name made readable), mobiles grouped for their country, tills with their
store's and their own names, and a tier that never expires as "never". Every page uses these."""

from __future__ import annotations

import re
from datetime import date

import phonenumbers

from patron.customers.model import IDENTIFIER_LABELS
from patron.loyalty.rules import NEVER_EXPIRES_MONTHS, add_months
from patron.orgs.model import OrgSettings

# The customer's own fields as the audit log and the forms name them.
STANDARD_LABELS = {
    **IDENTIFIER_LABELS,
    "firstname": "First name",
    "lastname": "Last name",
    "account_id": "Account id",
    "accountId": "Account id",
    "fraud_status": "Fraud status",
    "registered_on": "Registered on",
    "updated_on": "Updated on",
    "registered_till": "Registered at till",
    "associated_with": "Associated with",
    "custom_fields": "Custom fields",
    "extended_fields": "Extended fields",
    "comm_channels": "Communication channels",
    "commChannels": "Communication channels",
    "ssnNumber": "SSN",
    "dob": "Date of birth",
}
# Words that a field's name shortens, said in full.
_WORDS = {"comm": "communication", "dob": "date of birth", "id": "id", "ssn": "SSN"}
_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def readable(name: str) -> str:
    """A key made readable: words split at underscores, dashes and case changes, the first
    capitalised (`City_name` → "City name", `pwgConsumption` → "Pwg consumption")."""
    words = [_WORDS.get(part.lower(), part if part.isupper() and len(part) > 1 else part.lower())
             for part in _PARTS.findall(name)]
    text = " ".join(words) or name
    return text[:1].upper() + text[1:]


def field_label(name: str, org: OrgSettings | None = None, kind: str = "") -> str:
    """What the console calls a field: the org file's `label` for a custom or extended field
    (`kind` "custom" or "extended"; either when not given), else the customer's own field's name,
    else its name made readable."""
    if org is not None and kind in ("custom", ""):
        declared = next((f for f in org.definition.custom_fields if f.name.lower() == name.lower()), None)
        if declared is not None and declared.label:
            return declared.label
    if org is not None and kind in ("extended", ""):
        declared_x = next((f for f in org.definition.extended_fields if f.name.lower() == name.lower()), None)
        if declared_x is not None and declared_x.label:
            return declared_x.label
    return STANDARD_LABELS.get(name) or readable(name)


def mobile(value: str | None) -> str:
    """A stored mobile (E.164 digits) grouped as its country writes it internationally
    (`919845012345` → "+91 98450 12345"); a value that is no number, as stored."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value if value.startswith("+") else "+" + value)
    except phonenumbers.NumberParseException:
        return value
    if not phonenumbers.is_possible_number(number):
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def identifier(name: str, value: str | None) -> str:
    """An identifier's value as shown: a mobile grouped, the others as stored."""
    if value is None:
        return ""
    return mobile(value) if name == "mobile" else value


def till(code: str | None, org: OrgSettings) -> str:
    """A till as people know it, with its store's name: `Front desk (mgroad.01), MG Road` where the
    org file names the till, `till mgroad.01, MG Road` where it does not; `till CODE` for a till
    the org file no longer has."""
    if not code:
        return ""
    found = org.till(code)
    if found is None:
        return f"till {code}"
    named = f"{found.name} ({code})" if found.name != code else f"till {code}"
    return f"{named}, {found.store.name}"


def expiry(day: date | None, today: date | None = None) -> str:
    """A tier's expiry date; "never" for a slab without validity, which the API family writes as
    a hundred years on (anything 99 years or more away is that)."""
    if day is None:
        return "—"
    if day >= add_months(today or date.today(), NEVER_EXPIRES_MONTHS - 12):
        return "never"
    return day.isoformat()
