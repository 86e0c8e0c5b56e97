"""Webhook load: 2,000 signed deliveries sent concurrently to the receiver under uvicorn (loopback).

`python -m bench.webhooks [--count N] [--concurrency C]` (not part of `make bench`'s default run).

The receiver (`hub_pipelines.service.webhooks.routes()`, in a small Starlette app of its own) runs
in a separate uvicorn process on 127.0.0.1 against a scratch database of the configured (or
embedded) PostgreSQL, with 15 tenants (5 each for QuickBooks, Xero and Zoho Books) registered
with encrypted webhook secrets, and a scratch landing folder. The client (httpx AsyncClient, at most
C requests in flight) sends N distinct events spread over the tenants (QuickBooks CloudEvents,
Xero event deliveries, Zoho Books default payloads, each correctly signed), then replays the first
10 % of them, as senders do when an answer is lost.

Printed: the files landed (must be exactly N, one per distinct event, the replays adding none),
latency p50 / p95 / max per request, and the server process's resident memory (current and peak,
from /proc) after the first quarter and after all N: a flat figure means nothing grows per request.
Rate limits stay at their defaults (50/s, burst 200 per tenant): each tenant gets under its burst.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from hub_pipelines.quickbooks import simulator as qbo
from hub_pipelines.service import notices, webhooks
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import KEY_VARIABLE, Vault, generate_key
from hub_pipelines.warehouse import db, migrations
from hub_pipelines.xero.webhooks import signature as xero_signature
from hub_pipelines.zoho_books.simulator import webhook_signature as zoho_signature

TENANTS_PER_SYSTEM = 5
SYSTEMS = ("quickbooks", "xero", "zoho_books")
SECRETS = {
    "quickbooks": "bench-verifier-token",
    "xero": "bench-xero-webhook-key",
    "zoho_books": "BenchZohoSecret42",
}
OAUTH = {"client_id": "bench", "client_secret": "bench-secret", "refresh_token": "bench-refresh"}


def service_app() -> Starlette:
    """The uvicorn factory: the webhook routes alone (`--factory bench.webhooks:service_app`)."""
    return Starlette(routes=webhooks.routes())


@dataclass(frozen=True)
class Delivery:
    path: str
    body: bytes
    headers: dict[str, str]

    @property
    def notice_name(self) -> str:
        return notices.notice_name(self.path.split("/")[2], self.body)


def account(system: str, number: int) -> str:
    return {
        "quickbooks": f"91303577669{number:05d}",
        "xero": str(uuid.UUID(int=number + 1)),
        "zoho_books": f"600{number:08d}",
    }[system]


def register_tenants(registry: TenantRegistry) -> list[tuple[str, str]]:
    """(system, tenant) pairs registered with their webhook secrets."""
    fields = {
        "quickbooks": ("realm_id", "webhook_verifier_token"),
        "xero": ("xero_tenant_id", "webhook_key"),
        "zoho_books": ("organization_id", "webhook_secret"),
    }
    pairs = []
    for system in SYSTEMS:
        account_field, secret_field = fields[system]
        for number in range(TENANTS_PER_SYSTEM):
            tenant = f"bench-{number}"
            config = {
                **OAUTH,
                account_field: account(system, number),
                secret_field: SECRETS[system],
            }
            registry.add(tenant, system, config)
            pairs.append((system, tenant))
    return pairs


def delivery(system: str, tenant: str, number: int) -> Delivery:
    """One distinct, correctly signed event for the tenant."""
    at = datetime(2026, 5, 1, tzinfo=UTC)
    account_id = account(system, int(tenant.rsplit("-", 1)[1]))
    secret = SECRETS[system]
    if system == "quickbooks":
        change = qbo.WebhookChange("Invoice", str(number), "Update", at)
        body = qbo.webhook_body(account_id, [change], cloud_events=True)
        headers = {"intuit-signature": qbo.webhook_signature(secret, body)}
    elif system == "xero":
        event = {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{uuid.UUID(int=number)}",
            "resourceId": str(uuid.UUID(int=number)),
            "eventDateUtc": "2026-05-01T00:00:00.000",
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": account_id,
            "tenantType": "ORGANISATION",
        }
        body = json.dumps({"events": [event], "firstEventSequence": number}).encode()
        headers = {"x-xero-signature": xero_signature(secret, body)}
    else:
        record = {"invoice_id": str(4600000 + number), "status": "sent", "total": 100}
        body = json.dumps({"invoice": record}).encode()
        headers = {"X-Zoho-Webhook-Signature": zoho_signature(secret, body)}
    headers["Content-Type"] = "application/json"
    return Delivery(f"/webhooks/{system}/{tenant}", body, headers)


def deliveries(pairs: list[tuple[str, str]], count: int) -> list[Delivery]:
    return [delivery(*pairs[n % len(pairs)], n) for n in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, environment: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "--factory", "bench.webhooks:service_app",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
               "--no-access-log"]  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    # noqa reason: the command is this interpreter and fixed arguments, no outside input
    server = subprocess.Popen(command, cwd=root, env={**os.environ, **environment})  # noqa: S603
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the webhook service exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.05)
    server.terminate()
    raise RuntimeError("the webhook service did not start within 30 s")


def memory_kib(pid: int) -> tuple[int, int]:
    """(resident, peak resident) KiB of a process, from /proc/<pid>/status."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def send_all(base: str, batch: list[Delivery], concurrency: int) -> list[tuple[int, float]]:
    """(status, seconds) per delivery over `concurrency` keep-alive connections, each sending its
    next delivery when the last one is answered. The sender speaks plain HTTP/1.1 on asyncio
    streams: a full client (httpx) spends several times the service's CPU per request, and on a
    2-core machine shared with the service that would measure the sender, not the service."""
    host, port = base.removeprefix("http://").split(":")
    queue = list(enumerate(batch))
    queue.reverse()
    results: list[tuple[int, float]] = [(0, 0.0)] * len(batch)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while queue:
                number, item = queue.pop()
                started = time.perf_counter()
                writer.write(request_bytes(host, port, item))
                status = await read_answer(reader)
                results[number] = (status, time.perf_counter() - started)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(min(concurrency, len(batch)))))
    return results


def request_bytes(host: str, port: str, item: Delivery) -> bytes:
    headers = {**item.headers, "Host": f"{host}:{port}", "Content-Length": str(len(item.body))}
    lines = [f"POST {item.path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + item.body


async def read_answer(reader: asyncio.StreamReader) -> int:
    """The status of one answer, its body read (by Content-Length) so the connection is reusable."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


def landed_files(landing: Path) -> Iterator[Path]:
    return (path for path in landing.rglob("*") if path.is_file())


@dataclass(frozen=True)
class Result:
    count: int
    landed: int
    distinct_events_landed: int
    statuses: dict[int, int]
    p50_ms: float
    p95_ms: float
    max_ms: float
    seconds: float
    memory_kib: list[tuple[int, int, int]]  # (after n deliveries, resident, peak)


def measure(database_url: str, count: int = 2000, concurrency: int = 100) -> Result:
    """Register the tenants in `database_url`, serve, send, count. The caller owns the database."""
    key = generate_key()  # the service gets it through its environment, this process never
    pairs = register_tenants(TenantRegistry(Vault.from_strings(key, None), database_url))
    batch = deliveries(pairs, count)
    replays = batch[: max(1, count // 10)]
    with tempfile.TemporaryDirectory(prefix="hub-bench-webhooks-") as scratch:
        landing = Path(scratch) / "landing"
        port = free_port()
        environment = {"HUB_DATABASE_URL": database_url, KEY_VARIABLE: key,
                       "HUB_LANDING_DIR": str(landing)}  # fmt: skip
        server = start_server(port, environment)
        try:
            base = f"http://127.0.0.1:{port}"
            quarter = count // 4
            started = time.perf_counter()
            answers = asyncio.run(send_all(base, batch[:quarter], concurrency))
            memory = [(quarter, *memory_kib(server.pid))]
            answers += asyncio.run(send_all(base, batch[quarter:], concurrency))
            seconds = time.perf_counter() - started
            memory.append((count, *memory_kib(server.pid)))
            replayed = asyncio.run(send_all(base, replays, concurrency))
        finally:
            server.terminate()
            server.wait(timeout=30)
        files = list(landed_files(landing))
        expected = {item.notice_name for item in batch}
    statuses: dict[int, int] = {}
    for status, _ in answers + replayed:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = sorted(seconds * 1000 for _, seconds in answers)
    return Result(
        count=count,
        landed=len(files),
        distinct_events_landed=len(expected & {path.name for path in files}),
        statuses=statuses,
        p50_ms=statistics.median(latencies),
        p95_ms=latencies[max(0, round(len(latencies) * 0.95) - 1)],
        max_ms=latencies[-1],
        seconds=seconds,
        memory_kib=memory,
    )


def scratch_database() -> tuple[str, str]:
    server = db.database_url()
    name = f"hub_bench_webhooks_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    migrations.upgrade(url)
    return server, url


def report(result: Result) -> str:
    lines = [
        f"webhooks: {result.count} distinct signed events to {len(SYSTEMS) * TENANTS_PER_SYSTEM} "
        f"tenants, then {max(1, result.count // 10)} replayed, in {result.seconds:.1f} s "
        f"({result.count / result.seconds:.0f}/s)",
        f"  answers: {dict(sorted(result.statuses.items()))}",
        f"  landed files: {result.landed} (distinct events among them: "
        f"{result.distinct_events_landed} of {result.count})",
        f"  latency: p50 {result.p50_ms:.0f} ms, p95 {result.p95_ms:.0f} ms, "
        f"max {result.max_ms:.0f} ms",
    ]
    for after, resident, peak in result.memory_kib:
        lines.append(
            f"  server memory after {after:5}: resident {resident / 1024:.1f} MiB, "
            f"peak {peak / 1024:.1f} MiB"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    options = parser.parse_args(argv)
    server, url = scratch_database()
    try:
        result = measure(url, options.count, options.concurrency)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    print(report(result))
    if result.landed != result.count or result.distinct_events_landed != result.count:
        raise SystemExit("FAILED: the landed files are not exactly one per event")


if __name__ == "__main__":
    main()
