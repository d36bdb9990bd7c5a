"""Authentication: tills' Basic auth, API clients' tokens, console users' passwords, and trust kept."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jwt
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from patron.auth.guard import Attempt, CredentialGuard
from patron.auth.principals import Principal
from patron.auth.ratelimit import RateLimiter, retry_after
from patron.codes import Code
from patron.errors import ApiError
from patron.observability.record import record_of
from patron.orgs.cache import OrgCache
from patron.orgs.model import OrgSettings
from patron.security import DECOY_HASH
from patron.store.db import transaction
from patron.store.orgs import OrgStore
from patron.store.trust import TrustStore

TOKEN_HEADER = "x-cap-api-oauth-token"
ATTRIBUTION_TYPE = "x-cap-api-attribution-entity-type"
ATTRIBUTION_CODE = "x-cap-api-attribution-entity-code"
ATTRIBUTION_TILL_LEGACY = "x-cap-api-attribution-till-code"
TOKEN_ALGORITHM = "HS256"
TOKEN_ISSUER = "patron"
# Org ids are BIGINT.
_LARGEST_ORG_ID = 2**63
# Whose trust is kept across restarts: tills and API clients, which sign in unattended and all at
# once after a restart. Not console users: their passwords are chosen by people, and are kept
# only as slow hashes, so that a stolen database and key cannot be searched quickly for them.
_KEPT_KINDS = ("till", "client")

log = logging.getLogger("patron.auth")


@dataclass(frozen=True)
class _Verified:
    org_id: int
    subject: str
    fingerprint: str | None
    expires: float


class CredentialCache:
    """Recently verified credentials, keyed by a keyed fast hash, never by the secret itself.

    An entry also remembers the org's settings fingerprint, so that applying an org file (which
    may disable a till or change its password) makes every entry of that org stale at once.

    The lookup compares digests under a per-process random key, so its timing tells a caller
    nothing about a stored credential; every other check of a secret is constant-time too
    (argon2's verify for passwords and client secrets, hmac.compare_digest inside PyJWT for tokens).
    """

    def __init__(self, ttl: float, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, _Verified] = OrderedDict()

    def key(self, *parts: str) -> bytes:
        return hashlib.blake2b("\0".join(parts).encode(), key=self._key, digest_size=32).digest()

    def get(self, key: bytes) -> _Verified | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires < time.monotonic():
            del self._entries[key]
            return None
        return entry

    def forget(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def put(self, key: bytes, org_id: int, subject: str, fingerprint: str | None) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = _Verified(org_id, subject, fingerprint, time.monotonic() + self.ttl)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class Authenticator:
    def __init__(
        self,
        engine: Any,
        orgs: OrgCache,
        secret_key: str,
        cache_ttl: float,
        guard: CredentialGuard | None = None,
    ) -> None:
        self.engine = engine
        self.orgs = orgs
        self.secret_key = secret_key
        self.cache = CredentialCache(cache_ttl)
        self._verifying: dict[bytes, asyncio.Future[OrgSettings]] = {}
        # Till codes and API-client keys are two namespaces: a till may share a client's name.
        self.till_limits = RateLimiter()
        self.client_limits = RateLimiter()
        self.guard = guard or CredentialGuard()
        # Trust kept across restarts needs a key only this installation knows (none: not kept).
        # Derived, so that the key that signs tokens is never used as is for anything else.
        self._trust_key = (
            hmac.new(secret_key.encode(), b"patron credential trust v1", hashlib.sha256).digest() if secret_key else None
        )

    async def authenticate(self, request: Request) -> Principal:
        token = request.headers.get(TOKEN_HEADER)
        if token is not None:
            principal = await self._from_token(token, request)
        else:
            principal = await self._from_basic(request.headers.get("authorization"), request)
        # Counted only once the caller is known, so that a flood of bad credentials naming a
        # till cannot spend that till's budget.
        self._admit(principal)
        return principal

    def _admit(self, principal: Principal) -> None:
        configs = principal.org.configs
        rate = configs.RATE_LIMIT_PER_SECOND
        if not rate:
            return
        if principal.api_client_key is None:
            wait = self.till_limits.wait(principal.till_code, rate, configs.rate_limit_burst)
        else:
            wait = self.client_limits.wait(principal.api_client_key, rate, configs.rate_limit_burst)
        if wait:
            raise ApiError(Code.TOO_MANY_REQUESTS, headers={"Retry-After": retry_after(wait)})

    # Tills: Basic base64(till code ":" md5 hex of the password).

    async def _from_basic(self, header: str | None, request: Request | None = None) -> Principal:
        till_code, md5 = _basic_credentials(header)
        key = self.cache.key("till", till_code, md5)
        verified = self.cache.get(key)
        if verified is not None:
            org = await self._org(verified.org_id)
            if self.orgs.fingerprint(org.org_id) != verified.fingerprint:
                # The org file was applied since: the till may be disabled or have a new password.
                self.cache.forget(key)
                verified = None
        if verified is None:
            if request is not None and not _MD5_HEX.fullmatch(md5):
                # The commonest first mistake: the password itself instead of its MD5. The answer
                # stays the one 401 of every failure; the request's log line says what was wrong
                # (never the password). Only an uncached caller can be wrong, so only it is looked at.
                record_of(request.scope).hint = NOT_MD5_HINT
            # Only a caller no cache vouches for is counted and limited: a cached till never is.
            attempt = Attempt("till", till_code, key, client_address(request))
            self.guard.admit(attempt)
            org = await self._single_flight(key, lambda: self._verify_till(attempt, md5))
            self.cache.put(key, org.org_id, till_code, self.orgs.fingerprint(org.org_id))
        till = org.till(till_code)
        if till is None:
            raise ApiError(Code.AUTHENTICATION_FAILED)
        return Principal(org, till.code, None, org.access_groups.get(till.store.access_group))

    async def _single_flight(self, key: bytes, verify: Callable[[], Awaitable[OrgSettings]]) -> OrgSettings:
        """One slow hash per credential at a time: a till's burst of requests after a start or an
        org-file change waits for the first verification instead of hashing once per request."""
        pending = self._verifying.get(key)
        if pending is None:
            pending = asyncio.ensure_future(verify())
            self._verifying[key] = pending
            pending.add_done_callback(lambda _: self._verifying.pop(key, None))
        return await asyncio.shield(pending)

    async def _verify_till(self, attempt: Attempt, md5: str) -> OrgSettings:
        async with transaction(self.engine, readonly=True) as conn:
            row = await OrgStore(conn).till(attempt.name)
            kept = await self._kept_digest(conn, attempt, row)
        await self._verify(attempt, row, "password_hash", md5, kept)
        return await self._org(row.org_id)

    async def _kept_digest(self, conn: Any, attempt: Attempt, row: Any) -> str | None:
        """The digest kept for an enabled till or client when this installation keeps trust."""
        if self._trust_key is None or row is None or not row.enabled or attempt.kind not in _KEPT_KINDS:
            return None
        return await TrustStore(conn).digest(row.org_id, attempt.kind, attempt.name)

    def _trust_digest(self, attempt: Attempt, stored: str, secret: str) -> str:
        """What vouches for `secret` after a restart: bound to the stored hash, so that a new
        secret or a re-hashed one in the org file (a new stored hash) is vouched for no more."""
        assert self._trust_key is not None
        message = "\0".join((attempt.kind, attempt.name, stored, secret)).encode("utf-8", "surrogatepass")
        return hmac.new(self._trust_key, message, hashlib.sha256).hexdigest()

    async def _verify(
        self, attempt: Attempt, row: Any, hash_column: str, secret: str, kept: str | None = None
    ) -> None:
        """Refuse unless `row` is an enabled credential whose stored hash matches `secret`. An
        unknown one is checked against a decoy, so that it costs as long as a wrong secret.

        A till or client whose digest, kept when it last verified, matches `secret` and the
        stored hash is let in without the slow hash: after a restart a fleet of tills gets in at
        once instead of at the pace of the budget for unverified credentials."""
        guard = self.guard
        usable = row is not None and row.enabled
        stored = getattr(row, hash_column) if usable else DECOY_HASH
        keeps = usable and self._trust_key is not None and attempt.kind in _KEPT_KINDS
        digest = self._trust_digest(attempt, stored, secret) if keeps else None
        if kept is not None and digest is not None and hmac.compare_digest(kept, digest):
            guard.verified(attempt)
            return
        if not (await guard.check(attempt, stored, secret) and usable):
            raise ApiError(Code.AUTHENTICATION_FAILED)
        guard.verified(attempt)
        if digest is not None:
            await self._keep(row.org_id, attempt, digest)

    async def _keep(self, org_id: int, attempt: Attempt, digest: str) -> None:
        try:
            async with transaction(self.engine) as conn:
                await TrustStore(conn).remember(
                    org_id, attempt.kind, attempt.name, digest, datetime.now(timezone.utc).replace(tzinfo=None)
                )
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            # Verified all the same: the trust is only kept for the next restart.
            # The error's text may quote the statement's parameters: only its type is logged.
            log.warning(
                "trust in %s %.64r not kept (%s): it is checked afresh after a restart",
                attempt.kind, attempt.name, type(exc).__name__,
            )

    # Console users (patron.console): a login and password from the sign-in form.

    async def verify_console_user(self, login: str, password: str, request: Request | None = None) -> Any:
        """The console user's row when `password` is theirs and they are enabled; else 401, with
        the guarding of tills and clients: counted failures per login and address (429), an unknown
        login checked against a decoy hash (as slow as a wrong password), bounded hash slots."""
        if not (login and _storable(login) and _storable(password)):
            raise ApiError(Code.AUTHENTICATION_FAILED)
        attempt = Attempt("console", login, self.cache.key("console", login, password), client_address(request))
        self.guard.admit(attempt)
        async with transaction(self.engine, readonly=True) as conn:
            row = await OrgStore(conn).console_user(login)
        await self._verify(attempt, row, "password_hash", password)
        return row

    # API clients: a signed token from /v3/oauth/token/generate.

    async def issue_token(self, key: Any, secret: Any, request: Request | None = None) -> tuple[str, int]:
        if not (isinstance(key, str) and isinstance(secret, str) and self.secret_key and _storable(key)):
            raise ApiError(Code.AUTHENTICATION_FAILED)
        attempt = Attempt("client", key, self.cache.key("client", key, secret), client_address(request))
        self.guard.admit(attempt)
        async with transaction(self.engine, readonly=True) as conn:
            row = await OrgStore(conn).api_client(key)
            kept = await self._kept_digest(conn, attempt, row)
        await self._verify(attempt, row, "secret_hash", secret, kept)
        now = int(time.time())
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": key,
            "org": row.org_id,
            "iat": now,
            "exp": now + row.token_ttl_seconds,
            "gen": row.token_generation,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self.secret_key, algorithm=TOKEN_ALGORITHM), row.token_ttl_seconds

    async def _from_token(self, token: str, request: Request) -> Principal:
        if not self.secret_key:
            raise ApiError(Code.AUTHENTICATION_FAILED)
        try:
            claims = jwt.decode(
                token,
                self.secret_key,
                algorithms=[TOKEN_ALGORITHM],
                issuer=TOKEN_ISSUER,
                options={"require": ["exp", "sub", "org", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(Code.TOKEN_EXPIRED) from exc
        except jwt.PyJWTError as exc:
            raise ApiError(Code.AUTHENTICATION_FAILED) from exc
        org_id = claims["org"]
        # Signed means issued by Patron, which only ever names an org by its id; anything else
        # names no org (and must not reach the database as a query error).
        if type(org_id) is not int or not 0 < org_id < _LARGEST_ORG_ID:
            raise ApiError(Code.AUTHENTICATION_FAILED)
        org = await self._org(org_id)
        client = next((c for c in org.definition.api_clients if c.key == claims["sub"]), None)
        if client is None or claims.get("gen", 0) != org.token_generations.get(client.key):
            # The client was removed from the org file, or given a new secret, since the token
            # was issued: even if the same file is applied again, the token stays revoked.
            raise ApiError(Code.AUTHENTICATION_FAILED)
        till_code = _attributed_till(request) or client.default_till
        if org.till(till_code) is None:
            raise ApiError(Code.INVALID_INPUT, detail=f"attribution till {till_code!r} is not a till of this org")
        return Principal(org, till_code, client.key, org.access_groups.get(client.access_group))

    async def _org(self, org_id: int) -> OrgSettings:
        org = await self.orgs.get(org_id)
        if org is None:
            raise ApiError(Code.AUTHENTICATION_FAILED)
        return org


def client_address(request: Request | None) -> str:
    """The address the request came from, as the server saw it: the peer's, or the one a proxy
    named in PATRON_TRUSTED_PROXIES forwards. Behind a proxy not named, every caller shares the
    proxy's address and its failure limit."""
    client = request.client if request is not None else None
    return client.host if client is not None else ""


_MD5_HEX = re.compile(r"[0-9a-f]{32}")
NOT_MD5_HINT = "the Basic-auth password is not an MD5 hex digest: send the lower-case MD5 of the till's password"


def _basic_credentials(header: str | None) -> tuple[str, str]:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise ApiError(Code.AUTHENTICATION_FAILED)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    # Bad base64 and bad UTF-8 are ValueErrors, and so is base64's refusal of non-ASCII text,
    # which a header (read as latin-1) may hold.
    except ValueError as exc:
        raise ApiError(Code.AUTHENTICATION_FAILED) from exc
    till_code, colon, md5 = decoded.partition(":")
    if not colon or not till_code or not _storable(till_code):
        raise ApiError(Code.AUTHENTICATION_FAILED)
    # Clients differ in the case of the hex digest; the stored hash is of the lower-case form.
    return till_code, md5.strip().lower()


def _storable(name: str) -> bool:
    """Whether a till code or client key can be looked up at all: PostgreSQL refuses NUL in text,
    so a name holding one names nobody (and must not reach the database as a query error)."""
    return "\x00" not in name


def _attributed_till(request: Request) -> str | None:
    entity_type = request.headers.get(ATTRIBUTION_TYPE)
    code = request.headers.get(ATTRIBUTION_CODE)
    if entity_type is not None and entity_type.strip().upper() != "TILL":
        raise ApiError(Code.INVALID_INPUT, detail="X-CAP-API-ATTRIBUTION-ENTITY-TYPE must be TILL")
    return (code or request.headers.get(ATTRIBUTION_TILL_LEGACY) or "").strip() or None


