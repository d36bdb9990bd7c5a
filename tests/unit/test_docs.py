"""docs/ against the code it describes: the code table, the org-file keys and the links cannot drift."""

from __future__ import annotations

import re

import pydantic

import patron.orgs.policy as org_file_module
from support import ROOT
from patron.api.openapi import codes_markdown
from patron.codes import ITEM_ERRORS, MESSAGES, REGISTERED, RETRIEVED, UPDATED, WARNINGS, Code

DOCS = ROOT / "docs"
CODES_BEGIN = "<!-- codes:begin (generated from patron.codes; do not edit by hand) -->\n"
CODES_END = "\n<!-- codes:end -->"
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_codes_md_holds_the_generated_code_tables_verbatim():
    text = read("codes.md")
    generated = text.split(CODES_BEGIN, 1)[1].split(CODES_END, 1)[0]
    assert generated == codes_markdown(), "regenerate docs/codes.md as it says at its top"


def test_every_code_and_message_of_patron_codes_is_in_codes_md():
    text = read("codes.md")
    for code in Code:
        assert f"| {int(code)} | `{code.name}` |" in text, code
    for message in [*MESSAGES.values(), *ITEM_ERRORS.values(), *WARNINGS.values(), REGISTERED, UPDATED, RETRIEVED]:
        assert message in text, message


def _org_file_models() -> list[type[pydantic.BaseModel]]:
    return [
        value
        for value in vars(org_file_module).values()
        if isinstance(value, type)
        and issubclass(value, pydantic.BaseModel)
        and value.__module__ == org_file_module.__name__
        and not value.__name__.startswith("_")
    ]


def test_every_key_of_the_org_file_models_is_in_org_file_md():
    text = read("org-file.md")
    models = _org_file_models()
    assert {"OrgFile", "Configs", "Till", "Program"} <= {model.__name__ for model in models}
    for model in models:
        for name, field in model.model_fields.items():
            assert f"`{name}`" in text, f"{model.__name__}.{name} is not described in docs/org-file.md"
            for alias in getattr(field.validation_alias, "choices", []):
                assert f"`{alias}`" in text, f"{model.__name__}.{name} is also read as {alias}"


def test_the_readme_links_every_page_of_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Documentation" in readme
    section = readme.split("## Documentation", 1)[1]
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in section, f"README.md does not link docs/{page.name}"


def test_every_link_between_the_pages_of_docs_resolves():
    for page in DOCS.glob("*.md"):
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            assert (page.parent / target).is_file(), f"{page.name} links {target}, which does not exist"


def test_the_docs_stand_alone_naming_nothing_outside_the_repository():
    """What a user needs from the specification is in docs/. The one path outside is the test
    cluster's script, which only a developer of Patron runs."""
    outside = re.compile(r"\.\./(?!shared/citus\b)[\w./-]+|\bthe seed\b", re.IGNORECASE)
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        found = outside.findall(page.read_text(encoding="utf-8"))
        assert found == [], (page.name, found)
