"""The test orgs, read from the org files users write (tests/orgs/NAME.toml), under fresh ids."""

from __future__ import annotations

import itertools
import tomllib
import uuid
from pathlib import Path
from typing import Any

from patron.orgs.file import parse_org_document
from patron.orgs.model import OrgSettings
from patron.orgs.policy import OrgFile

ORG_FILES = Path(__file__).resolve().parent.parent / "orgs"

_org_ids = itertools.count(int(uuid.uuid4().int % 10_000_000) * 100 + 10_000)


def org_document(name: str, **configs: Any) -> dict[str, Any]:
    """A test org file from tests/orgs, with configs overridden and a fresh org id and till codes."""
    data = tomllib.loads((ORG_FILES / f"{name}.toml").read_text())
    org_id = next(_org_ids)
    data["org"]["id"] = org_id
    data.setdefault("configs", {}).update(configs)
    renamed: dict[str, str] = {}
    for store in data.get("stores", []):
        for till in store.get("tills", []):
            renamed[till["code"]] = till["code"] = f"{till['code']}.{org_id}"
    for client in data.get("api_clients", []):
        client["key"] = f"{client['key']}.{org_id}"
        client["default_till"] = renamed.get(client["default_till"], client["default_till"])
    for user in data.get("console_users", []):
        user["login"] = f"{user['login']}.{org_id}"
    return data


def org_file(name: str = "retail", **configs: Any) -> OrgFile:
    """A test org file parsed as `patron org apply` parses it, under a fresh id."""
    return parse_org_document(org_document(name, **configs), f"tests/orgs/{name}.toml")


def org_settings(name: str = "retail", **configs: Any) -> OrgSettings:
    """The settings the reader and the rules see of a test org, with configs overridden."""
    return OrgSettings.from_file(org_file(name, **configs))
