"""Operators' view: request log lines (masked, secret-free), /metrics and its guard, serve's settings."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pydantic
import pytest
from asgi_lifespan import LifespanManager
from click.testing import CliRunner
from support.api import item, new_mobile
from prometheus_client.parser import text_string_to_metric_families

from patron.api.app import create_app
from patron.auth.authenticate import NOT_MD5_HINT
from patron.cli import main
from patron.codes import MESSAGES, Code
from patron.observability import (
    MULTIPROC_ENV,
    LineWriter,
    ObservabilityMiddleware,
    Observer,
    PatronFormatter,
    mask_email,
    mask_mobile,
    multiprocess_metrics,
)
from patron.observability.outcome import ItemOutcome
from patron.observability.record import record_of
from patron.settings import Settings

REMOTE = ("10.0.0.5", 1234)
METRICS_TOKEN = "scrape-token-for-the-tests"


@pytest.fixture
def lines(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The request lines the app writes while the test runs, as JSON whatever stderr is."""
    captured: list[bytes] = []
    monkeypatch.setattr(app.state.observer.log, "sink", captured.append)
    monkeypatch.setattr(app.state.observer.log, "text", False)
    return captured


def line_of(lines: list[bytes], response: httpx.Response) -> dict[str, Any]:
    request_id = response.headers["X-Cap-Requestid"]
    matching = [orjson.loads(line) for line in lines if request_id.encode() in line]
    assert len(matching) == 1, f"expected one line for {request_id}, got {len(matching)}"
    return matching[0]


async def test_the_line_of_an_add_names_request_org_till_code_and_items_with_identifiers_masked(org, lines):
    mobile = new_mobile()
    email = f"asha.{mobile}@example.com"
    response = await org.add({"mobile": mobile, "email": email, "firstname": "Asha"}, {"mobile": "12"})
    assert response.status_code == 201, response.text

    line = line_of(lines, response)
    assert line["rid"] == response.headers["X-Cap-Requestid"]
    assert (line["org"], line["till"], line["method"], line["path"]) == (org.id, org.till(), "POST", "/v1.1/customer/add")
    assert (line["status"], line["code"], line["items"], line["failed"]) == (201, 201, 2, 1)
    assert line["level"] == "info" and isinstance(line["ms"], float) and line["ms"] >= 0
    first, second = line["items_detail"]
    user_id = item(response)["user_id"]
    assert first == {"code": 1000, "user_id": user_id, "mobile": mask_mobile(mobile), "email": "a***@example.com"}
    assert second["code"] != 1000

    raw = b"".join(lines).decode()
    assert mobile not in raw and email not in raw and f"asha.{mobile}" not in raw
    assert mask_mobile(mobile) == mobile[:4] + "******" + mobile[-2:]


async def test_the_line_of_a_get_counts_found_and_missing_items(org, lines):
    mobile = new_mobile()
    await org.add({"mobile": mobile})
    response = await org.get(mobile=f"{mobile},{new_mobile()}")
    line = line_of(lines, response)
    assert (line["items"], line["failed"], line["till"]) == (2, 1, org.till())
    assert [entry["code"] for entry in line["items_detail"]] == [1000, 1012]
    assert mobile not in b"".join(lines).decode()


async def test_pii_logging_shows_identifiers_when_asked(org, app, lines, monkeypatch):
    monkeypatch.setattr(app.state.observer.log, "pii", True)
    mobile = new_mobile()
    line = line_of(lines, await org.add({"mobile": mobile}))
    assert line["items_detail"][0]["mobile"] == mobile


async def test_an_unmatched_path_is_logged_masked_and_counted_once(http, lines):
    response = await http.get("/v1.1/customer/919812345678/someone@example.com")
    assert response.status_code == 404
    line = line_of(lines, response)
    assert "919812345678" not in line["path"] and "someone@" not in line["path"]
    assert "org" not in line and "items" not in line


async def test_a_wrong_password_leaves_no_password_md5_or_authorization_in_logs_or_body(org, lines, caplog):
    caplog.set_level(logging.DEBUG)
    password = "Wrong-Password-42"
    md5 = hashlib.md5(password.encode()).hexdigest()
    headers = org.basic(password=password)
    response = await org.add({"mobile": new_mobile()}, headers=headers)
    assert response.status_code == 401
    assert response.json()["response"]["status"]["message"] == MESSAGES[Code.AUTHENTICATION_FAILED]

    line = line_of(lines, response)
    assert line["status"] == 401 and "org" not in line
    real_md5 = hashlib.md5(org.passwords[org.till()].encode()).hexdigest()
    secrets = [password, md5, headers["Authorization"], headers["Authorization"].split()[1], real_md5]
    written = [b"".join(lines).decode(), caplog.text, response.text]
    for text in written:
        assert "authorization" not in text.lower()
        for secret in secrets:
            assert secret not in text


async def test_the_plain_password_instead_of_its_md5_is_the_same_401_and_its_log_line_says_so(org, lines, caplog):
    caplog.set_level(logging.DEBUG)
    till = org.till()
    password = org.passwords[till]
    plain = {"Authorization": "Basic " + base64.b64encode(f"{till}:{password}".encode()).decode()}
    response = await org.add({"mobile": new_mobile()}, headers=plain)
    assert response.status_code == 401
    assert response.json()["response"]["status"] == {
        "success": "false", "code": 401, "message": MESSAGES[Code.AUTHENTICATION_FAILED]
    }
    line = line_of(lines, response)
    assert line["hint"] == NOT_MD5_HINT
    assert password not in b"".join(lines).decode() and password not in caplog.text
    wrong_md5 = await org.add({"mobile": new_mobile()}, headers=org.basic(password="not-it"))
    assert "hint" not in line_of(lines, wrong_md5)


async def test_a_wrong_client_secret_is_logged_with_its_code_and_key_but_never_the_secret(org, http, lines):
    key = org.file.api_clients[0].key
    response = await http.post("/v3/oauth/token/generate", json={"key": key, "secret": "not-the-secret-9"})
    assert response.status_code == 401
    line = line_of(lines, response)
    assert (line["client"], line["code"]) == (key, 320001)
    assert "not-the-secret-9" not in b"".join(lines).decode() and "not-the-secret-9" not in response.text


def test_the_text_line_is_one_readable_line_and_masked(app, monkeypatch):
    log = app.state.observer.log
    captured: list[bytes] = []
    monkeypatch.setattr(log, "sink", captured.append)
    monkeypatch.setattr(log, "text", True)
    record = {
        "ts": "2026-01-01T00:00:00.000Z", "level": "info", "rid": "abc", "method": "GET", "path": "/x\n/y",
        "status": 200, "code": 200, "ms": 1.5, "items": 1, "failed": 0,
        "items_detail": log.items([ItemOutcome(Code.ITEM_OK, mobile="919812345678", email="asha@example.com")]),
    }
    log.write(record)
    (text,) = captured
    assert text.count(b"\n") == 1 and text.endswith(b"\n")
    assert b"GET /x\\x0a/y 200" in text and b"9198******78" in text and b"a***@example.com" in text
    assert b"919812345678" not in text and b"rid=abc" in text


@pytest.fixture
def channel() -> Any:
    """A pair of sockets that keep each write(2) apart, as (the writing fd, the writes so far)."""
    import socket

    reading, writing = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    reading.setblocking(False)

    def writes() -> list[bytes]:
        received = []
        while True:
            try:
                received.append(reading.recv(1 << 16))
            except BlockingIOError:
                return received

    yield writing.fileno(), writes
    reading.close()
    writing.close()


async def test_lines_of_one_loop_turn_are_written_together_in_whole_lines_within_pipe_buf(channel):
    import asyncio

    fd, writes = channel
    writer = LineWriter(fd, limit=100)
    lines = [f"line {n:02d} {'x' * 20}\n".encode() for n in range(10)]  # 29 bytes each
    for line in lines:
        writer(line)
    assert writes() == [], "nothing is written before the turn ends"
    await asyncio.sleep(0)
    # Three whole lines fit in 100 bytes.
    assert writes() == [b"".join(lines[0:3]), b"".join(lines[3:6]), b"".join(lines[6:9]), lines[9]]
    long_line = b"y" * 150 + b"\n"
    writer(long_line)
    writer(lines[0])
    await asyncio.sleep(0)
    assert writes() == [long_line, lines[0]]


def test_outside_an_event_loop_a_line_is_written_at_once(channel):
    fd, writes = channel
    LineWriter(fd)(b"startup line\n")
    assert writes() == [b"startup line\n"]


def test_other_log_records_are_masked_and_secrets_redacted():
    record = logging.LogRecord(
        "patron.api", logging.ERROR, __file__, 1,
        "failed for %s: Authorization: Basic dGlsbDpzZWNyZXQ= password=hunter2"
        " [parameters: ('919812345678', 'asha@example.com')]",
        ("x",), None,
    )
    for text in (True, False):
        formatted = PatronFormatter(text=text, pii=False).format(record)
        assert "dGlsbDpzZWNyZXQ=" not in formatted and "hunter2" not in formatted
        assert "919812345678" not in formatted and "asha@example.com" not in formatted
        assert "9198******78" in formatted and "a***@example.com" in formatted
    shown = PatronFormatter(text=False, pii=True).format(record)
    assert "919812345678" in shown and "hunter2" not in shown
    assert mask_email("asha@example.com") == "a***@example.com"


async def test_an_unhandled_error_is_one_error_line_naming_only_the_exception_class():
    captured: list[bytes] = []
    observer = Observer(Settings(log_format="json"), captured.append)

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        record_of(scope).request_id = "r1"
        raise RuntimeError("leaked 919812345678 asha@example.com")

    scope = {"type": "http", "method": "GET", "path": "/v1.1/customer/get", "headers": [], "state": {}}
    with pytest.raises(RuntimeError):
        await ObservabilityMiddleware(failing, observer)(scope, None, None)
    (line,) = [orjson.loads(raw) for raw in captured]
    assert (line["rid"], line["status"], line["level"], line["error"]) == ("r1", 500, "error", "RuntimeError")
    assert b"919812345678" not in captured[0] and b"asha" not in captured[0]


def sample(scrape: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(scrape):
        for metric in family.samples:
            if metric.name == name and all(metric.labels.get(k) == v for k, v in labels.items()):
                return metric.value
    return 0.0


async def test_metrics_count_requests_items_and_warnings(org, http, app):
    route = "/v1.1/customer/add"
    before = (await http.get("/metrics")).text
    response = await org.add({"mobile": new_mobile(), "email": "not-an-email"})
    assert item(response)["item_status"]["warnings"]["warning"] == [str(int(Code.INVALID_EMAIL))]
    scraped = await http.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    after = scraped.text

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("patron_requests_total", route=route, status="200") == 1
    assert grew("patron_request_duration_seconds_count", route=route) == 1
    assert grew("patron_customer_items_total", route=route, code="1000") == 1
    assert grew("patron_item_warnings_total", code=str(int(Code.INVALID_EMAIL))) == 1
    assert sample(after, "patron_db_pool_size") >= 1
    # On PostgreSQL the new customer went in a statement of its own (nothing else was registering).
    shared = 1 if hasattr(app.state.services.storage, "registrations") else 0
    registered = {"statement": "register"}
    assert grew("patron_requests_per_statement_count", **registered) == shared
    assert grew("patron_requests_per_statement_sum", **registered) == shared
    # Every connection the add took (from SQLAlchemy's pool or, on PostgreSQL, the driver's) is back.
    assert "patron_db_pool_in_use" in after and grew("patron_db_pool_in_use") == 0


async def test_the_store_tells_the_metrics_its_shared_statements_and_its_writers_commits(org, http, app):
    before = (await http.get("/metrics")).text
    mobile = new_mobile()
    assert item(await org.add({"mobile": mobile}))["item_status"]["code"] == str(int(Code.ITEM_OK))
    assert item(await org.get(mobile=mobile))["item_status"]["code"] == str(int(Code.ITEM_OK))
    after = (await http.get("/metrics")).text

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    if hasattr(app.state.services.storage, "registrations"):
        # PostgreSQL: the add's new customer and the get's look-up, each in a statement of its own.
        assert grew("patron_requests_per_statement_count", statement="register") == 1
        assert grew("patron_requests_per_statement_count", statement="look_up") == 1
        assert grew("patron_units_per_transaction_count") == 0
    else:
        # SQLite: the add's unit went in one transaction of the file's writer; a look-up only reads.
        assert grew("patron_units_per_transaction_count") == 1
        assert grew("patron_units_per_transaction_sum") == 1
        assert grew("patron_requests_per_statement_count", statement="look_up") == 0


async def test_metrics_refuse_a_remote_client_when_no_token_is_set(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=REMOTE), base_url="http://patron.test") as remote:
        response = await remote.get("/metrics")
    assert response.status_code == 403
    assert response.json() == {"data": None, "errors": [{"code": 403, "message": MESSAGES[Code.ACCESS_DENIED]}]}
    assert "patron_requests_total" not in response.text


async def test_with_a_token_metrics_need_it_from_everyone(settings):
    guarded = create_app(settings.model_copy(update={"metrics_token": pydantic.SecretStr(METRICS_TOKEN)}))
    captured: list[bytes] = []
    guarded.state.observer.log.sink = captured.append
    async with LifespanManager(guarded):
        for client in (REMOTE, ("127.0.0.1", 4321)):
            transport = httpx.ASGITransport(app=guarded, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://patron.test") as caller:
                assert (await caller.get("/metrics")).status_code == 401
                wrong = await caller.get("/metrics", headers={"Authorization": "Bearer not-it"})
                assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
                right = await caller.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
                assert right.status_code == 200 and "patron_requests_total" in right.text
                assert (await caller.get("/metrics", headers={"Authorization": f"bearer {METRICS_TOKEN}"})).status_code == 200
    assert len(captured) == 8
    assert METRICS_TOKEN not in b"".join(captured).decode()


def test_the_settings_parse(monkeypatch):
    defaults = Settings()
    assert (defaults.log_format, defaults.log_level, defaults.log_pii) == ("auto", "info", False)
    assert (defaults.metrics_token, defaults.metrics_dir, defaults.shutdown_grace_seconds) == (None, None, 20)
    for name, value in {
        "LOG_FORMAT": "JSON", "LOG_LEVEL": "Warning", "LOG_PII": "true", "METRICS_TOKEN": METRICS_TOKEN,
        "METRICS_DIR": "/tmp/patron-metrics", "SHUTDOWN_GRACE_SECONDS": "7",
    }.items():
        monkeypatch.setenv(f"PATRON_{name}", value)
    parsed = Settings()
    assert (parsed.log_format, parsed.log_level, parsed.log_pii) == ("json", "warning", True)
    assert parsed.metrics_token is not None and parsed.metrics_token.get_secret_value() == METRICS_TOKEN
    assert METRICS_TOKEN not in repr(parsed)
    assert (parsed.metrics_dir, parsed.shutdown_grace_seconds) == ("/tmp/patron-metrics", 7)
    monkeypatch.setenv("PATRON_METRICS_TOKEN", "")
    assert Settings().metrics_token is None
    for name, value in {"LOG_FORMAT": "xml", "LOG_LEVEL": "loud", "SHUTDOWN_GRACE_SECONDS": "-1"}.items():
        monkeypatch.setenv(f"PATRON_{name}", value)
        with pytest.raises(pydantic.ValidationError):
            Settings()
        monkeypatch.delenv(f"PATRON_{name}")


def test_several_workers_share_a_metrics_directory_that_is_cleaned(tmp_path, monkeypatch):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_metrics(Settings(), 1) as none:
        assert none is None and MULTIPROC_ENV not in os.environ

    with multiprocess_metrics(Settings(), 2) as made:
        assert made is not None and made.is_dir() and os.environ[MULTIPROC_ENV] == str(made)
    assert not made.exists() and MULTIPROC_ENV not in os.environ

    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"stale")
    (given / "patron.db").write_bytes(b"not ours")
    with multiprocess_metrics(Settings(metrics_dir=str(given)), 4) as path:
        assert path == given and not (given / "counter_123.db").exists()
        (given / "gauge_livesum_456.db").write_bytes(b"x")
    assert sorted(p.name for p in given.iterdir()) == ["patron.db"]


def test_serve_migrates_first_and_passes_the_shutdown_grace(database_url, monkeypatch):
    import uvicorn

    seen: dict[str, Any] = {}

    def run(app: str, **options: Any) -> None:
        seen.update(options, metrics_dir=os.environ.get(MULTIPROC_ENV))
        seen["dir_exists"] = bool(seen["metrics_dir"]) and Path(seen["metrics_dir"]).is_dir()

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    monkeypatch.setenv("PATRON_DATABASE_URL", database_url)
    monkeypatch.setenv("PATRON_SHUTDOWN_GRACE_SECONDS", "7")
    result = CliRunner().invoke(main, ["serve", "--migrate", "--workers", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "revision head" in result.output
    assert seen["timeout_graceful_shutdown"] == 7 and seen["access_log"] is False and seen["workers"] == 2
    assert seen["dir_exists"] and not Path(seen["metrics_dir"]).exists()

    seen.clear()
    result = CliRunner().invoke(main, ["serve"], catch_exceptions=False)
    assert result.exit_code == 0 and "revision" not in result.output
    assert seen["metrics_dir"] is None and seen["timeout_graceful_shutdown"] == 7


def test_the_readme_documents_operating_patron():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Operating Patron", 1)[1]
    for name in ("PATRON_LOG_FORMAT", "PATRON_LOG_LEVEL", "PATRON_LOG_PII", "PATRON_METRICS_TOKEN",
                 "PATRON_METRICS_DIR", "PATRON_SHUTDOWN_GRACE_SECONDS", "--migrate", "/metrics", "/ready"):
        assert name in section, name



def test_the_http_clients_request_lines_which_name_a_webhooks_whole_url_are_not_logged():
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-c", (
            "import logging; from patron.observability.logs import configure_logging; from patron.settings import Settings;"
            " configure_logging(Settings()); logging.getLogger('httpx').info('HTTP Request: POST https://h/x?token=t');"
            " logging.getLogger('httpx').warning('a warning of the client')"
        )],
        capture_output=True, text=True, check=True,
    )
    assert "token=t" not in shown.stderr and "a warning of the client" in shown.stderr
