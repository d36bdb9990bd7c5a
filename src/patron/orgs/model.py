"""OrgSettings: the read-only view of one applied org that a request runs with."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from patron.orgs.policy import AccessGroup, Configs, CustomField, ExtendedField, FieldType, OrgFile, Program, Store

ACCESS_LEVELS = {"none": 0, "read": 1, "write": 2}


@dataclass(frozen=True)
class TillInfo:
    code: str
    name: str
    store: Store


@dataclass(frozen=True)
class OrgSettings:
    org_id: int
    name: str
    definition: OrgFile
    tz: ZoneInfo
    tills: dict[str, TillInfo] = field(repr=False)
    stores: dict[str, Store] = field(repr=False)
    access_groups: dict[str, AccessGroup] = field(repr=False)
    # Looked up case-insensitively, as the API matches field names.
    custom_fields: dict[str, FieldType] = field(repr=False)
    extended_fields: dict[str, FieldType] = field(repr=False)
    # For preferred_store, checked on every item: built once with the settings.
    store_codes: frozenset[str] = field(repr=False, default=frozenset())
    # The programmes by id: read for every registration rewarded and every item answered.
    programs: dict[int, Program] = field(repr=False, default_factory=dict)
    # Each enabled API client's token generation: a token naming another one is revoked.
    token_generations: dict[str, int] = field(repr=False, default_factory=dict)

    @classmethod
    def from_file(cls, org_file: OrgFile, token_generations: dict[str, int] | None = None) -> OrgSettings:
        tills: dict[str, TillInfo] = {}
        for store in org_file.stores:
            for till in store.tills:
                tills[till.code] = TillInfo(code=till.code, name=till.name, store=store)
        return cls(
            org_id=org_file.org.id,
            name=org_file.org.name,
            definition=org_file,
            tz=ZoneInfo(org_file.org.timezone),
            tills=tills,
            stores={store.code: store for store in org_file.stores},
            access_groups={group.name: group for group in org_file.access_groups},
            custom_fields={f.name.lower(): _field_type(f) for f in org_file.custom_fields},
            extended_fields={f.name.lower(): _field_type(f) for f in org_file.extended_fields},
            store_codes=frozenset(store.code for store in org_file.stores),
            programs={program.id: program for program in org_file.programs},
            token_generations=dict(token_generations or {}),
        )

    @property
    def configs(self) -> Configs:
        return self.definition.configs

    @property
    def base_country(self) -> str:
        return self.definition.org.base_country

    @property
    def supported_countries(self) -> list[str]:
        return self.definition.org.supported_countries

    def till(self, code: str) -> TillInfo | None:
        return self.tills.get(code)

    def access_group_of_till(self, code: str) -> AccessGroup | None:
        till = self.tills.get(code)
        return self.access_groups.get(till.store.access_group) if till else None

    def allows(self, group: AccessGroup | None, resource: str, level: str) -> bool:
        granted = getattr(group, resource, "none") if group else "none"
        return ACCESS_LEVELS[granted] >= ACCESS_LEVELS[level]


def _field_type(declared: CustomField | ExtendedField) -> FieldType:
    """A declared field as the plain type every item is checked against, like a standard one."""
    return FieldType(declared.name, declared.type, declared.max_length, declared.regex, tuple(declared.options))
