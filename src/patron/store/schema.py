"""The database schema, shared by SQLite and PostgreSQL.

Customer-scale tables carry `org_id` first in their primary key and in every unique index, so
that they can be distributed by `org_id` on Citus unchanged. Configuration tables are small and
global. The schema is only ever created by the Alembic migrations; this module describes it for
the repositories and for `alembic check`.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.schema import SchemaItem

from patron import limits

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
Document = JSON().with_variant(JSONB(), "postgresql")

def sqlite_id_index() -> Index:
    """SQLite has no sequences: it draws the next id as max(id) + 1, which this index makes cheap.
    PostgreSQL draws ids from identity sequences and is spared the index."""
    return Index(None, "id").ddl_if(dialect="sqlite")


def numbered(name: str, *items: SchemaItem) -> Table:
    """A table of an org's rows numbered by an identity: `org_id` and `id` first, then the table's
    own columns and indexes, the primary key (org_id, id), and SQLite's index on the id."""
    return Table(
        name,
        metadata,
        Column("org_id", BigInteger, nullable=False),
        Column("id", BigInteger, Identity(start=1), nullable=False),
        *items,
        PrimaryKeyConstraint("org_id", "id"),
        sqlite_id_index(),
    )


# Times are stored as naive UTC; the API reads and writes them in the org's timezone.
Timestamp = DateTime(timezone=False)

orgs = Table(
    "orgs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    # The org file as applied, secrets removed: the source of the org's runtime settings.
    Column("definition", Document, nullable=False),
    Column("definition_sha256", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

tills = Table(
    "tills",
    metadata,
    # Till codes are unique across the installation: the Basic-auth user name alone names the org.
    Column("code", String(limits.TILL_CODE), primary_key=True),
    Column("org_id", BigInteger, ForeignKey("orgs.id"), nullable=False, index=True),
    Column("store_code", String(100), nullable=False),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("enabled", Boolean, nullable=False),
)

api_clients = Table(
    "api_clients",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("org_id", BigInteger, ForeignKey("orgs.id"), nullable=False, index=True),
    Column("secret_hash", String(200), nullable=False),
    Column("access_group", String(100), nullable=False),
    Column("default_till", String(limits.TILL_CODE), nullable=False),
    Column("token_ttl_seconds", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    # Moves on when the client is disabled or its secret changes: tokens of an earlier one are void.
    Column("token_generation", Integer, nullable=False, server_default="0"),
)

console_users = Table(
    "console_users",
    metadata,
    # Logins are unique across the installation: the sign-in form names no org.
    Column("login", String(100), primary_key=True),
    Column("org_id", BigInteger, ForeignKey("orgs.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("access_group", String(100), nullable=False),
    Column("enabled", Boolean, nullable=False),
    # Moves on when the user is disabled or gets a new password: every session of theirs ends.
    Column("session_generation", Integer, nullable=False, server_default="0"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    # The SHA-256 of the session's secret: the cookie carries the secret, the table never does.
    Column("id", String(64), primary_key=True),
    Column("login", String(100), ForeignKey("console_users.login"), nullable=False, index=True),
    Column("org_id", BigInteger, nullable=False),
    Column("session_generation", Integer, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp),
)

# Trust in a till or API client that verified, kept across restarts (README, PATRON_SECRET_KEY): a keyed
# digest (HMAC under the installation's secret key) of its secret bound to the stored slow hash,
# so that a new secret or a new hash in the org file matches no more. Keyed by the credential's
# name, which names no org: small, a reference table on Citus.
credential_trust = Table(
    "credential_trust",
    metadata,
    # The credential's org: on Citus the table is distributed by it, so that keeping a till's trust
    # is a write on its org's shard alone (a reference table's would be a two-phase commit).
    Column("org_id", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("name", String(100), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("verified_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("org_id", "kind", "name"),
)

customers = Table(
    "customers",
    metadata,
    Column("org_id", BigInteger, nullable=False),
    # A global identity on PostgreSQL; allocated in the write transaction on SQLite.
    Column("id", BigInteger, Identity(start=100001), nullable=False),
    Column("mobile", String(limits.MOBILE)),
    Column("email", String(limits.EMAIL)),
    Column("external_id", String(limits.EXTERNAL_ID)),
    Column("firstname", String(limits.NAME), nullable=False, server_default=""),
    Column("lastname", String(limits.NAME), nullable=False, server_default=""),
    Column("type", String(16), nullable=False),
    Column("source", String(32), nullable=False),
    Column("account_id", String(limits.ACCOUNT_ID)),
    Column("fraud_status", String(16), nullable=False),
    Column("registered_on", Timestamp, nullable=False),
    Column("updated_on", Timestamp, nullable=False),
    Column("registered_till", String(limits.TILL_CODE)),
    Column("associated_with", String(limits.TILL_CODE)),
    Column("referral_code", String(limits.REFERRAL_CODE)),
    Column("custom_fields", Document, nullable=False),
    Column("extended_fields", Document, nullable=False),
    Column("subscriptions", Document, nullable=False),
    Column("comm_channels", Document, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("modified_at", Timestamp, nullable=False),
    # The external id as the org compares it (customers.external_ids.key): the external id
    # itself, or its case-folded form where the org matches external ids ignoring case; the
    # org's unique index is on it. Unbounded: case folding may lengthen a value (ß is ss).
    Column("external_id_key", String()),
    # What the external id looks like (external_ids.skeleton): its look-alikes across scripts
    # are found by this index, not by a scan (migration 0009).
    Column("external_id_skeleton", String()),
    # The sequence of the customer's latest event (events.md §1): each event of the customer takes
    # the next, in the transaction that writes it (migration 0010).
    Column("event_sequence", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("org_id", "id"),
    # Identity is the database's job: one customer per identifier per org, whatever races.
    UniqueConstraint("org_id", "mobile"),
    UniqueConstraint("org_id", "email"),
    Index("uq_customers_org_id_external_id_key", "org_id", "external_id_key", unique=True),
    UniqueConstraint("org_id", "referral_code"),
    # SQLite keeps the unique index on the external id as stored, which it cannot drop without
    # copying the table (migration 0009): it is implied by the key's, and refuses nothing more.
    UniqueConstraint("org_id", "external_id").ddl_if(dialect="sqlite"),
    Index(
        None, "org_id", "external_id_skeleton",
        postgresql_where=text("external_id_skeleton IS NOT NULL"), sqlite_where=text("external_id_skeleton IS NOT NULL"),
    ),
    sqlite_id_index(),
)


def _prefix_index(name: str, folded: bool, *, postgresql_only: bool = False) -> Index:
    """An index for customer/search's conditions on a text column (store/search.py): equality and
    prefixes, in lower case where the column is searched ignoring case; on PostgreSQL with
    text_pattern_ops, whose operators compare by code point whatever the collation."""
    column = customers.c[name]
    key = f"lower_{name}" if folded else name
    expression = func.lower(column).label(key) if folded else column
    index = Index(f"ix_customers_org_id_{key}", customers.c.org_id, expression, postgresql_ops={key: "text_pattern_ops"})
    return index.ddl_if(dialect="postgresql") if postgresql_only else index


# customer/search (member-care.md §3): name and identifier prefixes use an index on both engines.
# SQLite ranges mobiles and emails (stored in one case) on their unique indexes already.
for _name in ("firstname", "lastname", "external_id"):
    _prefix_index(_name, folded=True)
for _name in ("mobile", "email"):
    _prefix_index(_name, folded=False, postgresql_only=True)
# Newest registrations first, and registration days: the search's order, and the console's overview.
Index(None, customers.c.org_id, customers.c.registered_on, customers.c.id)

customer_audits = numbered(
    "customer_audits",
    Column("customer_id", BigInteger, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    # CREATE | UPDATE | ID_REQUESTED | ID_APPROVED | ID_REJECTED | ID_SUPERSEDED
    Column("event_type", String(16), nullable=False),
    Column("till_code", String(limits.TILL_CODE)),
    Column("api_client_key", String(100)),
    Column("context_entity_type", String(limits.USER_CONTEXT)),
    Column("context_entity_id", String(limits.USER_CONTEXT)),
    Column("context_entity_source", String(limits.USER_CONTEXT)),
    Column("context_entity_source_id", String(limits.USER_CONTEXT)),
    # [{"field": name, "previous": value, "current": value}, ...]; json, not jsonb, on PostgreSQL:
    # written with every registration and only ever read back whole (migration 0003).
    Column("changes", JSON, nullable=False),
    # Who in the console acted, and why (member-care.md §4); null for the API's own writes.
    Column("console_user", String(100)),
    Column("reason", String(limits.REASON)),
    # The warning codes the request's item was answered with ([1017, 91020]); null when none.
    Column("warnings", JSON),
    Index(None, "org_id", "customer_id", "id"),
    # The console's "most frequent warnings" by day: only the records that have any are indexed.
    Index(
        "ix_customer_audits_org_id_created_at_warned", "org_id", "created_at",
        postgresql_where=text("warnings IS NOT NULL"), sqlite_where=text("warnings IS NOT NULL"),
    ),
)


memberships = Table(
    "memberships",
    metadata,
    Column("org_id", BigInteger, nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("program_id", BigInteger, nullable=False),
    Column("slab_serial", Integer, nullable=False),
    Column("tier_expires_on", Date, nullable=False),
    # Kept in step with points_ledger in the same transaction; `patron check` proves they agree.
    Column("lifetime_points", BigInteger, nullable=False),
    Column("loyalty_points", BigInteger, nullable=False),
    Column("enrolled_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("org_id", "customer_id", "program_id"),
)

points_ledger = numbered(
    "points_ledger",
    Column("customer_id", BigInteger, nullable=False),
    Column("program_id", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("currency", String(64), nullable=False),  # "points" or an alternate currency identifier
    Column("amount", BigInteger, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("request_id", String(64), nullable=False),
    Index(None, "org_id", "customer_id", "program_id"),
)

referrals = Table(
    "referrals",
    metadata,
    Column("org_id", BigInteger, nullable=False),
    # The key makes "referred only once" the database's rule, whatever races.
    Column("referee_id", BigInteger, nullable=False),
    Column("referrer_id", BigInteger, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("org_id", "referee_id"),
)

# "console:" and a login, or "client:" and an API client's key, or "till:" and a till's code.
REQUESTER = 110
# Logins of at most 100 characters, separated by spaces: a few dozen tied to one till is plenty.
REQUESTER_USERS = 4000

identity_change_requests = numbered(
    "identity_change_requests",
    Column("customer_id", BigInteger, nullable=False),
    Column("identifier", String(16), nullable=False),  # mobile | email | external_id
    Column("old_value", String(limits.EMAIL)),
    Column("new_value", String(limits.EMAIL), nullable=False),
    Column("status", String(16), nullable=False),  # PENDING | APPROVED | REJECTED | SUPERSEDED
    Column("requested_at", Timestamp, nullable=False),
    Column("request_id", String(64), nullable=False),
    # Who asked: a till (and API client) through the API, or a console user, with their reason.
    Column("till_code", String(limits.TILL_CODE)),
    Column("api_client_key", String(100)),
    Column("console_user", String(100)),
    Column("reason", String(limits.REASON)),
    Column("decided_at", Timestamp),
    Column("decided_by", String(100)),
    Column("decision_reason", String(limits.REASON)),
    # Who stands behind it (migration 0008): the caller as one key (console:LOGIN, client:KEY or
    # till:CODE), the console users the org file tied to that caller when it asked (separated by
    # spaces), and an API request's user-context headers.
    Column("requester", String(REQUESTER)),
    Column("requester_users", String(REQUESTER_USERS)),
    Column("context_entity_type", String(limits.USER_CONTEXT)),
    Column("context_entity_id", String(limits.USER_CONTEXT)),
    Column("context_entity_source", String(limits.USER_CONTEXT)),
    Column("context_entity_source_id", String(limits.USER_CONTEXT)),
    # A caller's pending requests, counted against CONF_IDENTITY_CHANGE_PENDING_PER_CALLER.
    Index(
        "ix_identity_change_requests_pending_requester", "org_id", "requester",
        postgresql_where=text("status = 'PENDING'"), sqlite_where=text("status = 'PENDING'"),
    ),
    # One pending request per customer and identifier: the database's rule, whatever races.
    Index(
        None, "org_id", "customer_id", "identifier", unique=True,
        postgresql_where=text("status = 'PENDING'"), sqlite_where=text("status = 'PENDING'"),
    ),
    # The review queue, oldest first.
    Index(None, "org_id", "status", "id"),
)

# The outbox (events.md): every event, written in the transaction of the change it reports. The
# relay gives each a position in its org's stream once its transaction has committed (a position
# is never given to a row a reader might yet see appear before it), and the sinks and the feed
# read the stream by position.
events = numbered(
    "events",
    # The eventId: a UUID, the consumer's idempotency key, the same on every attempt.
    Column("event_id", String(36), nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    # Per customer, strictly increasing (customers.event_sequence).
    Column("sequence", BigInteger, nullable=False),
    Column("name", String(40), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("request_id", String(64), nullable=False),
    # api | console | import: what the envelope says made the change.
    Column("origin", String(8), nullable=False),
    Column("console_user", String(100)),
    # The event's data as the domain built it (events.build), the customer's id left to the envelope.
    Column("data", JSON, nullable=False),
    # Its place in the org's stream, given by the relay after the commit; null until then.
    Column("position", BigInteger),
    Index("ix_events_org_id_position", "org_id", "position", unique=True),
    # What the relay has yet to give a position: small, whatever the table's size.
    Index("ix_events_org_id_unpositioned", "org_id", "id", postgresql_where=text("position IS NULL"),
          sqlite_where=text("position IS NULL")),
)

# Each org's stream: the last position given, the positions removed by retention, and which relay
# gives positions now (a lease, taken over when it lapses).
event_streams = Table(
    "event_streams",
    metadata,
    Column("org_id", BigInteger, nullable=False),
    Column("last_position", BigInteger, nullable=False, server_default="0"),
    # Positions up to this one were removed (CONF_EVENT_RETENTION_DAYS): an older cursor is answered 410.
    Column("removed_through", BigInteger, nullable=False, server_default="0"),
    Column("lease_owner", String(100)),
    Column("lease_until", Timestamp),
    PrimaryKeyConstraint("org_id"),
)

# Each sink of an org (a [[webhooks]] or [[brokers]] entry): how far through the stream it was
# handed every event, its health, and which relay delivers to it now (a lease).
event_sinks = Table(
    "event_sinks",
    metadata,
    Column("org_id", BigInteger, nullable=False),
    Column("sink", String(100), nullable=False),
    Column("kind", String(16), nullable=False),  # webhook | rabbitmq
    Column("position", BigInteger, nullable=False, server_default="0"),
    Column("lease_owner", String(100)),
    Column("lease_until", Timestamp),
    Column("failing_since", Timestamp),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("last_success_at", Timestamp),
    Column("last_failure_at", Timestamp),
    Column("last_error", String(1024)),
    Column("disabled_at", Timestamp),
    Column("disabled_reason", String(200)),
    PrimaryKeyConstraint("org_id", "sink"),
)

# The events a sink did not take at the first attempt: waiting for a retry, waiting behind an
# earlier event of their customer, or dead-lettered. Only failures write here.
event_retries = Table(
    "event_retries",
    metadata,
    Column("org_id", BigInteger, nullable=False),
    Column("sink", String(100), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("status", String(8), nullable=False),  # retry | behind | dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Timestamp),
    Column("last_error", String(1024)),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("org_id", "sink", "position"),
    Index(None, "org_id", "sink", "customer_id", "sequence"),
    Index(None, "org_id", "sink", "status", "next_attempt_at"),
)

# Every delivery attempt, kept CONF_EVENT_RETENTION_DAYS.
event_attempts = numbered(
    "event_attempts",
    Column("sink", String(100), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("attempted_at", Timestamp, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("result", String(16), nullable=False),  # delivered | retry | dead | disabled
    Column("status_code", Integer),
    Column("error", String(1024)),
    Column("latency_ms", Integer, nullable=False),
    # The first 1 KB of the answer.
    Column("answer", String(1024)),
    Index(None, "org_id", "sink", "attempted_at"),
    Index(None, "org_id", "event_id"),
)

# Replays an operator asked for (patron events replay, the console's Events page): who, why, what.
event_replays = numbered(
    "event_replays",
    Column("sink", String(100), nullable=False),
    Column("requested_at", Timestamp, nullable=False),
    Column("requested_by", String(110), nullable=False),  # console:LOGIN or cli:USER
    Column("reason", String(limits.REASON), nullable=False),
    Column("event_id", String(36)),
    Column("from_at", Timestamp),
    Column("to_at", Timestamp),
    Column("events", Integer, nullable=False),
)

# The relays running (patron relay), each seen every few seconds: how many share the leases above,
# and, for operators, whether any relay is delivering at all. Not an org's: a reference table on Citus.
event_relays = Table(
    "event_relays",
    metadata,
    # host:pid:random, as the relay's leases name it.
    Column("relay_id", String(100), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("seen_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("relay_id"),
)

EVENT_TABLES = ("events", "event_streams", "event_sinks", "event_retries", "event_attempts", "event_replays")

# Tables that hold a share of an org's customers, and so are distributed by org_id on Citus.
CUSTOMER_SCALE_TABLES = (
    "customers", "customer_audits", "memberships", "points_ledger", "referrals", "identity_change_requests",
    "credential_trust", *EVENT_TABLES,
)
