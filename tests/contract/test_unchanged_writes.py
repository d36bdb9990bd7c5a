"""A write that changes nothing writes nothing (#30 item 5), on every path and every backend: an add
that matches a customer as stored, customer/update, the console's edit and the import. No audit
record, no event, updated_on kept; the API answers as the family answers an update."""

from __future__ import annotations

import asyncio
import re
import shutil
from typing import Any

import httpx
from click.testing import CliRunner
from sqlalchemy import func, select

from support import ROOT
from support.api import item, new_mobile
from test_customer_update import update
from test_import import _applied, _count
from test_registration import audit_log, changed_fields, email_of, fetch, succeeded

from patron.cli import main
from patron.codes import UPDATED, USER_UPDATED
from patron.store.migrate import upgrade
from patron.store.schema import customer_audits, events


def everything(mobile: str) -> dict[str, Any]:
    """An item with a value in every kind of field, lists included: each goes through the database
    and back before it is compared with the same value sent again."""
    return {
        "mobile": mobile, "email": email_of(mobile), "external_id": f"EXT-{mobile}", "firstname": "Asha",
        "lastname": "Rao", "source": "website", "accountId": "acct-7", "fraud_status": "normal",
        "custom_fields": {"field": [{"name": "City_name", "value": "Pune"}, {"name": "pwgConsumption", "value": "12.5"}]},
        "extended_fields": {"field": [{"name": "age_group", "value": "26-40"}, {"name": "dob", "value": "1988-04-02"}]},
        "subscriptions": {"subscription": [{"channel": "SMS", "priority": "BULK", "is_subscribed": "1"}]},
        "commChannels": {"commChannel": [{"type": "email", "value": email_of(mobile), "primary": "true",
                                          "meta": {"lastViewedDate": "", "residence": True, "score": 0.5}}]},
    }


async def written(org, user_id: int) -> tuple[int, int]:
    """The customer's audit records and events."""
    async with org.engine.connect() as conn:
        audits = await conn.scalar(select(func.count()).select_from(customer_audits).where(
            customer_audits.c.org_id == org.id, customer_audits.c.customer_id == user_id))
        written_events = await conn.scalar(select(func.count()).select_from(events).where(
            events.c.org_id == org.id, events.c.customer_id == user_id))
    return audits, written_events


# Customers are registered with an updated_on in the past: a write would move it to now.
PAST = "2025-05-29 09:10:00"


async def test_an_add_of_a_customer_as_stored_writes_nothing_and_answers_as_an_update(org):
    sent = everything(new_mobile())
    created = item(await org.add({**sent, "updated_on": PAST}, user_id="true"))
    before = await written(org, created["user_id"])
    response = await org.add(sent, user_id="true")
    assert response.status_code == 200, response.text
    again = item(response)
    assert again["item_status"] == succeeded(UPDATED)
    # The customer as registered; the registration's own side effects (its reward) are not repeated.
    assert again["side_effects"] == {"effect": []}
    assert {**again, "item_status": None, "side_effects": None} == {**created, "item_status": None, "side_effects": None}
    assert await written(org, created["user_id"]) == before and before[0] == 1
    assert (await fetch(org, mobile=sent["mobile"]))["updated_on"] == PAST


async def test_a_customer_update_that_changes_nothing_writes_nothing_and_says_user_updated(org):
    sent = everything(new_mobile())
    created = item(await org.add({**sent, "updated_on": PAST}, user_id="true"))
    before = await written(org, created["user_id"])
    # updated_on says when the customer last changed: sent alone, it is no change of its own.
    response = await update(org, {**sent, "updated_on": "2025-06-01 10:00:00"})
    assert response.status_code == 200, response.text
    assert item(response)["item_status"] == succeeded(USER_UPDATED)
    assert item(response)["updated_on"] == PAST
    assert await written(org, created["user_id"]) == before


async def test_a_change_moves_updated_on_and_no_audit_record_lists_it(org):
    mobile = new_mobile()
    created = item(await org.add({"mobile": mobile, "firstname": "Asha", "updated_on": PAST}, user_id="true"))
    audits, events_before = await written(org, created["user_id"])
    changed = item(await update(org, {"mobile": mobile, "firstname": "Ashwini"}))
    assert changed["updated_on"] > PAST
    newest, oldest = await audit_log(org, created["user_id"])
    assert set(changed_fields(newest)) == {"firstname"}
    assert "updated_on" not in changed_fields(oldest) and "registered_on" in changed_fields(oldest)
    assert await written(org, created["user_id"]) == (audits + 1, events_before + 1)


async def test_of_identical_updates_at_once_only_the_first_to_lock_the_customer_writes(org):
    mobile = new_mobile()
    created = item(await org.add({"mobile": mobile, "firstname": "Asha"}, user_id="true"))
    audits, events_before = await written(org, created["user_id"])
    answers = await asyncio.gather(*(update(org, {"mobile": mobile, "lastname": "Iyer"}) for _ in range(6)))
    assert [item(answer)["item_status"]["code"] for answer in answers] == ["1000"] * 6
    assert await written(org, created["user_id"]) == (audits + 1, events_before + 1)
    (newest, _) = await audit_log(org, created["user_id"])
    assert changed_fields(newest) == {"lastname": ("", "Iyer")}


async def test_a_console_edit_that_applies_nothing_writes_nothing(app, org):
    mobile = new_mobile()
    created = item(await org.add({"mobile": mobile, "firstname": "Asha", "updated_on": PAST}, user_id="true"))
    before = await written(org, created["user_id"])
    page = f"/console/customers/{created['user_id']}"
    transport = httpx.ASGITransport(app=app, client=("10.55.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://patron.test") as browser:
        login = org.console_user("ravi")
        signin = await browser.get("/console/login")
        signed = await browser.post("/console/login", data={
            "login": login, "password": org.passwords[login], "csrf_token": _csrf(signin.text)})
        assert signed.status_code == 303, signed.text
        # The only value the edit sends is one the org's rules do not apply (1017): nothing is written.
        edited = await browser.post(f"{page}/profile", data={
            "csrf_token": _csrf((await browser.get(page)).text), "custom.pwgConsumption": "lots",
            "reason": "Customer called in"})
    assert edited.status_code == 200, edited.text
    assert await written(org, created["user_id"]) == before
    assert (await fetch(org, mobile=mobile))["updated_on"] == PAST


def test_a_file_imported_again_is_counted_unchanged_and_writes_nothing(patron, tmp_path, database_url):
    document = _applied(patron, tmp_path, "retail")
    org_id = str(document["org"]["id"])
    mobiles = [new_mobile() for _ in range(4)]
    path = tmp_path / "customers.csv"
    path.write_text("mobile,email,firstname,custom.City_name,extended.gender\n"
                    + "".join(f"{m},{m}@import.example,Asha,Pune,Female\n" for m in mobiles))
    first = patron("customer", "import", str(path), "--org", org_id)
    assert "4 created, 0 updated, 0 rejected" in first.output, first.output
    audits = select(func.count()).select_from(customer_audits).where(customer_audits.c.org_id == int(org_id))
    before = asyncio.run(_count(database_url, audits))
    path.write_text(path.read_text().replace(f"{mobiles[0]},{mobiles[0]}@import.example,Asha",
                                             f"{mobiles[0]},{mobiles[0]}@import.example,Asha Devi"))
    again = patron("customer", "import", str(path), "--org", org_id)
    assert again.exit_code == 0, again.output
    assert "4 rows" in again.output and "0 created, 1 updated, 3 unchanged, 0 rejected" in again.output, again.output
    assert asyncio.run(_count(database_url, audits)) == before + 1


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)



def test_the_sample_file_imported_again_says_what_docs_import_md_says(tmp_path):
    url = f"sqlite:///{tmp_path / 'patron.db'}"
    upgrade(url)

    def run(*args: str) -> str:
        return CliRunner().invoke(main, list(args), env={"PATRON_DATABASE_URL": url}, catch_exceptions=False).output

    run("org", "apply", str(ROOT / "examples" / "demo-org.toml"))
    shutil.copy(ROOT / "examples" / "customers.csv", tmp_path / "customers.csv")
    run("customer", "import", str(tmp_path / "customers.csv"), "--org", "1001", "--workers", "1")
    again = run("customer", "import", str(tmp_path / "customers.csv"), "--org", "1001", "--workers", "1")
    page = (ROOT / "docs" / "import.md").read_text(encoding="utf-8")
    said = re.search(r"(\d+ rows in [\d.]+s \(\d+ rows/s\): \d+ created, \d+ updated, \d+ unchanged, .*)", page)
    assert said is not None
    assert said.group(1).split(": ", 1)[1] in again, again
