"""Orgs as applied, and the credentials of their tills and API clients."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row, ScalarResult
from sqlalchemy.ext.asyncio import AsyncConnection

from patron.store.schema import api_clients, console_users, event_sinks, event_streams, orgs, tills


class OrgStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def definition(self, org_id: int) -> dict[str, Any] | None:
        return await self.conn.scalar(select(orgs.c.definition).where(orgs.c.id == org_id))

    async def definition_hash(self, org_id: int) -> str | None:
        return await self.conn.scalar(select(orgs.c.definition_sha256).where(orgs.c.id == org_id))

    async def save_org(self, org_id: int, name: str, definition: dict[str, Any], sha256: str, at: datetime) -> None:
        values = {"name": name, "definition": definition, "definition_sha256": sha256, "updated_at": at}
        changed = await self.conn.execute(update(orgs).where(orgs.c.id == org_id).values(**values))
        if changed.rowcount == 0:
            await self.conn.execute(insert(orgs).values(id=org_id, created_at=at, **values))

    async def open_sinks(self, org_id: int, declared: list[tuple[str, str]]) -> list[str]:
        """A row for each declared sink (name, kind) that has none, starting at the org's stream's
        end as it is now: a sink is sent what is committed from when its org file was applied. The
        names of the sinks opened."""
        existing: set[str] = set((await self.conn.execute(
            select(event_sinks.c.sink).where(event_sinks.c.org_id == org_id)
        )).scalars())
        new = [(name, kind) for name, kind in declared if name not in existing]
        if new:
            end = await self.conn.scalar(
                select(func.coalesce(func.max(event_streams.c.last_position), 0)).where(event_streams.c.org_id == org_id)
            )
            await self.conn.execute(
                insert(event_sinks), [{"org_id": org_id, "sink": name, "kind": kind, "position": end} for name, kind in new]
            )
        return [name for name, _ in new]

    # Tills: the code alone names the org.

    async def till(self, code: str) -> Any:
        return (await self.conn.execute(select(tills).where(tills.c.code == code))).first()

    async def tills_by_code(self, codes: list[str]) -> dict[str, Any]:
        if not codes:
            return {}
        rows = await self.conn.execute(select(tills).where(tills.c.code.in_(codes)))
        return {row.code: row for row in rows}

    async def save_till(self, code: str, values: dict[str, Any], exists: bool) -> None:
        if exists:
            await self.conn.execute(update(tills).where(tills.c.code == code).values(**values))
        else:
            await self.conn.execute(insert(tills).values(code=code, **values))

    async def disable_tills_except(self, org_id: int, keep: list[str]) -> list[str]:
        rows: ScalarResult[str] = await self.conn.scalars(
            select(tills.c.code).where(tills.c.org_id == org_id, tills.c.enabled.is_(True), tills.c.code.not_in(keep))
        )
        disabled = list(rows)
        if disabled:
            await self.conn.execute(update(tills).where(tills.c.code.in_(disabled)).values(enabled=False))
        return disabled

    # API clients: the key alone names the org.

    async def api_client(self, key: str) -> Any:
        return (await self.conn.execute(select(api_clients).where(api_clients.c.key == key))).first()

    async def api_clients_by_key(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        rows = await self.conn.execute(select(api_clients).where(api_clients.c.key.in_(keys)))
        return {row.key: row for row in rows}

    async def save_api_client(self, key: str, values: dict[str, Any], exists: bool) -> None:
        if exists:
            await self.conn.execute(update(api_clients).where(api_clients.c.key == key).values(**values))
        else:
            await self.conn.execute(insert(api_clients).values(key=key, **values))

    async def disable_api_clients_except(self, org_id: int, keep: list[str]) -> list[str]:
        rows: ScalarResult[str] = await self.conn.scalars(
            select(api_clients.c.key).where(
                api_clients.c.org_id == org_id, api_clients.c.enabled.is_(True), api_clients.c.key.not_in(keep)
            )
        )
        disabled = list(rows)
        if disabled:
            await self.conn.execute(
                update(api_clients)
                .where(api_clients.c.key.in_(disabled))
                .values(enabled=False, token_generation=api_clients.c.token_generation + 1)
            )
        return disabled

    async def secret_hashes(self, org_id: int) -> list[list[str]]:
        """The stored hash of each enabled till, API client and console user of the org, by name."""
        rows: list[Row[str, str]] = []
        for table, name, hashed in (
            (tills, tills.c.code, tills.c.password_hash),
            (api_clients, api_clients.c.key, api_clients.c.secret_hash),
            (console_users, console_users.c.login, console_users.c.password_hash),
        ):
            rows += await self.conn.execute(
                select(name, hashed).where(table.c.org_id == org_id, table.c.enabled.is_(True)).order_by(name)
            )
        return [[row[0], row[1]] for row in rows]

    async def token_generations(self, org_id: int) -> dict[str, int]:
        """The generation of each enabled API client of the org: the one its valid tokens name."""
        rows = await self.conn.execute(
            select(api_clients.c.key, api_clients.c.token_generation).where(
                api_clients.c.org_id == org_id, api_clients.c.enabled.is_(True)
            )
        )
        return {row.key: row.token_generation for row in rows}

    # Console users: the login alone names the org.

    async def console_user(self, login: str) -> Any:
        return (await self.conn.execute(select(console_users).where(console_users.c.login == login))).first()

    async def console_users_by_login(self, logins: list[str]) -> dict[str, Any]:
        if not logins:
            return {}
        rows = await self.conn.execute(select(console_users).where(console_users.c.login.in_(logins)))
        return {row.login: row for row in rows}

    async def save_console_user(self, login: str, values: dict[str, Any], exists: bool) -> None:
        if exists:
            await self.conn.execute(update(console_users).where(console_users.c.login == login).values(**values))
        else:
            await self.conn.execute(insert(console_users).values(login=login, **values))

    async def disable_console_users_except(self, org_id: int, keep: list[str]) -> list[str]:
        rows: ScalarResult[str] = await self.conn.scalars(
            select(console_users.c.login).where(
                console_users.c.org_id == org_id, console_users.c.enabled.is_(True), console_users.c.login.not_in(keep)
            )
        )
        disabled = list(rows)
        if disabled:
            await self.conn.execute(
                update(console_users)
                .where(console_users.c.login.in_(disabled))
                .values(enabled=False, session_generation=console_users.c.session_generation + 1)
            )
        return disabled
