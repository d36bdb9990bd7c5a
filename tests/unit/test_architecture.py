"""The layout's rules (docs/architecture.md): each room imports only the rooms its row names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "patron"
DOCUMENT = ROOT / "docs" / "architecture.md"

# The rooms' table of docs/architecture.md, row for row: the room, its modules (as the document
# spells them: a folder ends in "/"), and what it may import (rooms, or single modules).
EDGE_SUPPORT = ("bottom", "support")
DOMAIN = ("customers", "loyalty", "events")
ROOMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bottom": (
        ("codes.py", "limits.py", "orgs/policy.py", "orgs/model.py", "events/names.py"),
        ("bottom",),
    ),
    "loyalty": (("loyalty/",), ("bottom",)),
    "customers": (("customers/",), ("bottom", "loyalty", "events")),
    "events": (("events/",), ("bottom", "customers/model.py", "loyalty/model.py")),
    "support": (("settings.py", "security.py", "errors.py", "admission.py", "loop.py"), ("bottom",)),
    "store": (("store/",), (*EDGE_SUPPORT, *DOMAIN)),
    "orgs": (("orgs/",), (*EDGE_SUPPORT, "customers", "store")),
    "auth": (("auth/",), (*EDGE_SUPPORT, "orgs", "store", "observability")),
    "observability": (("observability/",), ("bottom", "settings.py", "customers/hints.py")),
    "bootstrap": (("bootstrap.py",), (*EDGE_SUPPORT, "orgs", "store", "auth")),
    "api": (("api/",), (*EDGE_SUPPORT, *DOMAIN, "orgs", "store", "auth", "observability", "bootstrap")),
    "mount": (
        ("api/app.py",),
        (*EDGE_SUPPORT, *DOMAIN, "orgs", "store", "auth", "observability", "bootstrap", "api", "console"),
    ),
    "console": (
        ("console/",),
        (*EDGE_SUPPORT, *DOMAIN, "orgs", "store", "bootstrap", "api/context.py"),
    ),
    "relay": (("relay/",), (*EDGE_SUPPORT, *DOMAIN, "orgs", "store")),
    "commands": (("bulk.py", "checks.py"), (*EDGE_SUPPORT, *DOMAIN, "orgs", "store", "bootstrap")),
    "cli": (
        ("cli.py",),
        (*EDGE_SUPPORT, *DOMAIN, "orgs", "store", "bootstrap", "observability", "commands", "relay"),
    ),
    "client": (("client.py",), ("bottom",)),
}
# Rooms whose code reaches no other room's private names.
NOTHING_PRIVATE = ("bootstrap", "observability")


def module_of(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def dotted(spelled: str) -> str:
    """`orgs/policy.py` and `customers/` as module names: patron.orgs.policy, patron.customers."""
    return "patron." + spelled.removesuffix("/").removesuffix(".py").replace("/", ".")


# The package itself holds only its version.
MODULES = sorted(module for module in map(module_of, SOURCE.rglob("*.py")) if module != "patron")
KNOWN = set(MODULES)


def source_of(module: str) -> Path:
    path = SOURCE.parent / (module.replace(".", "/") + ".py")
    return path if path.exists() else SOURCE.parent / module.replace(".", "/") / "__init__.py"


def imports_of(module: str) -> set[str]:
    """Every patron module the module imports, at its top or inside a function (`from patron
    import limits` names patron.limits, `from patron.store.db import transaction` patron.store.db;
    a package's `__init__` is a module of its own, checked as such)."""
    found = set()
    for node in ast.walk(ast.parse(source_of(module).read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = {f"{node.module}.{alias.name}" for alias in node.names} & KNOWN
            found |= modules
            if len(modules) < len(node.names):
                found.add(node.module)
    return {name for name in found if name in KNOWN}


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def room_of(module: str) -> str | None:
    """The room whose row names the module most closely."""
    best, length = None, -1
    for room, (members, _) in ROOMS.items():
        for member in members:
            prefix = dotted(member)
            if within(module, prefix) and len(prefix) > length:
                best, length = room, len(prefix)
    return best


def allowed(importer: str, imported: str) -> bool:
    room = room_of(importer)
    assert room is not None
    target = room_of(imported)
    if target == room:
        return True
    return any(
        target == name if name in ROOMS else within(imported, dotted(name)) for name in ROOMS[room][1]
    )


@pytest.mark.parametrize("module", MODULES)
def test_every_module_is_in_a_room_of_the_table(module):
    assert room_of(module) is not None, f"{module} is in no row of docs/architecture.md"


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_what_its_room_may(module):
    refused = sorted(name for name in imports_of(module) if not allowed(module, name))
    assert refused == [], f"{module} ({room_of(module)}) imports {refused}"


@pytest.mark.parametrize("module", [m for m in MODULES if room_of(m) in NOTHING_PRIVATE])
def test_bootstrap_and_observability_reach_no_other_rooms_private_names(module):
    reached = sorted(
        f"{ast.unparse(node.value)}.{node.attr}"
        for node in ast.walk(ast.parse(source_of(module).read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    )
    assert reached == [], f"{module} reaches {reached}"


def document_rows() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """The rooms' table as docs/architecture.md writes it: each name in backticks."""
    text = DOCUMENT.read_text()
    table = text[text.index("| room | modules | owns | may import |"):]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        room, members, _, may_import = (cell.strip() for cell in line.strip("|").split("|"))
        rows[room] = (tuple(re.findall(r"`([^`]+)`", members)), tuple(re.findall(r"`([^`]+)`", may_import)))
    return rows


def test_the_table_here_is_the_documents_table():
    assert document_rows() == ROOMS


def test_each_room_a_row_may_import_is_a_room_or_one_of_its_modules():
    for room, (_, may_import) in ROOMS.items():
        for name in may_import:
            assert name in ROOMS or dotted(name) in KNOWN, f"{room} may import {name}, which is neither"
