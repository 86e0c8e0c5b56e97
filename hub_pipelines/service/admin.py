"""`POST /api/accounting/test-connection {"tenant", "system"}`: can the hub reach a tenant's system
with the stored credentials? The same check as `hub tenants test`, recorded on the config row
(`last_connection_test`, `last_connection_status`) by `check_connection` itself.

A test that ran answers 200 whatever its outcome: `{"success": true, "latency_ms", "version",
"organisation"}` or `{"success": false, "latency_ms", "error": {"category", "message",
"suggested_fix"}}`. A request the hub cannot act on answers 400 (malformed, naming the field and
the fix), 404 (no such tenant config) or 503 (the service lacks its encryption key).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub_pipelines.service.security import log, require_admin
from hub_pipelines.settings import SYSTEMS, TENANT_SLUG_PATTERN

MAX_BODY_BYTES = 4096  # two short strings; anything larger is not a test-connection request


class BadRequest(Exception):
    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"message": self.message}
        if self.field:
            error["field"] = self.field
        return JSONResponse({"success": False, "error": error}, status_code=self.status)


def parse_request(body: bytes) -> tuple[str, str]:
    """The tenant and system of a request body, or BadRequest saying what to send instead."""
    example = 'send {"tenant": "acme-traders", "system": "zoho_books"}'
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(413, None, f"the body is over {MAX_BODY_BYTES} bytes; {example}")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, None, f"the body is not JSON; {example}") from None
    if not isinstance(document, dict):
        raise BadRequest(400, None, f"the body must be a JSON object; {example}")
    from hub_pipelines.tenants.registry import validate_tenant_slug

    tenant, system = document.get("tenant"), document.get("system")
    if not isinstance(tenant, str) or not tenant:
        raise BadRequest(400, "tenant", f"'tenant' is required (a tenant slug); {example}")
    try:
        validate_tenant_slug(tenant)
    except ValueError:
        raise BadRequest(
            400, "tenant", f"'tenant' must be a tenant slug matching {TENANT_SLUG_PATTERN}"
        ) from None
    if system not in SYSTEMS:
        raise BadRequest(400, "system", f"'system' must be one of: {', '.join(SYSTEMS)}")
    return tenant, system


def run_test(tenant: str, system: str) -> dict[str, Any]:
    """Blocking (the database, then the system over HTTP): called in a worker thread."""
    from hub_pipelines.tenants.connection_check import check_connection, has_connection_test
    from hub_pipelines.tenants.models import TenantConfigError
    from hub_pipelines.tenants.registry import TenantRegistry
    from hub_pipelines.vault import Vault, VaultError

    try:
        registry = TenantRegistry(Vault.from_env())
    except VaultError:
        raise BadRequest(
            503, None, "the service cannot open stored credentials: set CREDENTIAL_ENCRYPTION_KEY"
        ) from None
    try:
        registry.row(tenant, system)  # nothing decrypted: does the config exist?
    except TenantConfigError:
        raise BadRequest(
            404,
            "tenant",
            f"no {system} config for tenant {tenant!r}; register one with "
            f"`hub tenants add {tenant} {system} --config FILE` (see `hub tenants list`)",
        ) from None
    if not has_connection_test(system):
        raise BadRequest(
            400, "system", f"{system} has no live connection to test (its data arrives as files)"
        )
    result, error = check_connection(registry, tenant, system)
    if result.success:
        return {
            "success": True,
            "latency_ms": result.latency_ms,
            "version": result.version,
            "organisation": result.organisation,
        }
    return {
        "success": False,
        "latency_ms": result.latency_ms,
        "error": {
            "category": str(error.category) if error else "CONFIG",
            "message": error.message if error else result.message,
            "suggested_fix": error.suggested_fix if error else None,
        },
    }


async def test_connection(request: Request) -> JSONResponse:
    require_admin(request)
    try:
        tenant, system = parse_request(await request.body())
        answer = await run_in_threadpool(run_test, tenant, system)
    except BadRequest as refused:
        return refused.response()
    log.info(
        "connection test",
        extra={"tenant": tenant, "system": system, "success": answer["success"]},
    )
    return JSONResponse(answer)


def routes() -> list[Route]:
    return [Route("/api/accounting/test-connection", test_connection, methods=["POST"])]
