"""Per-process cache of org settings, so that no request re-reads an org from the database."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from patron.orgs.apply import settings_from_definition
from patron.orgs.model import OrgSettings
from patron.store.db import transaction
from patron.store.orgs import OrgStore


@dataclass
class _Entry:
    settings: OrgSettings | None
    fingerprint: str | None
    loaded_at: float


class OrgCache:
    """Org settings by id, trusted for `ttl` seconds; an applied org file reaches every worker then."""

    def __init__(self, engine: AsyncEngine, ttl: float) -> None:
        self.engine = engine
        self.ttl = ttl
        self._entries: dict[int, _Entry] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def get(self, org_id: int) -> OrgSettings | None:
        entry = self._entries.get(org_id)
        if entry is not None and time.monotonic() - entry.loaded_at < self.ttl:
            return entry.settings
        lock = self._locks.setdefault(org_id, asyncio.Lock())
        async with lock:
            entry = self._entries.get(org_id)
            if entry is None or time.monotonic() - entry.loaded_at >= self.ttl:
                entry = await self._load(org_id, entry)
                self._entries[org_id] = entry
        return entry.settings

    def fingerprint(self, org_id: int) -> str | None:
        """The version of the org's settings this worker runs with (changes when a file is applied)."""
        entry = self._entries.get(org_id)
        return entry.fingerprint if entry else None

    def forget(self, org_id: int | None = None) -> None:
        if org_id is None:
            self._entries.clear()
        else:
            self._entries.pop(org_id, None)

    async def _load(self, org_id: int, previous: _Entry | None) -> _Entry:
        async with transaction(self.engine, readonly=True) as conn:
            store = OrgStore(conn)
            fingerprint = await store.definition_hash(org_id)
            if previous is not None and fingerprint == previous.fingerprint:
                return _Entry(previous.settings, fingerprint, time.monotonic())
            definition = await store.definition(org_id) if fingerprint else None
            generations = await store.token_generations(org_id) if definition else {}
        settings = (
            OrgSettings.from_file(settings_from_definition(definition, org_id), generations) if definition else None
        )
        return _Entry(settings, fingerprint, time.monotonic())
