"""Scenario 6: schema-based fuzzing with schemathesis, driven by Patron's own /openapi.json.

A real `patron serve` (2 workers) on a database of its own in the private cluster, with the org
of stress/fuzz-org.toml (a till that may write customers and read the audit log, and an API
client). A few customers are registered first, so that fuzzed look-ups, audits and updates can
find someone. Then several processes of stress/fuzz_worker.py run schemathesis's examples,
coverage and fuzzing phases (positive and negative data) for add, get, audits and token
generation, and check every reply (see fuzz_worker.py). At the end `patron check --org` and the
built-in SQL checks run, as in the other scenarios.

Environment: STRESS_FUZZ_SCALE (default 1) scales the fuzzing phases' examples per operation
(and the time budget, when above 1); STRESS_FUZZ_SEED picks the seed (default: random, printed);
STRESS_FUZZ_WORKERS (default 3) is the number of fuzzing processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from typing import Any

import httpx
import infra
from infra import LOG_DIR, STRESS, PatronServer, PgCluster, basic_auth
from scenarios import Result, check_invariants, log_findings

FUZZ_ORG_FILE = STRESS / "fuzz-org.toml"
FUZZ_ORG_ID = 880006
API_CLIENT = {"key": "acme-backend", "secret": "a-long-random-secret"}  # as in fuzz-org.toml
WORKER = STRESS / "fuzz_worker.py"
MIN_REQUESTS = 10_000
BUDGET_SECONDS = 140  # each worker stops generating after this; the scenario stays under ~3 minutes
KNOWN_CUSTOMERS = 16
SHOWN_PROBLEMS = 15

# (path, method, positive examples, negative examples) of the fuzzing phase, before scaling and
# before being shared out among the workers. Generating a case costs the fuzzer more CPU than
# Patron spends answering it, and far more for add (~18 ms positive, ~27 ms negative) than for
# get or audits (2-7 ms); a token request with string credentials costs Patron an argon2
# verification (~0.1 s). These counts make ~12,000 requests in ~100 s on 2 cores with 3 workers
# (while one waits for an answer, another generates).
FUZZ_PLAN = (
    ("/v1.1/customer/add", "POST", 1000, 1000),
    ("/v1.1/customer/get", "GET", 2000, 2000),
    ("/api_gateway/v2/audits", "GET", 1800, 1800),
    ("/v3/oauth/token/generate", "POST", 150, 1000),
    # Member care (issue #22): each item of update and update_identity reads or writes a customer.
    ("/v1.1/customer/update", "POST", 400, 400),
    ("/v1.1/customer/update_identity", "POST", 400, 400),
    ("/v1.1/customer/search", "GET", 1000, 1000),
)
SHORT = {
    "POST /v1.1/customer/add": "add",
    "GET /v1.1/customer/get": "get",
    "GET /api_gateway/v2/audits": "audits",
    "POST /v3/oauth/token/generate": "token",
    "POST /v1.1/customer/update": "update",
    "POST /v1.1/customer/update_identity": "update_identity",
    "GET /v1.1/customer/search": "search",
}
CHECK_ORDER = (
    "server_error",
    "traceback",
    "envelope",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "no_answer",
)
# Whose mistake a failed check most likely is, for the report.
BLAME = {
    "server_error": "Patron",
    "traceback": "Patron",
    "envelope": "Patron",
    "no_answer": "Patron",
    "response_schema_conformance": "Patron or the schema: compare the answer with the schema quoted",
    "status_code_conformance": "the schema (an answered status it does not list), unless Patron should not answer it",
    "content_type_conformance": "the schema (a media type it does not list), unless Patron should not answer it",
    "response_headers_conformance": "Patron or the schema (a documented header missing or of another shape)",
}


async def _seed_customers(base: str) -> tuple[list[dict[str, Any]], str]:
    """Customers with every identifier, so that fuzzed look-ups, audits and updates find someone."""
    known = []
    headers = {"Authorization": basic_auth()}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        referral = None
        for n in range(KNOWN_CUSTOMERS):
            item: dict[str, Any] = {
                "mobile": f"9188{n:08d}",
                "email": f"known{n}@fuzz.example",
                "external_id": f"KNOWN-{n:03d}",
                "firstname": "Known",
                "lastname": f"Customer {n}",
                "custom_fields": {"field": [{"name": "City_name", "value": "Pune"}, {"name": "visits", "value": n}]},
                "subscriptions": {"subscription": [{"channel": "sms", "priority": "TRANS", "is_subscribed": 1}]},
            }
            if referral:
                item["referral_code"] = referral
            added = await http.post("/v1.1/customer/add", json={"root": {"customer": [item]}})
            got = added.json()["response"]["customers"]["customer"][0]
            if got["item_status"]["code"] != "1000":
                raise RuntimeError(f"seeding a known customer failed: {added.text[:500]}")
            read = await http.get("/v1.1/customer/get", params={"id": got["user_id"]})
            customer = read.json()["response"]["customers"]["customer"][0]
            referral = customer["referral_code"]
            known.append({key: customer[key] for key in ("user_id", "mobile", "email", "external_id", "referral_code")})
        issued = await http.post("/v3/oauth/token/generate", json=API_CLIENT)
        token = issued.json()["data"]["accessToken"]
    return known, token


def _jobs(workers: int, scale: float) -> list[list[dict[str, Any]]]:
    """Every worker fuzzes every operation with its share of the examples; the examples and
    coverage phases (deterministic: once is enough) of each operation go to one worker each."""
    shares: list[list[dict[str, Any]]] = [[] for _ in range(workers)]
    for number, (path, method, positive, negative) in enumerate(FUZZ_PLAN):
        for index in range(workers):
            shares[index].append(
                {
                    "path": path,
                    "method": method,
                    "examples": number % workers == index,
                    "coverage": number % workers == index,
                    "positive": round(positive * scale / workers),
                    "negative": round(negative * scale / workers),
                }
            )
    # Each worker starts with another operation, so that they do not all generate adds (the
    # costliest cases) or wait on argon2 (token generation) at the same time.
    return [jobs[index % len(jobs):] + jobs[: index % len(jobs)] for index, jobs in enumerate(shares)]


async def _run_workers(config: dict[str, Any], workers: int, scale: float) -> list[dict[str, Any]]:
    processes = []
    for index, jobs in enumerate(_jobs(workers, scale)):
        config_path = LOG_DIR / f"fuzz-worker-{index}.json"
        result_path = LOG_DIR / f"fuzz-result-{index}.json"
        log_path = LOG_DIR / f"fuzz-worker-{index}.log"
        config_path.write_text(json.dumps({**config, "worker": index, "seed": config["seed"] + index, "jobs": jobs}))
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(WORKER), str(config_path), str(result_path),
                stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=str(infra.ROOT),
            )
        processes.append((index, process, result_path, log_path))
    results = []
    for index, process, result_path, log_path in processes:
        try:
            await asyncio.wait_for(process.wait(), timeout=config["budget_seconds"] + 90)
        except TimeoutError:
            process.kill()
            await process.wait()
        if process.returncode == 0 and result_path.exists():
            results.append(json.loads(result_path.read_text()))
        else:
            tail = log_path.read_text(errors="replace")[-2500:]
            results.append({"worker": index, "crashed": f"exit {process.returncode}; log {log_path}:\n{tail}"})
    return results


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "sent": 0, "answered": 0, "by_operation": Counter(), "by_phase": Counter(), "formats": Counter(),
        "item_codes": Counter(), "failures": Counter(), "not_sent": Counter(), "no_answer": Counter(),
        "invalid_http": Counter(), "invalid_http_samples": [],
        "statuses": {}, "problems": {}, "unchecked_xml": 0, "wait_seconds": Counter(), "slowest": {},
        "errors": [], "stopped_early": [], "seconds": [],
    }
    for result in results:
        if "crashed" in result:
            merged["errors"].append(f"worker {result['worker']} crashed: {result['crashed']}")
            continue
        for key in ("sent", "answered", "unchecked_xml"):
            merged[key] += result[key]
        for key in ("by_operation", "by_phase", "formats", "item_codes", "failures", "not_sent", "no_answer", "wait_seconds", "invalid_http"):
            merged[key].update(result[key])
        for operation, statuses in result["statuses"].items():
            merged["statuses"].setdefault(operation, Counter()).update(statuses)
        for signature, problem in result["problems"].items():
            mine = merged["problems"].setdefault(signature, {**problem, "count": 0, "samples": []})
            mine["count"] += problem["count"]
            mine["samples"].extend(problem["samples"][: 3 - len(mine["samples"])])
        for operation, (seconds, request) in result["slowest"].items():
            if seconds > merged["slowest"].get(operation, (0.0, ""))[0]:
                merged["slowest"][operation] = (seconds, request)
        merged["invalid_http_samples"].extend(result["invalid_http_samples"])
        merged["errors"].extend(f"worker {result['worker']}: {error}" for error in result["errors"])
        if result["stopped_early"]:
            merged["stopped_early"].append(result["worker"])
        merged["seconds"].append(result["seconds"])
        merged["schemathesis"] = result["schemathesis"]
    return merged


def _statuses(counter: Counter) -> str:
    return " ".join(f"{status}:{count}" for status, count in sorted(counter.items()))


async def scenario_6(cluster: PgCluster) -> Result:
    result = Result(6, "schema fuzzing (schemathesis): add, get, audits, token")
    scale = float(os.environ.get("STRESS_FUZZ_SCALE", "1"))
    workers = int(os.environ.get("STRESS_FUZZ_WORKERS", "3"))
    seed = int(os.environ.get("STRESS_FUZZ_SEED") or random.randrange(1, 10**6))
    url = await cluster.create_database("stress_fuzz")
    infra.prepare_database(url, FUZZ_ORG_FILE)
    server = PatronServer(url, workers=2).started()
    try:
        known, token = await _seed_customers(server.base)
        config = {
            "base": server.base,
            "seed": seed,
            "budget_seconds": BUDGET_SECONDS * max(1.0, scale),
            "basic_auth": basic_auth(),
            "token": token,
            "api_client": API_CLIENT,
            "customers": known,
        }
        began = time.monotonic()
        merged = _merge(await _run_workers(config, workers, scale))
        fuzz_seconds = time.monotonic() - began
    finally:
        server.stop()

    result.sent, result.answered = merged["sent"], merged["answered"]
    result.lost = merged["sent"] - merged["answered"]
    by_operation = merged["by_operation"]
    failures = merged["failures"]
    per_operation = ", ".join(f"{SHORT.get(op, op)} {by_operation[op]:,}" for op in SHORT if op in by_operation)
    checks = ", ".join(f"{check} {failures.get(check, 0)}" for check in CHECK_ORDER)
    result.lines.append(
        f"fuzz: {merged['sent']:,} requests sent ({per_operation}), {merged['answered']:,} answered, in "
        f"{fuzz_seconds:.0f}s by {workers} workers; failures by check: {checks}"
    )
    result.lines.append(
        f"schemathesis {merged.get('schemathesis', '?')}, seed {seed} (STRESS_FUZZ_SEED={seed} to repeat the "
        f"generation), scale {scale:g}; phases: "
        + ", ".join(f"{phase} {count:,}" for phase, count in sorted(merged["by_phase"].items()))
    )
    for operation in SHORT:
        if operation in merged["statuses"]:
            waited = merged["wait_seconds"].get(operation, 0.0)
            count = by_operation[operation]
            slowest = merged["slowest"].get(operation, (0.0, ""))[0]
            result.lines.append(
                f"{operation}: HTTP {_statuses(merged['statuses'][operation])}; mean answer "
                f"{1000 * waited / max(count, 1):.1f} ms, slowest {1000 * slowest:.0f} ms"
            )
    result.lines.append(
        f"customer endpoints answered in {dict(merged['formats'])}; item codes {dict(merged['item_codes'].most_common(12))}"
    )
    result.lines.append(
        f"{merged['unchecked_xml']:,} XML answers: envelope checked here, schema conformance skipped "
        "(schemathesis validates JSON bodies only)"
    )
    if merged["invalid_http"]:
        result.lines.append(
            f"{sum(merged['invalid_http'].values())} requests were not valid HTTP ({dict(merged['invalid_http'])}): "
            "uvicorn refused them before Patron saw them (400 text/plain), so they are not judged; e.g. "
            + merged["invalid_http_samples"][0][:500]
        )
    if merged["stopped_early"]:
        result.lines.append(f"workers {merged['stopped_early']} ran out of their {config['budget_seconds']:.0f}s before their last examples")
    if merged["not_sent"]:
        result.lines.append(f"cases the HTTP client would not send (not counted): {dict(merged['not_sent'])}")
    tracebacks, endings = log_findings(server)
    result.lines.append(f"server log: {tracebacks} tracebacks" + (f"; ended by: {endings}" if endings else ""))

    if merged["sent"] < MIN_REQUESTS:
        result.failures.append(
            f"only {merged['sent']:,} requests were sent, fewer than {MIN_REQUESTS:,}"
            + (f" (workers {merged['stopped_early']} ran out of their {config['budget_seconds']:.0f}s)" if merged["stopped_early"] else "")
        )
    for error in merged["errors"]:
        result.failures.append(f"fuzzing worker error: {error}")
    if tracebacks:
        result.failures.append(f"{tracebacks} tracebacks in the server log ({server.log_path}): {endings}")
    problems = sorted(merged["problems"].values(), key=lambda p: (CHECK_ORDER.index(p["check"]) if p["check"] in CHECK_ORDER else 99, -p["count"]))
    for check in CHECK_ORDER:
        if not failures.get(check):
            continue
        distinct = [p for p in problems if p["check"] == check]
        result.failures.append(
            f"{check}: {failures[check]:,} replies failed, {len(distinct)} distinct problems (most likely: {BLAME[check]})"
        )
    if len(problems) > SHOWN_PROBLEMS:
        result.lines.append(
            f"the {SHOWN_PROBLEMS} first of {len(problems)} distinct problems (all of them: fuzz-result-*.json in {LOG_DIR}):"
        )
    for problem in problems[:SHOWN_PROBLEMS]:
        result.lines.append(f"!! [{problem['check']}] {problem['count']}x {problem['signature']}")
        for sample in problem["samples"][:2]:
            result.lines.append(f"     {sample['phase']}/{sample['mode']}, auth {sample['auth']}: {sample['request'][:900]}")
            body = " ".join(sample["body"].split())
            result.lines.append(f"     -> HTTP {sample['status']} {sample['content_type']}: {body[:500]}")
            detail = " | ".join(line.strip() for line in sample["problem"].splitlines() if line.strip())
            result.lines.append(f"     problem: {detail[:700]}")
            for key in ("replayed_on_a_fresh_connection", "previous_request_on_the_connection"):
                if sample.get(key):
                    result.lines.append(f"     {key.replace('_', ' ')}: {sample[key][:900]}")

    await check_invariants(result, url, FUZZ_ORG_ID, FUZZ_ORG_FILE)
    return result
