"""docs/events.md against the code: its catalogue is EventName's, every sample is what the builders and the envelope make, and the org-file page names every key of a sink.

The samples are made here, by patron.events.build on sample data; `python tests/unit/test_event_docs.py`
prints them, ready to paste into docs/events.md when an event's body changes.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from patron.customers.model import Customer
from patron.events import build
from patron.events.model import Event, Origin, StoredEvent
from patron.events.names import EventName
from patron.loyalty.model import POINTS, EntryKind, LedgerEntry
from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings
from patron.orgs.policy import Broker, Webhook

DOCS = Path(__file__).resolve().parents[2] / "docs"
CATALOGUE = "## The catalogue"
ORG_ID = 100458
ASHA = 557408687
REFERRER = 557401122
TILL = "blr.koramangala.till001"
JSON_BLOCK = re.compile(r"^```json\n(.*?)^```$", re.MULTILINE | re.DOTALL)
EVENT_HEADING = re.compile(r"^### `([^`]*)`", re.MULTILINE)


# --- the samples: the real builders and envelope on one sample org and customer ------------------


def sample_org() -> OrgSettings:
    return OrgSettings.from_file(parse_org_document({
        "org": {"id": ORG_ID, "name": "Acme", "base_country": "IN", "timezone": "Asia/Kolkata"},
        "access_groups": [{"name": "pos", "customer": "write"}],
        "stores": [{"code": "blr.koramangala", "name": "Koramangala", "access_group": "pos",
                    "tills": [{"code": TILL, "name": "Till 1"}]}],
        "programs": [{"id": 3, "name": "Acme Rewards", "registration_points": 100, "referrer_points": 50,
                      "slabs": [{"serial": 1, "name": "Silver"}],
                      "alternate_currencies": [{"identifier": "GEMS", "name": "Gems", "registration_award": 20}]}],
    }, stored=True))


@dataclass(frozen=True)
class Made:
    """Who made a sample's change, when, through what, and where it stands in its customer's events."""

    at: datetime
    origin: Origin
    request_id: str
    sequence: int
    event_id: str
    console_user: str | None = None


def _stored(event: Event, made: Made) -> StoredEvent:
    assert event.customer_id is not None
    return StoredEvent(
        org_id=ORG_ID, position=0, event_id=made.event_id, customer_id=event.customer_id, sequence=made.sequence,
        name=event.name.value, created_at=made.at, request_id=made.request_id, origin=made.origin,
        console_user=made.console_user, data=event.data,
    )


def sample_events() -> list[StoredEvent]:
    """One customer's life, and a referrer's reward: every event, and every origin, the code has."""
    org = sample_org()
    registered = datetime(2024, 8, 1, 8, 28, 32, 412000)
    asha = Customer(
        org_id=ORG_ID, id=ASHA, mobile="919876532218", email="asha.rao@example.com", external_id=None,
        firstname="Asha", lastname="Rao", type="LOYALTY", source="INSTORE", account_id=None, fraud_status="NONE",
        registered_on=registered, updated_on=registered, registered_till=TILL, associated_with=TILL,
        referral_code="ASHA7Q", custom_fields={"City_name": "Bangalore"}, extended_fields={"gender": "Female"},
    )

    def writer(made: Made) -> build.Writer:
        return build.Writer(org, None if made.console_user else TILL, made.console_user, made.at, made.origin)

    api = Made(registered, "api", "5f0c1d2e3b4a49c8a7e6d5c4b3a29180", 1, "0b6f9a52-3c1e-4d4b-9a8e-2f7c1d5e6a90")
    added = build.customer_added(asha, writer(api))
    made = [(added, api)]

    points = replace(api, sequence=2, event_id="3c9d1e7a-5b2f-4a8c-9d0e-1f2a3b4c5d6e")
    made.append((build.points_issued(asha, LedgerEntry(ORG_ID, ASHA, 3, EntryKind.REGISTRATION, POINTS, 100), 100,
                                     writer(points)), points))
    gems = replace(api, sequence=3, event_id="8e4f2a6b-1c3d-4e5f-a6b7-c8d9e0f1a2b3")
    made.append((build.points_issued(asha, LedgerEntry(ORG_ID, ASHA, 3, EntryKind.REGISTRATION, "GEMS", 20), 100,
                                     writer(gems)), gems))
    referrer = replace(api, sequence=41, event_id="a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
    ravi = replace(asha, id=REFERRER, mobile="919845012345", email="ravi.k@example.com", firstname="Ravi",
                   lastname="Kumar", referral_code="RAVI3X")
    made.append((build.points_issued(ravi, LedgerEntry(ORG_ID, REFERRER, 3, EntryKind.REFERRER, POINTS, 50), 550,
                                     writer(referrer)), referrer))

    update = Made(datetime(2024, 8, 3, 11, 4, 10, 87000), "api", "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b", 4,
                  "7d2e4f18-9b3a-4c6d-8e1f-5a0b2c3d4e5f")
    moved = replace(asha, email="asha@example.org", lastname="Rao-Kumar", custom_fields={"City_name": "Mysuru"},
                    updated_on=update.at)
    updated = build.customer_updated(moved, [
        {"field": "email", "previous": asha.email, "current": moved.email},
        {"field": "lastname", "previous": asha.lastname, "current": moved.lastname},
        {"field": "custom_fields", "previous": asha.custom_fields, "current": moved.custom_fields},
        {"field": "updated_on", "previous": "2024-08-01 08:28:32", "current": "2024-08-03 11:04:10"},
    ], writer(update))
    assert updated is not None
    made.append((updated, update))

    console = Made(datetime(2024, 8, 4, 6, 15, 0), "console", "c0ffee00d15ea5e0b1e55ed0ddba11ed", 5,
                   "4f3e2d1c-0b9a-4887-9665-5443322110ff", console_user="priya")
    edited = replace(moved, extended_fields={"gender": "Female", "city": "Mysuru"}, updated_on=console.at)
    console_edit = build.customer_updated(edited, [
        {"field": "extended_fields", "previous": moved.extended_fields, "current": edited.extended_fields},
    ], writer(console))
    assert console_edit is not None
    made.append((console_edit, console))

    asked = Made(datetime(2024, 8, 5, 9, 30, 0), "api", "1d2c3b4a59687f6e5d4c3b2a19087f6e", 6,
                 "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b")
    made.append((build.request_updated(
        edited, request_id=812, status="PENDING", identifier="mobile", old_value="919876532218",
        new_value="919845012345", reason="lost her phone", decided_by=None, writer=writer(asked)), asked))
    approved = Made(datetime(2024, 8, 5, 10, 2, 45), "console", "6a5b4c3d2e1f40a9b8c7d6e5f4a3b2c1", 7,
                    "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", console_user="priya")
    made.append((build.request_updated(
        edited, request_id=812, status="APPROVED", identifier="mobile", old_value="919876532218",
        new_value="919845012345", reason="checked her ID at the store", decided_by="priya",
        writer=writer(approved)), approved))

    imported = Made(datetime(2024, 9, 12, 23, 40, 5), "import", "import-3f9a1c2b7d4e", 1,
                    "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f")
    ravi = replace(asha, id=557409310, mobile="919812300456", email=None, external_id="ACME-00017",
                   firstname="Ravi", lastname="Menon", type="NON_LOYALTY", referral_code=None,
                   custom_fields={}, extended_fields={}, registered_on=imported.at, updated_on=imported.at)
    made.append((build.customer_added(ravi, writer(imported)), imported))
    return [_stored(event, by) for event, by in made]


def sample_envelopes() -> dict[str, list[dict[str, Any]]]:
    """Each event's samples, as a sink with pii = true and one without get them, by eventName."""
    samples: dict[str, list[dict[str, Any]]] = {name.value: [] for name in EventName}
    for event in sample_events():
        samples[event.name] += [build.envelope(event, pii=True), build.envelope(event, pii=False)]
    return samples


# --- reading docs/events.md -----------------------------------------------------------------------


def events_md() -> str:
    return (DOCS / "events.md").read_text(encoding="utf-8")


def catalogue(text: str) -> str:
    assert CATALOGUE in text, f"docs/events.md has no section {CATALOGUE!r}"
    return re.split(r"^## ", text.split(CATALOGUE, 1)[1], maxsplit=1, flags=re.MULTILINE)[0]


def catalogue_sections(text: str) -> dict[str, str]:
    """Each `### `eventName`` section of the catalogue, by the name its heading gives."""
    parts = EVENT_HEADING.split(catalogue(text))
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def envelopes_in(block: Any) -> list[dict[str, Any]]:
    """The envelopes a JSON block shows: itself, or the events of a feed's page."""
    if isinstance(block, dict) and "eventName" in block:
        return [block]
    if isinstance(block, dict) and isinstance(block.get("events"), list):
        return list(block["events"])
    return []


def key_paths(value: Any, at: str = "") -> set[str]:
    """Every key of a JSON document, by its path (a list's items at `[]`)."""
    if isinstance(value, dict):
        return {f"{at}.{key}" for key in value} | {path for key, item in value.items() for path in key_paths(item, f"{at}.{key}")}
    if isinstance(value, list):
        return {path for item in value for path in key_paths(item, f"{at}[]")}
    return set()


# --- the rules ------------------------------------------------------------------------------------


def test_every_event_name_has_a_section_in_the_catalogue_and_every_section_is_an_event_name():
    documented = list(catalogue_sections(events_md()))
    assert sorted(documented) == sorted(name.value for name in EventName)
    assert len(documented) == len(set(documented)), "an event has two sections"


def test_every_catalogue_section_shows_a_sample_of_its_event():
    for name, section in catalogue_sections(events_md()).items():
        blocks = [json.loads(block) for block in JSON_BLOCK.findall(section)]
        assert blocks, f"the section of {name} has no ```json sample"
        for block in blocks:
            assert block.get("eventName") == name, f"a sample under {name} is of {block.get('eventName')!r}"


def test_every_sample_under_an_event_has_exactly_the_keys_the_code_makes_for_it():
    made = sample_envelopes()
    for name, section in catalogue_sections(events_md()).items():
        shapes = [key_paths(sample) for sample in made[name]]
        for block in JSON_BLOCK.findall(section):
            shown = key_paths(json.loads(block))
            assert shown in shapes, (
                f"a sample of {name} in docs/events.md has keys the code does not make, or lacks some: "
                f"{sorted(shown ^ min(shapes, key=lambda shape: len(shape ^ shown)))}"
            )


def test_every_event_the_docs_show_is_one_the_code_makes_from_the_sample_data():
    """Every ```json block of the page parses, and each envelope in it is, value for value, one of
    sample_envelopes(): regenerate with `python tests/unit/test_event_docs.py` when a body changes."""
    made = sample_envelopes()
    blocks = JSON_BLOCK.findall(events_md())
    shown = [envelope for block in blocks for envelope in envelopes_in(json.loads(block))]
    assert len(shown) >= len(EventName)
    for envelope in shown:
        assert envelope in made.get(envelope.get("eventName"), []), (
            f"docs/events.md shows an event the code does not make: {json.dumps(envelope)[:300]}"
        )


def test_the_thin_events_section_shows_a_thin_sample():
    thin = events_md().split("## Thin events", 1)[1].split("\n## ", 1)[0]
    shown = [envelope for block in JSON_BLOCK.findall(thin) for envelope in envelopes_in(json.loads(block))]
    assert shown, "the thin events section shows no sample"
    for envelope in shown:
        assert all(value is None for value in envelope["data"]["customerIdentifiers"]["instore"].values())


def test_the_org_file_page_describes_every_key_of_a_webhook_and_a_broker():
    text = (DOCS / "org-file.md").read_text(encoding="utf-8")
    for section, model in (("## `[[webhooks]]`", Webhook), ("## `[[brokers]]`", Broker)):
        assert section in text, f"docs/org-file.md has no section {section}"
        table = text.split(section, 1)[1].split("\n## ", 1)[0]
        for name in model.model_fields:
            assert f"| `{name}` |" in table, f"{model.__name__}.{name} is not described under {section}"


def pretty(value: Any, indent: str = "") -> str:
    """JSON as the page shows it: a value that fits on a line of 100 on one line, else one key a line."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(indent) + len(flat) <= 100 or not isinstance(value, (dict, list)) or not value:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(key)}: {pretty(item, inner)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(inner + pretty(item, inner) for item in value) + f"\n{indent}]"


if __name__ == "__main__":
    for event in sample_events():
        for pii in (True, False):
            sample = build.envelope(event, pii=pii)
            sys.stdout.write(f"--- {event.name} sequence {event.sequence} ({'pii' if pii else 'thin'})\n"
                             f"```json\n{pretty(sample)}\n```\n")
