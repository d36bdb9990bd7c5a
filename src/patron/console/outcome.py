"""What a console edit did, field by field: each value saved, or not saved with the warning code
that skipped it and the rule it broke (the domain's reader and customers.why's words), and the
result message that says so: green when all was saved, amber when a value was not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patron.codes import USER_UPDATED, Code, warning_text
from patron.console.labels import field_label
from patron.console.sessions import Flash
from patron.customers import hints, why
from patron.customers.model import Customer, Warnings
from patron.customers.reading import read_item
from patron.orgs.model import OrgSettings
from patron.orgs.policy import STANDARD_EXTENDED_FIELDS, FieldType


@dataclass(frozen=True)
class NotSaved:
    """A value the edit sent that the update skipped with a warning: the customer keeps `kept`."""

    key: str  # the form's name for it: firstname, custom.NAME, extended.NAME
    label: str
    value: str
    kept: str
    code: Code
    rule: str

    def sentence(self) -> str:
        kept = f"it keeps “{self.kept}”" if self.kept else "it stays empty"
        return (
            f"{self.label} was not saved: “{self.value}” is not {self.rule} "
            f"(warning {int(self.code)}: {warning_text(self.code, self.label)}); {kept}."
        )


def _fields(item: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Each field of a console edit's item: its form key, its value, and an item of it alone."""
    found = [(name, str(item[name]), {name: item[name]}) for name in ("firstname", "lastname") if name in item]
    for kind in ("custom", "extended"):
        for entry in item.get(f"{kind}_fields", {}).get("field", []):
            found.append((f"{kind}.{entry['name']}", entry["value"], {f"{kind}_fields": {"field": [entry]}}))
    return found


def _declared(kind: str, name: str, org: OrgSettings) -> FieldType | None:
    if kind == "custom":
        return org.custom_fields.get(name.lower())
    return STANDARD_EXTENDED_FIELDS.get(name.lower()) or org.extended_fields.get(name.lower())


def _rule(key: str, org: OrgSettings) -> str:
    kind, _, name = key.partition(".")
    if not name:
        return why.person_name()
    declared = _declared(kind, name, org)
    return why.rule(declared) if declared else f"a {kind} field of the org file"


def _stored(key: str, customer: Customer) -> str:
    kind, _, name = key.partition(".")
    if not name:
        return str(getattr(customer, key) or "")
    values = customer.custom_fields if kind == "custom" else customer.extended_fields
    return str(values.get(name, ""))


def label_of(key: str, org: OrgSettings) -> str:
    """A profile form's field as the console labels it."""
    kind, _, name = key.partition(".")
    return field_label(name or key, org, kind if name else "")


def not_saved(item: dict[str, Any], org: OrgSettings, now: datetime, kept: Customer) -> list[NotSaved]:
    """The item's values the update skips: each field read alone by customer/update's reader,
    whose warning names the code (a warning is given once per code, so the whole item's cannot
    say which of two custom fields it was about)."""
    skipped = []
    for key, value, alone in _fields(item):
        with hints.noting():  # the update itself notes them for the request's log line
            _, warnings = read_item(alone, org, None, now, registering=False, naming=False)
        for code in warnings.codes:
            skipped.append(NotSaved(key, label_of(key, org), value, _stored(key, kept), code, _rule(key, org)))
    return skipped


def message(item: dict[str, Any], skipped: list[NotSaved], warnings: Warnings, org: OrgSettings) -> Flash:
    """The edit's result: green naming what was saved, amber when a value was not (each named
    with its value and rule), any other warning of the update said in the code table's words."""
    missed = {s.key for s in skipped}
    saved = [label_of(key, org) for key, _, _ in _fields(item) if key not in missed]
    explained = {s.code for s in skipped}
    others = [text for code, text in warnings.items if code not in explained]
    parts = [f"{USER_UPDATED} Saved: {', '.join(saved)}." if saved else "Nothing was saved."]
    parts += [s.sentence() for s in skipped]
    parts += [f"{text} (warning {int(code)})." for code, text in warnings.items if text in others]
    return Flash(" ".join(parts), "warn" if skipped or others else "ok")
