"""The search page's condition pickers: the rows a person fills in (field, operator, value) written
as customer/search's `q` grammar (ATTRIBUTE:OPERATOR:VALUE joined by &), and a query's text read
back into rows, so that a query built with the pickers is shown in them again. What a condition
means, and whether it can be asked, stays customers.search.query's to say."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from patron.console import labels
from patron.customers.search.query import (
    ATTRIBUTES,
    CUSTOM_FIELD_KINDS,
    MAX_CONDITIONS,
    OPERATORS,
    Attribute,
    Kind,
    Operator,
    SearchRefused,
)
from patron.orgs.model import OrgSettings

# The pickers shown when no query fills them.
EMPTY_ROWS = 3

# How the operator picker says each operator (its value is the grammar's word).
OPERATOR_WORDS: dict[Operator, str] = {
    Operator.EQUALS: "is (any case)",
    Operator.EXACT: "is exactly",
    Operator.STARTS: "starts with",
    Operator.ENDS: "ends with",
    Operator.LESS: "is below",
    Operator.GREATER: "is above",
    Operator.RANGE: "is from;to",
    Operator.IN: "is one of a;b;c",
}

# How the field picker names the standard attributes.
ATTRIBUTE_WORDS: dict[Attribute, str] = {
    Attribute.MOBILE: "Mobile",
    Attribute.EMAIL: "Email",
    Attribute.EXTERNAL_ID: "External id",
    Attribute.FIRSTNAME: "First name",
    Attribute.LASTNAME: "Last name",
    Attribute.REGISTERED_DATE: "Registration date",
    Attribute.LOYALTY_POINTS: "Loyalty points",
    Attribute.LIFETIME_POINTS: "Lifetime points",
    Attribute.SLAB: "Slab",
    Attribute.REGISTERED_STORE: "Registration store",
    Attribute.REGISTERED_TILL: "Registration till",
    Attribute.TYPE: "Customer type",
}


@dataclass(frozen=True)
class Row:
    """One condition as the pickers hold it: all three as typed or picked, unchecked."""

    attribute: str = ""
    operator: str = ""
    value: str = ""

    @property
    def blank(self) -> bool:
        return not self.attribute and not self.value.strip()


@dataclass(frozen=True)
class Field:
    """A field the picker offers: its grammar name, how it is shown, the operators it takes, and
    the values it may be given where they are few and known (a slab's names, a type's words)."""

    name: str
    label: str
    operators: tuple[Operator, ...]
    values: tuple[str, ...] = ()
    hint: str = ""


def fields_of(org: OrgSettings) -> list[Field]:
    """The standard attributes, then the org's custom fields in the order the org file declares them."""
    kinds = {attribute: rule.kind for attribute, rule in ATTRIBUTES.items()}
    known: dict[Attribute, tuple[str, ...]] = {
        Attribute.TYPE: ("LOYALTY", "NON_LOYALTY"),
        Attribute.SLAB: tuple(dict.fromkeys(slab.name for program in org.programs.values() for slab in program.slabs)),
        Attribute.REGISTERED_STORE: tuple(sorted(org.stores)),
        Attribute.REGISTERED_TILL: tuple(sorted(org.tills)),
    }
    hints = {Kind.DAY: "YYYY-MM-DD", Kind.NUMBER: "a whole number", Kind.MOBILE: "with country code"}
    found = [
        Field(attribute.value, ATTRIBUTE_WORDS[attribute], OPERATORS[kinds[attribute]], known.get(attribute, ()),
              hints.get(kinds[attribute], ""))
        for attribute in ATTRIBUTES
    ]  # fmt: skip
    for field in org.custom_fields.values():
        kind = CUSTOM_FIELD_KINDS[field.type][0]
        values = field.options if field.type == "enum" else ("true", "false") if field.type == "boolean" else ()
        hint = {"date": "YYYY-MM-DD", "datetime": "YYYY-MM-DD HH:MM:SS"}.get(field.type, "")
        found.append(Field(field.name, labels.field_label(field.name, org, "custom"), OPERATORS[kind], tuple(values), hint))
    return found


def rows_of(params: Mapping[str, str]) -> list[Row]:
    """The pickers' rows of a submitted form (field0, op0, value0, field1, …), blank ones left out."""
    rows = []
    for index in range(MAX_CONDITIONS + 1):
        row = Row(
            params.get(f"field{index}", "").strip(), params.get(f"op{index}", "").strip(), params.get(f"value{index}", "")
        )
        if not row.blank:
            rows.append(row)
    return rows


def write(rows: list[Row]) -> str:
    """The rows as `q`: ATTRIBUTE:OPERATOR:VALUE joined by &. A row the grammar cannot say is
    refused naming it (SearchRefused): a value without its field, or a value holding the & that
    joins conditions."""
    written = []
    for number, row in enumerate(rows, 1):
        value = row.value.strip()
        if not row.attribute:
            raise SearchRefused(f"condition {number}: choose a field for the value {value}")
        if "&" in value:
            raise SearchRefused(f"condition {number}: a value cannot hold &, which joins the conditions")
        written.append(f"{row.attribute}:{row.operator or Operator.EQUALS}:{value}")
    return "&".join(written)


def read(q: str, fields: list[Field]) -> list[Row]:
    """`q` as rows for the pickers: the field by the name the picker offers (any case), the operator
    in capitals; a condition that does not split into three parts is left to the text box."""
    names = {field.name.lower(): field.name for field in fields}
    rows = []
    for condition in q.split("&") if q.strip() else []:
        parts = condition.split(":", 2)
        if len(parts) != 3:
            continue
        name, operator, value = (part.strip() for part in parts)
        rows.append(Row(names.get(name.lower(), name), operator.upper(), value))
    return rows


def shown_rows(rows: list[Row]) -> list[Row]:
    """The rows the form shows: those given, and room for another, at least EMPTY_ROWS."""
    wanted = min(MAX_CONDITIONS, max(EMPTY_ROWS, len(rows) + 1))
    return [*rows[:MAX_CONDITIONS], *[Row()] * (wanted - len(rows))]
