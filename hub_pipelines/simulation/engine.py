"""The simulator engine: what every system's simulator shares, so that a system adds only its Shape.

A Shape is one system's wire format on top of `SimulatorEngine`: its routes and handlers (which
render the books as that system does), and a few hooks for the answers every system words its
own way. The engine owns the rest: the request pipeline, fault injection (`Faults`), rate limits
(`RateLimits`, `RateLimiter`), an OAuth server (`oauth_server.OAuthServer`), the request log and
counters, the clock and timer, and serving.

Every request to a route made with `api_route` goes through one pipeline, under the engine lock
except for the latency:

    concurrency slot → latency → queued fault (fail / throttle / drop) → authenticate (the
    request's access token; `faults.expire_tokens_after`) → `refuse` (e.g. an unknown
    organisation) → rate-limit admission → route handler → malformation → log and counters →
    `after_page` actions

A Shape, e.g. for a system with Bearer tokens, companies in the path and offset paging:

    from hub_pipelines.simulation.engine import RateLimits, RateStatus, Reply, SimulatorEngine
    from hub_pipelines.simulation.oauth_server import EVERY_REFRESH, TokenPolicy, TokenRefusal

    class LedgerSimulator(SimulatorEngine):
        json_media_type = "application/json; charset=utf-8"

        def __init__(self, **engine_options: Any) -> None:
            super().__init__(
                limits=RateLimits(per_minute=60, per_day=5_000, concurrent=5),
                token_policy=TokenPolicy(access_token_lifetime=1800, rotation=EVERY_REFRESH,
                                         previous_token_grace_seconds=1800),
                **engine_options)
            self.oauth.add_client("client-1", "secret-1")
            self.items = {"c1": [{"Id": str(n)} for n in range(95)]}

        def routes(self) -> list[BaseRoute]:
            return [self.api_route("/token", self.token, methods=("POST",), auth=False,
                                   limited=False),
                    self.api_route("/companies/{company}/items", self.list_items)]

        def token(self, request: Request, params: dict[str, str]) -> Reply:
            answer = self.oauth.refresh(params.get("client_id", ""), params.get("client_secret"),
                                        params.get("refresh_token", ""))
            if isinstance(answer, TokenRefusal):
                return Reply(400, {"error": answer.error})
            return Reply(200, {"access_token": answer.access_token, "expires_in":
                               answer.expires_in, "refresh_token": answer.refresh_token})

        def list_items(self, request: Request, params: dict[str, str]) -> Reply:
            rows = self.items[request.path_params["company"]]
            start = int(params.get("start") or 1) - 1
            return Reply(200, {"Items": rows[start : start + 10]})

        def rate_key(self, request: Request, params: dict[str, str]) -> str:
            return request.path_params.get("company", "")   # limits count per company

        def page_of(self, params: dict[str, str]) -> int:
            return (int(params.get("start") or 1) - 1) // 10 + 1   # faults name pages

        def throttle_reply(self, status: RateStatus) -> Reply:
            return Reply(429, {"problem": status.limit_hit},
                         {"Retry-After": str(status.retry_after)})

        def break_record(self, body: Any, index: int) -> Any:
            body["Items"][index].pop("Id")   # a copy: the engine deep-copies first
            return body

Handlers are plain functions called under the lock with the request and its parameters (query
string plus form fields; override `request_params` for, e.g., a query sent as a text body); they
return a `Reply`: JSON (`kind="json"`), raw text or bytes with a media type (`kind="text"`, e.g.
an XML fault), or let the engine truncate or drop it. Other hooks, with defaults in the class:
`access_token` (Bearer), `rate_key` (""), `refuse`, `unauthorised_reply`, `fault_reply`,
`throttle_reply`, `rate_headers` (added to every answer of a rate-limited route and to throttles),
`break_record`, `page_of` (`page` parameter), `not_found_reply`, `method_not_allowed_reply`.
Tests reach the state directly: `sim.faults.fail_next(2, 503)`, `sim.limiter.limits.per_day = 3`,
`sim.oauth.policy.rotation = 86_400`, `sim.request_log`, `sim.requests_throttled`; `Knob` keeps a
shape's own attribute names for them (Zoho: `daily_limit = Knob("limiter.limits", "per_day")`).

How the three systems map onto it (zoho_books/simulator.py is the worked example):
- Zoho Books: `RateLimits(per_minute=100, per_day=10_000, day_resets_in=IST)` keyed by
  `organization_id`; `TokenPolicy(rotation="never", token_requests_per_window=10,
  token_window_seconds=600, max_active_access_tokens=15)`; token errors rendered as HTTP 200.
- QuickBooks: `RateLimits(per_second=10, per_minute=500)` keyed by the `{realmId}` path parameter;
  `page_of` reads STARTPOSITION out of the `query` text (`(start - 1) // MAXRESULTS + 1`), and
  `request_params` adds a query POSTed as `application/text`; `throttle_reply` is the XML fault
  3001 (`kind="text"`, `media_type="application/xml"`); `TokenPolicy(rotation=<seconds>,
  refresh_idle_expiry_seconds=100 days, refresh_hard_expiry_seconds=5 years)`, and the token
  route passes `want_hard_expiry=` the `x-include-refresh-token-hard-expires-in: true` header.
  The realm an access token may read can ride in the grant's `context` (`oauth.grant_of`).
- Xero: `RateLimits(per_minute=60, per_day=5_000, concurrent=5)` keyed by the `Xero-Tenant-Id`
  header (`refuse` a missing one); `throttle_reply` sets `Retry-After` (`status.retry_after`) and
  `X-Rate-Limit-Problem` (`status.limit_hit`); `rate_headers` gives X-DayLimit-Remaining and
  X-MinLimit-Remaining from `status.remaining`, and X-AppMinLimit-Remaining from a second
  `RateLimiter` the shape keeps for the app-wide minute; answers outside admission (a 401) can
  carry them via `self.limiter.status(key)`; `TokenPolicy(access_token_lifetime=1800,
  rotation="every_refresh", previous_token_grace_seconds=1800,
  refresh_idle_expiry_seconds=60 days)`.

Time: `clock()` (aware datetime) dates records and decides the day of the daily limit; `timer()`
(monotonic seconds) drives the second/minute windows and token lifetimes. Both are plain
attributes, so a test replaces them with a fake and moves time by hand.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from hub_pipelines.simulation.oauth_server import OAuthServer, TokenPolicy

JSON_MEDIA_TYPE = "application/json"
TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"
LIMIT_NAMES = ("day", "minute", "second", "concurrent")  # checked in this order: longest wait first


def json_bytes(body: Any) -> bytes:
    """Compact UTF-8 JSON, as the accounting APIs send it."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


# --- Replies -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Reply:
    """What the pipeline decided to send; rendered to a Starlette response at the edge.

    kind: "json" (body is JSON-able), "text" (body is str or bytes sent as is with `media_type`,
    e.g. an XML fault), "truncated" (the JSON cut in half) or "drop" (no body: the connection
    closes mid-response)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "json"
    media_type: str | None = None  # None: the shape's JSON media type, or text/plain for text

    def to_response(self, json_media_type: str = JSON_MEDIA_TYPE) -> Response:
        if self.kind == "drop":
            return DroppedConnection(json_media_type)
        if self.kind == "text":
            content = self.body.encode() if isinstance(self.body, str) else bytes(self.body)
            media_type = self.media_type or TEXT_MEDIA_TYPE
            return Response(content, self.status, self.headers, media_type=media_type)
        content = json_bytes(self.body)
        if self.kind == "truncated":
            content = content[: len(content) // 2]
        media_type = self.media_type or json_media_type
        return Response(content, self.status, self.headers, media_type=media_type)


def truncated(reply: Reply) -> Reply:
    """The same answer with its body cut in half (an unparseable page)."""
    if reply.kind == "text":
        half = reply.body[: len(reply.body) // 2]
        return Reply(reply.status, half, reply.headers, "text", reply.media_type)
    return Reply(reply.status, reply.body, reply.headers, "truncated", reply.media_type)


class DroppedConnection(Response):
    """Announces a body, then ends the ASGI call without sending it: uvicorn closes the socket,
    and an httpx client raises `RemoteProtocolError` (a transport error), like a connection
    reset by a proxy. uvicorn logs one "returned without completing response" line per drop."""

    def __init__(self, media_type: str = JSON_MEDIA_TYPE) -> None:
        super().__init__(status_code=200)
        self._announced_type = media_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self._announced_type.encode()), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


@dataclass(frozen=True, slots=True)
class RequestLogEntry:
    method: str
    path: str
    params: dict[str, str]
    timestamp: float  # simulator.timer() (monotonic seconds): use differences for rates
    at: datetime  # simulator.clock()
    status: int | None  # None when the connection was dropped


# --- Fault injection -----------------------------------------------------------------------------


@dataclass(slots=True)
class PendingFault:
    kind: str  # fail | throttle | drop
    remaining: int
    status: int = 500
    path: str | None = None  # exact request path, None = any request
    limit: str = "minute"  # throttle: the limit the answer names


@dataclass(slots=True)
class Malformation:
    path: str
    page: int
    kind: str  # record | truncated
    record_index: int
    remaining: int | None  # None = every time


@dataclass(slots=True)
class AfterPage:
    path: str
    page: int
    action: Callable[[Any], Any]
    remaining: int | None  # None: every time


def _count_down(rule: Malformation | AfterPage, rules: list) -> None:
    if rule.remaining is not None:
        rule.remaining -= 1
        if rule.remaining == 0:
            rules.remove(rule)


class Faults:
    """Runtime fault switches. Counted faults apply to the next matching requests (token
    endpoint included unless a `path` is given), in the order they were queued. A page is what
    the shape's `page_of(params)` says (1 for a request without paging)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.latency = 0.0  # seconds added to every request
        self._pending: list[PendingFault] = []
        self._malformed: list[Malformation] = []
        self._expire_after: int | None = None
        self._after_page: list[AfterPage] = []

    def fail_next(self, n: int = 1, status: int = 500, path: str | None = None) -> None:
        """Answer the next n requests with a 5xx (the shape's `fault_reply`)."""
        if status not in (500, 502, 503, 504):
            raise ValueError("status must be a 5xx server error")
        self._queue(PendingFault("fail", n, status, path))

    def throttle_next(self, n: int = 1, path: str | None = None, limit: str = "minute") -> None:
        """Answer the next n requests with the shape's throttle answer for `limit`, whatever the
        real rate."""
        if limit not in LIMIT_NAMES:
            raise ValueError(f"limit must be one of {LIMIT_NAMES}")
        self._queue(PendingFault("throttle", n, 429, path, limit))

    def drop_next(self, n: int = 1, path: str | None = None) -> None:
        """Close the connection mid-response on the next n requests."""
        self._queue(PendingFault("drop", n, 0, path))

    def expire_tokens_after(self, n_requests: int) -> None:
        """Let n more authenticated requests through, then expire every access token (the next
        API call gets the shape's 401 until the client refreshes)."""
        with self._lock:
            self._expire_after = n_requests

    def malformed_page(
        self,
        path: str,
        page_number: int = 1,
        *,
        truncated: bool = False,
        record_index: int = 0,
        times: int | None = None,
    ) -> None:
        """Break one record on that page of that path (the shape's `break_record`).
        `truncated=True` cuts the body in half instead. `times=None` keeps the page broken (bad
        source data); a number heals it."""
        kind = "truncated" if truncated else "record"
        with self._lock:
            self._malformed.append(Malformation(path, page_number, kind, record_index, times))

    def after_page(
        self, path: str, page_number: int, action: Callable[[Any], Any], *, times: int | None = 1
    ) -> None:
        """Run `action(body)` (a copy) right after that page of that path was answered with 200,
        before any other request is served: someone editing the books mid-walk. The action may
        call the simulator's mutations. `times=None` runs it after every such page."""
        with self._lock:
            self._after_page.append(AfterPage(path, page_number, action, times))

    def clear(self) -> None:
        with self._lock:
            self.latency = 0.0
            self._pending.clear()
            self._malformed.clear()
            self._after_page.clear()
            self._expire_after = None

    # --- used by the engine's pipeline (under the lock) ------------------------------------------

    def _queue(self, fault: PendingFault) -> None:
        if fault.remaining < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._pending.append(fault)

    def take(self, path: str) -> PendingFault | None:
        for fault in self._pending:
            if fault.path in (None, path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._pending.remove(fault)
                return fault
        return None

    def tokens_expire_now(self) -> bool:
        if self._expire_after is None:
            return False
        if self._expire_after == 0:
            self._expire_after = None
            return True
        self._expire_after -= 1
        return False

    def malformation(self, path: str, page: int) -> Malformation | None:
        for rule in self._malformed:
            if rule.path == path and rule.page == page:
                _count_down(rule, self._malformed)
                return rule
        return None

    def served(self, path: str, page: int, reply: Reply) -> None:
        """Run the `after_page` actions due for the answer just sent."""
        if reply.status != 200 or reply.kind not in ("json", "text"):
            return
        for hook in list(self._after_page):
            if hook.path == path and hook.page == page:
                _count_down(hook, self._after_page)
                hook.action(copy.deepcopy(reply.body))


# --- Rate limits ---------------------------------------------------------------------------------


@dataclass(slots=True)
class RateLimits:
    """Limits per rate key (organisation, realm, tenant); None = no such limit. Plain
    attributes: a test may change them at any time. The second and minute windows slide; the day
    is the calendar day in `day_resets_in` (Zoho: midnight IST)."""

    per_second: int | None = None
    per_minute: int | None = None
    per_day: int | None = None
    concurrent: int | None = None
    day_resets_in: tzinfo = UTC


@dataclass(frozen=True, slots=True)
class RateStatus:
    """One key's standing after an admission (or a look): which limit refused the request (None:
    admitted), what is left of each configured limit, and seconds until each frees a request
    (the day: until midnight)."""

    key: str
    limit_hit: str | None
    remaining: dict[str, int]
    resets_in: dict[str, float]

    @property
    def admitted(self) -> bool:
        return self.limit_hit is None

    @property
    def retry_after(self) -> int:
        """Whole seconds a client should wait (Retry-After), at least 1."""
        if self.limit_hit is None:
            return 0
        return max(1, math.ceil(self.resets_in.get(self.limit_hit, 1.0)))


@dataclass(slots=True)
class Slot:
    """A request's place in its key's concurrency count, from arrival to answer."""

    key: str
    held: bool  # False: it arrived with every slot taken and will be refused "concurrent"


@dataclass(slots=True)
class _KeyState:
    last_second: deque[float] = field(default_factory=deque)
    last_minute: deque[float] = field(default_factory=deque)
    day: date | None = None
    used_today: int = 0
    in_flight: int = 0


# A concurrency slot frees when a request in flight ends; real servers say nothing (unverified).
CONCURRENT_RETRY_SECONDS = 1.0


class RateLimiter:
    """Admits requests per key or names the limit they hit. Refused requests count against
    nothing. Thread-safe on its own lock."""

    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Callable[[], datetime],
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.clock, self.timer = clock, timer
        self._keys: dict[str, _KeyState] = {}
        self._lock = threading.Lock()

    def enter(self, key: str) -> Slot:
        """A request arrived (before its latency): take a concurrency slot if one is free."""
        with self._lock:
            state = self._keys.setdefault(key, _KeyState())
            limit = self.limits.concurrent
            held = limit is None or state.in_flight < limit
            state.in_flight += held
            return Slot(key, held)

    def leave(self, slot: Slot) -> None:
        with self._lock:
            if slot.held:
                self._keys[slot.key].in_flight -= 1
                slot.held = False

    def admit(self, key: str, slot: Slot | None = None) -> RateStatus:
        """Count the request if every limit allows it; otherwise name the first limit hit (day,
        minute, second, concurrent: the longest wait first)."""
        with self._lock:
            state, now = self._rolled(key)
            hit = self._limit_hit(state, slot)
            if hit is None:
                state.last_second.append(now)
                state.last_minute.append(now)
                state.used_today += 1
            return self._status(key, state, hit, now)

    def status(self, key: str, limit_hit: str | None = None) -> RateStatus:
        """The key's standing without counting a request (`limit_hit`: a forced throttle's)."""
        with self._lock:
            state, now = self._rolled(key)
            return self._status(key, state, limit_hit, now)

    def _rolled(self, key: str) -> tuple[_KeyState, float]:
        state = self._keys.setdefault(key, _KeyState())
        now, today = self.timer(), self._local_now().date()
        if state.day != today:
            state.day, state.used_today = today, 0
        _trim(state.last_second, now - 1.0)
        _trim(state.last_minute, now - 60.0)
        return state, now

    def _limit_hit(self, state: _KeyState, slot: Slot | None) -> str | None:
        limits = self.limits
        for name, limit, used in (
            ("day", limits.per_day, state.used_today),
            ("minute", limits.per_minute, len(state.last_minute)),
            ("second", limits.per_second, len(state.last_second)),
        ):
            if limit is not None and used >= limit:
                return name
        if slot is not None and not slot.held:
            return "concurrent"
        return None

    def _status(self, key: str, state: _KeyState, hit: str | None, now: float) -> RateStatus:
        limits = self.limits
        remaining: dict[str, int] = {}
        resets_in: dict[str, float] = {}
        if limits.per_day is not None:
            remaining["day"] = max(limits.per_day - state.used_today, 0)
            resets_in["day"] = self._seconds_to_midnight()
        for name, limit, window, span in (
            ("minute", limits.per_minute, state.last_minute, 60.0),
            ("second", limits.per_second, state.last_second, 1.0),
        ):
            if limit is not None:
                remaining[name] = max(limit - len(window), 0)
                resets_in[name] = _frees_in(window, limit, span, now)
        if limits.concurrent is not None:
            remaining["concurrent"] = max(limits.concurrent - state.in_flight, 0)
            resets_in["concurrent"] = CONCURRENT_RETRY_SECONDS
        return RateStatus(key, hit, remaining, resets_in)

    def _local_now(self) -> datetime:
        return self.clock().astimezone(self.limits.day_resets_in).replace(microsecond=0)

    def _seconds_to_midnight(self) -> float:
        now = self._local_now()
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0)
        return (midnight - now).total_seconds()


def _trim(window: deque[float], older_than: float) -> None:
    while window and window[0] <= older_than:
        window.popleft()


def _frees_in(window: deque[float], limit: int, span: float, now: float) -> float:
    """Seconds until a sliding window of `span` holds fewer than `limit` requests."""
    if len(window) < limit:
        return 0.0
    return max(window[len(window) - limit] + span - now, 0.0)


# --- The engine ----------------------------------------------------------------------------------

Handler = Callable[[Request, dict[str, str]], Reply]


class Knob:
    """A shape's plain-looking attribute kept in the engine's state, so that a shape keeps its
    own names: `daily_limit = Knob("limiter.limits", "per_day")` reads and sets
    `sim.limiter.limits.per_day`."""

    def __init__(self, holder: str, name: str) -> None:
        self.holder, self.name = holder.split("."), name

    def _target(self, obj: Any) -> Any:
        for part in self.holder:
            obj = getattr(obj, part)
        return obj

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(self._target(obj), self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(self._target(obj), self.name, value)


class SimulatorEngine:
    """State and pipeline every simulator shares; a Shape subclasses it (see the module doc).

    Attributes: lock (re-entrant, held while a request is answered and by mutations), clock,
    timer, faults, request_log (bounded), requests_served / requests_throttled /
    requests_dropped, limiter (`limiter.limits`), oauth (`oauth.policy`), app (built on first
    use from `routes()`)."""

    json_media_type = JSON_MEDIA_TYPE

    def __init__(
        self,
        *,
        limits: RateLimits | None = None,
        token_policy: TokenPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        timer: Callable[[], float] = time.monotonic,
        new_token: Callable[[str], str] | None = None,
        log_size: int = 200_000,
    ) -> None:
        self.lock = threading.RLock()
        limits = limits or RateLimits()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(limits.day_resets_in))
        self.timer = timer
        self.faults = Faults(self.lock)
        # Bounded so that a long-running `serve()` does not grow without limit.
        self.request_log: deque[RequestLogEntry] = deque(maxlen=log_size)
        self.requests_served = 0
        self.requests_throttled = 0
        self.requests_dropped = 0
        # Lambdas, not the bound functions: tests replace `clock` and `timer` on the simulator.
        self.limiter = RateLimiter(limits, clock=lambda: self.clock(), timer=lambda: self.timer())
        oauth_options = {"new_token": new_token} if new_token else {}
        self.oauth = OAuthServer(
            token_policy, timer=lambda: self.timer(), lock=self.lock, **oauth_options
        )

    # --- hooks a Shape overrides -----------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The shape's routes: `api_route(...)` for the pipeline, plain Starlette routes for
        anything outside it (e.g. a simulator info endpoint)."""
        raise NotImplementedError

    def access_token(self, request: Request) -> str:
        """The access token a request presents ("" for none)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def rate_key(self, request: Request, params: dict[str, str]) -> str:
        """What the limits count per: the organisation, realm or tenant of the request."""
        return ""

    def refuse(self, request: Request, params: dict[str, str]) -> Reply | None:
        """An answer for an authenticated request the shape refuses before it counts against a
        limit (an unknown organisation, a missing tenant header), or None."""
        return None

    def unauthorised_reply(self, request: Request) -> Reply:
        return Reply(401, {"error": "unauthorised"})

    def fault_reply(self, status: int) -> Reply:
        """The answer to a `faults.fail_next` request."""
        return Reply(status, {"error": "internal server error"})

    def throttle_reply(self, status: RateStatus) -> Reply:
        """The answer when `status.limit_hit` refused the request (or a forced throttle)."""
        headers = {"Retry-After": str(status.retry_after)}
        return Reply(429, {"error": "rate limit exceeded", "limit": status.limit_hit}, headers)

    def rate_headers(self, status: RateStatus) -> dict[str, str]:
        """Headers every answer of a rate-limited route carries (throttles included)."""
        return {}

    def break_record(self, body: Any, index: int) -> Any:
        """One realistic defect in record `index` of a page body (already a copy)."""
        raise NotImplementedError(f"{type(self).__name__} cannot break a record")

    def page_of(self, params: dict[str, str]) -> int:
        """The page a request asks for, as faults count pages; ValueError when unreadable."""
        return int(params.get("page") or 1)

    async def request_params(self, request: Request) -> dict[str, str]:
        """Query string plus urlencoded form fields (token endpoints take either)."""
        params = dict(request.query_params)
        body = await request.body()
        params.update(form_fields(body, request.headers.get("content-type", "")))
        return params

    def not_found_reply(self, request: Request) -> Reply:
        return Reply(404, {"error": "not found"})

    def method_not_allowed_reply(self, request: Request) -> Reply:
        return Reply(405, {"error": "method not allowed"})

    # --- building blocks -------------------------------------------------------------------------

    def api_route(
        self,
        path: str,
        handler: Handler,
        *,
        methods: Iterable[str] = ("GET",),
        auth: bool = True,
        limited: bool = True,
    ) -> Route:
        """A route through the pipeline. `auth`: needs a live access token; `limited`: counts
        against the limits of its `rate_key` and carries `rate_headers`."""

        async def endpoint(request: Request) -> Response:
            return await self.respond(request, handler, auth=auth, limited=limited)

        return Route(path, endpoint, methods=list(methods))

    @cached_property
    def app(self) -> Starlette:
        return build_app(
            self.routes(),
            not_found=self.not_found_reply,
            method_not_allowed=self.method_not_allowed_reply,
            json_media_type=self.json_media_type,
        )

    # --- the pipeline ----------------------------------------------------------------------------

    async def respond(
        self, request: Request, handler: Handler, *, auth: bool = True, limited: bool = True
    ) -> Response:
        params = await self.request_params(request)
        key = self.rate_key(request, params)
        # The slot is taken on arrival and held across the latency, so that requests overlapping
        # in time really overlap for a concurrency limit.
        slot = self.limiter.enter(key) if limited else None
        try:
            if self.faults.latency > 0:
                await asyncio.sleep(self.faults.latency)
            with self.lock:
                reply = self._answer(request, params, handler, key, slot, auth, limited)
        finally:
            if slot is not None:
                self.limiter.leave(slot)
        return reply.to_response(self.json_media_type)

    def _answer(
        self,
        request: Request,
        params: dict[str, str],
        handler: Handler,
        key: str,
        slot: Slot | None,
        auth: bool,
        limited: bool,
    ) -> Reply:
        path = request.url.path
        fault = self.faults.take(path)
        if fault is not None:
            reply, throttled = self._fault_answer(fault, key), fault.kind == "throttle"
        else:
            reply, throttled = self._serve(request, params, handler, key, slot, auth, limited)
        page = self._page(params)
        if page is not None and reply.status == 200 and reply.kind in ("json", "text"):
            reply = self._maybe_malformed(path, page, reply)
        self._record(request.method, path, params, reply, throttled)
        if page is not None:
            self.faults.served(path, page, reply)
        return reply

    def _serve(
        self,
        request: Request,
        params: dict[str, str],
        handler: Handler,
        key: str,
        slot: Slot | None,
        auth: bool,
        limited: bool,
    ) -> tuple[Reply, bool]:
        """(answer, throttled) of a request no queued fault took."""
        if auth:
            if self.faults.tokens_expire_now():
                self.oauth.expire_access_tokens()
            if not self.oauth.authorised(self.access_token(request)):
                return self.unauthorised_reply(request), False
        if not limited:
            return handler(request, params), False
        refusal = self.refuse(request, params)
        if refusal is not None:
            return refusal, False
        status = self.limiter.admit(key, slot)
        reply = handler(request, params) if status.admitted else self.throttle_reply(status)
        reply.headers.update(self.rate_headers(status))
        return reply, not status.admitted

    def _fault_answer(self, fault: PendingFault, key: str) -> Reply:
        if fault.kind == "drop":
            return Reply(0, kind="drop")
        if fault.kind == "throttle":
            status = self.limiter.status(key, limit_hit=fault.limit)
            reply = self.throttle_reply(status)
            reply.headers.update(self.rate_headers(status))
            return reply
        return self.fault_reply(fault.status)

    def _page(self, params: dict[str, str]) -> int | None:
        try:
            return self.page_of(params)
        except ValueError:
            return None

    def _maybe_malformed(self, path: str, page: int, reply: Reply) -> Reply:
        rule = self.faults.malformation(path, page)
        if rule is None:
            return reply
        if rule.kind == "truncated":
            return truncated(reply)
        broken = self.break_record(copy.deepcopy(reply.body), rule.record_index)
        return Reply(reply.status, broken, reply.headers, reply.kind, reply.media_type)

    def _record(
        self, method: str, path: str, params: dict[str, str], reply: Reply, throttled: bool
    ) -> None:
        status = None if reply.kind == "drop" else reply.status
        self.request_log.append(
            RequestLogEntry(method, path, dict(params), self.timer(), self.clock(), status)
        )
        if status is None:
            self.requests_dropped += 1
        elif throttled or status == 429:
            self.requests_throttled += 1
        else:
            self.requests_served += 1


# --- App and serving -----------------------------------------------------------------------------


def form_fields(body: bytes, content_type: str) -> dict[str, str]:
    if not body or "application/x-www-form-urlencoded" not in content_type:
        return {}
    return dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))


def build_app(
    routes: list[BaseRoute],
    *,
    not_found: Callable[[Request], Reply] | None = None,
    method_not_allowed: Callable[[Request], Reply] | None = None,
    json_media_type: str = JSON_MEDIA_TYPE,
) -> Starlette:
    """A Starlette app whose unknown URLs and wrong methods answer in the shape's JSON."""

    def handler(reply_for: Callable[[Request], Reply]) -> Callable[..., Any]:
        async def answer(request: Request, exc: Exception) -> Response:
            return reply_for(request).to_response(json_media_type)

        return answer

    handlers = {
        404: handler(not_found or (lambda _: Reply(404, {"error": "not found"}))),
        405: handler(method_not_allowed or (lambda _: Reply(405, {"error": "method not allowed"}))),
    }
    return Starlette(routes=routes, exception_handlers=handlers)


def serve(app: Any, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until Ctrl-C (the `hub simulate` commands)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")
