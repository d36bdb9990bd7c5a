"""The first hour's commands, as printed: the README's, `make run`'s (`patron demo`) and
docs/quickstart.md's, pasted into one shell in any order against a real `patron serve` on the demo
org, each do what its text says."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from support import ROOT
from support.backends import postgresql_database
from patron import codes
from support.processes import VENV_BIN, served

DOCUMENTED_BASE = "http://127.0.0.1:8000"
DEMO_ORG = ROOT / "examples" / "demo-org.toml"
ASHA = "918123456789"


def _blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def _commands(block: str) -> list[str]:
    """A shell block split into its commands: a command goes on over backslashed line ends and
    over lines inside an open quote; comment lines are no command."""
    commands, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if line.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote
            continue
        commands.append(pending.rstrip("\n"))
        pending = ""
    assert not pending, f"unfinished command: {pending}"
    return commands


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Calling the API", 1)[1].split("\n## ", 1)[0]
    return [command for block in _blocks(section, "sh") for command in _commands(block)]


def quickstart_commands() -> list[str]:
    """Every shell command of docs/quickstart.md but `make run` itself (the server under test
    stands for it), then its Python, which runs as a script."""
    page = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    commands = [command for block in _blocks(page, "sh") for command in _commands(block) if command != "make run"]
    (python,) = _blocks(page, "python")
    return [*commands, f"{shlex.quote(sys.executable)} - <<'PYTHON'\n{python}PYTHON"]


def demo_commands(env: dict[str, str]) -> list[str]:
    """The commands `patron demo` prints (each on a line of its own, indented), for the served port."""
    printed = subprocess.run(
        [str(VENV_BIN / "patron"), "demo", str(DEMO_ORG)], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [line.strip() for line in printed.splitlines() if re.match(r"  (curl |[A-Z]+=\$\(curl )", line)]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, not yet migrated: the demo org's till codes and ids are the installation's."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'patron.db'}"
        return
    yield from postgresql_database(migrate=False)


def _answer(output: str) -> dict:
    return json.loads(output)


def _items(output: str) -> list[dict]:
    return _answer(output)["response"]["customers"]["customer"]


def _status(item: dict) -> tuple[str, str]:
    return str(item["item_status"]["code"]), item["item_status"]["message"]


REGISTERED, UPDATED, RETRIEVED = (("1000", message) for message in (codes.REGISTERED, codes.UPDATED, codes.RETRIEVED))


def _sent(command: str) -> list[dict]:
    """The customers a JSON add sends, as its text gives them (a shell variable left as it stands)."""
    body = command.split("-d '", 1)[1].rsplit("'", 1)[0].replace("'\"$CODE\"'", "$CODE")
    customers = json.loads(body)["root"]["customer"]
    return customers if isinstance(customers, list) else [customers]


def check(command: str, output: str, shell: dict[str, str]) -> None:
    """What the command's text says it does, checked against what it answered."""
    if command.startswith(("ASHA=", "CODE=", "TOKEN=", "AUTH=", "BASE=")):
        name = command.split("=", 1)[0]
        assert shell[name] and output == "", (command, output)
    elif "md5sum" in command:
        assert output.split()[0] == "2f23fa3579f3f75175793649115c1b25"
    elif "/customer/add.xml" in command:
        root = ElementTree.fromstring(output)
        status = root.find("customers/customer/item_status")
        assert (status.findtext("code"), status.findtext("message")) == REGISTERED, output
    elif "/customer/add" in command:
        sent, answered = _sent(command), _items(output)
        assert len(answered) == len(sent), output
        for customer, item in zip(sent, answered, strict=True):
            if customer["mobile"] == "12345":
                assert _status(item)[0] == "1001", output
            elif customer["mobile"] == ASHA and customer.get("email") == "asha.rao@example.com":
                assert _status(item) == REGISTERED and item["user_id"] == int(shell["ASHA"]), output
                assert (item["firstname"], item["email"]) == ("Asha", "asha.rao@example.com"), output
            elif customer["mobile"] == ASHA:  # registered once, then updated
                assert _status(item) == UPDATED and item["user_id"] == int(shell["ASHA"]), output
            else:
                assert _status(item) == REGISTERED and item["mobile"] == customer["mobile"], output
                assert item["firstname"] == customer["firstname"], output
            if customer.get("referral_code"):
                referrer = {"customer_id": shell["ASHA"], "is_referrer": "true"}
                assert any(referrer.items() <= effect.items() for effect in item["side_effects"]["effect"]), output
                assert item["item_status"]["warnings"]["warning"] == [], output
    elif "/customer/get?" in command:
        asked = re.search(r"get\?(\w+)=([^'\"\s&]+)", command)
        name, values = asked.group(1), asked.group(2).replace("$ASHA", shell.get("ASHA", "")).split(",")
        for value, item in zip(values, _items(output), strict=True):
            if value.startswith("nobody@"):
                assert _status(item)[0] == "1012", output
                continue
            assert _status(item) == RETRIEVED, output
            assert str(item["user_id" if name == "id" else name]) == value, output
            if name == "id" or value == "asha.rao@example.com":
                assert item["mobile"] == ASHA and item["firstname"].startswith("Asha"), output
    elif "/customer/search?" in command:
        prefix = re.search(r"firstname:STARTS:(\w+)", command).group(1)
        found = _answer(output)["response"]["customer"]["results"]["item"]
        assert found and all(c["firstname"].lower().startswith(prefix) for c in found), output
    elif "/v1.1/events" in command:
        assert isinstance(_answer(output)["events"], list), output
    elif "/oauth/token/generate" in command:
        assert _answer(output)["data"]["accessToken"], output
    elif "/audits?" in command:
        records = _answer(output)["data"]
        assert records and {r["entityId"] for r in records} == {int(shell["ASHA"])}, output
        assert any(e.get("updatedField") == "firstname" for r in records for e in r["events"]), output
    elif "PYTHON" in command:
        lines = output.splitlines()
        assert lines[0].startswith(f"200 1000 {codes.REGISTERED} "), output
        assert lines[1] == "Base" and len(lines) > 2, output
    else:
        raise AssertionError(f"no check for {command}")


def run_in_one_shell(commands: list[str], base: str, folder: Path) -> tuple[list[str], dict[str, str]]:
    """Every command pasted into one bash, in order; what each printed, and the shell's variables at the end."""
    lines = ["set -o pipefail"]
    for index, command in enumerate(commands):
        lines.append(f"{{\n{command.replace(DOCUMENTED_BASE, base)}\n}} >{folder}/{index}.out 2>&1")
    names = ("ASHA", "CODE", "TOKEN", "AUTH", "BASE")
    lines.append("printf '" + "".join(f"{name}=%s\\n" for name in names) + "' "
                 + " ".join(f'"${{{name}:-}}"' for name in names) + f" >{folder}/shell.out")
    script = folder / "pasted.sh"
    script.write_text("\n".join(lines) + "\n")
    subprocess.run(["bash", str(script)], check=True, timeout=120)
    outputs = [(folder / f"{index}.out").read_text() for index in range(len(commands))]
    shell = dict(line.split("=", 1) for line in (folder / "shell.out").read_text().splitlines())
    return outputs, shell


# Three rotations: each source first once, and every two of them in both orders.
ORDERS = [("demo", "readme", "quickstart"), ("readme", "quickstart", "demo"), ("quickstart", "demo", "readme")]


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_the_readmes_make_runs_and_the_quickstarts_commands_do_what_they_say_in_any_order(fresh_database, tmp_path, order):
    env = {
        **os.environ,
        "PATRON_DATABASE_URL": fresh_database,
        "PATRON_SECRET_KEY": "quickstart-test-secret-key-" + "k" * 32,
        "PATRON_LOG_FORMAT": "json",
        "PATRON_METRICS_DIR": str(tmp_path / "metrics"),
    }
    patron = str(VENV_BIN / "patron")
    subprocess.run([patron, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
    subprocess.run([patron, "org", "apply", str(DEMO_ORG)], env=env, cwd=ROOT, check=True, capture_output=True, timeout=60)
    # As `make run`: the relay beside the server.
    relay = subprocess.Popen([patron, "relay", "--metrics-port", "0"], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with served(tmp_path, "server", env) as server:
        sources = {
            "demo": demo_commands({**env, "PATRON_PORT": str(server.port)}),
            "readme": readme_commands(),
            "quickstart": quickstart_commands(),
        }
        commands = [command for source in order for command in sources[source]]
        outputs, shell = run_in_one_shell(commands, server.base, tmp_path)
    relay.terminate()
    relay.wait(30)
    assert all(DOCUMENTED_BASE not in command for command in sources["demo"]), "patron demo printed another port"
    for command, output in zip(commands, outputs, strict=True):
        check(command, output, shell)
