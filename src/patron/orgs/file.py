"""Reads org files (TOML) into the org's policy (orgs.policy); a bad file is refused whole, with
every problem named by its key."""

import difflib
import hashlib
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from patron.orgs.policy import CROSS_CHECK_ERROR, OrgFile, Till, key_path


class OrgFileError(Exception):
    """An org file that cannot be applied, with every problem found in it."""

    def __init__(self, path: str, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {key}: {reason}" for key, reason in problems))


_REASONS = {
    "missing": "field required",
    "extra_forbidden": "unknown key",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "model_type": "must be a table",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "too_short": "must have at least {min_length} entries",
}


def _reason(error: ErrorDetails) -> str:
    kind, context = error["type"], error.get("ctx", {})
    if kind == "literal_error":
        return "must be one of: " + ", ".join(re.findall(r"'([^']*)'", context["expected"]))
    if kind == "value_error":
        return str(context["error"])
    if kind in ("string_too_short", "too_short") and context.get("min_length") == 1:
        return "must not be empty"
    if kind in _REASONS:
        return _REASONS[kind].format(**context)
    return error["msg"]


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for detail in error.errors():
        if detail["type"] == "default_factory_not_called":
            continue  # a default copied from a key that is itself wrong, and reported as such
        if detail["type"] == CROSS_CHECK_ERROR:
            problems += [problem.under(detail["loc"]) for problem in detail["ctx"]["problems"]]
        elif detail["type"] == "extra_forbidden":
            problems.append((key_path(detail["loc"]), _reason(detail) + _did_you_mean(detail["loc"])))
        else:
            problems.append((key_path(detail["loc"]), _reason(detail)))
    return problems


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """For an unknown key, the nearest key its table has, as the import names a column's."""
    model = _table_at(loc[:-1])
    if model is None or not isinstance(loc[-1], str):
        return ""
    known: dict[str, str] = {}
    for name, field in model.model_fields.items():
        for spelling in (name, *getattr(field.validation_alias, "choices", [])):
            if isinstance(spelling, str):
                known[spelling.lower()] = spelling
    nearest = difflib.get_close_matches(loc[-1].lower(), known, n=1, cutoff=0.6)
    return f" (did you mean {known[nearest[0]]!r}?)" if nearest else ""


def _table_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model of the table at `loc` in an org file (a list's entries are its entry model)."""
    model: type[BaseModel] | None = OrgFile
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        model = _model_in(field.annotation)
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: itself, or inside list[...], X | None and Annotated[...]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, tuple, typing.Union, types.UnionType, typing.Annotated):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None


def parse_org_document(data: dict, path: str = "<memory>", *, stored: bool = False) -> OrgFile:
    """Validate an already-parsed org document; `path` names it in any OrgFileError.

    `stored=True` reads an org back from the database, where tills and API clients carry no secrets.
    """
    try:
        return OrgFile.model_validate(data, context={"stored": stored})
    except ValidationError as exc:
        raise OrgFileError(path, _problems(exc)) from exc


def load_org_file(path: str | os.PathLike) -> OrgFile:
    """Read and validate the org file at `path`, or raise OrgFileError listing every problem."""
    shown = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise OrgFileError(shown, [("<file>", exc.strerror or str(exc))]) from exc
    except UnicodeDecodeError as exc:
        raise OrgFileError(shown, [("<file>", f"is not UTF-8 text (byte {exc.start})")]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OrgFileError(shown, [("<toml>", str(exc))]) from exc
    return parse_org_document(data, shown)


def md5_of_password(till: Till) -> str:
    """The lower-case MD5 hex digest the till sends as its Basic-auth password."""
    if till.password is not None:
        return hashlib.md5(till.password.encode("utf-8")).hexdigest()
    assert till.password_md5 is not None  # a Till always has exactly one of the two
    return till.password_md5
