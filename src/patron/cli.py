"""The `patron` command: migrate the database, apply and show org files, serve the API."""

from __future__ import annotations

import base64
import errno
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from pydantic import ValidationError

from patron import loop
from patron.orgs.file import OrgFileError, load_org_file, md5_of_password
from patron.orgs.policy import OrgFile
from patron.settings import Settings

T = TypeVar("T")


def _run(make: Callable[[Any], Awaitable[T]]) -> T:
    """Run `make(engine)` on a fresh engine of a database migrated to this Patron's schema;
    database failures become one-line errors."""
    from patron import bootstrap
    from patron.store.db import DatabaseUnavailable

    settings = Settings()
    url = settings.database_url
    _require_database_file(url)

    async def main() -> T:
        engine = bootstrap.engine(settings)
        try:
            await _require_schema(engine, url)
            return await make(engine)
        finally:
            await engine.dispose()

    try:
        return loop.run(main())
    except DatabaseUnavailable as exc:
        raise click.ClickException(f"database at {_where(url)} unreachable: {exc}") from exc


async def _ready(engine: Any) -> None:
    """Nothing more to do once `_run` has found the database there and migrated."""


def _where(url: str) -> str:
    """The database as an operator finds it: an SQLite file's absolute path, or the URL without its password."""
    from patron.store.db import async_url

    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return str(Path(parsed.database).resolve())
    return _safe_url(url)


def _require_database_file(url: str) -> None:
    """An SQLite file must be there: SQLite would create an empty one, in whatever folder the
    command runs (the default URL is relative), and only db upgrade may make one."""
    from patron.store.db import async_url

    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        if not Path(parsed.database).is_file():
            raise click.ClickException(
                f"no database at {_where(url)}: run `patron db upgrade` to make one, or point "
                "PATRON_DATABASE_URL at yours (the default, sqlite:///./var/patron.db, is relative to the folder you run in)"
            )


async def _require_schema(engine: Any, url: str) -> None:
    from patron.store.migrate import current_revision, head_revision

    revision, head = await current_revision(engine), head_revision()
    if revision != head:
        state = "not migrated" if revision is None else f"at revision {revision}, this Patron needs {head}"
        raise click.ClickException(f"the database at {_where(url)} is {state}: run `patron db upgrade`")


class _OneLineErrors(click.Group):
    """Every failure of a command is one line on stderr and exit code 1; --debug shows the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except BrokenPipeError:
            # The reader went away (`patron demo | head`): nothing to say, and nothing left to
            # flush at exit. 141 is what a shell reports for a writer its pipe's SIGPIPE ended.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
                # Which PATRON_* setting, and why: the first line alone says only how many.
                problems = "; ".join(
                    f"PATRON_{'_'.join(map(str, error['loc'])).upper()}: {error['msg']}" for error in exc.errors()
                )
                raise click.ClickException(f"settings refused: {problems}") from exc
            first = (str(exc).strip().splitlines() or [""])[0]
            raise click.ClickException(f"{type(exc).__name__}: {first} (run with --debug for the traceback)") from exc


def _configure_logging(settings: Settings) -> None:
    """Patron's log format for a long-running command. Alembic announces each of its plugins at
    INFO whenever the schema's revision is read, which the server and the relay do at every start,
    and its database dialect whenever it migrates (serve --migrate): news to nobody. A migration it
    runs is still logged."""
    import logging

    from patron.observability import configure_logging

    configure_logging(settings)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    migration = logging.getLogger("alembic.runtime.migration")
    if not any(isinstance(known, _AlembicPreamble) for known in migration.filters):
        migration.addFilter(_AlembicPreamble())


class _AlembicPreamble:
    """Drops alembic's two lines about the dialect it runs on, said before every migration or none."""

    def filter(self, record: Any) -> bool:
        return not str(record.msg).startswith(("Context impl ", "Will assume "))


@click.group(cls=_OneLineErrors)
@click.version_option(package_name="patron")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure.")
def main(debug: bool) -> None:
    """Patron: customer registration for loyalty programmes."""


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Migrate to this revision.")
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema (safe to run on every start)."""
    from sqlalchemy.exc import SQLAlchemyError

    from patron.store.migrate import upgrade

    url = Settings().database_url
    try:
        distributed = upgrade(url, revision)
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"migration failed: {str(exc).splitlines()[0]}") from exc
    click.echo(f"database at {_safe_url(url)} is at revision {revision}")
    for line in distributed:
        click.echo(f"citus: {line}")


@main.group()
def org() -> None:
    """Orgs, declared in org files."""


def _load(path: str) -> OrgFile:
    try:
        return load_org_file(path)
    except OrgFileError as exc:
        raise click.ClickException(f"{path} refused, nothing applied:\n{exc}") from exc


@org.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
def org_apply(file: str) -> None:
    """Apply an org file (idempotent; an edited file updates the org)."""
    from patron.orgs.apply import OrgRefused, apply_org

    org_file = _load(file)
    try:
        report = _run(lambda engine: apply_org(engine, org_file))
    except OrgRefused as exc:
        raise click.ClickException(f"{file} refused, nothing applied:\n{file}: {exc}") from exc
    state = "created" if report.created else ("updated" if report.changed else "unchanged")
    click.echo(f"org {report.org_id} ({org_file.org.name}) {state}")
    for code in report.disabled_tills:
        click.echo(f"  till {code} disabled (no longer in the file)")
    for key in report.disabled_api_clients:
        click.echo(f"  API client {key} disabled (no longer in the file)")
    for login in report.disabled_console_users:
        click.echo(f"  console user {login} disabled (no longer in the file): their sessions end")


def _applied_definition(org_id: int) -> dict[str, Any]:
    from patron.store.db import transaction
    from patron.store.orgs import OrgStore

    async def read(engine: Any) -> dict[str, Any] | None:
        async with transaction(engine, readonly=True) as conn:
            return await OrgStore(conn).definition(org_id)

    definition = _run(read)
    if definition is None:
        raise click.ClickException(f"no org {org_id}")
    return definition


@org.command("show")
@click.argument("org_id", type=int)
def org_show(org_id: int) -> None:
    """Print an org as applied (secrets are never stored, so none are shown)."""
    definition = _applied_definition(org_id)
    click.echo(orjson.dumps(definition, option=orjson.OPT_INDENT_2).decode())


def _console_password_hashes(org_id: int, definition: dict[str, Any]) -> dict[str, str]:
    """The slow hashes of the org's console users, by login: no secret (an org file may hold them),
    and what lets an exported file be applied again without a new password for each."""
    from patron.store.db import transaction
    from patron.store.orgs import OrgStore

    logins = [user["login"] for user in definition.get("console_users") or []]

    async def read(engine: Any) -> dict[str, str]:
        async with transaction(engine, readonly=True) as conn:
            rows = await OrgStore(conn).console_users_by_login(logins)
        return {login: row.password_hash for login, row in rows.items() if row.org_id == org_id}

    return _run(read) if logins else {}


@org.command("export")
@click.argument("org_id", type=int)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the org file here, not to standard output.")
def org_export(org_id: int, output: str | None) -> None:
    """Write an org as applied back as an org file (tills' passwords and API clients' secrets are
    not stored: fill them in; console users keep their password hashes)."""
    from patron.orgs.export import org_file_text

    definition = _applied_definition(org_id)
    text = org_file_text(org_id, definition, _console_password_hashes(org_id, definition))
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"org {org_id} written to {output}; fill in its tills' passwords and API clients' secrets before applying it")


@org.command("hash-password")
@click.password_option("--password", prompt="Password", help="The password to hash [asked for, not echoed].")
def org_hash_password(password: str) -> None:
    """Print the slow hash of a console user's password, for `password_hash` in an org file."""
    from patron.orgs.policy import CONSOLE_PASSWORD_MIN
    from patron.security import hash_secret

    if len(password) < CONSOLE_PASSWORD_MIN:
        raise click.ClickException(f"a console user's password has at least {CONSOLE_PASSWORD_MIN} characters")
    click.echo(hash_secret(password))


@main.group()
def customer() -> None:
    """Customers, in bulk."""


@customer.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", "org_id", type=int, required=True, help="The org to import into.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option("--till", help="The till the customers are registered at [the org's first till].")
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="Rejected rows and rows with warnings [FILE.rejected.csv]."
)
@click.option("--resume", is_flag=True, help="Continue an interrupted import of the same file.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=lambda: os.cpu_count() or 1,
    show_default="the number of CPUs",
    help="Processes that validate and write batches (on SQLite they take turns to write).",
)
def customer_import(
    file: Path, org_id: int, batch_size: int, till: str | None, report: Path | None, resume: bool, workers: int
) -> None:
    """Import customers from CSV (a header of add-API field names, custom.NAME, extended.NAME) or
    JSON lines, with the add API's validation, identity resolution and rewards.

    Re-running a file is safe (an upsert; rewards are never given twice). An interrupted import
    keeps every committed batch; --resume continues after the last one.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from patron.bulk import ImportJob, ImportRefused, check_import, count_rows, run_import

    job = ImportJob(
        path=file,
        org_id=org_id,
        batch_size=batch_size,
        till_code=till,
        report_path=report or file.with_name(file.name + ".rejected.csv"),
        resume=resume,
        workers=workers,
        expected_rows=count_rows(file),
    )
    # The org, the till and the header are checked before a bar is drawn: a refusal is one line.
    try:
        _run(lambda engine: check_import(engine, job))
    except ImportRefused as exc:
        raise click.ClickException(str(exc)) from exc
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8,.0f} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("importing", total=job.expected_rows, rate=0.0)

        def show(progress: Any) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=progress.done + progress.skipped, rate=progress.done / elapsed)

        try:
            result = _run(lambda engine: run_import(engine, job, show))
        except ImportRefused as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            done = job.progress
            click.echo(f"interrupted after {done.done + done.skipped} rows; committed batches are kept. Continue with --resume.", err=True)
            sys.exit(130)
    elapsed = time.monotonic() - started
    click.echo(
        f"{result.done:,} {'row' if result.done == 1 else 'rows'} in {elapsed:.1f}s "
        f"({result.done / max(elapsed, 1e-6):,.0f} rows/s): "
        f"{result.created:,} created, {result.updated:,} updated, "
        + (f"{result.unchanged:,} unchanged, " if result.unchanged else "")
        + f"{result.rejected:,} rejected"
        + (f", {result.skipped:,} skipped (resumed)" if result.skipped else "")
    )
    if result.warnings:
        counted = ", ".join(f"{code} x{count:,}" for code, count in sorted(result.warnings.items()))
        click.echo(f"warnings (the value was not applied, the row was): {counted}")
    if result.rejected or result.warnings:
        click.echo(f"rejected rows and rows with warnings, each with its code, message and warnings: {job.report_path}")


@customer.command("export")
@click.option("--org", "org_id", type=int, required=True, help="The org to export.")
@click.option(
    "--format", "file_format", type=click.Choice(["csv", "jsonl"]), default=None,
    help="CSV (the import's columns) or JSON lines (add items, with commChannels and subscriptions) [from --output's suffix, else csv].",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not to standard output.")
def customer_export(org_id: int, file_format: str | None, output: Path | None) -> None:
    """Export an org's customers, streamed, in the columns `patron customer import` reads: the
    file imports back into the same customers (docs/import.md)."""
    from patron.bulk import ExportRefused, export_customers, file_format as format_of

    chosen = file_format or (format_of(output) if output is not None else "csv")
    try:
        if output is None:
            written = _run(lambda engine: export_customers(engine, org_id, sys.stdout, chosen))
        else:
            try:
                handle = output.open("w", newline="", encoding="utf-8")
            except OSError as exc:
                raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
            with handle:
                written = _run(lambda engine: export_customers(engine, org_id, handle, chosen))
    except ExportRefused as exc:
        raise click.ClickException(str(exc)) from exc
    # Standard output holds the file: the count goes to standard error.
    click.echo(f"{written:,} {'customer' if written == 1 else 'customers'} of org {org_id} exported"
               + (f" to {output}" if output is not None else ""), err=True)


@main.command()
@click.option("--org", "org_id", type=int, required=True, help="The org whose data to check.")
def check(org_id: int) -> None:
    """Check an org's data against Patron's invariants: one line per violation, exit 1 if any."""
    from patron.checks import UnknownOrg, check_org

    try:
        violations = _run(lambda engine: check_org(engine, org_id))
    except UnknownOrg:
        raise click.BadParameter(f"no org {org_id}", param_hint="--org") from None
    for violation in violations:
        click.echo(violation.line(org_id))
    if violations:
        sys.exit(1)
    click.echo(f"org {org_id}: no violations")


@main.command()
@click.option("--host", default=None, help="Address to listen on [PATRON_HOST, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [PATRON_PORT, 8000].")
@click.option("--workers", type=int, default=None, help="Worker processes [PATRON_WORKERS, 1].")
@click.option("--migrate", is_flag=True, help="Run `patron db upgrade` first (safe on every start).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None, migrate: bool) -> None:
    """Serve the API."""
    import uvicorn

    from patron.observability import multiprocess_metrics

    settings = Settings()
    _configure_logging(settings)
    if migrate:
        ctx.invoke(db_upgrade)
    else:
        _run(_ready)
    workers = workers or settings.workers
    with multiprocess_metrics(settings, workers):
        uvicorn.run(
            "patron.api.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            log_level=settings.log_level,
            # Patron formats (and masks) every log line itself, uvicorn's included.
            log_config=None,
            # One log line per request is written by Patron itself; uvicorn's would double it.
            access_log=False,
            server_header=False,
            # X-Forwarded-For and -Proto only from the proxies the operator names (none by
            # default): uvicorn's own default believes them from this host, where any local
            # process, or a proxy passing on what its client sent, could speak for anyone.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=[str(network) for network in settings.trusted_proxies],
            # On SIGTERM, requests in flight get this long to finish before they are cancelled.
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
            # httptools with Patron's limits on request heads, deadlines for slow clients and
            # its cap on connections (PATRON_MAX_HEADER*, PATRON_*_TIMEOUT_SECONDS,
            # PATRON_MAX_CONNECTIONS), which each worker reads from the same environment. By
            # import string: the workers of --workers N are spawned processes. uvicorn's own
            # limit_concurrency is left off: it refuses whichever request comes next once the
            # worker is full, on old connections too, in plain text, one short of its number.
            http="patron.api.server:PatronHttpProtocol",
            # Read only by uvicorn's h11 protocol, unused here: no head bound is left at
            # uvicorn's default should the protocol above ever change.
            h11_max_incomplete_event_size=settings.max_header_bytes,
        )


@main.command()
@click.option("--once", is_flag=True, help="Deliver what is pending now, then exit (tests, cron).")
@click.option(
    "--metrics-port", type=click.IntRange(0, 65535), default=None,
    help="Serve the relay's metrics on 127.0.0.1:PORT; 0 turns them off [9464; off with --once].",
)
@click.option(
    "--concurrency", type=click.IntRange(1, 10_000), default=100, show_default=True,
    help="Deliveries in flight at once per sink (each customer's events one at a time).",
)
def relay(once: bool, metrics_port: int | None, concurrency: int) -> None:
    """Deliver the orgs' events to their webhooks and brokers (docs/events.md); run beside `patron serve`."""
    from patron.relay.run import RelayOptions, run_relay
    from patron.relay.schedule import RETRY_SCALE_ENV, retry_scale

    settings = Settings()
    _configure_logging(settings)
    try:
        scale = retry_scale(os.environ.get(RETRY_SCALE_ENV))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    port = (0 if once else 9464) if metrics_port is None else metrics_port
    options = RelayOptions(
        concurrency=concurrency, retry_scale=scale, stop_grace_seconds=settings.shutdown_grace_seconds,
        units=max(1, settings.db_pool_size - 1),
    )

    async def deliver(engine: Any) -> None:
        from patron import bootstrap

        store = await bootstrap.storage(engine, settings)
        try:
            await run_relay(store, options, once=once, metrics_port=port)
        finally:
            await store.close()

    try:
        _run(deliver)
    except OSError as exc:
        if port and exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise click.ClickException(
                f"cannot serve metrics on 127.0.0.1:{port} ({exc.strerror}): pass --metrics-port with another port, or 0"
            ) from None
        raise


class _Refused(click.ClickException):
    """An operator's request refused as asked (an unknown org or sink, no reason, nothing to do):
    one line, exit code 2, as a usage error."""

    exit_code = 2


@main.group()
def events() -> None:
    """The relay's sinks: their state and dead letters, and replays (docs/events.md)."""


def _events_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(tzinfo=None)


@events.command("status")
@click.option("--org", "org_id", type=int, help="Only this org [every org].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def events_status(org_id: int | None, as_json: bool) -> None:
    """Each sink of each org: its kind, pending events (past its position, of the names it is sent,
    and those waiting for a retry) and the oldest one's age, since when it has been failing and how
    many failures in a row, its last error, its dead letters, whether it is disabled (when, why);
    and the relays seen in the last 30 s.

    Exit code 0 when all is well; 1 when a sink is disabled, a sink has been failing for more than
    an hour, or events are pending and no relay has been seen in the last 30 s; the reasons are
    printed last (for cron and monitoring).
    """
    from patron.events.operations import RELAY_SEEN, alarms

    now = _events_now()
    orgs, relays = _run(lambda engine: _sink_states(engine, org_id, now - RELAY_SEEN))
    if org_id is not None and not orgs:
        raise _Refused(f"no org {org_id}")
    states = [state for _, _, org_states in orgs for state in org_states]
    found = alarms(states, relays, now)
    if as_json:
        click.echo(orjson.dumps(_status_document(orgs, relays, found, now), option=orjson.OPT_INDENT_2).decode())
    else:
        _print_status(orgs, relays, found, now)
    if found:
        sys.exit(1)


async def _sink_states(engine: Any, org_id: int | None, relays_since: Any) -> tuple[list[Any], list[Any]]:
    """Each org (or the one asked for) with its sinks' states, and the relays seen since then."""
    from patron import bootstrap
    from patron.events.operations import declared_sinks
    from patron.orgs.apply import settings_from_definition

    store = await bootstrap.storage(engine, Settings(), connections=1)
    try:
        async with store.unit_of_work(readonly=True) as unit:
            ops = unit.event_ops
            if org_id is None:
                found = await ops.orgs()
            else:
                one = await ops.org(org_id)
                found = [one] if one is not None else []
            orgs = []
            for found_id, name, definition in found:
                declared = declared_sinks(settings_from_definition(definition, found_id))
                orgs.append((found_id, name, await ops.sink_states(found_id, declared)))
            relays = await ops.relays_seen(relays_since)
    finally:
        await store.close()
    return orgs, relays


def _health_text(state: Any, now: Any) -> str:
    from patron.events.operations import age, iso

    if state.health == "disabled":
        return f"disabled at {iso(state.disabled_at)}: {state.disabled_reason or 'no reason given'}"
    if state.health == "failing":
        return (f"failing since {iso(state.failing_since)} ({age(now - state.failing_since)}, "
                f"{state.consecutive_failures} in a row)")
    if state.health == "not started":
        return "not started (no relay has opened it yet)"
    return "ok"


def _print_status(orgs: list[Any], relays: list[Any], found: list[str], now: Any) -> None:
    import shutil

    from rich.console import Console
    from rich.table import Table

    from patron.events.operations import RELAY_SEEN, age, iso

    # Piped (cron mail, a file), a table at full width rather than wrapped at 80 columns.
    console = Console(width=None if sys.stdout.isatty() else max(160, shutil.get_terminal_size((160, 24)).columns),
                      highlight=False)
    table = Table(title=f"Event sinks at {iso(now)}", title_justify="left")
    for header, justify in (("org", "right"), ("sink", "left"), ("kind", "left"), ("health", "left"),
                            ("pending", "right"), ("oldest pending", "right"), ("dead letters", "right"),
                            ("last success", "left"), ("last error", "left")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for org_id, _, states in orgs:
        for state in states:
            name = state.sink if state.configured else f"{state.sink} (no longer in the org file)"
            table.add_row(
                str(org_id), name, state.kind, _health_text(state, now),
                "—" if state.pending is None else f"{state.pending:,}", age(state.lag(now)),
                f"{state.dead_letters:,}", f"{age(now - state.last_success_at)} ago" if state.last_success_at else "—",
                (state.last_error or "—")[:200],
            )
    if table.row_count:
        console.print(table)
    else:
        console.print("No org declares a sink ([[webhooks]] or [[brokers]] in its file).")
    seen = int(RELAY_SEEN.total_seconds())
    if relays:
        console.print(f"Relays seen in the last {seen} s: " + ", ".join(
            f"{relay.relay_id} (running since {iso(relay.started_at)})" for relay in relays))
    else:
        console.print(f"No relay seen in the last {seen} s.")
    for line in found:
        console.print(f"Attention: {line}")


def _status_document(orgs: list[Any], relays: list[Any], found: list[str], now: Any) -> dict[str, Any]:
    from patron.events.operations import iso

    def at(moment: Any) -> str | None:
        return iso(moment) if moment is not None else None

    def sink(state: Any) -> dict[str, Any]:
        lag = state.lag(now)
        return {
            "sink": state.sink, "kind": state.kind, "configured": state.configured, "health": state.health,
            "position": state.position, "pending": state.pending, "oldest_pending_at": at(state.oldest_pending_at),
            "oldest_pending_seconds": None if lag is None else int(lag.total_seconds()),
            "failing_since": at(state.failing_since), "consecutive_failures": state.consecutive_failures,
            "last_success_at": at(state.last_success_at), "last_failure_at": at(state.last_failure_at),
            "last_error": state.last_error, "dead_letters": state.dead_letters,
            "disabled_at": at(state.disabled_at), "disabled_reason": state.disabled_reason,
        }

    return {
        "checked_at": iso(now),
        "orgs": [{"org_id": org_id, "name": name, "sinks": [sink(state) for state in states]} for org_id, name, states in orgs],
        "relays": [{"relay_id": r.relay_id, "started_at": iso(r.started_at), "seen_at": iso(r.seen_at)} for r in relays],
        "alarms": found,
    }


@events.command("replay")
@click.option("--org", "org_id", type=int, required=True, help="The sink's org.")
@click.option("--sink", "sink_name", required=True, help="The sink, by its name in the org file.")
@click.option("--event", "event_id", help="One event, by its eventId.")
@click.option("--from", "from_text", metavar="TIME", help="Events created from TIME (with --to).")
@click.option("--to", "to_text", metavar="TIME", help="Events created up to TIME, included (with --from).")
@click.option("--dead", is_flag=True, help="Every dead letter of the sink.")
@click.option("--reason", required=True, help="Why (kept with the replay, as who asked and what).")
@click.option("--enable", is_flag=True, help="Enable the sink again if it is disabled.")
def events_replay(
    org_id: int, sink_name: str, event_id: str | None, from_text: str | None, to_text: str | None, dead: bool,
    reason: str, enable: bool,
) -> None:
    """Send events to a sink again: one event (--event), those created in a range (--from and
    --to), or its dead letters (--dead). Dead letters, and events the sink took that are still
    stored, go back in its queue, due now; each customer's events in the queue, replayed or
    waiting already, are sent one at a time in sequence order. Recorded with who asked
    (cli:USER), the reason and how many.

    TIME is ISO 8601 (2024-05-01, 2024-05-01T09:30+05:30; UTC without an offset) or Unix
    milliseconds, as an event's createdAt; --to includes the whole of its last unit (a date, its
    whole day; 09:30, its whole minute). A disabled sink stays disabled (the events wait) unless
    --enable is given. Refused, with exit code 2: an unknown org or sink, no reason, or nothing
    to replay.
    """
    import getpass

    from patron.events.operations import ReplayRefused, moment, replay_reason, requested_by, selection

    try:
        asked = selection(
            event_id, moment(from_text) if from_text is not None else None,
            moment(to_text, end=True) if to_text is not None else None, dead,
        )
        why = replay_reason(reason)
    except ReplayRefused as refused:
        raise _Refused(str(refused)) from None
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid())
    replayed = _run(lambda engine: _replay(engine, org_id, sink_name, asked, why, requested_by("cli", who), enable))
    click.echo(replayed.message())


async def _replay(engine: Any, org_id: int, sink_name: str, asked: Any, reason: str, who: str, enable: bool) -> Any:
    from patron import bootstrap
    from patron.events.operations import ReplayRefused, declared_sinks
    from patron.events.operators import replay
    from patron.orgs.apply import settings_from_definition

    store = await bootstrap.storage(engine, Settings(), connections=1)
    try:
        async with store.unit_of_work(readonly=True) as unit:
            found = await unit.event_ops.org(org_id)
            rows = await unit.event_ops.sink_rows(org_id) if found else {}
        if found is None:
            raise _Refused(f"no org {org_id}")
        declared = {sink.name: sink for sink in declared_sinks(settings_from_definition(found[2], org_id))}
        if sink_name not in declared:
            if sink_name in rows:
                raise _Refused(f"sink {sink_name} is no longer in org {org_id}'s file: nothing delivers to it")
            known = ", ".join(sorted(declared)) or "none"
            raise _Refused(f"org {org_id} has no sink {sink_name} (its sinks: {known})")
        try:
            return await replay(store, org_id, declared[sink_name], asked, reason, who, _events_now(), enable=enable)
        except ReplayRefused as refused:
            raise _Refused(str(refused)) from None
    finally:
        await store.close()


@main.command()
@click.argument("file", type=click.Path(dir_okay=False), default="examples/demo-org.toml")
def demo(file: str) -> None:
    """Print an org file's till credentials and working curls: add, get, XML and OAuth."""
    org_file = _load(file)
    store = next((s for s in org_file.stores if s.tills), None)
    if store is None:
        raise click.ClickException(f"{file} declares no till")
    till = store.tills[0]
    md5 = md5_of_password(till)
    basic = f"-H 'Authorization: Basic {base64.b64encode(f'{till.code}:{md5}'.encode()).decode()}'"
    settings = Settings()
    base = f"http://{settings.host}:{settings.port}"
    mobile = _demo_mobile(org_file)
    xml_mobile = mobile[:-1] + str((int(mobile[-1]) + 1) % 10)
    # People of their own, not the README's or docs/quickstart.md's: whatever order a newcomer
    # pastes the three in, each registers someone new (an email in common would make one an update).
    body = orjson.dumps(
        {"root": {"customer": [{"mobile": mobile, "firstname": "Priya", "lastname": "Nair", "email": "priya.nair@example.com"}]}}
    ).decode()
    xml_body = f"<root><customer><mobile>{xml_mobile}</mobile><firstname>Kabir</firstname></customer></root>"
    click.echo(f"Demo org {org_file.org.id} ({org_file.org.name})")
    click.echo(f"  till:     {till.code}")
    if till.password:
        click.echo(f"  password: {till.password}")
    click.echo(f"  Basic-auth user:password  {till.code}:{md5}  (the password's MD5)")
    click.echo("\nRegister a customer:")
    click.echo(f"  curl -s -X POST '{base}/v1.1/customer/add' {basic} -H 'Content-Type: application/json' -d '{body}'")
    click.echo("\nRead it back:")
    click.echo(f"  curl -s '{base}/v1.1/customer/get?mobile={mobile}' {basic}")
    click.echo("\nFind customers (conditions ATTRIBUTE:OPERATOR:VALUE, joined by %26):")
    click.echo(f"  curl -s '{base}/v1.1/customer/search?q=firstname:STARTS:pr%26type:EQUALS:LOYALTY' {basic}")
    click.echo("\nThe same in XML:")
    click.echo(f"  curl -s -X POST '{base}/v1.1/customer/add.xml' {basic} -H 'Content-Type: application/xml' -d '{xml_body}'")
    group = next((g for g in org_file.access_groups if g.name == store.access_group), None)
    if group is not None and group.events != "none":
        click.echo("\nWhat changed, as events (the relay gives each its place within a moment; docs/events.md):")
        click.echo(f"  curl -s '{base}/v1.1/events?limit=10' {basic}")
    client = next((c for c in org_file.api_clients if c.secret), None)
    if client is not None:
        credentials = orjson.dumps({"key": client.key, "secret": client.secret}).decode()
        click.echo(f"\nAs API client {client.key}, with an OAuth token:")
        click.echo(
            f"  TOKEN=$(curl -s -X POST '{base}/v3/oauth/token/generate' -H 'Content-Type: application/json' "
            f"-d '{credentials}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"data\"][\"accessToken\"])')"
        )
        click.echo(f"  curl -s '{base}/v1.1/customer/get?mobile={mobile}' -H \"X-CAP-API-OAUTH-TOKEN: $TOKEN\"")
    console_users = [user for user in org_file.console_users if user.password]
    if console_users:
        click.echo(f"\nThe member-care console: {base}/console/")
        for user in console_users:
            click.echo(f"  login:    {user.login}")
            click.echo(f"  password: {user.password}    ({user.name})")
        reviewers = [user.login for user in console_users if _reviews_identity(org_file, user.access_group)]
        if len(reviewers) >= 2:
            click.echo(
                f"  An identifier change asked for as {reviewers[0]} is approved as {reviewers[1]}: nobody approves their own."
            )


def _reviews_identity(org_file: OrgFile, access_group: str) -> bool:
    return any(group.name == access_group and group.identity_review for group in org_file.access_groups)


def _demo_mobile(org_file: OrgFile) -> str:
    """A mobile of the org's country for the printed curls: the library's example number with its
    last two digits made 01, so that it is not the example docs/quickstart.md registers as new."""
    import phonenumbers

    example = phonenumbers.example_number_for_type(org_file.org.base_country, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        raise click.ClickException(f"phonenumbers knows no example mobile of {org_file.org.base_country}")
    digits = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[1:]
    moved = digits[:-2] + "01"
    return moved if phonenumbers.is_valid_number(phonenumbers.parse("+" + moved)) else digits


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
