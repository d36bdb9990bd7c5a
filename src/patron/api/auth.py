"""Who is calling: Basic auth for tills, OAuth tokens for API clients, and what they may do."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jwt
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from patron.api.errors import ApiError
from patron.api.ratelimit import (
    BudgetRefused,
    FailureCounter,
    FairBudget,
    RateLimiter,
    RecentKeys,
    network_of,
    retry_after,
)
from patron.codes import Code
from patron.observability.metrics import metrics
from patron.orgs.cache import OrgCache
from patron.orgs.policy import AccessGroup
from patron.orgs.model import OrgSettings
from patron.security import DECOY_HASH, HashQueueFull, HashSlots, lowest_priority, verify_secret
from patron.settings import Settings
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
# How long a credential that verified stays exempt from the failure limits (not from checking).
_TRUSTED_SECONDS = 24 * 3600.0
# Whose trust is kept across restarts: tills and API clients, which sign in unattended and all at
# once after a restart. Not console users: their passwords are chosen by people, and are kept
# only as slow hashes, so that a stolen database and key cannot be searched quickly for them.
_KEPT_KINDS = ("till", "client")

log = logging.getLogger("patron.auth")


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


@dataclass(frozen=True)
class _Attempt:
    """One check of a secret that no cache vouches for."""

    kind: str  # "till" or "client": two namespaces, a till may share a client's name
    name: str  # the till code or client key named
    key: bytes  # the credential cache's key for the name and secret
    address: str  # the client address of the request


class CredentialGuard:
    """What makes guessing a till password, client secret or console password slow and cheap to
    refuse, without letting a flood from some addresses shut out callers from others.

    - Failures are counted per credential named, per client address and per network (its /24,
      or /64 for IPv6: `network_of`), in a window (FailureCounter). An address or network past
      its limit is refused with 429 before any database read or slow hash, until the window
      passes. Refused attempts count against their address and network too, so a flood that is
      mostly refused still uses up its own budget: a dozen addresses cannot keep it up forever.
    - A credential past its limit is refused (429) only to the networks that failed on it in the
      window: the right secret from a network that has not been failing still gets its check.
      So nobody locks a named till or console user out from afar; a guesser gets one more guess
      per fresh network, each then locked too, on top of the network's and address's limits.
      An unknown till or client key is counted like a known one, so a refusal tells nothing
      about which exist.
    - Only failures that cost a slow hash count. A wrong secret is remembered with the stored hash
      it failed against; the same secret against the same hash is refused from memory (the answer
      cannot differ), uncounted. The memory is per name, so an unknown till costs a hash as a known
      one does, and a new password (a new hash) is checked afresh.
    - A network with failures in the window waits behind the others for the budget below, holds
      at most all hash slots but one, and its hashes run at the lowest priority (nice 19), so a
      flood slows itself rather than the first sign-in of a caller from elsewhere.
    - A credential that verified within the last day in this worker (`trusted`) is neither
      refused by the limits nor held by the budget below; it is still checked with a slow hash
      (unless its persisted digest vouches for it: Authenticator). A guesser cannot be trusted
      without knowing the secret, and a trusted credential that fails is trusted no more.
    - At most `hash_concurrency` slow hashes at a time, on threads, and at most `hash_queue`
      callers waiting; then 503 with Retry-After (HashSlots).
    - At most `unverified_hashes_per_second` slow hashes a second (bursts of twice that) for
      credentials not verified in this worker before, handed out in turn between the networks
      and addresses asking, those of networks that have been failing after the others
      (FairBudget): at most `unverified_per_address` attempts of an address wait for one, each
      at most `unverified_wait` seconds; beyond, 503 with Retry-After.
    """

    def __init__(
        self,
        failures_per_credential: int = 10,
        failures_per_address: int = 50,
        window: float = 300.0,
        hash_concurrency: int = 2,
        hash_queue: int = 64,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 50_000,
        unverified_hashes_per_second: int = 0,
        failures_per_network: int = 200,
        unverified_per_address: int = 2,
        unverified_wait: float = 10.0,
    ) -> None:
        self._key = secrets.token_bytes(32)
        self.credentials = FailureCounter(failures_per_credential, window, clock, max_entries)
        self.addresses = FailureCounter(failures_per_address, window, clock, max_entries)
        self.networks = FailureCounter(failures_per_network, window, clock, max_entries)
        # Which networks failed on which credential in the window: those a locked credential refuses.
        self.failed_from = RecentKeys(window, clock, max_entries)
        self.refused = RecentKeys(window, clock, max_entries)
        self.trusted = RecentKeys(_TRUSTED_SECONDS, clock, max_entries)
        self.hashes = HashSlots(hash_concurrency, hash_queue)
        # Slow hashes for credentials not verified before, per second (0: no budget): what a
        # flood of guesses may take of the CPU, whatever its addresses and names.
        self.unverified_rate = unverified_hashes_per_second
        self.budget = FairBudget(
            unverified_hashes_per_second, 2 * unverified_hashes_per_second, unverified_per_address, hash_queue,
            unverified_wait, clock,
        )
        # Hashes for networks that have been failing run on threads of the lowest priority: the
        # event loop, and the hashes of everyone else, always get a core first, so guesses only
        # ever take what the machine leaves idle; and they hold all slots but one, so that a
        # slot is always free for a caller from elsewhere however slowly they run.
        self._failing_slots = asyncio.Semaphore(max(1, hash_concurrency - 1))
        self._unverified_hashing = ThreadPoolExecutor(
            hash_concurrency, thread_name_prefix="unverified-hash", initializer=lowest_priority
        )

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.monotonic) -> CredentialGuard:
        return cls(
            settings.auth_failures_per_credential,
            settings.auth_failures_per_address,
            settings.auth_failure_window_seconds,
            settings.auth_hash_concurrency,
            settings.auth_hash_queue,
            clock,
            unverified_hashes_per_second=settings.auth_unverified_hashes_per_second,
            failures_per_network=settings.auth_failures_per_network,
            unverified_per_address=settings.auth_unverified_hashes_waiting_per_address,
            unverified_wait=settings.auth_unverified_hash_wait_seconds,
        )

    def _digest(self, *parts: str) -> bytes:
        joined = "\0".join(parts).encode("utf-8", "surrogatepass")
        return hashlib.blake2b(joined, key=self._key, digest_size=16).digest()

    def admit(self, attempt: _Attempt) -> None:
        """Refuse with 429 an attempt from an address or network past its limit, or on a
        credential past its limit from a network that failed on it; the refusal is counted."""
        if attempt.key in self.trusted:
            return
        network = network_of(attempt.address)
        wait = max(self.addresses.wait(attempt.address), self.networks.wait(network))
        if not wait:
            locked = self.credentials.wait(self._digest(attempt.kind, attempt.name))
            if locked and self._digest(attempt.kind, attempt.name, network) in self.failed_from:
                wait = locked
        if wait:
            self._count_against(attempt, network, "limit")
            raise ApiError(Code.TOO_MANY_REQUESTS, headers={"Retry-After": retry_after(wait)})

    async def check(self, attempt: _Attempt, stored: str, secret: str) -> bool:
        """Whether `secret` matches the `stored` hash: one slow hash in a bounded slot, on a thread,
        unless this secret was refused against this hash a moment ago. Failures are counted."""
        refusal = self._digest(attempt.kind, attempt.name, stored, secret)
        if refusal in self.refused:
            return False
        trusted = attempt.key in self.trusted
        network = network_of(attempt.address)
        # A network with failures in the window may be guessing: it waits behind the others for
        # the budget, holds at most all slots but one, and hashes at the lowest priority.
        failing = not trusted and self.networks.failures(network) > 0
        if not trusted:
            try:
                await self.budget.take(attempt.address, failing=failing)
            except BudgetRefused as exc:
                self._count_against(attempt, network, "busy")
                raise ApiError(Code.SERVICE_UNAVAILABLE, headers={"Retry-After": retry_after(exc.wait)}) from exc
        try:
            async with self._failing_slots if failing else contextlib.nullcontext(), self.hashes.slot(must_wait=trusted):
                # Again: failures counted while this attempt waited for its slot may have
                # reached a limit, and a refused attempt must cost no hash.
                self.admit(attempt)
                if failing:
                    loop = asyncio.get_running_loop()
                    matches = await loop.run_in_executor(self._unverified_hashing, verify_secret, stored, secret)
                else:
                    matches = await asyncio.to_thread(verify_secret, stored, secret)
        except HashQueueFull as exc:
            self._count_against(attempt, network, "busy")
            raise ApiError(Code.SERVICE_UNAVAILABLE, headers={"Retry-After": "1"}) from exc
        if not matches:
            self.refused.add(refusal)
            self.failed(attempt)
        return matches

    def verified(self, attempt: _Attempt) -> None:
        # A success does not clear the counts: a till verifying every minute would otherwise
        # hand a guesser of its password a fresh budget each time.
        self.trusted.add(attempt.key)

    def failed(self, attempt: _Attempt) -> None:
        self.trusted.discard(attempt.key)
        network = network_of(attempt.address)
        self.failed_from.add(self._digest(attempt.kind, attempt.name, network))
        credential = self.credentials.add(self._digest(attempt.kind, attempt.name))
        if credential and credential == self.credentials.limit:
            _lockout(
                attempt.kind, "credential", attempt.name, credential, self.credentials.window,
                f"refused to the networks that failed on it; last from {attempt.address}",
            )
        self._count_against(attempt, network, None)

    def _count_against(self, attempt: _Attempt, network: str, refused: str | None) -> None:
        """A failure, or a refusal ("limit": 429, "busy": 503), counts against the address and
        its network; a limit reached is logged and counted once."""
        if refused is not None:
            metrics().auth_refusal(attempt.kind, refused)
        address = self.addresses.add(attempt.address)
        if address and address == self.addresses.limit:
            _lockout(attempt.kind, "address", attempt.address, address, self.addresses.window, "every credential")
        failures = self.networks.add(network)
        if failures and failures == self.networks.limit:
            _lockout(attempt.kind, "network", network, failures, self.networks.window, "every credential")


def _lockout(kind: str, scope: str, name: str, count: int, window: float, refused: str) -> None:
    """One structured warning line and one count of patron_auth_lockouts_total per lockout."""
    metrics().auth_lockout(kind, scope)
    log.warning(
        "auth lockout: scope=%s kind=%s name=%.64r failures=%d window_s=%.0f refused=%s",
        scope, kind, name, count, window, refused,
    )


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
                request.scope.setdefault("state", {})["hint"] = NOT_MD5_HINT
            # Only a caller no cache vouches for is counted and limited: a cached till never is.
            attempt = _Attempt("till", till_code, key, client_address(request))
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

    async def _verify_till(self, attempt: _Attempt, md5: str) -> OrgSettings:
        async with transaction(self.engine, readonly=True) as conn:
            row = await OrgStore(conn).till(attempt.name)
            kept = await self._kept_digest(conn, attempt, row)
        await self._verify(attempt, row, "password_hash", md5, kept)
        return await self._org(row.org_id)

    async def _kept_digest(self, conn: Any, attempt: _Attempt, row: Any) -> str | None:
        """The digest kept for an enabled till or client when this installation keeps trust."""
        if self._trust_key is None or row is None or not row.enabled or attempt.kind not in _KEPT_KINDS:
            return None
        return await TrustStore(conn).digest(row.org_id, attempt.kind, attempt.name)

    def _trust_digest(self, attempt: _Attempt, stored: str, secret: str) -> str:
        """What vouches for `secret` after a restart: bound to the stored hash, so that a new
        secret or a re-hashed one in the org file (a new stored hash) is vouched for no more."""
        assert self._trust_key is not None
        message = "\0".join((attempt.kind, attempt.name, stored, secret)).encode("utf-8", "surrogatepass")
        return hmac.new(self._trust_key, message, hashlib.sha256).hexdigest()

    async def _verify(
        self, attempt: _Attempt, row: Any, hash_column: str, secret: str, kept: str | None = None
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

    async def _keep(self, org_id: int, attempt: _Attempt, digest: str) -> None:
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
        attempt = _Attempt("console", login, self.cache.key("console", login, password), client_address(request))
        self.guard.admit(attempt)
        async with transaction(self.engine, readonly=True) as conn:
            row = await OrgStore(conn).console_user(login)
        await self._verify(attempt, row, "password_hash", password)
        return row

    # API clients: a signed token from /v3/oauth/token/generate.

    async def issue_token(self, key: Any, secret: Any, request: Request | None = None) -> tuple[str, int]:
        if not (isinstance(key, str) and isinstance(secret, str) and self.secret_key and _storable(key)):
            raise ApiError(Code.AUTHENTICATION_FAILED)
        attempt = _Attempt("client", key, self.cache.key("client", key, secret), client_address(request))
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


