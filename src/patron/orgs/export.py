"""An org as applied, written back as an org file (`patron org export`): sections as people write them,
a note where each secret goes, since secrets are never stored, and console users' password hashes."""

from __future__ import annotations

from typing import Any

import tomli_w

# Secrets are never stored, so an exported file shows where each goes, commented out.
_SECRET_NOTES = {
    "stores.tills": '# password = "..."  # not stored: give the till\'s password (or password_md5) before applying',
    "api_clients": '# secret = "..."  # not stored: give the API client\'s secret before applying',
}
# A console user without a stored hash (none is applied without one) would need a password.
_NO_HASH_NOTE = '# password = "..."  # no password hash stored: give the user\'s password (or password_hash) before applying'


def org_file_text(org_id: int, definition: dict[str, Any], password_hashes: dict[str, str] | None = None) -> str:
    """The org file of an applied definition (as `patron org show` prints it), with each console
    user's argon2id hash (by login) as its `password_hash`: a slow hash is no secret, and the file
    then applies again with every console user's password and sessions as they are."""
    document = _without_nulls(definition)
    hashes = password_hashes or {}
    for user in document.get("console_users", []):
        if user["login"] in hashes:
            user["password_hash"] = hashes[user["login"]]
    lines = [
        f"# Org {org_id} as applied, written by `patron org export`.",
        "# Secrets are never stored: fill in each till's password and each API client's secret."
        " Console users keep their password hashes.",
        *_toml_table("", document),
    ]
    return "\n".join(lines) + "\n"


def _without_nulls(value: Any) -> Any:
    """TOML has no null, and every list of an org file defaults to empty: both are simply left out."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None and item != []}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _toml_table(path: str, table: dict[str, Any]) -> list[str]:
    """A table's keys, then its sub-tables as [path.key] and [[path.key]] sections, as org files are written.

    tomli_w alone would write nested arrays of tables inline, where the secret notes could not go.
    """
    def is_tables(value: Any) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)

    plain = {key: value for key, value in table.items() if not isinstance(value, dict) and not is_tables(value)}
    lines = tomli_w.dumps(plain).splitlines() if plain else []
    if path in _SECRET_NOTES:
        lines.append(_SECRET_NOTES[path])
    elif path == "console_users" and "password_hash" not in table:
        lines.append(_NO_HASH_NOTE)
    for key, value in table.items():
        child = f"{path}.{key}" if path else key
        entries = [value] if isinstance(value, dict) else value if is_tables(value) else []
        header = f"[{child}]" if isinstance(value, dict) else f"[[{child}]]"
        for entry in entries:
            block = [header, *_toml_table(child, entry)]
            # Nested sections are indented as in the README's org file: tills sit under their store.
            lines += ["", *(("  " + line if path and line else line) for line in block)]
    return lines
