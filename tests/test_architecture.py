"""The layout's rules (docs/architecture.md): dependencies point inward, read from the imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src" / "patron"


def module_of(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(module: str) -> set[str]:
    """Every patron module the module imports, at its top or inside a function."""
    path = SOURCE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = SOURCE.parent / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    # `from patron import limits` names patron.limits; the package itself holds nothing.
    return {name for name in found if name.startswith("patron.")}


MODULES = sorted(module_of(path) for path in SOURCE.rglob("*.py"))


def within(module: str, *packages: str) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


# The domain: rules over plain data. It may read the org's policy, never an adapter.
DOMAIN = ("patron.registration", "patron.loyalty", "patron.events")
DOMAIN_MAY_IMPORT = (*DOMAIN, "patron.codes", "patron.limits", "patron.orgs.policy", "patron.orgs.model")
# The org's policy is at the bottom: pure data, below the domain and every adapter.
POLICY = ("patron.orgs.policy", "patron.orgs.model", "patron.limits", "patron.codes", "patron.events.names")


@pytest.mark.parametrize("module", [m for m in MODULES if within(m, *DOMAIN)])
def test_the_domain_imports_neither_the_api_nor_the_store_nor_an_adapter(module):
    outside = {name for name in imports_of(module) if not within(name, *DOMAIN_MAY_IMPORT)}
    assert outside == set(), f"{module} imports {sorted(outside)}"


@pytest.mark.parametrize("module", [m for m in MODULES if within(m, *POLICY)])
def test_the_org_policy_is_at_the_bottom(module):
    outside = {name for name in imports_of(module) if not within(name, *POLICY)}
    assert outside == set(), f"{module} imports {sorted(outside)}"


# The relay is an edge of its own: it delivers what the store holds through its sinks; nothing
# below it (the domain, the store) and nothing beside it (the API, the console) imports it.
@pytest.mark.parametrize("module", [m for m in MODULES if not within(m, "patron.relay", "patron.cli")])
def test_only_the_command_line_starts_the_relay(module):
    assert not {name for name in imports_of(module) if within(name, "patron.relay")}, module


@pytest.mark.parametrize("module", [m for m in MODULES if within(m, "patron.store")])
def test_the_store_does_not_import_the_api(module):
    assert not {name for name in imports_of(module) if within(name, "patron.api", "patron.bootstrap", "patron.console")}


# The console is an outer room beside api/: it reads the domain, the orgs and the store, and takes
# from api/ only what both serve HTTP with (auth's credential guard, the request's context, errors,
# the admission of searches).
CONSOLE = ("patron.console",)
CONSOLE_MAY_IMPORT = (
    *CONSOLE, *DOMAIN_MAY_IMPORT, "patron.orgs", "patron.store", "patron.settings",
    "patron.api.auth", "patron.api.context", "patron.api.errors", "patron.api.admission",
)


@pytest.mark.parametrize("module", [m for m in MODULES if within(m, *CONSOLE)])
def test_the_console_imports_the_domain_and_the_store_but_not_the_apis_routes(module):
    outside = {name for name in imports_of(module) if not within(name, *CONSOLE_MAY_IMPORT)}
    assert outside == set(), f"{module} imports {sorted(outside)}"


@pytest.mark.parametrize("module", [m for m in MODULES if not within(m, *CONSOLE, "patron.api.app")])
def test_only_the_app_that_mounts_the_console_imports_it(module):
    assert not {name for name in imports_of(module) if within(name, *CONSOLE)}, module
