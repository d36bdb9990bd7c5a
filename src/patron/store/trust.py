"""Trust in verified tills and API clients kept across restarts: one keyed digest per credential."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from patron.store.schema import credential_trust


class TrustStore:
    """The digests only: what they are a digest of, and under which key, is api.auth's business."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def digest(self, org_id: int, kind: str, name: str) -> str | None:
        return await self.conn.scalar(
            select(credential_trust.c.digest).where(
                credential_trust.c.org_id == org_id, credential_trust.c.kind == kind, credential_trust.c.name == name
            )
        )

    async def remember(self, org_id: int, kind: str, name: str, digest: str, at: datetime) -> None:
        """Keep `digest` for the credential, replacing its earlier one; two workers verifying the
        same credential at once both succeed (the later write wins, with the same digest)."""
        insert = sqlite_insert if self.conn.dialect.name == "sqlite" else pg_insert
        statement = insert(credential_trust).values(org_id=org_id, kind=kind, name=name, digest=digest, verified_at=at)
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=[credential_trust.c.org_id, credential_trust.c.kind, credential_trust.c.name],
                set_={"digest": statement.excluded.digest, "verified_at": statement.excluded.verified_at},
            )
        )
