"""An SQLite file as one process uses it: one writer, which commits concurrent units of work
together, a reader that never waits for it, searchers off the event loop, and a checkpointer."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from patron.customers.search.query import SearchTimedOut
from patron.security import lowest_priority
from patron.store.db import UNOBSERVED, DatabaseUnavailable, StoreObserver, is_unavailable, json_text, sqlite_pragmas

T = TypeVar("T")

# How often, at most, the WAL is checkpointed into the database file (and synced) while writes go
# on: by a thread of its own, so that no transaction waits for it (SQLite's automatic checkpoint
# runs inside the commit that crosses its threshold, and that request waits for two syncs). Under
# PATRON_SQLITE_SYNCHRONOUS=NORMAL this bounds what a power loss can cost to about the last second.
CHECKPOINT_SECONDS = 0.5

# The dialect whose bind and result processors give values the form SQLAlchemy stores them in, so
# that rows this module writes read back the same through SQLAlchemy, and the reverse.
DIALECT = SQLiteDialect_pysqlite(json_serializer=json_text, json_deserializer=orjson.loads)


# Pages read by memory map, not by a read() call each: a look-up is a few page visits. The writer
# maps the first 256 MiB; the reader maps as much as SQLite allows (its MAX_MMAP_SIZE, 2 GiB in
# common builds; a larger value is capped), because each table and index of a large file is spread
# all over it, and a look-up's pages beyond the map cost a system call each (measured: a get at
# 2,000,000 customers, 0.73 of an empty file's rate with 256 MiB mapped).
WRITER_MMAP_BYTES = 256 * 2**20
READER_MMAP_BYTES = 2**31 - 2**16


def connect(path: str, *, timeout: float, synchronous: str, mmap_bytes: int = WRITER_MMAP_BYTES) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are begun explicitly), WAL, with a busy timeout
    for writers that are not Patron's (`sqlite3` at a shell)."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False, cached_statements=512)
    for pragma in sqlite_pragmas(timeout, synchronous):
        conn.execute(pragma)
    conn.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


@dataclass
class SqliteConnection:
    """A connection as the store's statements use it, run in place on the event loop: the reader's,
    or the writer's while a unit of work has its turn (GroupWriter.unit)."""

    raw: sqlite3.Connection

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        try:
            return work(self.raw, *args)
        except sqlite3.Error as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            raise

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await self.run(_fetch, sql, args)

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        return await self.run(_execute, sql, args)

    async def execute_many(self, sql: str, rows: list[Sequence[Any]]) -> None:
        await self.run(_execute_many, sql, rows)


def _fetch(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(sql, args).fetchall()


def _execute(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> int:
    return conn.execute(sql, args).rowcount


def _execute_many(conn: sqlite3.Connection, sql: str, rows: list[Sequence[Any]]) -> None:
    conn.executemany(sql, rows)


class _Entry:
    """Something queued for the writer's next transaction."""

    def give_up(self, exc: BaseException) -> None:
        raise NotImplementedError


@dataclass
class _Job(_Entry, Generic[T]):
    """A unit of work run whole on the writer's thread, in a savepoint of its own; answered once committed."""

    work: Callable[[sqlite3.Connection], T]
    answer: asyncio.Future[T]
    outcome: tuple[bool, Any] | None = None

    def give_up(self, exc: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


@dataclass
class _Unit(_Entry):
    """A unit of work whose statements are awaited one by one, between which its owner decides the
    next: it is given the connection in its turn (`go`), says when it is done with it (`done`: False
    when its writes could be neither kept nor undone), and learns whether the transaction committed."""

    go: asyncio.Future[None]
    done: asyncio.Future[bool]
    committed: asyncio.Future[None]

    def give_up(self, exc: BaseException) -> None:
        for future in (self.go, self.committed):
            if not future.done():
                future.set_exception(exc)
                # Retrieved by the owner if it still waits; otherwise not worth a warning.
                future.exception()


class _TurnAbandoned(Exception):
    """The file's turn came after the units waiting for it had been answered unavailable."""


class _Turn:
    """One wait for the file's turn, taken by the writer's thread or abandoned by the event loop,
    whichever comes first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "waiting"

    def take(self) -> bool:
        with self._lock:
            if self._state == "abandoned":
                return False
            self._state = "taken"
            return True

    def abandon(self) -> bool:
        with self._lock:
            if self._state == "taken":
                return False
            self._state = "abandoned"
            return True


class GroupWriter:
    """The process's writer to one SQLite file: one thread with one connection. Units of work queue;
    the writer takes whatever is queued, runs each in order in a savepoint of its own inside one
    transaction, commits once, and only then answers each. A unit is all or nothing (a failing one
    rolls back to its savepoint alone), and each sees what those before it wrote, as if it had come
    alone in its turn.

    SQLite commits a transaction for about what it costs to write one row into it; requests that
    arrive while one commits share the next, and a batch's rows go in together. Processes on one
    file take turns by a lock file held for each transaction: the kernel wakes the next waiter as the
    lock is released, where SQLite's own busy handler polls with sleeps of up to 100 ms.
    """

    def __init__(
        self, path: str, *, timeout: float, synchronous: str, on_commit: Callable[[int], None] = lambda units: None
    ) -> None:
        self.path = path
        self.timeout = timeout
        self.synchronous = synchronous
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="patron-sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._lock_file: int | None = None
        self._queue: list[_Entry] = []
        self._draining: asyncio.Task[None] | None = None
        self._checkpoints = Checkpointer(path, timeout=timeout, synchronous=synchronous)
        # Told how many units each transaction carried (the metrics).
        self.on_commit = on_commit

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work`'s answer once the transaction it ran in is committed; its exception if it raised
        (its writes undone, the others' kept)."""
        job: _Job[T] = _Job(work, asyncio.get_running_loop().create_future())
        self._enqueue(job)
        return await job.answer

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[SqliteConnection]:
        """The writer's connection for a unit of work in its turn; the block's writes are committed
        when it ends without an exception, and undone when it raises."""
        loop = asyncio.get_running_loop()
        unit = _Unit(loop.create_future(), loop.create_future(), loop.create_future())
        self._enqueue(unit)
        try:
            await unit.go
        except BaseException:
            if unit.go.done() and not unit.go.cancelled() and unit.go.exception() is None:
                unit.done.set_result(True)  # its turn came as it gave up: it wrote nothing
            raise
        # In its turn the writer's thread waits for the unit, which runs its statements in place, as
        # the reader does: each takes microseconds (the write lock is held, nothing is synced).
        conn = self._connection()
        # Whether the transaction may go on: the unit's writes were kept, or undone, in its savepoint.
        whole = False
        try:
            conn.execute("SAVEPOINT unit")
            try:
                yield SqliteConnection(conn)
            except BaseException:
                # A fault that ended the transaction itself (a full disk) left nothing to roll back
                # to: the unit's own error goes up, and the transaction fails as a whole (503).
                if conn.in_transaction:
                    _roll_back_to(conn, "unit")
                    whole = True
                raise
            conn.execute("RELEASE unit")
            whole = True
        finally:
            if not unit.done.done():
                unit.done.set_result(whole)
        await unit.committed

    async def close(self) -> None:
        if self._draining is not None:
            with contextlib.suppress(Exception):
                await self._draining
        if self._conn is not None:
            await self._hop(lambda conn: conn.close(), self._conn)
        self._thread.shutdown(wait=True)
        self._checkpoints.close()
        if self._lock_file is not None:
            os.close(self._lock_file)

    def _enqueue(self, entry: _Entry) -> None:
        self._queue.append(entry)
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        group: list[_Entry] = []
        try:
            while self._queue:
                group, self._queue = self._queue, []
                await self._commit(group)
                group = []
        except BaseException as exc:
            # Cancelled (the event loop is torn down): no unit is left waiting for an answer.
            for entry in (*group, *self._queue):
                entry.give_up(DatabaseUnavailable(f"the writer stopped: {exc!r}"))
            self._queue = []
            raise
        finally:
            self._draining = None

    async def _commit(self, group: list[_Entry]) -> None:
        if all(isinstance(entry, _Job) for entry in group):
            # The common case (new customers): the whole transaction in one hand-off to the thread.
            try:
                outcomes = await self._in_turn(self._write, [entry.work for entry in group])  # type: ignore[attr-defined]
            except BaseException as exc:
                _give_up(group, exc)
                if not isinstance(exc, Exception):
                    raise
                return
            for job, outcome in zip(group, outcomes, strict=True):
                job.outcome = outcome  # type: ignore[attr-defined]
            self._answer(group)
            return
        try:
            await self._in_turn(self._begin)
        except Exception as exc:
            _give_up(group, exc)
            return
        carried: list[_Entry] = []
        try:
            position = 0
            while position < len(group):
                entry = group[position]
                if isinstance(entry, _Job):
                    jobs: list[_Job[Any]] = []
                    while position < len(group) and isinstance(group[position], _Job):
                        jobs.append(group[position])  # type: ignore[arg-type]
                        position += 1
                    outcomes = await self._hop(_run_jobs, self._connection(), [job.work for job in jobs])
                    for job, outcome in zip(jobs, outcomes, strict=True):
                        job.outcome = outcome
                    carried.extend(jobs)
                    continue
                position += 1
                assert isinstance(entry, _Unit)
                if entry.go.cancelled():
                    continue  # its owner stopped waiting before its turn
                entry.go.set_result(None)
                if not await entry.done:
                    raise DatabaseUnavailable("the transaction ended under a unit of work; nothing of it is written")
                carried.append(entry)
            await self._hop(self._end, "COMMIT")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._hop(self._end, "ROLLBACK"))
            _give_up(group, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._answer(carried)

    def _answer(self, carried: list[_Entry]) -> None:
        """The transaction committed: each unit in it learns its outcome."""
        self.on_commit(len(carried))
        for entry in carried:
            if isinstance(entry, _Job):
                succeeded, value = entry.outcome  # type: ignore[misc]
                if entry.answer.done():
                    continue
                if succeeded:
                    entry.answer.set_result(value)
                else:
                    entry.answer.set_exception(value)
            elif isinstance(entry, _Unit) and not entry.committed.done():
                entry.committed.set_result(None)

    def _connection(self) -> sqlite3.Connection:
        assert self._conn is not None, "opened by _begin, on the writer's thread"
        return self._conn

    async def _hop(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    async def _in_turn(self, work: Callable[..., T], *args: Any) -> T:
        """`work(turn, *args)` on the writer's thread, which first waits for this process's turn at
        the file. Another process keeps the turn for one transaction; one that holds it longer
        than the timeout (hung, stopped) is not waited for: the units are answered unavailable,
        and the turn, should it come later, is let go unused, so that nothing is written that
        was answered as not written."""
        turn = _Turn()
        running = asyncio.get_running_loop().run_in_executor(self._thread, work, turn, *args)
        try:
            return await asyncio.wait_for(asyncio.shield(running), self.timeout)
        except asyncio.CancelledError:
            turn.abandon()  # if the turn was not taken yet, nothing of it is written
            raise
        except TimeoutError:
            if not turn.abandon():
                return await running  # the turn came as the wait ended: the transaction goes on
            running.add_done_callback(lambda done: done.exception())
            raise DatabaseUnavailable(
                f"another process has held the database's writer for over {self.timeout:g} s"
            ) from None

    def _begin(self, turn: _Turn) -> None:
        """On the writer's thread: this process's turn at the file, and its write lock."""
        if self._lock_file is None:
            self._lock_file = os.open(f"{self.path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
        if self._conn is None:
            conn = connect(self.path, timeout=self.timeout, synchronous=self.synchronous)
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer's job
            self._conn = conn
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        if not turn.take():
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            raise _TurnAbandoned
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            raise

    def _write(self, turn: _Turn, works: list[Callable[[sqlite3.Connection], Any]]) -> list[tuple[bool, Any]]:
        """On the writer's thread: a transaction of these jobs, each in its savepoint, committed."""
        self._begin(turn)
        try:
            outcomes = _run_jobs(self._connection(), works)
            self._end("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                self._end("ROLLBACK")
            raise
        return outcomes

    def _end(self, how: str) -> None:
        assert self._lock_file is not None
        if self._conn is None:  # dropped by a failed ROLLBACK: nothing is open
            return
        try:
            if self._conn.in_transaction:
                self._conn.execute(how)
        except BaseException:
            if how == "ROLLBACK":
                # A transaction that cannot be ended would refuse every later BEGIN: the
                # connection is dropped (which ends it) and the next transaction opens another.
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            raise
        finally:
            if self._conn is not None and not self._conn.in_transaction:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        if how == "COMMIT":
            self._checkpoints.written()


class Checkpointer:
    """Copies the WAL into the database file on a thread of its own, at most every
    CHECKPOINT_SECONDS while commits come, and once more after the last (PASSIVE: it never waits
    for, nor holds up, a reader or the writer)."""

    def __init__(self, path: str, *, timeout: float, synchronous: str) -> None:
        self.path, self.timeout, self.synchronous = path, timeout, synchronous
        self._lock = threading.Lock()
        self._running = False
        self._dirty = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def written(self) -> None:
        """A transaction was committed (called on the writer's thread)."""
        with self._lock:
            self._dirty = True
            if self._running or self._closed:
                return
            self._running = True
        self._thread = threading.Thread(target=self._run, name="patron-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        conn = connect(self.path, timeout=self.timeout, synchronous=self.synchronous)
        try:
            while True:
                with self._lock:
                    if not self._dirty:
                        self._running = False
                        return
                    self._dirty = False
                started = time.monotonic()
                with contextlib.suppress(sqlite3.Error):  # busy: another process's checkpoint runs
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                with self._lock:
                    closed = self._closed
                if not closed:
                    time.sleep(max(0.0, CHECKPOINT_SECONDS - (time.monotonic() - started)))
        finally:
            conn.close()


def _roll_back_to(conn: sqlite3.Connection, name: str) -> None:
    conn.execute(f"ROLLBACK TO {name}")
    conn.execute(f"RELEASE {name}")


def _run_jobs(conn: sqlite3.Connection, works: list[Callable[[sqlite3.Connection], Any]]) -> list[tuple[bool, Any]]:
    """Each job in a savepoint of its own: (True, its answer), or (False, its exception) with its
    writes undone. A fault that ends the transaction itself (a full disk) fails them all."""
    outcomes: list[tuple[bool, Any]] = []
    for work in works:
        conn.execute("SAVEPOINT job")
        try:
            answer = work(conn)
        except Exception as exc:  # noqa: BLE001 (answered to the job's owner, which raises it)
            if not conn.in_transaction or is_unavailable(exc):
                raise
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            outcomes.append((False, exc))
        else:
            conn.execute("RELEASE job")
            outcomes.append((True, answer))
    return outcomes


def _give_up(group: list[_Entry], exc: BaseException) -> None:
    """The transaction of these units failed: none of them is written, and each owner is told why
    (a database fault as unavailability, 503; the writer stopped, the same)."""
    if not isinstance(exc, Exception):
        failure: Exception = DatabaseUnavailable("the writer stopped")
    elif isinstance(exc, DatabaseUnavailable):
        failure = exc
    elif isinstance(exc, sqlite3.Error) or is_unavailable(exc):
        failure = DatabaseUnavailable(str(exc))
    else:
        failure = exc
    for entry in group:
        entry.give_up(failure)


# How many of SQLite's virtual-machine steps a search runs between two looks at its deadline: a
# look takes the GIL, and 50,000 steps are well under a millisecond.
_DEADLINE_STEPS = 50_000
SEARCH_CACHE_KIB = 4096


@dataclass
class SearchConnection:
    """A connection of the searcher's, as the store's statements use it: each statement runs on a
    thread of the searcher's, never on the event loop (a search may read every customer of an org),
    and SQLite abandons it at the deadline (its progress handler), or when the request is gone."""

    raw: sqlite3.Connection
    executor: ThreadPoolExecutor
    deadline: float
    timeout: float
    # A statement left running on its thread when its request was cancelled: interrupted, and
    # the connection closed once it ends, never lent again.
    abandoned: asyncio.Future[Any] | None = None

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        future = asyncio.get_running_loop().run_in_executor(self.executor, self._timed, work, args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.abandoned = future
            self.raw.interrupt()
            raise
        except sqlite3.OperationalError as exc:
            if time.monotonic() >= self.deadline and "interrupt" in str(exc):
                raise SearchTimedOut(self.timeout) from exc
            if is_unavailable(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            raise

    def _timed(self, work: Callable[..., T], args: tuple[Any, ...]) -> T:
        deadline = self.deadline
        self.raw.set_progress_handler(lambda: time.monotonic() >= deadline, _DEADLINE_STEPS)
        try:
            return work(self.raw, *args)
        finally:
            self.raw.set_progress_handler(None, 0)

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await self.run(_fetch, sql, args)

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        raise TypeError("a search only reads")

    async def execute_many(self, sql: str, rows: list[Sequence[Any]]) -> None:
        raise TypeError("a search only reads")


class Searcher:
    """Searches of one SQLite file: on `threads` threads of their own, each search on one
    connection of the searcher's and in one read transaction (one snapshot for its count and its
    page), which in WAL mode never waits for the writer nor holds it up."""

    def __init__(self, path: str, *, threads: int, timeout: float, synchronous: str) -> None:
        self.path, self._timeout, self._synchronous = path, timeout, synchronous
        # At the lowest priority: a search takes a core only when the tills' requests leave one.
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="patron-search", initializer=lowest_priority)
        self.idle: list[sqlite3.Connection] = []

    @asynccontextmanager
    async def search(self, timeout: float) -> AsyncIterator[SearchConnection]:
        deadline = time.monotonic() + timeout
        raw = self.idle.pop() if self.idle else await self._connect()
        conn = SearchConnection(raw, self.executor, deadline, timeout)
        try:
            await conn.run(_begin_reading)
            yield conn
        finally:
            if conn.abandoned is not None:
                # Its statement may still be on its thread: the connection is closed after it.
                conn.abandoned.add_done_callback(lambda _: self.executor.submit(_end_reading_and_close, raw))
            else:
                await asyncio.get_running_loop().run_in_executor(self.executor, _end_reading, raw)
                self.idle.append(raw)

    async def _connect(self) -> sqlite3.Connection:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._open)

    def _open(self) -> sqlite3.Connection:
        # A search reads an org's rows once, in order: no memory map, and a small page cache, so
        # that a few searches of a large file leave no hundreds of megabytes mapped or cached in
        # the worker (the operating system's own cache serves the next one).
        conn = connect(self.path, timeout=self._timeout, synchronous=self._synchronous, mmap_bytes=0)
        conn.execute(f"PRAGMA cache_size=-{SEARCH_CACHE_KIB}")
        return conn

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        for raw in self.idle:
            raw.close()
        self.idle.clear()


def _begin_reading(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")


def _end_reading(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _end_reading_and_close(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        _end_reading(conn)
    conn.close()


class SqliteFile:
    """One SQLite file as this process's requests use it: the writer, and the reader on the event
    loop. A read by key takes tens of microseconds, less than a hand-off to a thread would, and in
    WAL mode it never waits for a writer; so the reader runs its statements in place."""

    def __init__(
        self,
        path: str,
        *,
        timeout: float = 5.0,
        synchronous: str = "NORMAL",
        searches: int = 4,
        observer: StoreObserver = UNOBSERVED,
    ) -> None:
        if path in ("", ":memory:"):
            raise ValueError("Patron serves an SQLite file, not an in-memory database (each connection would have its own)")
        sqlite_pragmas(timeout, synchronous)  # refuses a setting Patron does not offer, before any connection
        self.path = str(Path(path))
        self.writer = GroupWriter(
            self.path, timeout=timeout, synchronous=synchronous, on_commit=observer.transaction_committed
        )
        self.searcher = Searcher(self.path, threads=searches, timeout=timeout, synchronous=synchronous)
        self._reader: SqliteConnection | None = None
        self._timeout = timeout
        self._synchronous = synchronous

    @property
    def reader(self) -> SqliteConnection:
        if self._reader is None:
            self._reader = SqliteConnection(
                connect(self.path, timeout=self._timeout, synchronous=self._synchronous, mmap_bytes=READER_MMAP_BYTES)
            )
        return self._reader

    async def close(self) -> None:
        await self.writer.close()
        await asyncio.to_thread(self.searcher.close)
        if self._reader is not None:
            self._reader.raw.close()
            self._reader = None
