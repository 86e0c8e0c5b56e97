"""`POST /webhooks/{system}`: one URL for a whole QuickBooks or Xero app (docs/webhooks.md).

Intuit and Xero let an app name ONE webhook URL, signed with ONE app secret, for every company
that connected it; each event names its company (QuickBooks realm, Xero tenant id). This route
verifies the app's signature (`HUB_QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN`, `HUB_XERO_WEBHOOK_KEY`),
finds the hub tenants whose config names each company, and lands the delivery in each of their
folders as `/webhooks/{system}/{tenant}` would; the landing sensor reads only the events of the
tenant's own company. Events of companies no tenant names are acknowledged and counted (the
sender must not retry them). The per-tenant URL stays for apps that serve one company.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from hub_pipelines import settings
from hub_pipelines.service import notices
from hub_pipelines.service.security import log
from hub_pipelines.service.webhooks import (
    CONFIG_TTL,
    MAX_BODY,
    BodyTooLarge,
    RateLimiter,
    _answer,
    _kept_headers,
    land,
    read_body,
)
from hub_pipelines.webhook_systems import WEBHOOKS

Accounts = dict[str, list[str]]  # company id -> the tenants whose config names it


def load_accounts(system: str) -> Accounts:
    """Every enabled tenant of `system` by the company its config names (decrypts each config:
    blocking, run it in a thread)."""
    from hub_pipelines.tenants.registry import TenantRegistry
    from hub_pipelines.vault import Vault

    registry = TenantRegistry(Vault.from_env())
    found: Accounts = defaultdict(list)
    for row in registry.list(include_disabled=False):
        if row.system == system:
            connection = registry.get(row.tenant_id, system).connection
            found[str(getattr(connection, WEBHOOKS[system].account_field))].append(row.tenant_id)
    return dict(found)


class AccountIndex:
    """`load_accounts` per system, reused for `ttl` seconds; one load at a time."""

    def __init__(
        self, load: Callable[[str], Accounts] = load_accounts, ttl: float = CONFIG_TTL
    ) -> None:
        self._load, self._ttl = load, ttl
        self._entries: dict[str, tuple[float, Accounts]] = {}
        self._lock = asyncio.Lock()

    async def get(self, system: str) -> Accounts:
        async with self._lock:
            entry = self._entries.get(system)
            if entry is None or entry[0] <= time.monotonic():
                entry = (time.monotonic() + self._ttl, await run_in_threadpool(self._load, system))
                self._entries[system] = entry
            return entry[1]


class AppWebhookEndpoint:
    def __init__(self, accounts: AccountIndex, limiter: RateLimiter) -> None:
        self.accounts, self.limiter = accounts, limiter

    async def handle(self, request: Request) -> Response:
        system = request.path_params["system"]
        protocol = WEBHOOKS.get(system)
        variable = protocol.app_signing_variable if protocol else None
        secret = os.environ.get(variable or "", "")
        if not secret:
            why = f" ({variable} is not set)" if variable else ""
            return _answer(404, f"no app webhook for {system!r}{why}")
        wait = self.limiter.take(f"{system}:app")
        if wait:
            return _answer(429, "too many webhooks", {"Retry-After": str(max(1, round(wait)))})
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return _answer(413, f"body over {MAX_BODY} bytes")
        if not protocol.verify(secret, body, request.headers.get(protocol.signature_header)):
            log.info("app webhook refused: bad signature", extra={"system": system, "status": 401})
            return _answer(401)
        try:
            changes = protocol.parse(body, "")
            text = body.decode("utf-8")
        except (UnicodeDecodeError, ValueError) as exc:
            return _answer(400, f"not a {system} webhook payload: {exc}"[:300])
        return await self._land(request, system, body, text, {c.account_id for c in changes})

    async def _land(self, request, system: str, body: bytes, text: str, companies: set[str]):
        known = await self.accounts.get(system)
        name = notices.notice_name(system, body)
        landed = unknown = 0
        for company in sorted(companies):
            for tenant in known.get(company, []):
                data = notices.envelope(
                    system=system,
                    tenant=tenant,
                    account_id=company,
                    received_at=datetime.now(UTC),
                    headers=_kept_headers(request),
                    body=text,
                )
                folder = settings.landing_dir() / system / tenant
                landed += await run_in_threadpool(land, folder, name, data)
            unknown += company not in known
        log.info(
            "app webhook landed",
            extra={"system": system, "status": 200, "notice": name, "landed": landed,
                   "unknown_companies": unknown},
        )  # fmt: skip
        return _answer(200)
