"""The HTTP client every REST connector uses: pooling, rate limiting, retries, classification.

One `HttpClient.request()` call is one logical request. Before every attempt it waits for the
organisation's token bucket; it retries transport errors, 429 and 5xx with exponential backoff and
full jitter (or the server's `Retry-After`), re-authenticates once on a 401, and finally raises a
classified `SyncError` whose text is redacted.

A request that is not idempotent (POST, PATCH: a token refresh) is repeated only when the source
certainly did not act on it: no connection was made, or it answered 429. After a timeout, a dropped
connection or a 5xx the source may have acted, so the client raises `OutcomeUnknown` at once and
leaves the decision to the caller, who can look at what happened first.

Systems adapt it with a response check: a function that looks at any response and returns a
`Failure` when it is one (Zoho's token endpoint answers 200 with `{"error": …}`) or a custom retry
delay (Zoho's `X-Rate-Limit-Reset`), and `None` to fall back to the status-code rules.

A client given a `quota_header` remembers what the source's last answer carrying it said is left
of its API quota (`quota_remaining`), for progress reports; answers without it change nothing.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import random
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any, Protocol

import httpx
import orjson

from hub_pipelines.connectors.errors import Category, SyncError, is_retryable
from hub_pipelines.connectors.ratelimit import bucket_for
from hub_pipelines.connectors.redact import Redactor, default_redactor
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines.connectors.transport import HttptoolsTransport

BODY_EXCERPT_CHARS = 300
# RFC 9110 section 9.2.2: sending these twice has the effect of sending them once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Transport errors raised before the request left: repeating cannot make the source act twice.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Header values that are credentials: registered with the redactor whenever they are sent.
_SECRET_HEADERS = frozenset({"authorization", "pwd", "password", "x-api-key", "api-key"})


def _user_agent() -> str:
    try:
        version = importlib.metadata.version("hub-pipelines")
    except importlib.metadata.PackageNotFoundError:  # a source tree never installed
        version = "0+unknown"
    return f"accounting-integration-hub/{version}"


# Names the hub in the sources' logs (Xero and Intuit ask integrations to name themselves);
# httpx's own would be python-httpx/<version>. A connector's `headers` may replace it.
USER_AGENT = _user_agent()


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed, as decided by the status rules or a system's response check."""

    category: Category
    message: str
    retryable: bool | None = None  # None: the category's default (RATE_LIMIT/NETWORK/SERVER retry)
    retry_after: float | None = None  # seconds the source asked us to wait
    code: str | None = None
    suggested_fix: str | None = None
    unprocessed: bool = False  # certainly not acted on (no connection): safe to send again

    @property
    def should_retry(self) -> bool:
        return is_retryable(self.category) if self.retryable is None else self.retryable

    @property
    def repeatable(self) -> bool:
        """Whether sending a non-idempotent request again cannot make the source act twice: it
        was never received, or refused by a rate limit before any work."""
        return self.unprocessed or self.category is Category.RATE_LIMIT


class OutcomeUnknown(SyncError):
    """A request that is not safe to repeat failed after the source may have acted on it (a read
    timeout, a dropped connection, a 5xx, an unreadable answer). The client does not repeat it;
    the caller checks what happened before deciding (`oauth.OAuthTokenManager` re-reads the
    stored tokens). Category and retryability are the failure's, for a re-run of the import."""


ResponseCheck = Callable[[httpx.Response], Failure | None]


class Authenticator(Protocol):
    """Credentials for each attempt; see `oauth.BearerAuth`."""

    def headers(self) -> Mapping[str, str]:
        """Headers for the next attempt (may refresh a token first)."""
        ...

    def unauthorized(self, sent: Mapping[str, str]) -> None:
        """The source answered 401 to a request sent with `sent`: use fresh credentials next."""
        ...


class LogSink(Protocol):
    """`logging.Logger` or Dagster's `context.log`."""

    def warning(self, msg: str, *args: Any) -> None: ...


def status_failure(response: httpx.Response) -> Failure | None:
    """The default rules: 2xx/3xx succeed; 401/403 AUTH, 429 RATE_LIMIT, 5xx SERVER,
    404/410 SOURCE_DATA (the record is gone), any other 4xx CONFIG (our request is wrong)."""
    status = response.status_code
    if status < 400:
        return None
    excerpt = body_excerpt(response)
    if status in (401, 403):
        return Failure(Category.AUTH, excerpt)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return Failure(Category.RATE_LIMIT, excerpt, retry_after=retry_after)
    if status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return Failure(Category.SERVER, excerpt, retry_after=retry_after)
    if status in (404, 410):
        return Failure(Category.SOURCE_DATA, excerpt)
    return Failure(Category.CONFIG, excerpt)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds or an HTTP-date; None when absent/invalid."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT; parsedate leaves "-0000" naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, decoded once however many checks read it (a response check, then
    the caller): `ValueError` when the body is not JSON."""
    try:
        return response.extensions["hub.json"]
    except KeyError:
        body = response.extensions["hub.json"] = _parsed_json(response.content)
        return body


def _parsed_json(content: bytes) -> Any:
    """orjson, faster on a page of records; the standard library for what orjson would refuse
    (UTF-16 text, a lone surrogate, NaN), so a record the warehouse cannot store still fails
    alone, not with its page, and for a body with a run of 20 digits, since orjson reads an
    integer past 64 bits as an inexact float."""
    if _LONG_DIGITS not in content.translate(_DIGITS_AS_NINES):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return json.loads(content)


_DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_LONG_DIGITS = b"9" * 20


def body_excerpt(response: httpx.Response, limit: int = BODY_EXCERPT_CHARS) -> str:
    """The start of a body on one line (not redacted: the client redacts whole messages)."""
    text = " ".join(response.text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[:limit] + "…"


class HttpClient:
    """One pooled `httpx.Client` per connector; thread-safe; counts `api_calls` and `retries`.
    It keeps no cookie: the sources' APIs authenticate by token."""

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        base_url: str = "",
        headers: Mapping[str, str] | None = None,
        rate_limit: float | None = None,
        check: ResponseCheck | None = None,
        logger: LogSink | None = None,
        redactor: Redactor | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        quota_header: str | None = None,
        calls_at_once: int = 1,
    ) -> None:
        """`rate_limit`: requests per minute per organisation, applied to requests that pass a
        `rate_key`. `check`: the default response check for every request of this client.
        `quota_header`: the response header counting the requests left in the source's quota
        (Zoho: `X-Rate-Limit-Remaining`), read into `quota_remaining`. `calls_at_once`: the most
        calls the connector makes at a time, the connections kept alive between them."""
        self.settings = settings or HttpSettings.from_env()
        self.rate_limit = rate_limit
        self.redactor = redactor or default_redactor()
        self._check = check
        self._quota_header = quota_header
        self.quota_remaining: int | None = None  # the least an answer's `quota_header` said
        self._logger: LogSink = logger or logging.getLogger(__name__)
        self._sleep = sleep
        self._rng = rng or random.Random()  # jitter only: no cryptographic strength needed
        self._counter_lock = threading.Lock()
        self.api_calls = 0
        self.retries = 0
        self._registered: set[str] = set()  # secret header values the redactor already has
        limits = self.settings.limits(calls_at_once)
        # Through a proxy the environment names (HTTPS_PROXY, NO_PROXY…), httpx's own transport,
        # which httpx mounts for proxies only when it picks the transports itself. Else the
        # httptools transport, called straight: httpx's client would only add its cookie jar,
        # which an API authenticated by token does not need, at 10 % of a Zoho import's CPU
        # (every answer wrapped for http.cookiejar).
        self._direct = None if urllib.request.getproxies() else HttptoolsTransport(limits)
        self._client = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),  # none, proxied or not
            limits=limits,
            transport=self._direct,
            timeout=self.settings.timeout,
        )
        self._register_secret_headers(self._client.headers)
        # Paths join under it as httpx joins them; "" (joined by httpx) without a base URL or
        # with a query of its own.
        plain = base_url and not self._client.base_url.query
        self._base_url = str(self._client.base_url).rstrip("/") + "/" if plain else ""

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        rate_key: str | None = None,
        auth: Authenticator | None = None,
        check: ResponseCheck | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send with retries; returns the successful response or raises a classified SyncError.

        `rate_key` names the organisation's token bucket (e.g. "zoho_books:<org id>"); requests
        without one (token endpoints on another host) are not throttled. `idempotent`: whether
        sending the request twice is harmless (default: by method, `IDEMPOTENT_METHODS`); when it
        is not, a failure after which the source may have acted raises `OutcomeUnknown` at once.
        """
        check = check or self._check
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        sent = failures = 0  # failures: attempts used from the RETRY_MAX_ATTEMPTS budget
        reauthenticated = False
        while True:
            request = self._build(method, url, params, headers, json, content, data, auth)
            response, failure = self._attempt(request, rate_key, check)
            sent += 1
            if response is not None and failure is None:
                return response
            assert failure is not None
            unauthorized = response is not None and response.status_code == 401
            if auth is not None and unauthorized and not reauthenticated:
                # A token revoked or rotated elsewhere: one more try with a fresh one.
                reauthenticated = True
                auth.unauthorized(request.headers)
                self._note_retry(request, response, "; retrying once with a fresh access token")
                continue
            failures += 1
            final = self._final_error_type(failure, failures, idempotent)
            if final is not None:
                raise self._error(request, response, failure, sent, final)
            delay = self._delay(failures, failure.retry_after)
            attempts = f"attempt {failures} of {self.settings.retry_max_attempts}"
            self._note_retry(
                request, response, f" ({attempts}): {failure.message}; retrying in {delay:.2f}s"
            )
            self._sleep(delay)

    def _final_error_type(
        self, failure: Failure, failures: int, idempotent: bool
    ) -> type[SyncError] | None:
        """None to try again, else the error to raise: `OutcomeUnknown` when trying again could
        make the source act twice (a refresh POST that was received rotates the token)."""
        if not failure.should_retry:
            return SyncError
        if not (idempotent or failure.repeatable):
            return OutcomeUnknown
        return SyncError if failures >= self.settings.retry_max_attempts else None

    def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET and decode JSON; a body that is not JSON is a (retryable) SERVER error."""
        response = self.request("GET", url, **kwargs)
        try:
            return json_body(response)
        except ValueError:
            message = f"GET {response.request.url} answered a body that is not JSON: "
            raise SyncError(
                Category.SERVER,
                self.redactor.redact(message + body_excerpt(response)),
                code="invalid_json",
            ) from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _build(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        json: Any,
        content: str | bytes | None,
        data: Mapping[str, Any] | None,
        auth: Authenticator | None,
    ) -> httpx.Request:
        merged = dict(headers or {})
        if auth is not None:
            merged.update(auth.headers())  # per attempt: the token may have been refreshed
        self._register_secret_headers(merged)
        if params is not None and self._base_url and "?" not in url and "://" not in url:
            url, params = self._joined(url, params), None
        return self._client.build_request(
            method, url, params=params, headers=merged, json=json, content=content, data=data
        )

    def _joined(self, path: str, params: Mapping[str, Any]) -> str:
        """The absolute URL httpx would make of a path under the base URL and its query: joined
        here, httpx parses it once instead of three times (295 -> 260 us of client CPU per Zoho
        detail read on loopback; a large import makes a hundred thousand of them)."""
        query = str(httpx.QueryParams(params))
        return f"{self._base_url}{path.lstrip('/')}" + (f"?{query}" if query else "")

    def _attempt(
        self, request: httpx.Request, rate_key: str | None, check: ResponseCheck | None
    ) -> tuple[httpx.Response | None, Failure | None]:
        self._throttle(rate_key)
        with self._counter_lock:
            self.api_calls += 1
        try:
            response = self._send(request)
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            return None, Failure(Category.CONFIG, self.redactor.describe(exc), retryable=False)
        except httpx.TransportError as exc:
            code, unsent = type(exc).__name__, isinstance(exc, _NOT_SENT)
            message = self.redactor.describe(exc)
            return None, Failure(Category.NETWORK, message, code=code, unprocessed=unsent)
        self._note_quota(response)
        failure = (check(response) if check else None) or status_failure(response)
        return response, failure

    def _send(self, request: httpx.Request) -> httpx.Response:
        """The answer, its body read; through httpx's client when it routes to a proxy."""
        if self._direct is None:
            return self._client.send(request)
        response = self._direct.handle_request(request)
        response.request = request
        try:
            response.read()
        finally:
            response.close()
        return response

    def _note_quota(self, response: httpx.Response) -> None:
        """Remember the quota the source reports: the smallest count an answer gave, since
        concurrent requests reach the source, and their answers the client, in any order (a run
        that crosses the source's daily reset thus stops early, and is retried). An answer
        without a whole number (a token endpoint on another host, a proxy's error page) leaves
        the count standing."""
        if self._quota_header is None:
            return
        value = response.headers.get(self._quota_header, "").strip()
        if value.isdigit():
            with self._counter_lock:
                if self.quota_remaining is None or int(value) < self.quota_remaining:
                    self.quota_remaining = int(value)

    def _throttle(self, rate_key: str | None) -> None:
        if rate_key is None:
            return
        if self.rate_limit is None:
            raise ValueError("HttpClient(rate_limit=…) is required to throttle by rate_key")
        bucket_for(rate_key, self.rate_limit).acquire()

    def _delay(self, failures: int, retry_after: float | None) -> float:
        """Seconds before the next attempt; the server's wish wins, both capped by the maximum."""
        cap = self.settings.retry_max_delay
        if retry_after is not None:
            return min(retry_after, cap)
        # Full jitter (uniform 0..ceiling) spreads the retries of many workers hit at once.
        ceiling = min(cap, self.settings.retry_initial_delay * 2 ** (failures - 1))
        return self._rng.uniform(0, ceiling)

    def _note_retry(
        self, request: httpx.Request, response: httpx.Response | None, detail: str
    ) -> None:
        with self._counter_lock:
            self.retries += 1
        message = f"{request.method} {request.url} {_describe_outcome(response)}{detail}"
        self._logger.warning(self.redactor.redact(message))

    def _error(
        self,
        request: httpx.Request,
        response: httpx.Response | None,
        failure: Failure,
        attempts: int,
        error_type: type[SyncError] = SyncError,
    ) -> SyncError:
        message = f"{request.method} {request.url} {_describe_outcome(response)}"
        message += f" after {attempts} attempt{'s' if attempts > 1 else ''}: {failure.message}"
        if error_type is OutcomeUnknown:
            message += "; not repeated: the source may have acted on it"
        code = failure.code or (str(response.status_code) if response is not None else None)
        return error_type(
            failure.category,
            self.redactor.redact(message),
            suggested_fix=failure.suggested_fix,
            retryable=failure.retryable,
            code=code,
            retry_after=failure.retry_after,
        )

    def _register_secret_headers(self, headers: Mapping[str, str]) -> None:
        """Each new credential once (an access token is sent with every request until it is
        refreshed; registering means recompiling the redactor's pattern)."""
        for name, value in headers.items():
            if name.lower() in _SECRET_HEADERS and value not in self._registered:
                # "Bearer abc" -> also "abc", which a server might echo on its own.
                self.redactor.register(value, value.rpartition(" ")[2])
                self._registered.add(value)


def _describe_outcome(response: httpx.Response | None) -> str:
    return "failed" if response is None else f"answered HTTP {response.status_code}"
