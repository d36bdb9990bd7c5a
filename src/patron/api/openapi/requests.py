"""The request half of the components: the bodies' envelopes around the items the domain declares
(customers.inputs), which the reader reads by the same names, vocabularies and lengths."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from patron.api.openapi.schemas import component_schemas
from patron.customers.inputs import CustomerItem, IdentityChangeItem

# The components keep the names the document has always given the items.
ITEM_COMPONENTS = {"CustomerItem": "CustomerInput", "IdentityChangeItem": "IdentityChangeInput"}

_XML_ROOT = ConfigDict(json_schema_extra={"xml": {"name": "root"}})
_Batch = Annotated[list[CustomerItem], Field(min_length=1)]
_Changes = Annotated[list[IdentityChangeItem], Field(min_length=1)]


class AddRoot(TypedDict):
    customer: Annotated[_Batch | CustomerItem, Field(description="A list of customers (a batch), or one customer.")]


@with_config(_XML_ROOT)
class AddRequest(TypedDict):
    """XML bodies have the same structure: `<root><customer>…</customer>…</root>`, with
    `<custom_fields><field><name/><value/></field></custom_fields>` (likewise `extended_fields`,
    `subscriptions/subscription`, `commChannels/commChannel`)."""

    root: AddRoot


class UpdateRoot(TypedDict):
    customer: CustomerItem | _Batch


@with_config(_XML_ROOT)
class UpdateRequest(TypedDict):
    """One customer, named by any one of mobile, email, external_id, with the fields to change; XML
    as for add. A list is accepted, but each item past the first fails with 1060."""

    root: UpdateRoot


class UpdateIdentityRoot(TypedDict):
    customer: Annotated[
        _Changes | IdentityChangeItem,
        Field(description="A list of changes (a batch, at most BATCH_LIMIT), or one change."),
    ]


@with_config(_XML_ROOT)
class UpdateIdentityRequest(TypedDict):
    """XML: `<root><customer><identifier/><old_value/><new_value/></customer>…</root>`."""

    root: UpdateIdentityRoot


class TokenRequest(TypedDict):
    key: str
    secret: str


def request_schemas() -> dict[str, Any]:
    """What Patron accepts, read from the request types."""
    return component_schemas((AddRequest, UpdateRequest, UpdateIdentityRequest, TokenRequest), ITEM_COMPONENTS)
