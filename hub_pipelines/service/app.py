"""The hub service: one Starlette app, served by `hub serve` (uvicorn), stateless so several
replicas can run behind a load balancer.

Routes: health and readiness (health.py), Prometheus metrics (metrics.py), the admin
test-connection API (admin.py), the webhook receiver (webhooks.py) and OAuth onboarding
(onboarding.py). Around them, one middleware gives every request an id (the caller's
`X-Request-Id` when acceptable, else a new one), echoes it in the response and writes one JSON log
line per request: method, path without its query string (OAuth callbacks carry codes there),
status, milliseconds and the request id. Bodies, headers and query strings are never logged.
"""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub_pipelines.service import admin, health, metrics, onboarding, webhooks
from hub_pipelines.service.security import acceptable_request_id, current_request_id, log


class RequestContext:
    """Pure ASGI middleware (no response buffering, so it adds nothing to webhook latency)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = acceptable_request_id(_header(scope, b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = rid
        token = current_request_id.set(rid)
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Logged here, with the request id, and answered here so the answer carries the id
            # too (Starlette's own 500 page is written outside every middleware).
            log.exception("unhandled error", extra=_line(scope, 500, started))
            if not status["sent"]:
                await _internal_error(rid)(scope, receive, send_with_id)
            return
        else:
            log.info("request", extra=_line(scope, status["code"], started))
        finally:
            current_request_id.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _line(scope: Scope, status: int, started: float) -> dict:
    return {
        "method": scope.get("method"),
        "path": scope.get("path"),  # the query string is not part of it
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


def _internal_error(rid: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": f"internal error; quote request id {rid} to the operator"}},
        status_code=500,
    )


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Errors as JSON, like every other answer of the API (the detail never holds a secret)."""
    return JSONResponse(
        {"error": {"message": exc.detail}}, status_code=exc.status_code, headers=exc.headers
    )


def build_app() -> Starlette:
    routes = [
        *health.routes(),
        *metrics.routes(),
        *admin.routes(),
        *webhooks.routes(),
        *onboarding.routes(),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestContext)],
        exception_handlers={HTTPException: http_error},
    )
