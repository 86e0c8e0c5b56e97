"""`POST /webhooks/{system}/{tenant}`: signed change notices from Zoho Books, QuickBooks and Xero,
landed as files for the landing sensor (docs/webhooks.md).

A delivery goes through, in order (the first that fails answers):

1. the system is one that sends webhooks (404) and the tenant is registered for it (404) with the
   system's webhook secret in its connection config (401);
2. the tenant's rate (429 with Retry-After; a token bucket per tenant and system, per process);
3. the body, read with a cap of `MAX_BODY` bytes (413; never buffered beyond it);
4. the signature over the raw bytes, compared in constant time (401, nothing written);
5. the payload is the system's shape (400), Xero's intent-to-receive check answers 200 here;
6. the notice is written atomically into `<landing>/<system>/<tenant>/` under its event identity
   (`notices.notice_name`): a delivery already landed (still waiting, or moved to `processed/`
   or `failed/` by the sensor) is acknowledged again without a second file. Only then 200.

Tenant configs are decrypted once per ~60 s per process (a burst must not cost a database round
trip and a decryption per request); a config change therefore takes up to a minute to apply.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hub_pipelines import settings
from hub_pipelines.service import notices
from hub_pipelines.service.security import log
from hub_pipelines.settings import TENANT_SLUG_PATTERN
from hub_pipelines.tenants.models import TenantConfigError
from hub_pipelines.webhook_systems import WEBHOOKS

MAX_BODY = 1 << 20  # 1 MiB: real notices are a few KB (ids only; Zoho's default payload a record)
CONFIG_TTL = 60.0  # seconds a decrypted tenant config is reused
MISSING_TTL = 10.0  # seconds an unknown tenant is remembered as unknown
RATE_PER_SECOND = 50.0  # per tenant and system; HUB_WEBHOOK_RATE overrides
BURST = 200  # HUB_WEBHOOK_BURST overrides

# Headers kept in the landed envelope: none that signs or authenticates.
KEPT_HEADERS = ("content-type", "user-agent", "intuit-t-id", "x-request-id")
_TENANT = re.compile(TENANT_SLUG_PATTERN)


@dataclass(frozen=True)
class Receiver:
    """What the service needs of a tenant to take its webhooks; no secret shows in a repr."""

    secret: SecretStr | None
    account_id: str


def load_receiver(system: str, tenant: str) -> Receiver | None:
    """The tenant's webhook secret and account from the registry (decrypted); None when the
    tenant has no config for the system. Blocking: run it in a thread."""
    from hub_pipelines.tenants.registry import TenantRegistry
    from hub_pipelines.vault import Vault

    try:
        connection = TenantRegistry(Vault.from_env()).get(tenant, system).connection
    except TenantConfigError:
        return None
    return Receiver(
        secret=getattr(connection, WEBHOOKS[system].signing_field, None),
        account_id=str(getattr(connection, WEBHOOKS[system].account_field, "")),
    )


class ReceiverCache:
    """Tenant configs by (system, tenant), reused for `ttl` seconds (unknown ones for
    `missing_ttl`). One load per key at a time: a burst for a cold tenant waits for one
    decryption instead of starting one each. Lives in one event loop (one app)."""

    def __init__(
        self,
        load: Callable[[str, str], Receiver | None] = load_receiver,
        ttl: float = CONFIG_TTL,
        missing_ttl: float = MISSING_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load, self._ttl, self._missing_ttl, self._clock = load, ttl, missing_ttl, clock
        self._entries: dict[tuple[str, str], tuple[float, Receiver | None]] = {}
        self._loading: dict[tuple[str, str], asyncio.Lock] = {}

    async def get(self, system: str, tenant: str) -> Receiver | None:
        key = (system, tenant)
        entry = self._fresh(key)
        if entry is not None:
            return entry[1]
        async with self._loading.setdefault(key, asyncio.Lock()):
            entry = self._fresh(key)  # loaded while this request waited
            if entry is not None:
                return entry[1]
            receiver = await run_in_threadpool(self._load, system, tenant)
            ttl = self._ttl if receiver is not None else self._missing_ttl
            self._entries[key] = (self._clock() + ttl, receiver)
            return receiver

    def _fresh(self, key: tuple[str, str]) -> tuple[float, Receiver | None] | None:
        entry = self._entries.get(key)
        return entry if entry is not None and entry[0] > self._clock() else None


class RateLimiter:
    """A token bucket per key that refuses instead of waiting (the sender retries): `rate` tokens
    a second, at most `burst` saved up. `take` answers 0 (go ahead) or the seconds until the
    next token (the Retry-After)."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"webhook rate limit needs rate > 0 and burst ≥ 1, got {rate}/{burst}")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key: (tokens, at)

    def take(self, key: str) -> float:
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, refused as soon as it passes `limit` bytes (by its Content-Length, or while
    streaming a chunked one): an oversized delivery is never held in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def already_landed(folder: Path, name: str) -> bool:
    """Whether a notice of that name waits in `folder` or was handled by the sensor."""
    return any(
        (place / name).exists() for place in (folder, folder / "processed", folder / "failed")
    )


def land(folder: Path, name: str, data: bytes) -> bool:
    """Write `data` as `folder/name` completely or not at all; False when a notice of that name
    is already there (nothing written). The data goes to a hidden `.name.<random>.tmp` (which the
    sensor skips), is synced, then hard-linked to its name: a link never replaces an existing
    file, so of two replicas receiving the same event at once exactly one lands it. Where the
    filesystem has no hard links (some network shares), `os.replace` instead: the same event
    twice then rewrites one file, still one file."""
    if already_landed(folder, name):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        with temporary.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, folder / name)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            os.replace(temporary, folder / name)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_folder(folder)  # the new name survives a crash once 200 is sent
    return True


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _kept_headers(request: Request) -> dict[str, str]:
    return {name: request.headers[name] for name in KEPT_HEADERS if name in request.headers}


def _answer(status: int, text: str = "", headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(text, status_code=status, headers=headers)


class WebhookEndpoint:
    """The route's handler with its per-process state (tenant configs, rate buckets)."""

    def __init__(self, receivers: ReceiverCache, limiter: RateLimiter) -> None:
        self.receivers = receivers
        self.limiter = limiter

    async def handle(self, request: Request) -> Response:
        system = request.path_params["system"]
        tenant = request.path_params["tenant"]
        protocol = WEBHOOKS.get(system)
        if protocol is None:
            return _answer(404, f"no webhooks for system {system!r}")
        try:
            receiver = await self._receiver(system, tenant)
        except Exception as exc:  # the registry is unreachable or the key is missing: retry later
            self._log("webhook refused: tenant registry unavailable", system, tenant, 503,
                      error=type(exc).__name__)  # fmt: skip
            return _answer(503, "the tenant registry is unavailable; retry later")
        if receiver is None:
            return _answer(404, f"no {system} tenant {tenant!r}")
        if receiver.secret is None:
            self._log("webhook refused: no secret configured", system, tenant, 401)
            return _answer(
                401,
                f"webhooks are not set up for this tenant ({protocol.signing_field} is not set)",
            )
        wait = self.limiter.take(f"{system}:{tenant}")
        if wait:
            self._log("webhook refused: rate limit", system, tenant, 429)
            return _answer(429, "too many webhooks", {"Retry-After": str(max(1, round(wait)))})
        try:
            body = await read_body(request)
        except BodyTooLarge:
            self._log("webhook refused: body too large", system, tenant, 413)
            return _answer(413, f"body over {MAX_BODY} bytes")
        header = request.headers.get(protocol.signature_header)
        if not protocol.verify(receiver.secret.get_secret_value(), body, header):
            self._log("webhook refused: bad signature", system, tenant, 401)
            return _answer(401)
        return await self._accept(request, system, tenant, receiver, body)

    async def _receiver(self, system: str, tenant: str) -> Receiver | None:
        if not _TENANT.fullmatch(tenant):
            return None
        return await self.receivers.get(system, tenant)

    async def _accept(
        self, request: Request, system: str, tenant: str, receiver: Receiver, body: bytes
    ) -> Response:
        try:
            text = body.decode("utf-8")
            changes = notices.parse_body(system, body, receiver.account_id)
        except (UnicodeDecodeError, ValueError) as exc:
            self._log("webhook refused: unparseable payload", system, tenant, 400)
            return _answer(400, f"not a {system} webhook payload: {exc}"[:300])
        if system == "xero" and not changes:  # intent to receive: signed, so acknowledged
            self._log("xero intent-to-receive acknowledged", system, tenant, 200)
            return _answer(200)
        name = notices.notice_name(system, body)
        data = notices.envelope(
            system=system,
            tenant=tenant,
            account_id=receiver.account_id,
            received_at=datetime.now(UTC),
            headers=_kept_headers(request),
            body=text,
        )
        folder = settings.landing_dir() / system / tenant
        landed = await run_in_threadpool(land, folder, name, data)
        message = "webhook landed" if landed else "webhook already landed"
        self._log(message, system, tenant, 200, notice=name, events=len(changes))
        return _answer(200)

    @staticmethod
    def _log(message: str, system: str, tenant: str, status: int, **extra: object) -> None:
        # Never the body, a header or a secret: what arrived, for whom, and the answer.
        log.info(message, extra={"system": system, "tenant": tenant, "status": status, **extra})


def _env_number(name: str, default: float) -> float:
    return float(settings.env_setting(name, str(default)))


def routes(
    *,
    rate: float | None = None,
    burst: int | None = None,
    load: Callable[[str, str], Receiver | None] = load_receiver,
) -> list[Route]:
    """The webhook route, with its own tenant-config cache and rate buckets. `rate` and `burst`
    default to HUB_WEBHOOK_RATE / HUB_WEBHOOK_BURST, else 50 a second with bursts of 200."""
    limiter = RateLimiter(
        rate if rate is not None else _env_number("HUB_WEBHOOK_RATE", RATE_PER_SECOND),
        burst if burst is not None else int(_env_number("HUB_WEBHOOK_BURST", BURST)),
    )
    from hub_pipelines.service.app_webhooks import AccountIndex, AppWebhookEndpoint

    endpoint = WebhookEndpoint(ReceiverCache(load), limiter)
    app_endpoint = AppWebhookEndpoint(AccountIndex(), limiter)
    return [
        Route("/webhooks/{system}/{tenant}", endpoint.handle, methods=["POST"]),
        Route("/webhooks/{system}", app_endpoint.handle, methods=["POST"]),
    ]
