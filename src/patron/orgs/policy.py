"""An org's policy as pure data, validated: its configs, programmes and slabs, stores and tills,
access groups, API clients, and the catalogue of customer fields. No file and no database: the
TOML file (orgs.file) and the database (orgs.cache, orgs.apply) are adapters above it."""

import contextlib
import datetime
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from patron import limits
from patron.events.names import EVENT_NAMES


@dataclass(frozen=True)
class FieldType:
    """The type of a custom or extended field, standard or declared in the org file."""

    name: str
    type: str  # a FieldKind, or a standard field's own: country, language, currency, store
    max_length: int = limits.FIELD_VALUE
    regex: str | None = None
    options: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


# The standard extended fields of a customer (codes.md).
STANDARD_EXTENDED_FIELDS: dict[str, FieldType] = {
    f.name.lower(): f
    for f in (
        FieldType("gender", "enum", options=("Male", "Female", "Other")),
        FieldType("marital_status", "enum", options=("Single", "Married", "Divorced", "Widowed")),
        FieldType("dob", "date"),
        FieldType("wedding_date", "date"),
        FieldType("age", "integer", minimum=0, maximum=150),
        *(
            FieldType(name, "string")
            for name in ("city", "state", "area", "zip", "profession", "religion", "ethnicity", "ssnNumber")
        ),
        *(FieldType(name, "country") for name in ("nationality", "born_in", "country_of_residence")),
        FieldType("preferred_language", "language"),
        FieldType("preferred_currency", "currency"),
        FieldType("preferred_store", "store"),
        FieldType("kid_status", "enum", options=("Yes", "No")),
    )
}


# An org may not declare its own extended field under a standard one's name.
STANDARD_EXTENDED_FIELD_NAMES = frozenset(field.name for field in STANDARD_EXTENDED_FIELDS.values())
_STANDARD_EXTENDED_FIELD_NAMES_FOLDED = frozenset(n.casefold() for n in STANDARD_EXTENDED_FIELD_NAMES)

AccessLevel = Literal["none", "read", "write"]
# The kinds of value an org may declare a custom or extended field of.
FieldKind = Literal["string", "integer", "double", "boolean", "date", "datetime", "enum"]


# A key's place in the document, as in pydantic's error locations: table keys and list indices.
_Loc = tuple[str | int, ...]


def key_path(loc: _Loc) -> str:
    """`stores[0].tills[1].code` for ("stores", 0, "tills", 1, "code")."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "<document>"


class _Problem(NamedTuple):
    """A problem a cross-field check found, at `loc` relative to the model it checked.

    A repeated value also names where it was `first_used`, which is relative to the same model,
    so the reason is finished only once the model's own place in the file is known.
    """

    loc: _Loc
    reason: str
    first_used: _Loc | None = None

    def under(self, base: _Loc) -> tuple[str, str]:
        reason = self.reason
        if self.first_used is not None:
            reason += f" at {key_path(base + self.first_used)}"
        return key_path(base + self.loc), reason


# Cross-field checks find several problems at once and know exactly which key each belongs to;
# pydantic lets a validator raise only one error, so they travel together in its context.
CROSS_CHECK_ERROR = "org_file_cross_check"


def _refuse(problems: list[_Problem]) -> None:
    if problems:
        summary = "; ".join(": ".join(problem.under(())) for problem in problems)
        raise PydanticCustomError(
            CROSS_CHECK_ERROR, "{summary}", {"summary": summary, "problems": tuple(problems)}
        )


def _repeats(entries: Iterable[tuple[_Loc, Hashable]], *, fold_case: bool = False) -> list[_Problem]:
    """A problem for each (location, value) whose value an earlier entry already took."""
    first_seen: dict[Hashable, _Loc] = {}
    problems: list[_Problem] = []
    for loc, value in entries:
        folded = value.casefold() if fold_case and isinstance(value, str) else value
        if folded in first_seen:
            problems.append(_Problem(loc, f"{value!r} is already used", first_seen[folded]))
        else:
            first_seen[folded] = loc
    return problems


def _country(value: str) -> str:
    code = value.upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a known ISO 3166 alpha-2 country code")
    return code


def _country_or_any(value: str) -> str:
    return value if value == "*" else _country(value)


def _timezone(value: str) -> str:
    # ZoneInfo refuses a bad key in several ways: unknown name, malformed path, a directory.
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{value!r} is not a known time zone") from None
    return value


def _md5_hex(value: str) -> str:
    digest = value.lower()
    if not re.fullmatch(r"[0-9a-f]{32}", digest):
        raise ValueError("must be an MD5 digest: 32 hexadecimal digits")
    return digest


def _argon2_hash(value: str) -> str:
    # What `patron org hash-password` prints, or any argon2 library's encoded hash.
    if not re.fullmatch(r"\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+", value):
        raise ValueError("must be an argon2id hash ($argon2id$v=19$m=...,t=...,p=...$salt$hash)")
    return value


def _basic_auth_user(value: str) -> str:
    # The till code is the Basic-auth user name, where a colon would end the name early.
    if ":" in value:
        raise ValueError("must not contain ':'")
    return value


def _compiles(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression: {exc}") from None
    return value


_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _OrgFileModel(BaseModel):
    # TOML values are typed, so a quoted number or a 0/1 boolean is a mistake worth reporting.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class OrgSection(_OrgFileModel):
    """The [org] table: who the org is and where its customers live."""

    id: PositiveInt
    name: _Text
    base_country: Annotated[str, AfterValidator(_country)]
    supported_countries: list[Annotated[str, AfterValidator(_country_or_any)]] = []
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"

    @field_validator("supported_countries")
    @classmethod
    def _any_stands_alone(cls, value: list[str]) -> list[str]:
        if "*" in value and len(value) > 1:
            raise ValueError('"*" already means any country and must be the only entry')
        return value


_EARLIEST_REGISTRATION_DATE = datetime.date(1900, 1, 1)
_SKIP_SECONDARY = "CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH"
_SKIP_SECONDARY_ALIAS = "CONFIG_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH"


class Configs(_OrgFileModel):
    """The [configs] table: registration behaviour, named as in the API family."""

    CONF_REGISTRATION_PRIMARY_KEY: Literal["mobile", "email", "external_id"] = "mobile"
    CONF_ALLOW_REGISTRATION_FROM_ANY_IDENTIFIERS: bool = False
    CONF_USERS_IS_MOBILE_REQUIRED: bool = False
    CONF_USERS_IS_EMAIL_REQUIRED: bool = False
    CONF_USERS_IS_EXTERNAL_ID_REQUIRED: bool = False
    CONF_PRIMARY_IDENTIFIER_STRICT_CHECK: bool = False
    # The API family spells this one setting both ways.
    CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH: bool = Field(
        default=False, validation_alias=AliasChoices(_SKIP_SECONDARY, _SKIP_SECONDARY_ALIAS)
    )
    CONF_ALLOW_MOBILE_UPDATE: bool = False
    CONF_ALLOW_EMAIL_UPDATE: bool = False
    CONF_LOYALTY_ALLOW_EXTERNAL_ID_UPDATE: bool = False
    # (Patron) external ids that differ only by case are one identifier (docs/identity.md); off,
    # as in the API family, they are two. `patron org apply` refuses to turn it on while two
    # customers hold case variants of one external id.
    CONF_EXTERNAL_ID_CASE_INSENSITIVE: bool = False
    # (Patron) customer/update_identity's changes wait for a reviewer (member-care.md §2).
    CONF_IDENTITY_CHANGE_APPROVAL: bool = True
    # (Patron) how many of one caller's requests may wait for review at once (member-care.md §2).
    CONF_IDENTITY_CHANGE_PENDING_PER_CALLER: int = Field(default=100, ge=1, le=100_000)
    CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED: bool = False
    CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH: int = Field(default=0, ge=0, le=250)
    CONF_CLIENT_EXTERNAL_ID_MAX_LENGTH: int = Field(default=0, ge=0, le=250)
    CONF_MIN_REGISTRATION_DATE: datetime.date = datetime.date(1995, 1, 1)
    BATCH_LIMIT: int = Field(default=100, ge=1, le=1000)
    # Requests per second per caller (till or API client), in each worker; 0 means unlimited.
    RATE_LIMIT_PER_SECOND: int = Field(default=0, ge=0)
    # Requests a caller may make at once after a quiet spell; absent means twice the rate.
    RATE_LIMIT_BURST: int | None = Field(default=None, ge=1)
    # (Patron) How long events and their delivery attempts are kept (events.md §3): the feed's
    # cursors reach this far back.
    CONF_EVENT_RETENTION_DAYS: int = Field(default=30, ge=1, le=3650)

    @property
    def rate_limit_burst(self) -> int:
        """RATE_LIMIT_BURST, or twice RATE_LIMIT_PER_SECOND when the file does not give it."""
        return self.RATE_LIMIT_BURST or 2 * self.RATE_LIMIT_PER_SECOND

    @model_validator(mode="before")
    @classmethod
    def _one_skip_secondary_spelling(cls, data: Any) -> Any:
        # Given both ways, the second spelling would be an unknown key; that is only an error
        # when the two disagree.
        if isinstance(data, dict) and _SKIP_SECONDARY in data and _SKIP_SECONDARY_ALIAS in data:
            if data[_SKIP_SECONDARY] != data[_SKIP_SECONDARY_ALIAS]:
                reason = f"contradicts {_SKIP_SECONDARY}; give only one of them"
                _refuse([_Problem((_SKIP_SECONDARY_ALIAS,), reason)])
            data = {key: value for key, value in data.items() if key != _SKIP_SECONDARY_ALIAS}
        return data

    @field_validator("CONF_MIN_REGISTRATION_DATE", mode="before")
    @classmethod
    def _read_date(cls, value: Any) -> Any:
        # A TOML date and the quoted form the API family's documents show are both accepted.
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            with contextlib.suppress(ValueError):
                value = datetime.date.fromisoformat(value)
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            # Earlier days are no registration date, and the first days of the calendar cannot
            # be moved into every timezone.
            if value < _EARLIEST_REGISTRATION_DATE:
                raise ValueError(f"must be {_EARLIEST_REGISTRATION_DATE.isoformat()} or later")
            return value
        raise ValueError("must be a date, YYYY-MM-DD")

    @model_validator(mode="after")
    def _check_external_id_lengths(self) -> "Configs":
        maximum = self.CONF_CLIENT_EXTERNAL_ID_MAX_LENGTH
        if maximum and self.CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH > maximum:
            reason = f"must not exceed CONF_CLIENT_EXTERNAL_ID_MAX_LENGTH ({maximum})"
            _refuse([_Problem(("CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH",), reason)])
        return self


class AccessGroup(_OrgFileModel):
    """An [[access_groups]] entry: what its members may do with each resource."""

    name: _Text
    customer: AccessLevel = "none"
    audit: AccessLevel = "none"
    # (Patron) may approve or reject identity change requests (member-care.md §2).
    identity_review: bool = False
    # (Patron) may read the org's event feed, GET /v1.1/events (events.md §3).
    events: AccessLevel = "none"


class Till(_OrgFileModel):
    """A [[stores.tills]] entry: a Basic-auth caller of the store."""

    code: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=50),
        AfterValidator(_basic_auth_user),
    ]
    name: _Text = Field(default_factory=lambda data: data["code"])
    # Credentials stay out of reprs, and so out of logs and tracebacks.
    password: Annotated[str, StringConstraints(min_length=1)] | None = Field(default=None, repr=False)
    password_md5: Annotated[str, AfterValidator(_md5_hex)] | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _one_password(self, info: ValidationInfo) -> "Till":
        if _as_stored(info) and self.password is None and self.password_md5 is None:
            return self
        if (self.password is None) == (self.password_md5 is None):
            _refuse([_Problem((), "give exactly one of password, password_md5")])
        return self


class Store(_OrgFileModel):
    """A [[stores]] entry; its tills act with its access group."""

    code: _Text
    name: _Text
    access_group: _Text
    tills: list[Till] = []


class ApiClient(_OrgFileModel):
    """An [[api_clients]] entry: an OAuth caller with its own access group."""

    key: _Text
    # Absent only in an org as stored, which never keeps secrets.
    secret: Annotated[str, StringConstraints(min_length=8)] | None = Field(default=None, repr=False)
    access_group: _Text
    default_till: _Text
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)

    @model_validator(mode="after")
    def _has_secret(self, info: ValidationInfo) -> "ApiClient":
        if self.secret is None and not _as_stored(info):
            _refuse([_Problem(("secret",), "field required")])
        return self


# A console user's password: long enough that a guess costs more than the throttle allows.
CONSOLE_PASSWORD_MIN = 8


class ConsoleUser(_OrgFileModel):
    """A [[console_users]] entry: a member of the loyalty team who signs in to the console."""

    # Logins are unique across the installation: the sign-in form names no org.
    login: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\s]+$")]
    name: _Text = Field(default_factory=lambda data: data["login"])
    password: Annotated[str, StringConstraints(min_length=CONSOLE_PASSWORD_MIN)] | None = Field(default=None, repr=False)
    password_hash: Annotated[str, AfterValidator(_argon2_hash)] | None = Field(default=None, repr=False)
    access_group: _Text
    # The tills and API clients this person also calls the API with: a change asked through any
    # of them is theirs, which they may not approve (four eyes, member-care.md §2).
    tills: list[_Text] = []
    api_clients: list[_Text] = []

    @model_validator(mode="after")
    def _one_password(self, info: ValidationInfo) -> "ConsoleUser":
        if _as_stored(info) and self.password is None and self.password_hash is None:
            return self
        if (self.password is None) == (self.password_hash is None):
            _refuse([_Problem((), "give exactly one of password, password_hash")])
        return self


# A sink's name: it keys the sink's progress and its dead letters, and names it in metrics and logs.
_SinkName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
# An environment variable's name: secrets and broker URLs are never written in the org file.
_EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]


def _event_names(names: list[str] | None) -> list[str] | None:
    unknown = [name for name in names or () if name not in EVENT_NAMES]
    if unknown:
        raise ValueError(f"no event is named {unknown[0]!r}; the events are {', '.join(EVENT_NAMES)}")
    return names


class _Sink(_OrgFileModel):
    name: _SinkName
    # The events it is sent; absent, all of them.
    events: Annotated[list[str] | None, AfterValidator(_event_names)] = None
    # Whether it receives identifiers and names (events.md §1); otherwise they are null.
    pii: bool = False

    def subscribes(self, event_name: str) -> bool:
        return self.events is None or event_name in self.events


class Webhook(_Sink):
    """A [[webhooks]] entry (events.md §3): an HTTPS endpoint sent every event it subscribes to,
    signed as Standard Webhooks says with the secret(s) in the environment variable `secret_env`."""

    url: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^https?://[^\s/]+", max_length=2000)]
    secret_env: _EnvName
    # Loopback, private, link-local and metadata addresses are refused unless this is true.
    allow_private: bool = False

    @property
    def sink_kind(self) -> str:
        return "webhook"


class Broker(_Sink):
    """A [[brokers]] entry (events.md §3): a RabbitMQ topic exchange, at the AMQP URL in the
    environment variable `url_env`."""

    kind: Literal["rabbitmq"] = "rabbitmq"
    url_env: _EnvName
    exchange: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]

    @property
    def sink_kind(self) -> str:
        return self.kind


class _FieldDefinition(_OrgFileModel):
    name: _Text
    # (Patron) what the console calls the field; without one, its name made readable.
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = None
    type: FieldKind
    max_length: int = Field(default=250, ge=1, le=250)
    regex: Annotated[str, AfterValidator(_compiles)] | None = None
    options: list[_Text] = []

    @model_validator(mode="after")
    def _options_fit_type(self) -> "_FieldDefinition":
        problems = _repeats((("options", i), option) for i, option in enumerate(self.options))
        if self.type == "enum" and not self.options:
            problems.append(_Problem(("options",), "required for type enum"))
        if self.type != "enum" and self.options:
            problems.append(_Problem(("options",), "allowed only for type enum"))
        _refuse(problems)
        return self


class CustomField(_FieldDefinition):
    """A [[custom_fields]] entry."""


class ExtendedField(_FieldDefinition):
    """An [[extended_fields]] entry, beyond the standard catalogue of codes.md."""

    @field_validator("name")
    @classmethod
    def _not_standard(cls, value: str) -> str:
        if value.casefold() in _STANDARD_EXTENDED_FIELD_NAMES_FOLDED:
            raise ValueError(f"{value!r} is a standard extended field and is already defined")
        return value


class Slab(_OrgFileModel):
    """A [[programs.slabs]] entry: one tier of a programme."""

    serial: int = Field(ge=1)
    name: _Text
    description: str = ""
    validity_months: NonNegativeInt = 0


class AlternateCurrency(_OrgFileModel):
    """A [[programs.alternate_currencies]] entry."""

    identifier: _Text
    name: _Text
    registration_award: NonNegativeInt = 0


class Program(_OrgFileModel):
    """A [[programs]] entry: a loyalty programme and its tiers."""

    id: PositiveInt
    name: _Text
    default: bool = False
    registration_points: NonNegativeInt = 0
    referrer_points: NonNegativeInt = 0
    referee_points: NonNegativeInt = 0
    slabs: list[Slab] = Field(min_length=1)
    alternate_currencies: list[AlternateCurrency] = []

    @model_validator(mode="after")
    def _check_slabs_and_currencies(self) -> "Program":
        problems: list[_Problem] = [
            _Problem(("slabs", i, "serial"), f"must be {i + 1}: serials run 1, 2, 3, ... in order")
            for i, slab in enumerate(self.slabs)
            if slab.serial != i + 1
        ]
        problems += _repeats(
            ((("slabs", i, "name"), slab.name) for i, slab in enumerate(self.slabs)), fold_case=True
        )
        problems += _repeats(
            (("alternate_currencies", i, "identifier"), currency.identifier)
            for i, currency in enumerate(self.alternate_currencies)
        )
        _refuse(problems)
        return self


class OrgFile(_OrgFileModel):
    """A whole org file, checked across its tables."""

    org: OrgSection
    configs: Configs = Configs()
    access_groups: list[AccessGroup] = []
    stores: list[Store] = []
    api_clients: list[ApiClient] = []
    console_users: list[ConsoleUser] = []
    custom_fields: list[CustomField] = []
    extended_fields: list[ExtendedField] = []
    programs: list[Program] = []
    webhooks: list[Webhook] = []
    brokers: list[Broker] = []

    @property
    def sinks(self) -> list[Webhook | Broker]:
        """Where the org's events go, each by its own name."""
        return [*self.webhooks, *self.brokers]

    @property
    def default_program(self) -> Program | None:
        """The programme new customers join; None only when the file declares none."""
        if len(self.programs) == 1:
            return self.programs[0]
        return next((p for p in self.programs if p.default), None)

    @model_validator(mode="after")
    def _check_whole_file(self) -> "OrgFile":
        _refuse([*self._repeated_names(), *self._dangling_references(), *self._default_problems()])
        return self

    def _repeated_names(self) -> list[_Problem]:
        tills = (
            (("stores", s, "tills", t, "code"), till.code)
            for s, store in enumerate(self.stores)
            for t, till in enumerate(store.tills)
        )
        return [
            *_repeats((("access_groups", i, "name"), g.name) for i, g in enumerate(self.access_groups)),
            *_repeats((("stores", i, "code"), s.code) for i, s in enumerate(self.stores)),
            *_repeats(tills),
            *_repeats((("api_clients", i, "key"), c.key) for i, c in enumerate(self.api_clients)),
            *_repeats((("console_users", i, "login"), u.login) for i, u in enumerate(self.console_users)),
            *_repeats(
                ((("custom_fields", i, "name"), f.name) for i, f in enumerate(self.custom_fields)),
                fold_case=True,
            ),
            *_repeats(
                ((("extended_fields", i, "name"), f.name) for i, f in enumerate(self.extended_fields)),
                fold_case=True,
            ),
            *_repeats((("programs", i, "id"), p.id) for i, p in enumerate(self.programs)),
            # Webhooks and brokers share one namespace: a sink's progress is kept by its name.
            *_repeats([
                *((("webhooks", i, "name"), w.name) for i, w in enumerate(self.webhooks)),
                *((("brokers", i, "name"), b.name) for i, b in enumerate(self.brokers)),
            ]),
        ]

    def _dangling_references(self) -> list[_Problem]:
        groups = {group.name for group in self.access_groups}
        tills = {till.code for store in self.stores for till in store.tills}
        problems: list[_Problem] = [
            _Problem(("stores", i, "access_group"), f"no access group is named {store.access_group!r}")
            for i, store in enumerate(self.stores)
            if store.access_group not in groups
        ]
        for i, client in enumerate(self.api_clients):
            if client.access_group not in groups:
                reason = f"no access group is named {client.access_group!r}"
                problems.append(_Problem(("api_clients", i, "access_group"), reason))
            if client.default_till not in tills:
                reason = f"no till in this file has code {client.default_till!r}"
                problems.append(_Problem(("api_clients", i, "default_till"), reason))
        problems += [
            _Problem(("console_users", i, "access_group"), f"no access group is named {user.access_group!r}")
            for i, user in enumerate(self.console_users)
            if user.access_group not in groups
        ]
        clients = {client.key for client in self.api_clients}
        for i, user in enumerate(self.console_users):
            problems += [
                _Problem(("console_users", i, "tills", j), f"no till in this file has code {code!r}")
                for j, code in enumerate(user.tills)
                if code not in tills
            ]
            problems += [
                _Problem(("console_users", i, "api_clients", j), f"no API client in this file has key {key!r}")
                for j, key in enumerate(user.api_clients)
                if key not in clients
            ]
        return problems

    def _default_problems(self) -> list[_Problem]:
        marked = [i for i, program in enumerate(self.programs) if program.default]
        if len(marked) > 1:
            return [
                _Problem(("programs", i, "default"), "only one programme may be the default")
                for i in marked[1:]
            ]
        if not marked and len(self.programs) > 1:
            return [_Problem(("programs",), "mark exactly one programme default = true")]
        return []


def _as_stored(info: ValidationInfo) -> bool:
    """Whether the org is read back from the database, where tills and API clients carry no secrets."""
    return bool(info.context and info.context.get("stored"))
