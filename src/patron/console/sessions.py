"""Console sessions: a random secret in an HttpOnly cookie, its SHA-256 in console_sessions, a
CSRF token per session, and what the signed-in user's access group lets them see and do."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from patron.customers.ports import ConsoleStorage, NewSession
from patron.events.operations import may_replay, may_see_events
from patron.orgs.model import ACCESS_LEVELS, OrgSettings
from patron.orgs.policy import AccessGroup
from patron.settings import Settings

SESSION_COOKIE = "patron_console"
# The sign-in form's own CSRF token (no session yet): the same value in a cookie and in the form.
LOGIN_COOKIE = "patron_console_login"
FLASH_COOKIE = "patron_console_flash"
COOKIE_PATH = "/console"
HOME = "/console/"
# A result message's UTF-8 bytes: well within a cookie's 4096 once in base64 with its signature.
FLASH_BYTES = 1500


# What a page requires of its user's access group, declared once per page (console.guards).
Requires = Literal["read", "write", "review", "events", "replay"]
# A result message's kind: done (green), done but a value was not saved (amber), refused (red).
Level = Literal["ok", "warn", "refused"]
LEVELS: tuple[Level, ...] = ("ok", "warn", "refused")


@dataclass(frozen=True)
class Flash:
    """A result message, shown once, and its kind."""

    text: str
    level: Level = "ok"


@dataclass(frozen=True)
class Access:
    """What a console user may see and do, from their access group (docs/member-care.md, console)."""

    customer: str  # none | read | write
    audit: str  # none | read | write
    identity_review: bool
    # The Events page (events read) and its replays (events write): events.operations' rules.
    events_page: bool = False
    replay: bool = False

    @classmethod
    def of(cls, group: AccessGroup | None) -> Access:
        if group is None:
            return cls("none", "none", False)
        return cls(group.customer, group.audit, group.identity_review, may_see_events(group), may_replay(group))

    @property
    def read(self) -> bool:
        """Search, customer pages and the review queue (customers' identifiers are in it)."""
        return ACCESS_LEVELS[self.customer] >= ACCESS_LEVELS["read"]

    @property
    def write(self) -> bool:
        """Edit profile fields, request identifier changes."""
        return ACCESS_LEVELS[self.customer] >= ACCESS_LEVELS["write"]

    @property
    def audit_trail(self) -> bool:
        return ACCESS_LEVELS[self.audit] >= ACCESS_LEVELS["read"]

    @property
    def review(self) -> bool:
        """Approve or reject identity change requests (the group's identity_review)."""
        return self.identity_review and self.read

    def allows(self, requires: Requires | None) -> bool:
        """Whether the group may open a page that requires this (None: any signed-in user may)."""
        if requires is None:
            return True
        allowed = {"read": self.read, "write": self.write, "review": self.review, "events": self.events_page,
                   "replay": self.replay}
        return allowed[requires]


@dataclass(frozen=True)
class Signed:
    """A request's signed-in user."""

    session_id: str
    login: str
    name: str
    org: OrgSettings
    access: Access
    csrf_token: str

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and sent != "" and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


def session_id_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


async def start(
    storage: ConsoleStorage, login: str, org_id: int, generation: int, settings: Settings, now: datetime
) -> str:
    """A new session for the user; returns the secret the cookie carries."""
    secret = new_secret()
    lifetime = timedelta(seconds=settings.console_session_seconds)
    session = NewSession(session_id_of(secret), login, org_id, generation, secrets.token_urlsafe(32), now, now + lifetime)
    async with storage.unit_of_work() as unit:
        # The user's sessions that are over go now: a few rows of one login, by its index.
        await unit.console.purge_sessions(login, now, now - lifetime)
        await unit.console.start_session(session)
    return secret


def secure(request: Request, settings: Settings) -> bool:
    if settings.console_secure_cookie == "always":
        return True
    if settings.console_secure_cookie == "never":
        return False
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, settings: Settings, name: str, value: str, max_age: int) -> None:
    # Lax, not Strict: a link to a customer's page from a ticket or an e-mail opens it signed in;
    # every change is a POST, which Lax keeps from other sites, and each carries a CSRF token; a
    # search (a GET that costs the database) opened from another site is shown, not run
    # (pages.customers.from_another_site).
    response.set_cookie(
        name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure(request, settings)
    )


def clear_cookie(response: Response, request: Request, settings: Settings, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure(request, settings))


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path of this site, else the overview. Never another
    site (//host, a scheme, a backslash that browsers read as a slash), never the sign-in itself."""
    if not target or len(target) > 2000:
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or target.startswith("//") or any(ord(c) < 32 for c in target):
        return HOME
    if not (parts.path == "/console" or parts.path.startswith("/console/")) or parts.path.startswith("/console/login"):
        return HOME
    return target


def page_of_form(path: str) -> str:
    """The page whose form posts to `path`, where a sign-in asked by a POST goes back to (the POST's
    own address is no page): the review queue for a decision, the customer's page for a customer's
    action, the sink's page for a replay, else the overview."""
    if re.fullmatch(r"/console/identity-requests/[^/]+/decision", path):
        return "/console/identity-requests"
    if re.fullmatch(r"/console/customers/[^/]+/[^/]+", path):
        return path.rsplit("/", 1)[0]
    if re.fullmatch(r"/console/events/[^/]+/replay", path):
        return path.rsplit("/", 1)[0]
    return HOME


def _flash_signature(payload: str, request: Request, settings: Settings) -> str:
    # Keyed by the installation's secret and the session's: a message no one else can write, and
    # that only the session it was written for shows.
    key = f"{settings.secret_key}\0{request.cookies.get(SESSION_COOKIE, '')}".encode()
    digest = hmac.new(key, b"patron console flash\0" + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def flash_cookie(message: str, request: Request, settings: Settings, level: Level = "ok") -> str:
    """A result message as a cookie's value: its kind and its UTF-8 in base64url (a cookie is
    Latin-1 at most, and the message quotes what people typed, in any script), cut to FLASH_BYTES,
    and signed (the kind with it: no one turns a refusal green)."""
    data = f"{level}\n{message}".encode()
    if len(data) > FLASH_BYTES:
        data = data[: FLASH_BYTES - 3].decode(errors="ignore").encode() + "…".encode()
    payload = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    return f"{payload}.{_flash_signature(payload, request, settings)}"


def flash_of(request: Request, settings: Settings) -> Flash | None:
    """The result message the request's cookie carries, when the console wrote it for this session."""
    value = request.cookies.get(FLASH_COOKIE, "")
    payload, _, signature = value.partition(".")
    if not payload or len(value) > 2 * FLASH_BYTES:
        return None
    if not hmac.compare_digest(signature.encode(), _flash_signature(payload, request, settings).encode()):
        return None
    try:
        level, _, text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().partition("\n")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    for known in LEVELS:
        if level == known:
            return Flash(text, known)
    return None


def login_token_ok(request: Request, sent: str | None) -> bool:
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not cookie or not sent:
        return False
    return hmac.compare_digest(cookie.encode(), sent.encode())
