"""The stress run's own machinery: a private PostgreSQL cluster, real `patron serve` processes,
the patron CLI, and process sampling. Nothing here touches the machine's shared PostgreSQL."""

from __future__ import annotations

import atexit
import base64
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
STRESS = ROOT / "stress"
# bench/ last on the path, for its /proc reader: stress's own modules (run, events) still come first.
sys.path.append(str(ROOT / "bench"))
from process_table import process_table  # noqa: E402
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("STRESS_PG_BIN", "/usr/lib/postgresql/15/bin"))
SECRET_KEY = "stress-secret-key-" + "s" * 32
TILL, PASSWORD = "stress.till", "StressPass1"

# The servers' logs: removed after a run that passed, kept (and named) after one that failed.
LOG_DIR = Path(tempfile.mkdtemp(prefix="patron-stress-logs-"))
_log_names = iter(range(1000))

# Everything started here is stopped at exit, even when a scenario raises.
_cleanups: list = []


def _run_cleanups() -> None:
    while _cleanups:
        try:
            _cleanups.pop()()
        except Exception as exc:  # noqa: BLE001 - cleanup must go on
            print(f"cleanup failed: {exc}", file=sys.stderr)


atexit.register(_run_cleanups)


def _on_signal(signum: int, _frame: object) -> None:
    _run_cleanups()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def basic_auth(till: str = TILL, password: str = PASSWORD) -> str:
    md5 = hashlib.md5(password.encode()).hexdigest()
    return "Basic " + base64.b64encode(f"{till}:{md5}".encode()).decode()


# ---------------------------------------------------------------------------------------------
# A private PostgreSQL cluster


class PgCluster:
    """initdb into a temporary directory, listen on 127.0.0.1:<free port> only, socket in the
    directory; run as the `postgres` OS user when we are root."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="patron-stress-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.dir, 0o700)
        self._running = False
        _cleanups.append(self.destroy)

    def _cmd(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=timeout)

    def init(self) -> None:
        self._cmd("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.dir}'",
            "max_connections = 200",
            "shared_buffers = 256MB",
            # The stress run kills Patron, not PostgreSQL, and stops PostgreSQL only cleanly:
            # commits need not wait for the disk.
            "synchronous_commit = off",
            "logging_collector = off",
            # Timestamps, checkpoints and autovacuum runs in the log, to explain latency spikes.
            "log_line_prefix = '%m [%p] '",
            "log_checkpoints = on",
            "log_autovacuum_min_duration = 0",
        ]
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# patron stress\n" + "\n".join(settings) + "\n")

    def start(self) -> None:
        self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        self._running = True

    def stop(self, mode: str = "fast") -> None:
        self._cmd("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self._running = False

    def destroy(self) -> None:
        if self._running:
            self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
            self._running = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def events(self, since: float, until: float) -> list[str]:
        """Checkpoints and autovacuum/autoanalyze runs logged between two time.time() instants."""
        import datetime as dt

        found = []
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return found
        for line in lines:
            if not any(word in line for word in ("checkpoint starting", "checkpoint complete", "automatic vacuum", "automatic analyze")):
                continue
            try:
                stamp = dt.datetime.strptime(" ".join(line.split()[:3]), "%Y-%m-%d %H:%M:%S.%f %Z")
                at = stamp.replace(tzinfo=dt.timezone.utc).timestamp()
            except ValueError:
                continue
            if since <= at < until:
                if "checkpoint starting" in line:
                    found.append("checkpoint start")
                elif "checkpoint complete" in line:
                    found.append("checkpoint end")
                else:
                    table = line.split('"')[1].rsplit(".", 1)[-1] if '"' in line else "?"
                    found.append(f"{'autovacuum' if 'vacuum' in line else 'autoanalyze'} {table}")
        # "autovacuum customers, autoanalyze customers, ..." -> "autovacuum/analyze: customers, ..."
        tables = list(dict.fromkeys(event.split(" ", 1)[1] for event in found if event.startswith("auto")))
        others = list(dict.fromkeys(event for event in found if not event.startswith("auto")))
        return others + ([f"autovacuum/analyze of {', '.join(tables)}"] if tables else [])

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str) -> str:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)


# ---------------------------------------------------------------------------------------------
# The patron CLI and `patron serve`


def patron(database_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATRON_DATABASE_URL": database_url, "PATRON_SECRET_KEY": SECRET_KEY}
    return subprocess.run(
        [str(VENV_BIN / "patron"), *args], env=env, check=check, cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def prepare_database(database_url: str, org_file: Path) -> None:
    patron(database_url, "db", "upgrade")
    patron(database_url, "org", "apply", str(org_file))


def has_patron_check() -> bool:
    out = subprocess.run([str(VENV_BIN / "patron"), "check", "--help"], capture_output=True, text=True, cwd=ROOT)
    return out.returncode == 0


@dataclass
class CheckResult:
    ok: bool
    source: str  # "patron check" or "built-in SQL"
    text: str


def patron_check(database_url: str, org_id: int) -> CheckResult:
    out = patron(database_url, "check", "--org", str(org_id), check=False)
    text = (out.stdout + out.stderr).strip()
    return CheckResult(out.returncode == 0, "patron check", text)


@dataclass
class PatronServer:
    """`patron serve` in a session of its own, so that the uvicorn parent and its workers can be
    killed together (SIGKILL to the process group)."""

    database_url: str
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path = field(default_factory=lambda: LOG_DIR / f"server-{next(_log_names)}.log")
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def started(self) -> PatronServer:
        """Started, and serving: `server = PatronServer(url).started()`."""
        self.start()
        return self

    def start(self, wait: bool = True) -> None:
        env = {
            **os.environ,
            "PATRON_DATABASE_URL": self.database_url,
            "PATRON_SECRET_KEY": SECRET_KEY,
            "PATRON_WORKERS": str(self.workers),
            **self.env,
        }
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "patron"), "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.starts += 1
        if not _cleanups or _cleanups[-1] != self.stop:
            _cleanups.append(self.stop)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> float:
        """Until every worker can answer /health; returns the seconds waited."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"patron serve exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200 and len(self.worker_pids()) >= self.workers:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"patron serve did not start within {timeout}s; see {self.log_path}")

    def group_pids(self) -> list[int]:
        if self.process is None:
            return []
        pgid = self.process.pid
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getpgid(int(entry)) == pgid:
                    found.append(int(entry))
            except (ProcessLookupError, PermissionError):
                continue
        return found

    def worker_pids(self) -> list[int]:
        """uvicorn's worker processes: the children of the parent, not its resource tracker."""
        if self.process is None:
            return []
        if self.workers == 1:
            return [self.process.pid]  # uvicorn serves in the parent itself
        workers = []
        for pid in self.group_pids():
            if pid == self.process.pid:
                continue
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                    cmdline = cmd.read()
            except OSError:
                continue
            if ppid == self.process.pid and b"resource_tracker" not in cmdline:
                workers.append(pid)
        return sorted(workers)

    def kill9(self) -> int:
        """SIGKILL to the whole process group (uvicorn parent and workers); the number killed."""
        assert self.process is not None
        victims = self.group_pids()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.group_pids():
            time.sleep(0.05)
        left = self.group_pids()
        if left:
            raise RuntimeError(f"processes survived SIGKILL of the group: {left}")
        return len(victims)

    def stop(self) -> None:
        stop_group(self.process, grace=20)

    def log_text(self) -> str:
        return log_text(self.log_path)


def stop_group(process: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM to a process started in a session of its own, and its group; SIGKILL after `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def log_text(path: Path) -> str:
    """A process's log as text so far, or nothing where there is none."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


_TICK = os.sysconf("SC_CLK_TCK")


class ForeignCpu:
    """CPU used by processes that are not part of the stress run (other users of the machine),
    between two samples, in percent of one core. Ours: this process and its children (wrk), the
    Patron server's process group, and the private PostgreSQL cluster."""

    def __init__(self, ours: Callable[[], set[int]]) -> None:
        self.ours = ours
        self.last = process_table()
        self.at = time.monotonic()

    def sample(self) -> float:
        now, table = time.monotonic(), process_table()
        mine = self.ours() | {os.getpid()}
        for pid, process in table.items():
            if process.parent in mine or process.parent == os.getpid():
                mine.add(pid)
        used = 0
        for pid, process in table.items():
            if pid in mine or process.parent == 2 or pid == 2:
                continue
            used += process.ticks - self.last[pid].ticks if pid in self.last else process.ticks
        seconds = max(now - self.at, 1e-6)
        self.last, self.at = table, now
        return 100.0 * used / _TICK / seconds


def cluster_pids(cluster: PgCluster) -> set[int]:
    postmaster = cluster.postmaster_pid()
    if postmaster is None:
        return set()
    return {postmaster} | {pid for pid, process in process_table().items() if process.parent == postmaster}


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
