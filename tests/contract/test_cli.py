"""The patron command, as an operator runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from support import ROOT as ROOT_DIR
from support.orgs import org_document


def write(tmp_path: Path, document: dict, name: str = "org.toml") -> str:
    path = tmp_path / name
    path.write_text(tomli_w.dumps(document))
    return str(path)


def test_db_upgrade_is_safe_to_run_again(patron):
    result = patron("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "revision head" in result.output


def test_applying_the_same_file_twice_changes_nothing(patron, tmp_path):
    document = org_document("retail")
    path = write(tmp_path, document)
    first = patron("org", "apply", path)
    assert first.exit_code == 0 and "created" in first.output
    second = patron("org", "apply", path)
    assert second.exit_code == 0 and "unchanged" in second.output


def test_an_edited_file_updates_the_org_and_disables_missing_tills(patron, tmp_path):
    document = org_document("retail")
    patron("org", "apply", write(tmp_path, document))
    removed = document["stores"][0]["tills"].pop()
    document["org"]["name"] = "Renamed"
    result = patron("org", "apply", write(tmp_path, document))
    assert result.exit_code == 0
    assert "updated" in result.output and f"till {removed['code']} disabled" in result.output
    shown = patron("org", "show", str(document["org"]["id"]))
    assert '"name": "Renamed"' in shown.output


def test_a_bad_file_is_refused_whole_with_file_key_and_reason(patron, tmp_path):
    document = org_document("retail")
    document["configs"]["CONF_REGISTRATION_PRIMARY_KEY"] = "phone"
    document["stores"][0]["access_group"] = "nobody"
    path = write(tmp_path, document)
    result = patron("org", "apply", path)
    assert result.exit_code != 0
    assert f"{path}: configs.CONF_REGISTRATION_PRIMARY_KEY: must be one of: mobile, email, external_id" in result.output
    shown = patron("org", "show", str(document["org"]["id"]))
    assert shown.exit_code != 0 and "no org" in shown.output


def test_a_till_code_of_another_org_is_refused(patron, tmp_path):
    first, second = org_document("retail"), org_document("retail")
    patron("org", "apply", write(tmp_path, first, "first.toml"))
    second["stores"][0]["tills"][1]["code"] = first["stores"][0]["tills"][1]["code"]
    result = patron("org", "apply", write(tmp_path, second, "second.toml"))
    assert result.exit_code != 0 and "stores[0].tills[1].code: till code" in result.output
    assert "already belongs to org" in result.output
    assert patron("org", "show", str(second["org"]["id"])).exit_code != 0


def test_a_console_login_of_another_org_is_refused(patron, tmp_path):
    first, second = org_document("retail"), org_document("retail")
    patron("org", "apply", write(tmp_path, first, "first.toml"))
    second["console_users"][2]["login"] = first["console_users"][2]["login"]
    result = patron("org", "apply", write(tmp_path, second, "second.toml"))
    assert result.exit_code != 0 and "console_users[2].login: login" in result.output
    assert "already belongs to org" in result.output


def test_a_console_user_removed_from_the_file_is_disabled(patron, tmp_path):
    document = org_document("retail")
    patron("org", "apply", write(tmp_path, document))
    removed = document["console_users"].pop()
    result = patron("org", "apply", write(tmp_path, document))
    assert result.exit_code == 0 and f"console user {removed['login']} disabled" in result.output


def test_hash_password_prints_a_hash_the_org_file_takes_instead_of_the_password(patron, tmp_path):
    hashed = patron("org", "hash-password", "--password", "a-long-passphrase")
    assert hashed.exit_code == 0 and hashed.output.startswith("$argon2id$")
    document = org_document("retail")
    user = document["console_users"][0]
    del user["password"]
    user["password_hash"] = hashed.output.strip()
    applied = patron("org", "apply", write(tmp_path, document))
    assert applied.exit_code == 0, applied.output
    assert "argon2" not in patron("org", "show", str(document["org"]["id"])).output


def test_a_password_hash_cheaper_than_the_installations_is_refused(patron, tmp_path):
    from argon2 import PasswordHasher

    document = org_document("retail")
    user = document["console_users"][0]
    del user["password"]
    user["password_hash"] = PasswordHasher(time_cost=1, memory_cost=16, parallelism=1).hash("a-long-passphrase")
    result = patron("org", "apply", write(tmp_path, document))
    assert result.exit_code != 0
    assert "console_users[0].password_hash: not made with this installation's argon2id parameters" in result.output
    assert patron("org", "show", str(document["org"]["id"])).exit_code != 0


def test_hash_password_refuses_a_password_the_org_file_would_refuse(patron):
    result = patron("org", "hash-password", "--password", "short")
    assert result.exit_code != 0 and "at least 8 characters" in result.output


def test_org_show_prints_no_secret(patron, tmp_path):
    document = org_document("retail")
    patron("org", "apply", write(tmp_path, document))
    shown = patron("org", "show", str(document["org"]["id"]))
    assert shown.exit_code == 0
    for secret in ("Pass123", "backend-secret-123", "2f23fa3579f3f75175793649115c1b25", "argon2"):
        assert secret not in shown.output


def test_a_missing_file_is_one_line_and_a_non_zero_exit(patron, tmp_path):
    result = patron("org", "apply", str(tmp_path / "nope.toml"))
    assert result.exit_code != 0
    assert "No such file" in result.output and "Traceback" not in result.output


def test_demo_prints_the_till_credentials_and_curls_for_add_get_xml_and_oauth(patron):
    import base64
    import hashlib

    result = patron("demo", "examples/demo-org.toml")
    assert result.exit_code == 0
    md5 = hashlib.md5(b"Pass123").hexdigest()
    expected = base64.b64encode(f"blr.koramangala.till001:{md5}".encode()).decode()
    assert f"Authorization: Basic {expected}" in result.output
    for fragment in ("/v1.1/customer/add'", "/v1.1/customer/get?mobile=", "/v1.1/customer/add.xml", "/v3/oauth/token/generate", "X-CAP-API-OAUTH-TOKEN"):
        assert fragment in result.output


def test_demo_prints_a_search_the_demo_org_can_read_and_the_consoles_sign_in(patron):
    import re
    from urllib.parse import parse_qs, urlsplit

    from patron.orgs.file import load_org_file
    from patron.orgs.model import OrgSettings
    from patron.customers.search.query import read_query

    result = patron("demo", "examples/demo-org.toml")
    url = re.search(r"'(http://[^']*/v1\.1/customer/search\?[^']*)'", result.output).group(1)
    (q,) = parse_qs(urlsplit(url).query)["q"]
    org = OrgSettings.from_file(load_org_file("examples/demo-org.toml"))
    assert len(read_query(q, org).conditions) == 2
    assert "/console/" in result.output and "login:    lead@acme-demo" in result.output


def test_demo_prints_the_event_feed_its_till_may_read(patron):
    from patron.orgs.file import load_org_file
    from patron.orgs.model import OrgSettings

    result = patron("demo", "examples/demo-org.toml")
    assert "/v1.1/events?limit=10" in result.output
    org = OrgSettings.from_file(load_org_file("examples/demo-org.toml"))
    till = org.till(next(t.code for s in org.definition.stores for t in s.tills))
    assert org.allows(org.access_groups[till.store.access_group], "events", "read")


def test_the_demo_curls_register_no_customer_the_quickstart_registers_as_new(patron):
    import re

    from support import ROOT

    result = patron("demo", "examples/demo-org.toml")
    printed = set(re.findall(r"\b91\d{10}\b", result.output))
    quickstart = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    registered_new = re.search(r'"mobile":"(91\d{10})","firstname":"Asha"', quickstart).group(1)
    assert printed and registered_new not in printed


def _run_patron(*args: str, env: dict[str, str | None] | None = None):  # noqa: ANN202
    from click.testing import CliRunner

    from patron.cli import main

    return CliRunner().invoke(main, list(args), env=env)


def test_a_command_run_outside_the_checkout_creates_no_database_and_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run_patron("org", "show", "1001", env={"PATRON_DATABASE_URL": None})
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: no database at {tmp_path / 'var' / 'patron.db'}: run `patron db upgrade` to make one, or point "
        "PATRON_DATABASE_URL at yours (the default, sqlite:///./var/patron.db, is relative to the folder you run in)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["org", "show", "1001"], ["org", "export", "1001"], ["check", "--org", "1001"]])
def test_an_unmigrated_database_says_run_db_upgrade_and_names_the_file(tmp_path, command):
    database = tmp_path / "empty.db"
    database.touch()
    result = _run_patron(*command, env={"PATRON_DATABASE_URL": f"sqlite:///{database}"})
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: the database at {database} is not migrated: run `patron db upgrade`"]


def test_an_unexpected_failure_is_one_line_and_exit_1_and_its_traceback_only_with_debug(patron, monkeypatch):
    import patron.checks

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("something Patron did not expect\nsecond line")

    monkeypatch.setattr(patron.checks, "check_org", broken)
    result = _run_patron("check", "--org", "1")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: RuntimeError: something Patron did not expect (run with --debug for the traceback)"
    ]
    debugged = _run_patron("--debug", "check", "--org", "1")
    assert isinstance(debugged.exception, RuntimeError)


def test_demo_prints_two_console_sign_ins_that_can_review_each_others_identity_changes(patron):
    from patron.orgs.file import load_org_file

    org_file = load_org_file("examples/demo-org.toml")
    reviewers = {group.name for group in org_file.access_groups if group.identity_review}
    users = [user for user in org_file.console_users if user.access_group in reviewers]
    assert len(users) >= 2
    output = patron("demo", "examples/demo-org.toml").output
    for user in users:
        assert f"login:    {user.login}\n  password: {user.password}" in output
    assert f"asked for as {users[0].login} is approved as {users[1].login}" in output


def test_demo_into_a_pipe_its_reader_closed_exits_quietly(tmp_path):
    import subprocess

    from support.processes import VENV_BIN

    # `true` reads nothing and exits: every write of patron's meets a closed pipe.
    script = f"'{VENV_BIN / 'patron'}' demo examples/demo-org.toml 2>'{tmp_path / 'stderr'}' | true; echo ${{PIPESTATUS[0]}}"
    status = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT_DIR).stdout
    assert (tmp_path / "stderr").read_text() == "" and status.strip() == "141"


@pytest.mark.parametrize("options", [[], ["--migrate"]], ids=["serve", "serve --migrate"])
def test_serve_listens_on_patron_port_and_logs_no_alembic_lines_when_nothing_migrates(tmp_path, options):
    import subprocess
    import time

    import httpx

    from support.processes import VENV_BIN, free_port, sqlite_env

    port = free_port()
    env = sqlite_env(tmp_path, PATRON_PORT=str(port), PATRON_LOG_FORMAT="text")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "patron"), "serve", *options], env=env, cwd=ROOT_DIR, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(10)
    text = log.read_text()
    assert f"running on http://127.0.0.1:{port}" in text
    assert "alembic" not in text


def test_make_run_installs_only_what_running_needs_and_says_the_port_it_serves_on():
    import subprocess

    def planned(target: str) -> list[str]:
        return subprocess.run(
            ["make", "-n", "-B", target], capture_output=True, text=True, check=True, cwd=ROOT_DIR, timeout=30
        ).stdout.splitlines()

    run = planned("run")
    installs = [line for line in run if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [".venv/bin/python -m pip install --quiet -e ."]
    assert any("pip install --quiet -e '.[test]'" in line for line in planned("test"))
    (serving,) = [line for line in run if line.startswith('echo "Serving on')]
    said = subprocess.run(["bash", "-c", serving], capture_output=True, text=True, env={"PATRON_PORT": "8123"}).stdout
    assert said.startswith("Serving on http://127.0.0.1:8123 ")
    assert any(line.endswith(".venv/bin/patron serve; \\") for line in run)
