"""Transitional: what the console's tests, still at the top of tests/ while another change edits
them, import from `conftest`; every conftest re-exports it until they move into the layers."""

from support import ROOT
from support.api import SECRET_KEY, Org, item, new_mobile
from support.backends import PG_ADMIN_DSN, REQUIRE_PG
from support.backends import admin as _admin
from support.backends import pg_reachable as _pg_reachable
from support.orgs import org_document

__all__ = ["ROOT", "SECRET_KEY", "Org", "item", "new_mobile", "PG_ADMIN_DSN", "REQUIRE_PG", "_admin", "_pg_reachable", "org_document"]
