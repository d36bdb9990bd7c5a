"""Process settings, read once from PATRON_* environment variables."""

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATRON_", frozen=True)

    database_url: str = "sqlite:///./var/patron.db"
    # Signs OAuth tokens. Empty means "not configured": token generation then refuses to run
    # rather than sign with a guessable key.
    secret_key: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # How long a verified till password or API-client secret is trusted without re-hashing.
    credential_cache_seconds: float = Field(default=60.0, ge=0)
    # Credential guessing (issue #20). Failed checks of a till password or client secret are
    # counted per till code or client key and per client address (request.client: the peer, or
    # the address one of trusted_proxies forwards), in each worker's memory; past the limit,
    # attempts on that credential or from that address get 429 with Retry-After, without a slow
    # hash, until the window passes. Only failures that cost a slow hash count: a repeat of a wrong secret that
    # was just refused is answered from memory and not counted again, so a till retrying a stale
    # password never locks itself out. 10 per credential per 5 minutes is about 2,900 guesses a
    # day, where a till with a wrong password fails once with each new guess: no one types 10
    # different wrong passwords in 5 minutes. 50 per address leaves room for the many tills of a
    # store or office behind one NAT address to fail on a few credentials each. 0 turns a limit off.
    auth_failures_per_credential: int = Field(default=10, ge=0)
    auth_failures_per_address: int = Field(default=50, ge=0)
    auth_failure_window_seconds: float = Field(default=300.0, gt=0)
    # At most this many slow hashes (argon2id: ~150 ms and 64 MiB each, 4 lanes) run at once in a
    # worker, on threads; 2 already keep the cores of a small machine busy, and callers whose
    # credentials are cached never wait for them. Beyond the queue, 503 with Retry-After.
    auth_hash_concurrency: int = Field(default=2, ge=1)
    auth_hash_queue: int = Field(default=64, ge=0)
    # Slow hashes a second (a burst of twice that) for credentials this worker has not verified
    # before: each takes ~0.15 s of CPU, so 2 keep a flood of guesses to a third of a core per
    # worker, while a till already verified is never held by it. Beyond, 503 with Retry-After: 1.
    # A fleet of tills starting at once is verified at this pace (each then cached): raise it on
    # machines with more cores. 0 means no budget.
    auth_unverified_hashes_per_second: int = Field(default=2, ge=0)
    # Issue #29: a flood of wrong sign-ins from some addresses must not shut out callers from
    # others. Failures and refusals are also counted per network (an IPv4 /24, an IPv6 /64):
    # 200 is four addresses' worth, so a flood spread over one subscriber's or provider's block
    # is refused as one. The budget above is handed out in turn between the networks and
    # addresses waiting for it, each address with at most this many attempts waiting, each for
    # at most this long (a round of a dozen networks at 2 a second is ~6 s); beyond, 503.
    auth_failures_per_network: int = Field(default=200, ge=0)
    auth_unverified_hashes_waiting_per_address: int = Field(default=2, ge=1)
    auth_unverified_hash_wait_seconds: float = Field(default=10.0, gt=0)
    # How long an org's settings are trusted in a worker before it re-reads them, so that an
    # org file applied by the CLI reaches every worker without a restart.
    org_cache_seconds: float = Field(default=5.0, ge=0)
    db_pool_size: int = Field(default=20, ge=1)
    db_timeout_seconds: float = Field(default=5.0, gt=0)
    # customer/search and the console's search (issue #29): each is answered within
    # search_timeout_seconds, with its result or a 504 that says so, and the database stops working
    # on it then. A worker runs at most searches_per_worker at once (fewer than its pool's
    # connections, so that look-ups and registrations always find one), one caller at most
    # searches_per_caller: one, so that one caller's searches take at most one core of the
    # database (or of an SQLite worker) at a time. A caller past its bound is 429 at once; a search
    # finding the worker's slots taken waits up to a second for one, then is 429.
    search_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    searches_per_worker: int = Field(default=4, ge=1)
    searches_per_caller: int = Field(default=1, ge=1)
    # SQLite: NORMAL keeps every acknowledged registration through a crash or kill of Patron, and
    # may lose the last ones to a power loss; FULL keeps them through a power loss too, at the cost
    # of an fsync per transaction (docs/durability.md).
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # Request lines and other logs: JSON lines for collectors, or a coloured line for a person;
    # auto picks by whether stderr is a terminal.
    log_format: Literal["json", "text", "auto"] = "auto"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    # Mobiles and e-mails are masked in every log line unless this is on (secrets always are).
    log_pii: bool = False
    # When set, GET /metrics needs "Authorization: Bearer <token>"; when not, it answers only
    # to clients on this host.
    metrics_token: SecretStr | None = None
    # Where the workers of `patron serve --workers N` keep their metrics (a temporary directory
    # when unset); only Prometheus's own files in it are ever removed.
    metrics_dir: str | None = None
    # On SIGTERM, how long requests in flight may take to finish before they are cancelled.
    shutdown_grace_seconds: int = Field(default=20, ge=0)
    # What one connection may cost a worker (patron.api.server). A request head over these sizes
    # is answered 431 before it is buffered (a header line is its name, ": " and its value; the
    # head counts the request line and every header line); a head not in within
    # header_timeout_seconds of its first byte, or a body not in within body_timeout_seconds of
    # its head, is answered 408; a connection beyond max_connections per worker is answered 503.
    # Each closes the connection.
    max_header_line_bytes: int = Field(default=16 * 1024, ge=256)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=1)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)
    # The reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (addresses or
    # CIDR networks, comma-separated in PATRON_TRUSTED_PROXIES). From any other peer both headers
    # are ignored: anyone can send them, and the address they name decides failure limits and
    # /metrics' local-only answer, the scheme a console cookie's Secure flag. None by default,
    # not even this host's: a proxy is trusted only when its operator names it.
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    # The member-care console (patron.console): how long a session lasts from its sign-in, whether
    # its cookie is marked Secure (auto: when the request came over https, as uvicorn reads it,
    # X-Forwarded-Proto included from one of trusted_proxies), and how long an org's overview is reused.
    console_session_seconds: int = Field(default=8 * 3600, ge=60)
    console_secure_cookie: Literal["auto", "always", "never"] = "auto"
    console_overview_cache_seconds: float = Field(default=60.0, ge=0)

    @property
    def search_slots(self) -> int:
        """How many searches a worker runs at once: searches_per_worker, but always fewer than the
        pool's connections where the pool has more than one."""
        return max(1, min(self.searches_per_worker, self.db_pool_size - 1))

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("PATRON_SECRET_KEY must be at least 32 characters (it signs OAuth tokens)")
        return value

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        """Comma-separated, as in `10.0.0.0/8, 192.0.2.7`: each an address or a network without
        host bits, else the setting is refused at start (uvicorn alone would take a typo for a
        name that never matches, and trust no one without saying so)."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, (list, tuple)):
            return tuple(ip_network(part) if isinstance(part, str) else part for part in value)
        return value

    @field_validator("metrics_token", "metrics_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
