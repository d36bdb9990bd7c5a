"""Components read from types: pydantic turns TypedDicts into the document's JSON Schemas."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

SCHEMAS = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


class _Document(GenerateJsonSchema):
    """JSON Schema as the document shows it: a property is titled by its name already."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def component_schemas(types: Iterable[type[Any]], names: dict[str, str] | None = None) -> dict[str, Any]:
    """Each type's schema and those of the types it holds, by name; `names`: a type whose component
    is named otherwise than the class (the references to it renamed too)."""
    schemas: dict[str, Any] = {}
    for kind in types:
        schema = TypeAdapter(kind).json_schema(ref_template=SCHEMAS + "{model}", schema_generator=_Document)
        schemas.update(schema.pop("$defs", {}))
        schemas[kind.__name__] = schema
    for schema in schemas.values():
        schema.pop("title", None)  # the component's name
    if not names:
        return schemas
    return {names.get(name, name): _renamed(schema, names) for name, schema in schemas.items()}


def _renamed(schema: Any, names: dict[str, str]) -> Any:
    if isinstance(schema, dict):
        return {
            key: (SCHEMAS + names.get(value.removeprefix(SCHEMAS), value.removeprefix(SCHEMAS)))
            if key == "$ref" else _renamed(value, names)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_renamed(value, names) for value in schema]
    return schema
