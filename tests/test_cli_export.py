"""`patron org export`: the org as applied, back as an org file that applies unchanged once its secrets return."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from conftest import org_document
from patron.orgs.file import parse_org_document


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
    users = {u["login"]: u["password"] for u in original.get("console_users", [])}
    for user in exported.get("console_users", []):
        user["password"] = users[user["login"]]
    return exported


@pytest.mark.parametrize("name", ["retail", "fields", "seedlike", "rewards", "plain"])
def test_an_exported_org_parses_back_to_the_same_org_once_its_secrets_return(patron, tmp_path, name):
    original = applied(patron, tmp_path, name)
    output = tmp_path / "exported.toml"
    result = patron("org", "export", str(original["org"]["id"]), "--output", str(output))
    assert result.exit_code == 0, result.output
    exported = tomllib.loads(output.read_text())
    restored = with_secrets_of(exported, original)
    assert parse_org_document(restored, str(output)) == parse_org_document(original, name)


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
    for secret in ("Pass123", "backend-secret-123", "2f23fa3579f3f75175793649115c1b25", "argon2", "priya-passphrase"):
        assert secret not in text
    exported = tomllib.loads(text)
    tills = [t for s in exported["stores"] for t in s["tills"]]
    assert tills and not any("password" in t or "password_md5" in t for t in tills)
    assert not any("secret" in c for c in exported["api_clients"])
    assert not any("password" in u or "password_hash" in u for u in exported["console_users"])
    assert text.count("# password = ") == len(tills) + len(exported["console_users"])
    assert text.count("# secret = ") == len(exported["api_clients"])


def test_exporting_an_unknown_org_is_one_line_and_a_non_zero_exit(patron):
    result = patron("org", "export", "987654321")
    assert result.exit_code != 0 and "no org 987654321" in result.output
