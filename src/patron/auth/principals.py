"""Who is calling, once authenticated: a till, or an API client acting for one of its org's tills."""

from __future__ import annotations

from dataclasses import dataclass

from patron.codes import Code
from patron.errors import ApiError
from patron.orgs.model import OrgSettings
from patron.orgs.policy import AccessGroup


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a till, or an API client acting for one of its org's tills."""

    org: OrgSettings
    till_code: str
    api_client_key: str | None
    access_group: AccessGroup | None

    def require(self, resource: str, level: str) -> None:
        if not self.org.allows(self.access_group, resource, level):
            raise ApiError(Code.ACCESS_DENIED)

    @property
    def org_id(self) -> int:
        return self.org.org_id
