"""`patron org export`: the org as applied, back as an org file that applies unchanged once its secrets return;
console users come with their password hashes, which are no secret."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from support.orgs import org_document
from patron.orgs.apply import stored_definition
from patron.orgs.file import parse_org_document
from patron.security import verify_secret
from patron.store.db import create_engine
from patron.store.schema import console_users


def applied(patron, tmp_path: Path, name: str) -> dict:
    document = org_document(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(tomli_w.dumps(document))
    result = patron("org", "apply", str(path))
    assert result.exit_code == 0, result.output
    return document


def with_secrets_of(exported: dict, original: dict) -> dict:
    """The exported document with the original file's secrets put back where the notes say."""
    passwords = {t["code"]: t["password"] for s in original.get("stores", []) for t in s.get("tills", [])}
    secrets = {c["key"]: c["secret"] for c in original.get("api_clients", [])}
    for store in exported.get("stores", []):
        for till in store.get("tills", []):
            till["password"] = passwords[till["code"]]
    for client in exported.get("api_clients", []):
        client["secret"] = secrets[client["key"]]
    return exported


@pytest.mark.parametrize("name", ["retail", "fields", "seedlike", "rewards", "plain"])
def test_an_exported_org_parses_back_to_the_same_org_once_its_secrets_return(patron, tmp_path, name):
    original = applied(patron, tmp_path, name)
    output = tmp_path / "exported.toml"
    result = patron("org", "export", str(original["org"]["id"]), "--output", str(output))
    assert result.exit_code == 0, result.output
    exported = tomllib.loads(output.read_text())
    restored = with_secrets_of(exported, original)
    # The same org but for how its console users' passwords are given: hashed, not in clear.
    assert stored_definition(parse_org_document(restored, str(output))) == stored_definition(parse_org_document(original, name))


def test_an_exported_org_with_its_secrets_applies_unchanged(patron, tmp_path):
    original = applied(patron, tmp_path, "retail")
    exported = tomllib.loads(patron("org", "export", str(original["org"]["id"])).output)
    path = tmp_path / "back.toml"
    path.write_text(tomli_w.dumps(with_secrets_of(exported, original)))
    result = patron("org", "apply", str(path))
    assert result.exit_code == 0 and "unchanged" in result.output, result.output


def test_an_exported_org_holds_no_secret_and_says_where_they_go(patron, tmp_path):
    original = applied(patron, tmp_path, "retail")
    text = patron("org", "export", str(original["org"]["id"])).output
    passwords = [user["password"] for user in original["console_users"]]
    for secret in ("Pass123", "backend-secret-123", "2f23fa3579f3f75175793649115c1b25", *passwords):
        assert secret not in text
    exported = tomllib.loads(text)
    tills = [t for s in exported["stores"] for t in s["tills"]]
    assert tills and not any("password" in t or "password_md5" in t for t in tills)
    assert not any("secret" in c for c in exported["api_clients"])
    assert not any("password" in u for u in exported["console_users"])
    assert text.count("# password = ") == len(tills)
    assert text.count("# secret = ") == len(exported["api_clients"])


async def _console_rows(database_url: str, logins: list[str]) -> dict[str, tuple[str, int]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(console_users.select().where(console_users.c.login.in_(logins)))
            return {row.login: (row.password_hash, row.session_generation) for row in rows}
    finally:
        await engine.dispose()


def test_console_users_are_exported_with_their_hashes_and_keep_password_and_sessions_when_applied_again(
    patron, tmp_path, database_url
):
    import asyncio

    original = applied(patron, tmp_path, "retail")
    passwords = {user["login"]: user["password"] for user in original["console_users"]}
    before = asyncio.run(_console_rows(database_url, list(passwords)))
    exported = tomllib.loads(patron("org", "export", str(original["org"]["id"])).output)
    assert {user["login"]: user["password_hash"] for user in exported["console_users"]} == {
        login: stored for login, (stored, _) in before.items()
    }
    path = tmp_path / "back.toml"
    path.write_text(tomli_w.dumps(with_secrets_of(exported, original)))
    result = patron("org", "apply", str(path))
    assert result.exit_code == 0 and "unchanged" in result.output, result.output
    after = asyncio.run(_console_rows(database_url, list(passwords)))
    assert after == before
    assert all(verify_secret(after[login][0], password) for login, password in passwords.items())


def test_exporting_an_unknown_org_is_one_line_and_a_non_zero_exit(patron):
    result = patron("org", "export", "987654321")
    assert result.exit_code != 0 and "no org 987654321" in result.output
