"""What every route of the hub service shares: the admin bearer token, request ids, JSON-lines logs.

The service is stateless (several replicas behind a load balancer), so nothing here keeps state
between requests: the token comes from the environment on each check and the request id travels
with the request (`X-Request-Id`, echoed by the middleware in app.py).

Never log a secret, a token, a signature or a request body: log records carry the request id, the
method, the path without its query string, the status and the duration.
"""

from __future__ import annotations

import contextvars
import hmac
import json
import logging
import os
import re
import sys
import uuid
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request

TOKEN_ENV = "HUB_API_TOKEN"  # noqa: S105 - the variable's name, not a token
REQUEST_ID_HEADER = "X-Request-Id"

log = logging.getLogger("hub.service")

# A caller's request id is echoed and logged, so it must not be a way to inject text into the logs
# or the response headers: printable, short, no spaces.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# Set by the middleware for the duration of one request, so log lines written anywhere while the
# request is handled carry its id without passing it around.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hub_service_request_id", default=None
)


def require_admin(request: Request) -> None:
    """Refuse the request unless it carries `Authorization: Bearer <HUB_API_TOKEN>`.

    503 when the service has no token configured (an operator must set one: an admin endpoint
    open to anyone is worse than one that does not answer), 401 for a missing or wrong token.
    """
    expected = os.environ.get(TOKEN_ENV, "")
    if not expected:
        raise HTTPException(
            503,
            detail=f"Admin endpoints are disabled: set {TOKEN_ENV} in the service's environment "
            "and send it as 'Authorization: Bearer <token>'.",
        )
    presented = _bearer_token(request.headers.get("authorization", ""))
    # compare_digest on bytes: constant time whatever the presented value holds.
    if presented is None or not hmac.compare_digest(
        presented.encode("utf-8"), expected.encode("utf-8")
    ):
        raise HTTPException(
            401,
            detail=f"Send the admin token: 'Authorization: Bearer <{TOKEN_ENV}>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def request_id(request: Request) -> str:
    """The request's id: the one the middleware settled on, else the caller's, else a new one."""
    settled = request.scope.get("state", {}).get("request_id")
    if settled:
        return settled
    return acceptable_request_id(request.headers.get(REQUEST_ID_HEADER))


def acceptable_request_id(presented: str | None) -> str:
    """The caller's `X-Request-Id` when it is safe to echo and log, else a fresh one."""
    if presented and _ACCEPTABLE_REQUEST_ID.match(presented):
        return presented
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and the record's extras.

    Extras are the `extra={...}` keys a caller passes (method, path, status, ms, …); only JSON
    scalars are kept, so an object cannot smuggle a body or a secret in through its repr.
    """

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
        "message",
        "asctime",
        "taskName",
        "color_message",  # uvicorn's copy of the message with terminal colours
    }

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or current_request_id.get()
        if rid:
            line["request_id"] = rid
        for key, value in vars(record).items():
            if key in self._STANDARD or key in line:
                continue
            if isinstance(value, str | int | float | bool) or value is None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: int = logging.INFO, stream=None) -> logging.Handler:
    """Send the service's and uvicorn's logs to `stream` (stderr) as JSON lines.

    Idempotent: calling it twice replaces the handler it installed, never doubles the lines.
    uvicorn's own access log is silenced because the middleware writes one richer line per request.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.set_name("hub-json")
    for name in ("hub.service", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "hub-json"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
    return handler
