"""Scenarios 15 and 16 (issue #29, items 2 and 3): sign-in floods and lockouts from some addresses
while real console users and tills sign in from others.

Both start `patron serve` with 2 workers on the private PostgreSQL cluster (a database of their
own, the org written by `_org_file`: the good till of stress/abuse.py, 38 tills and 6 console users,
real argon2id hashes). Every party talks to 127.0.0.1 from a loopback source address of its own
(127.x.y.z, bound locally: on Linux all of 127.0.0.0/8 is this machine), so the server sees distinct
addresses and networks. The abusers run in a separate process (`python stress/signin.py <kind>
<json>`, standard library only, like stress/abuse.py's), each loop bounded in count and in time.

15. Sign-in flood: 12 abuser addresses, each in a /24 of its own, 4 threads each sending a wrong
    sign-in every 0.3 s (~160 a second in all when answered at once) for 15 s (console logins real and made up, tills real and made up, on a new connection each,
    so both workers get them). Meanwhile, from other addresses: the good caller of stress/abuse.py
    (a verified till adding and reading customers) throughout; 3 console users who signed in during
    the quiet phase sign in again every half second; 3 console users and 4 tills never seen before sign
    in for the first time (a slow hash each, from the worker's budget of unverified hashes).
    Passes when the good caller's p99 under the flood stays within max(2 x quiet, quiet + 10 ms),
    every sign-in of a returning user gets in at once (each is a slow hash: p50 and p99, quiet and
    during the flood, are printed), and every first-time user and till gets in (their time to get
    in, refusals included, is printed: following Retry-After as a browser user or a till would)
    while the flood still runs.
    Then, with no attacker, the server is restarted and 30 tills verified before it sign in at
    once: the time each took to get in is printed, and must be at most 3 s (trust kept across
    restarts: no slow hash for them; without it, 30 slow hashes at the budget's pace of 2 a second
    per worker take at least 7.5 s).
16. Lockout: 3 abuser addresses send wrong passwords for a named console user (~15 a second, 20 s,
    new connections), past its failure limit in both workers (awaited on /metrics). The user, who
    never signed in before, then signs in from another address, and again every half second;
    another user signs in as two did in the quiet phase, and the good caller of stress/abuse.py runs
    throughout. Passes when every sign-in of both gets in (their times, a slow hash each, quiet
    and during the attack, are printed), the good caller's p99 during the attack stays within
    max(2 x quiet, quiet + 10 ms), and the lockout is visible to an operator: a
    `patron_auth_lockouts_total{kind="console",scope="credential"}` count on /metrics and an
    "auth lockout" warning line in the server's log.
"""

from __future__ import annotations

import http.client
import json
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __name__ != "__main__":
    import asyncio
    import re
    import tempfile

    import httpx

    import abuse
    from abuse import (
        AFTER_SECONDS,
        P99_FACTOR,
        P99_FLOOR_MS,
        QUIET_SECONDS,
        GoodCaller,
        _database,
        _ms,
        _warm_till,
    )
    from infra import STRESS, PatronServer, PgCluster
    from scenarios import Result, log_findings, percentile

HOST = "127.0.0.1"  # the server's address; every party's source address is another 127.x.y.z
ORG_ID = 880015
QUIET_USERS = [f"signin.quiet{n}" for n in (1, 2, 3)]
FLOOD_USERS = [f"signin.flood{n}" for n in (1, 2, 3)]
FIRST_TILLS = [f"signin.first.{n:02d}" for n in range(1, 5)]
RESTART_TILLS = [f"signin.restart.{n:02d}" for n in range(1, 31)]
TILL_PASSWORD = "SigninTill-{}"
FLOOD_SECONDS = 15.0
RESTART_BOUND = 3.0  # seconds for the 30 tills after a restart, fresh connections and pools included
USER_PASSWORD = "signin-passphrase-{}"

# =============================================================================================
# The abusers' side: standard library only, like stress/abuse.py's.


def _console_guess(conn: http.client.HTTPConnection, login: str) -> http.client.HTTPResponse:
    # The sign-in form's token is only compared with its cookie: an abuser sends a pair of its own.
    body = f"login={login}&password=guess-{secrets.token_hex(6)}&csrf_token=t"
    conn.request("POST", "/console/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": "patron_console_login=t",
    })
    return conn.getresponse()


def _till_guess(conn: http.client.HTTPConnection, till: str) -> http.client.HTTPResponse:
    import base64
    import hashlib

    md5 = hashlib.md5(secrets.token_hex(6).encode()).hexdigest()
    auth = "Basic " + base64.b64encode(f"{till}:{md5}".encode()).decode()
    conn.request("GET", "/v1.1/customer/get?mobile=919000000000", headers={"Authorization": auth})
    return conn.getresponse()


def _guesser(source: str, deadline: float, config: dict[str, Any], tally: Any) -> None:
    targets = config["targets"]
    for attempt in range(config["max_attempts"]):
        if time.monotonic() >= deadline:
            break
        kind, name = targets[attempt % len(targets)]
        if name == "*":
            name = f"made.up.{secrets.token_hex(4)}"
        started = time.monotonic()
        conn = http.client.HTTPConnection(HOST, config["port"], timeout=10, source_address=(source, 0))
        try:
            response = (_console_guess if kind == "console" else _till_guess)(conn, name)
            response.read()
            tally.count(f"{kind}: {response.status}")
            tally.time(f"{kind}: answer", time.monotonic() - started)
        except (OSError, http.client.HTTPException) as exc:
            tally.count(f"{kind}: no answer ({type(exc).__name__})")
        finally:
            conn.close()
        time.sleep(config["pause"])


class _Tally:
    """What the guessers were answered (stress/abuse.py's Tally is not imported here: importing
    that module outside the stress run's process would set up the run's logs and signals)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.times: dict[str, list[float]] = {}

    def count(self, key: str) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def time(self, key: str, seconds: float) -> None:
        with self.lock:
            self.times.setdefault(key, []).append(round(seconds, 4))


def _abuser_main(config: dict[str, Any]) -> int:
    tally = _Tally()
    deadline = time.monotonic() + config["seconds"]
    threads = [
        threading.Thread(target=_guesser, args=(source, deadline, config, tally), daemon=True)
        for source in config["sources"] for _ in range(config.get("threads_per_source", 1))
    ]
    print("READY", flush=True)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=config["seconds"] + 30)
    print(json.dumps({"counts": tally.counts, "times": tally.times}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_abuser_main(json.loads(sys.argv[1])))


# =============================================================================================
# The stress run's side.


def _org_file(folder: Path) -> Path:
    """stress/abuse-org.toml's org (the good till among its tills) with the tills and console
    users these scenarios sign in as."""
    text = (STRESS / "abuse-org.toml").read_text()
    text = text.replace("id = 880007", f"id = {ORG_ID}").replace('name = "Stress Abuse"', 'name = "Stress Sign-in"')
    tills = "".join(
        f'\n  [[stores.tills]]\n  code = "{code}"\n  password = "{TILL_PASSWORD.format(code)}"\n'
        for code in FIRST_TILLS + RESTART_TILLS + [f"signin.quiet.{n}" for n in range(1, 5)]
    )
    text = text.replace('[[api_clients]]', tills + "\n[[api_clients]]", 1)
    text = text.replace('[[access_groups]]\nname = "pos"', '[[access_groups]]\nname = "care"\ncustomer = "write"\n\n[[access_groups]]\nname = "pos"', 1)
    users = "".join(
        f'\n[[console_users]]\nlogin = "{login}"\nname = "{login}"\npassword = "{USER_PASSWORD.format(login)}"\naccess_group = "care"\n'
        for login in QUIET_USERS + FLOOD_USERS
    )
    path = folder / "signin-org.toml"
    path.write_text(text + users)
    return path


def _client(base: str, source: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base, timeout=httpx.Timeout(30, connect=5), transport=httpx.AsyncHTTPTransport(local_address=source)
    )


async def sign_in(base: str, source: str, login: str, give_up: float = 40.0) -> tuple[float, int, int]:
    """A person signing in to the console on a fresh connection: the form, then the POST, again after
    Retry-After (at most 5 s) when refused. (seconds to get in, last status, refusals)."""
    started = time.monotonic()
    refusals = 0
    async with _client(base, source) as http:
        while True:
            form = await http.get("/console/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            response = await http.post("/console/login", data={
                "login": login, "password": USER_PASSWORD.format(login), "csrf_token": token.group(1) if token else "",
            })
            elapsed = time.monotonic() - started
            if response.status_code in (429, 503) and elapsed < give_up:
                refusals += 1
                await asyncio.sleep(min(5.0, float(response.headers.get("retry-after", "1"))))
                continue
            return elapsed, response.status_code, refusals


async def till_in(base: str, source: str, till: str, give_up: float = 40.0) -> tuple[float, int, int]:
    """A till's first request: again after Retry-After (at most 5 s) when refused."""
    started = time.monotonic()
    refusals = 0
    headers = {"Authorization": abuse.basic_auth(till, TILL_PASSWORD.format(till))}
    async with _client(base, source) as http:
        while True:
            response = await http.get("/v1.1/customer/get", params={"mobile": "919000000001"}, headers=headers)
            elapsed = time.monotonic() - started
            if response.status_code in (429, 503) and elapsed < give_up:
                refusals += 1
                await asyncio.sleep(min(5.0, float(response.headers.get("retry-after", "1"))))
                continue
            # customer/get of nobody is answered 500 with item 1012: the till was let in.
            return elapsed, (200 if response.status_code not in (401, 403) else response.status_code), refusals


async def _abuser(config: dict[str, Any]) -> tuple[asyncio.subprocess.Process, asyncio.Task]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), json.dumps(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    if line.strip() != b"READY":
        raise RuntimeError(f"the abuser did not start: {line!r} {(await process.stderr.read())[:500]!r}")

    async def outcome() -> dict[str, Any]:
        out, _ = await process.communicate()
        return json.loads(out.decode().strip().splitlines()[-1])

    return process, asyncio.ensure_future(outcome())


def _bound(quiet_ms: float) -> float:
    return max(P99_FACTOR * quiet_ms, quiet_ms + P99_FLOOR_MS)


async def _repeat_sign_ins(base: str, source: str, login: str, stop: asyncio.Event, times: list[float], bad: list[str]) -> None:
    while not stop.is_set():
        seconds, status, refusals = await sign_in(base, source, login, give_up=0.0)
        if status == 303:
            times.append(seconds)
        else:
            bad.append(f"{login} from {source}: {status}")
        await asyncio.sleep(0.5)


async def _lockouts(base: str) -> float:
    async with _client(base, "127.0.0.1") as http:
        scrape = (await http.get("/metrics")).text
    found = re.findall(r'^patron_auth_lockouts_total\{kind="console",scope="credential"\} (\S+)', scrape, re.M)
    return sum(float(v) for v in found)


def _first_lines(
    result: Result, label: str, outcomes: list[tuple[str, tuple[float, int, int]]], within: float | None = None
) -> None:
    """Each got in; with `within`, before that many seconds (while the abuse still ran)."""
    for name, (seconds, status, refusals) in outcomes:
        result.lines.append(f"  {label} {name}: {'in' if status in (200, 303) else status} after {seconds:.2f} s, {refusals} refusals")
        if status not in (200, 303):
            result.failures.append(f"{label} {name} did not get in ({status} after {seconds:.1f} s, {refusals} refusals)")
        elif within is not None and seconds > within:
            result.failures.append(f"{label} {name} got in only after the flood ended ({seconds:.1f} s)")


def _judge(result: Result, quiet: Any, loud: Any, during: str, quiet_times: list[float], loud_times: list[float],
           sign_ins: str) -> None:
    """The good caller under the abuse against its quiet figures (the p99 rule, no error), and the
    sign-ins' times: each a slow hash, whose time is the machine's, so reported, not judged."""
    result.lines.append(f"good caller quiet: {quiet.text()}")
    result.lines.append(f"good caller {during}: {loud.text()}")
    if loud.p99_ms > _bound(quiet.p99_ms):
        result.failures.append(f"good caller p99 {loud.p99_ms:.1f} ms > bound {_bound(quiet.p99_ms):.1f} ms")
    if loud.errors:
        result.failures.append(f"good caller had {loud.errors} errors {during}")
    result.lines.append(
        f"{sign_ins} (a slow hash each): quiet p50 {percentile(quiet_times, 50) * 1000:.0f} ms, "
        f"p99 {percentile(quiet_times, 99) * 1000:.0f} ms ({len(quiet_times)}); {during} p50 "
        f"{percentile(loud_times, 50) * 1000:.0f} ms, p99 {percentile(loud_times, 99) * 1000:.0f} ms ({len(loud_times)})"
    )


def _flood_counts(result: Result, tally: dict[str, Any]) -> None:
    counts = tally.get("counts", {})
    result.lines.append("abuse answered: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))
    times = tally.get("times", {})
    for key in sorted(times):
        result.lines.append(f"  {key}: {_ms(times[key])}")


async def _served(cluster: PgCluster, database: str) -> PatronServer:
    """A server of 2 workers on a new database of the cluster, the scenarios' org applied."""
    org_file = _org_file(Path(tempfile.mkdtemp(prefix="patron-stress-signin-")))
    return PatronServer(await _database(cluster, database, org_file), workers=2).started()


async def scenario_15(cluster: PgCluster) -> Result:
    result = Result(15, "sign-in flood from 12 addresses; users and tills from others get in; restart")
    server = await _served(cluster, "stress_signin_flood")
    try:
        await asyncio.to_thread(_warm_till, server)
        # The 30 tills of the restart are verified once, before it (at the pace the budget allows).
        verified = await asyncio.gather(*(
            till_in(server.base, f"127.22.{n // 250}.{n % 250 + 1}", till) for n, till in enumerate(RESTART_TILLS)
        ))
        result.lines.append(f"30 tills verified before the restart in {max(v[0] for v in verified):.1f} s")
        good = GoodCaller(server.base, 15, stop=asyncio.Event())
        good_task = asyncio.ensure_future(good.run())
        await asyncio.sleep(2.0)
        # Quiet: the returning users sign in once a second (the first of each, a slow hash, not timed).
        for n, login in enumerate(QUIET_USERS):
            await sign_in(server.base, f"127.20.{n}.1", login)
        quiet_first = await asyncio.gather(*(
            till_in(server.base, f"127.23.{n}.1", f"signin.quiet.{n + 1}") for n in range(4)
        ))
        stop, quiet_times, bad = asyncio.Event(), [], []
        began = time.monotonic()
        repeats = [asyncio.ensure_future(_repeat_sign_ins(server.base, f"127.20.{n}.1", u, stop, quiet_times, bad))
                   for n, u in enumerate(QUIET_USERS)]
        await asyncio.sleep(QUIET_SECONDS)
        stop.set()
        await asyncio.gather(*repeats)
        quiet = good.window(began, time.monotonic())
        # The flood: 12 addresses, each in a /24 of its own, ~160 wrong sign-ins a second in all.
        sources = [f"127.10.{n}.1" for n in range(1, 13)]
        targets = [["console", QUIET_USERS[0]], ["console", "*"], ["till", FIRST_TILLS[0]], ["till", "*"]]
        process, outcome = await _abuser({
            "port": server.port, "sources": sources, "targets": targets, "threads_per_source": 4, "pause": 0.3,
            "seconds": FLOOD_SECONDS, "max_attempts": 2000,
        })
        flood_began = time.monotonic()
        await asyncio.sleep(1.0)
        stop, loud_times = asyncio.Event(), []
        repeats = [asyncio.ensure_future(_repeat_sign_ins(server.base, f"127.20.{n}.1", u, stop, loud_times, bad))
                   for n, u in enumerate(QUIET_USERS)]
        firsts = await asyncio.gather(
            *(sign_in(server.base, f"127.21.{n}.1", login) for n, login in enumerate(FLOOD_USERS)),
            *(till_in(server.base, f"127.21.{n + 10}.1", till) for n, till in enumerate(FIRST_TILLS)),
        )
        tally = await outcome
        flood_ended = time.monotonic()
        stop.set()
        await asyncio.gather(*repeats)
        await asyncio.sleep(AFTER_SECONDS)
        loud = good.window(flood_began, flood_ended)
        good.stop.set()
        await good_task
    finally:
        server.stop()
    _judge(result, quiet, loud, "under the flood", quiet_times, loud_times, "returning console users' sign-ins")
    if good.error_samples and loud.errors:
        result.lines.append(f"  good caller's errors: {good.error_samples}")
    if bad:
        result.failures.append(f"returning users' sign-ins refused: {bad[:5]} ({len(bad)} in all)")
    result.lines.append("first sign-ins, quiet (tills): " + ", ".join(f"{s:.2f} s" for s, _, _ in quiet_first))
    result.lines.append("first sign-ins during the flood (a slow hash each), time to get in:")
    # They start 1 s into the 15 s flood, and must get in while it runs.
    _first_lines(result, "console user", list(zip(FLOOD_USERS, firsts[:3])), FLOOD_SECONDS - 1.0)
    _first_lines(result, "till", list(zip(FIRST_TILLS, firsts[3:])), FLOOD_SECONDS - 1.0)
    _flood_counts(result, tally)

    # The restart: no attacker; 30 tills verified before it sign in at once.
    server.start()
    try:
        restarted = await asyncio.gather(*(
            till_in(server.base, f"127.22.{n // 250}.{n % 250 + 1}", till) for n, till in enumerate(RESTART_TILLS)
        ))
    finally:
        server.stop()
    seconds = [s for s, _, _ in restarted]
    refused = sum(r for _, _, r in restarted)
    result.lines.append(
        f"after a restart, 30 tills verified before it got in: p50 {percentile(seconds, 50):.2f} s, "
        f"max {max(seconds):.2f} s, {refused} refusals, {sum(st != 200 for _, st, _ in restarted)} not in"
    )
    # Without trust kept across the restart each needs a slow hash at the budget's pace: 30 tills
    # at 2 a second in each of 2 workers take at least 7.5 s. With it, none needs one.
    if max(seconds) > RESTART_BOUND or any(st != 200 for _, st, _ in restarted):
        result.failures.append(
            f"after the restart the tills took up to {max(seconds):.1f} s to get in (bound {RESTART_BOUND:.0f} s)"
        )
    tracebacks, endings = log_findings(server)
    result.lines.append(f"server log: {tracebacks} tracebacks")
    if tracebacks:
        result.failures.append(f"{tracebacks} tracebacks in the server log ({server.log_path}): {endings}")
    return result


async def scenario_16(cluster: PgCluster) -> Result:
    result = Result(16, "lockout of a named console user from 3 addresses; the user signs in from another")
    server = await _served(cluster, "stress_signin_lockout")
    victim, other = FLOOD_USERS[0], QUIET_USERS[0]
    try:
        await asyncio.to_thread(_warm_till, server)
        good = GoodCaller(server.base, 16, stop=asyncio.Event())
        good_task = asyncio.ensure_future(good.run())
        # Two users sign in in each window, so that the slow hashes of real sign-ins are alike in both.
        second = QUIET_USERS[1]
        for source, login in (("127.31.0.2", other), ("127.31.0.3", second)):
            await sign_in(server.base, source, login)
        stop, quiet_times, bad = asyncio.Event(), [], []
        tasks = [
            asyncio.ensure_future(_repeat_sign_ins(server.base, "127.31.0.2", other, stop, quiet_times, bad)),
            asyncio.ensure_future(_repeat_sign_ins(server.base, "127.31.0.3", second, stop, quiet_times, bad)),
        ]
        began = time.monotonic()
        await asyncio.sleep(QUIET_SECONDS)
        stop.set()
        await asyncio.gather(*tasks)
        quiet = good.window(began, time.monotonic())
        lockouts_before = await _lockouts(server.base)
        process, outcome = await _abuser({
            "port": server.port, "sources": [f"127.30.{n}.1" for n in (1, 2, 3)], "targets": [["console", victim]],
            "pause": 0.2, "seconds": 20.0, "max_attempts": 200,
        })
        # Until the user is locked out in both workers (10 failures each, at the pace of the budget
        # of unverified hashes): from then on, the attackers' networks are refused.
        attack_began = time.monotonic()
        while await _lockouts(server.base) - lockouts_before < 2 and time.monotonic() - attack_began < 12:
            await asyncio.sleep(0.2)
        locked_after = time.monotonic() - attack_began
        first = await sign_in(server.base, "127.31.0.1", victim, give_up=0.0)
        stop, loud_times = asyncio.Event(), []
        tasks = [
            asyncio.ensure_future(_repeat_sign_ins(server.base, "127.31.0.1", victim, stop, loud_times, bad)),
            asyncio.ensure_future(_repeat_sign_ins(server.base, "127.31.0.2", other, stop, loud_times, bad)),
        ]
        tally = await outcome
        loud = good.window(attack_began, time.monotonic())
        stop.set()
        await asyncio.gather(*tasks)
        lockouts = await _lockouts(server.base) - lockouts_before
        good.stop.set()
        await good_task
    finally:
        server.stop()
    result.lines.append(f"the user locked out in both workers {locked_after:.1f} s into the attack")
    _first_lines(result, "the locked-out user's first sign-in, from another address:", [(victim, first)])
    _judge(result, quiet, loud, "under the attack", quiet_times, loud_times, "the user's and another's sign-ins")
    if good.error_samples and loud.errors:
        result.lines.append(f"  good caller's errors: {good.error_samples}")
    if bad:
        result.failures.append(f"sign-ins refused during the attack: {bad[:5]} ({len(bad)} in all)")
    _flood_counts(result, tally)
    lines = [line for line in server.log_path.read_text(errors="replace").splitlines() if "auth lockout" in line]
    result.lines.append(f"visible to an operator: patron_auth_lockouts_total{{kind=console,scope=credential}} +{lockouts:.0f}; "
                        f"{len(lines)} 'auth lockout' warning lines in the server log")
    for line in lines[:3]:
        result.lines.append(f"  {line[:300]}")
    if lockouts < 1 or not lines:
        result.failures.append("the lockout was neither counted on /metrics nor logged as an 'auth lockout' warning")
    return result
