"""Applying an org file: the org, its tills and API clients, in one transaction, idempotently."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from patron.customers import external_ids
from patron.orgs.file import md5_of_password, parse_org_document
from patron.orgs.policy import OrgFile
from patron.security import hash_secret, is_current_hash, verify_secret
from patron.store.db import transaction
from patron.store.external_ids import ExternalIdStore
from patron.store.orgs import OrgStore


class OrgRefused(Exception):
    """The file cannot be applied to this installation as it is; nothing of it is."""


class OrgConflict(OrgRefused):
    """The file claims a till code, API-client key or console login that belongs to another org."""


@dataclass
class ApplyReport:
    org_id: int
    created: bool
    changed: bool
    disabled_tills: list[str] = field(default_factory=list)
    disabled_api_clients: list[str] = field(default_factory=list)
    disabled_console_users: list[str] = field(default_factory=list)


def stored_definition(org_file: OrgFile) -> dict[str, Any]:
    """The org file as stored: secrets are never kept, not even as hashes, in the definition."""
    return org_file.model_dump(
        mode="json",
        exclude={
            "stores": {"__all__": {"tills": {"__all__": {"password", "password_md5"}}}},
            "api_clients": {"__all__": {"secret"}},
            "console_users": {"__all__": {"password", "password_hash"}},
        },
    )


def settings_from_definition(definition: dict[str, Any], org_id: int) -> OrgFile:
    return parse_org_document(definition, f"<org {org_id} as stored>", stored=True)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


async def apply_org(engine: AsyncEngine, org_file: OrgFile) -> ApplyReport:
    org_id = org_file.org.id
    definition = stored_definition(org_file)
    now = _now()
    async with transaction(engine) as conn:
        store = OrgStore(conn)
        previous = await store.definition_hash(org_id)
        await _match_external_ids(conn, org_id, await store.definition(org_id), org_file)
        if previous is None:
            # Tills and API clients refer to their org: it is there first, its version set below.
            await store.save_org(org_id, org_file.org.name, definition, "", now)
        await _apply_tills(store, org_file)
        await _apply_api_clients(store, org_file)
        await _apply_console_users(store, org_file)
        await store.open_sinks(org_id, [(sink.name, sink.sink_kind) for sink in org_file.sinks])
        disabled_tills = await store.disable_tills_except(org_id, [t.code for s in org_file.stores for t in s.tills])
        disabled_api_clients = await store.disable_api_clients_except(org_id, [c.key for c in org_file.api_clients])
        disabled_console_users = await store.disable_console_users_except(org_id, [u.login for u in org_file.console_users])
        # The clients' token generations are part of the org's version too: every worker then
        # re-reads them when a client is revoked, even if the file applied is one seen before.
        generations = await store.token_generations(org_id)
        # A new secret is a change too. The stored slow hashes say so (each is kept while its
        # secret still verifies); a fast hash of the secrets themselves would be a shortcut past them.
        secrets = await store.secret_hashes(org_id)
        digest = hashlib.sha256(
            orjson.dumps([definition, secrets, generations], option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        report = ApplyReport(
            org_id, previous is None, previous != digest, disabled_tills, disabled_api_clients, disabled_console_users
        )
        if report.changed:
            await store.save_org(org_id, org_file.org.name, definition, digest, now)
    return report


def ignores_case(definition: dict[str, Any] | None) -> bool:
    """Whether an org, as stored, matches external ids ignoring case (an org applied before the
    setting existed does not)."""
    return bool(((definition or {}).get("configs") or {}).get("CONF_EXTERNAL_ID_CASE_INSENSITIVE", False))


# Colliding external ids a refusal names; the rest are counted.
_COLLISIONS_NAMED = 20


async def _match_external_ids(
    conn: AsyncConnection, org_id: int, stored: dict[str, Any] | None, org_file: OrgFile
) -> None:
    """Key the org's external ids as the file matches them (CONF_EXTERNAL_ID_CASE_INSENSITIVE), in
    the apply's transaction: when the file turns the setting on, or keeps it on, every external id
    is read (a key written meanwhile by a worker that had not yet seen the file is mended too);
    with it off, only those whose key is not the external id itself. Refuse the file, naming the
    customers, when two of them hold external ids that would become one: never a silent merge."""
    if stored is None:
        return  # a new org has no customers yet
    ignore_case = org_file.configs.CONF_EXTERNAL_ID_CASE_INSENSITIVE
    external_id_store = ExternalIdStore(conn)
    held = [row async for row in external_id_store.held(org_id, all_of_them=ignore_case)]
    # With the setting off every key is an external id, which the keys' index kept unique already.
    changed, collisions = external_ids.rekeyed(held, ignore_case)
    if collisions:
        named = "; ".join(
            " and ".join(f"customer {customer_id} ({external_id!r})" for customer_id, external_id in holders)
            for holders in collisions[:_COLLISIONS_NAMED]
        )
        more = f"; and {len(collisions) - _COLLISIONS_NAMED} more" if len(collisions) > _COLLISIONS_NAMED else ""
        raise OrgRefused(
            f"configs.CONF_EXTERNAL_ID_CASE_INSENSITIVE: {len(collisions)} external ids are held by more than one"
            f" customer once case is ignored: {named}{more}. Patron never merges customers: change or remove"
            " those external ids (customer/update_identity), then apply the file again"
        )
    await external_id_store.rekey(org_id, changed)


def _ours(row: Any, org_id: int, where: str, what: str) -> Any:
    """The stored row of a till code, API-client key or login, None if there is none; refused when
    it is another org's, which this file may not claim."""
    if row is not None and row.org_id != org_id:
        raise OrgConflict(f"{where}: {what} already belongs to org {row.org_id}")
    return row


def _kept_or_new_hash(stored: str | None, secret: str) -> str:
    """The stored hash while it still verifies the file's secret (applying a file again rehashes
    nothing, and ends no session or token), else a hash of the new secret."""
    return stored if stored is not None and verify_secret(stored, secret) else hash_secret(secret)


async def _save_if_differs(
    save: Callable[[str, dict[str, Any], bool], Awaitable[None]], key: str, row: Any, values: dict[str, Any]
) -> None:
    """Write a new row, or one whose stored values are not the file's; leave the rest untouched."""
    if row is None or any(getattr(row, name) != value for name, value in values.items()):
        await save(key, values, row is not None)


async def _apply_tills(store: OrgStore, org_file: OrgFile) -> None:
    org_id = org_file.org.id
    declared = [(f"stores[{i}].tills[{j}].code", s, t) for i, s in enumerate(org_file.stores) for j, t in enumerate(s.tills)]
    existing = await store.tills_by_code([t.code for _, _, t in declared])
    for key, store_entry, till in declared:
        row = _ours(existing.get(till.code), org_id, key, f"till code {till.code!r}")
        values = {
            "org_id": org_id,
            "store_code": store_entry.code,
            "name": till.name,
            "password_hash": _kept_or_new_hash(None if row is None else row.password_hash, md5_of_password(till)),
            "enabled": True,
        }
        await _save_if_differs(store.save_till, till.code, row, values)


async def _apply_api_clients(store: OrgStore, org_file: OrgFile) -> None:
    org_id = org_file.org.id
    existing = await store.api_clients_by_key([c.key for c in org_file.api_clients])
    for index, client in enumerate(org_file.api_clients):
        row = _ours(existing.get(client.key), org_id, f"api_clients[{index}].key", f"API client key {client.key!r}")
        if client.secret is None:
            # Only an org as stored has none, and a stored org is never applied.
            raise OrgRefused(f"api_clients[{index}].secret: field required")
        values = {
            "org_id": org_id,
            "secret_hash": _kept_or_new_hash(None if row is None else row.secret_hash, client.secret),
            "access_group": client.access_group,
            "default_till": client.default_till,
            "token_ttl_seconds": client.token_ttl_seconds,
            "enabled": True,
        }
        if row is not None and values["secret_hash"] != row.secret_hash:
            # A new secret revokes the tokens the old one was given.
            values["token_generation"] = row.token_generation + 1
        await _save_if_differs(store.save_api_client, client.key, row, values)


async def _apply_console_users(store: OrgStore, org_file: OrgFile) -> None:
    org_id = org_file.org.id
    existing = await store.console_users_by_login([user.login for user in org_file.console_users])
    for index, user in enumerate(org_file.console_users):
        row = _ours(existing.get(user.login), org_id, f"console_users[{index}].login", f"login {user.login!r}")
        if user.password_hash is not None and not is_current_hash(user.password_hash):
            # A cheaper hash would verify faster than the decoy an unknown login is checked
            # against, and so tell which logins exist.
            raise OrgRefused(
                f"console_users[{index}].password_hash: not made with this installation's argon2id parameters;"
                " print one with `patron org hash-password`"
            )
        if user.password_hash is not None:
            password_hash = user.password_hash
        elif user.password is None:
            # Only an org as stored has neither, and a stored org is never applied.
            raise OrgRefused(f"console_users[{index}]: give exactly one of password, password_hash")
        else:
            password_hash = _kept_or_new_hash(None if row is None else row.password_hash, user.password)
        values = {
            "org_id": org_id,
            "name": user.name,
            "password_hash": password_hash,
            "access_group": user.access_group,
            "enabled": True,
        }
        if row is not None and password_hash != row.password_hash:
            # A new password ends every session the old one opened.
            values["session_generation"] = row.session_generation + 1
        await _save_if_differs(store.save_console_user, user.login, row, values)
