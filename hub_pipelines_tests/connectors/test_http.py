"""HttpClient against a real loopback server: retries, Retry-After, classification, redaction."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.http import Failure, HttpClient, OutcomeUnknown, parse_retry_after
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines_tests.connectors.conftest import (
    DroppedResponse,
    RecordingSleep,
    hit_counter,
    raw_server,
)

HITS: Counter[str] = Counter()


async def flaky(request: Request) -> Response:
    """Fails `fail` times with `status` (and `retry_after` if given), then succeeds."""
    hits = hit_counter(request, HITS)
    if hits <= int(request.query_params.get("fail", "0")):
        retry_after = request.query_params.get("retry_after")
        headers = {"Retry-After": retry_after} if retry_after else {}
        status = int(request.query_params.get("status", "503"))
        return JSONResponse({"code": 1000, "message": "try later"}, status, headers=headers)
    return JSONResponse({"ok": True, "hits": hits})


async def drop(request: Request) -> Response:
    if hit_counter(request, HITS) <= int(request.query_params.get("fail", "1")):
        return DroppedResponse()
    return JSONResponse({"ok": True})


async def always(request: Request) -> Response:
    status = int(request.path_params["status"])
    echoed = request.query_params.get("echo", "")
    return PlainTextResponse(f"failure {status}; you sent {echoed}", status)


async def zoho_style(request: Request) -> Response:
    """Zoho quirks: a 200 that is an error; 429 with X-Rate-Limit-Reset instead of Retry-After."""
    if request.query_params.get("kind") == "token":
        return JSONResponse({"error": "invalid_code"})
    if hit_counter(request, HITS) == 1:
        headers = {"X-Rate-Limit-Reset": "4", "X-Rate-Limit-Remaining": "0"}
        return JSONResponse({"code": 45, "message": "Rate limit exceeded"}, 429, headers=headers)
    return JSONResponse({"code": 0, "message": "success"})


async def not_json(request: Request) -> Response:
    return PlainTextResponse("<html>proxy error</html>")


async def slow(request: Request) -> Response:
    """Acts on the request at once, answers after `delay` seconds (past a short client timeout)."""
    hit_counter(request, HITS)
    await asyncio.sleep(float(request.query_params.get("delay", "0.6")))
    return JSONResponse({"ok": True})


# Bodies a fast JSON parser refuses and the standard library reads: each must still parse, so a
# record the warehouse cannot store fails alone (its page is not lost).
ODD_BODIES = {
    "lone-surrogate": (b'{"Name": "Caf\\ud800"}', "application/json", {"Name": "Caf\ud800"}),
    "utf-16": ('{"Name": "Caf\u00e9"}'.encode("utf-16"), "application/json", {"Name": "Caf\u00e9"}),
    "huge-integer": (
        b'{"Id": 123456789012345678901234567890}',
        "application/json",
        {"Id": 123456789012345678901234567890},
    ),
}


async def odd_json(request: Request) -> Response:
    body, media_type, _ = ODD_BODIES[request.path_params["kind"]]
    return Response(body, media_type=media_type)


async def peer(request: Request) -> Response:
    """The client's port, which names the connection the call came on, after a short wait so
    that calls made at once overlap."""
    await asyncio.sleep(0.01)
    return JSONResponse({"port": request.client.port})


async def agent(request: Request) -> Response:
    return JSONResponse({"user_agent": request.headers.get("user-agent")})


async def cookie(request: Request) -> Response:
    """Sets a cookie and tells which the call brought."""
    answer = JSONResponse({"brought": request.headers.get("cookie")})
    answer.set_cookie("AWSALB", "affinity")
    return answer


async def echo_target(request: Request) -> Response:
    """The request target as it came on the wire (Starlette's `url` decodes it)."""
    query = request.scope["query_string"].decode()
    return JSONResponse(
        {"target": request.scope["raw_path"].decode() + (f"?{query}" * bool(query))}
    )


ANY_METHOD = ["GET", "POST", "PUT", "PATCH"]
ROUTES = [
    Route("/flaky", flaky, methods=ANY_METHOD),
    Route("/drop", drop, methods=ANY_METHOD),
    Route("/always/{status}", always, methods=ANY_METHOD),
    Route("/zoho", zoho_style, methods=["GET", "POST"]),
    Route("/text", not_json),
    Route("/slow", slow, methods=ANY_METHOD),
    Route("/odd/{kind}", odd_json),
    Route("/peer", peer),
    Route("/cookie", cookie),
    Route("/agent", agent),
    Route("/api/{rest:path}", echo_target),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    from starlette.applications import Starlette

    with LoopbackServer(Starlette(routes=ROUTES)) as running:
        yield running


def new_id() -> str:
    return uuid.uuid4().hex


def client_for(server: LoopbackServer, settings: HttpSettings, **kwargs) -> HttpClient:
    return HttpClient(settings, base_url=server.url, **kwargs)


@pytest.mark.parametrize("base", ["/api/v3", "/api/v3/"])
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/invoices/1", {"organization_id": "60001"}),
        ("invoices/1", {"a": ["x", "y"], "b": "c d", "n": 5, "t": True, "z": None}),
        ("/contacts", {}),
        ("", {"q": "é&=/?"}),
        ("/a b/ü", {"k": "v"}),
        ("/invoices?page=2", {"per_page": 200}),  # httpx replaces the path's query
    ],
)
def test_a_path_and_its_query_reach_the_server_as_httpx_joins_them(
    server: LoopbackServer, fast_settings: HttpSettings, base: str, path: str, params: dict
) -> None:
    """The client joins a path under its base URL itself (one URL parse, not three): the
    server must see exactly the URL httpx would have made."""
    client = HttpClient(fast_settings, base_url=server.url + base)
    expected = httpx.Client(base_url=server.url + base).build_request("GET", path, params=params)

    assert client.get_json(path, params=params)["target"] == expected.url.raw_path.decode()


def test_retries_5xx_with_growing_full_jitter_then_succeeds(
    server: LoopbackServer, fast_settings: HttpSettings, recording_sleep: RecordingSleep
) -> None:
    with client_for(server, fast_settings, sleep=recording_sleep) as client:
        response = client.request("GET", "/flaky", params={"id": new_id(), "fail": 2})
        assert response.json()["hits"] == 3
        assert (client.api_calls, client.retries) == (3, 2)
    first, second = recording_sleep.delays
    assert 0 <= first <= 0.010 and 0 <= second <= 0.020  # ceilings 10 ms, then 20 ms


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("2", 2.0), ("120", 5.0)],  # honoured as sent; capped by RETRY_MAX_DELAY (5000 ms here)
)
def test_429_honours_retry_after_seconds_capped_by_max_delay(
    server: LoopbackServer,
    fast_settings: HttpSettings,
    recording_sleep: RecordingSleep,
    retry_after: str,
    expected: float,
) -> None:
    params = {"id": new_id(), "fail": 1, "status": 429, "retry_after": retry_after}
    with client_for(server, fast_settings, sleep=recording_sleep) as client:
        assert client.request("GET", "/flaky", params=params).status_code == 200
    assert recording_sleep.delays == [expected]


def test_retry_after_as_http_date(
    server: LoopbackServer, fast_settings: HttpSettings, recording_sleep: RecordingSleep
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    params = {"id": new_id(), "fail": 1, "status": 503, "retry_after": when}
    with client_for(server, fast_settings, sleep=recording_sleep) as client:
        client.request("GET", "/flaky", params=params)
    assert 1.5 < recording_sleep.delays[0] <= 3.0


def test_parse_retry_after_forms() -> None:
    now = datetime(2025, 3, 1, tzinfo=UTC)
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("Sat, 01 Mar 2025 00:00:10 GMT", now=now) == 10.0
    assert parse_retry_after("Fri, 28 Feb 2025 00:00:00 GMT", now=now) == 0.0  # already past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_dropped_connection_is_retried_with_real_sleep(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RETRY_INITIAL_DELAY", "10")
    monkeypatch.setenv("RETRY_MAX_DELAY", "50")
    logger = logging.getLogger("hub_pipelines_tests.http")
    with HttpClient(HttpSettings.from_env(), base_url=server.url, logger=logger) as client:
        with caplog.at_level(logging.WARNING, logger=logger.name):
            response = client.request("GET", "/drop", params={"id": new_id(), "fail": 2})
        assert response.json() == {"ok": True}
        assert (client.api_calls, client.retries) == (3, 2)
    retry_logs = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert len(retry_logs) == 2 and all("RemoteProtocolError" in m for m in retry_logs)


@pytest.mark.parametrize(
    ("status", "category"), [(400, Category.CONFIG), (404, Category.SOURCE_DATA)]
)
def test_other_4xx_are_not_retried(
    server: LoopbackServer,
    fast_settings: HttpSettings,
    recording_sleep: RecordingSleep,
    status: int,
    category: Category,
) -> None:
    with client_for(server, fast_settings, sleep=recording_sleep) as client:
        with pytest.raises(SyncError) as raised:
            client.request("GET", f"/always/{status}")
        assert client.api_calls == 1 and client.retries == 0
    assert raised.value.category is category and not raised.value.retryable
    assert raised.value.code == str(status)
    assert recording_sleep.delays == []


@pytest.mark.parametrize(
    ("status", "category", "attempts"),
    [(503, Category.SERVER, 3), (429, Category.RATE_LIMIT, 3), (401, Category.AUTH, 1)],
)
def test_final_failure_is_classified_with_method_url_status_and_body(
    server: LoopbackServer,
    fast_settings: HttpSettings,
    recording_sleep: RecordingSleep,
    status: int,
    category: Category,
    attempts: int,
) -> None:
    with client_for(server, fast_settings, sleep=recording_sleep) as client:
        with pytest.raises(SyncError) as raised:
            client.request("GET", f"/always/{status}")
        assert client.api_calls == attempts  # capped at RETRY_MAX_ATTEMPTS (3 here)
    message = raised.value.message
    assert f"GET {server.url}/always/{status} answered HTTP {status}" in message
    assert f"failure {status}" in message  # body excerpt
    assert raised.value.category is category


def test_connection_refused_is_network_after_max_attempts(fast_settings: HttpSettings) -> None:
    with HttpClient(fast_settings, sleep=RecordingSleep()) as client:
        with pytest.raises(SyncError) as raised:
            client.request("GET", "http://127.0.0.1:9/nothing-listens-here")
        assert client.api_calls == fast_settings.retry_max_attempts
    assert raised.value.category is Category.NETWORK and raised.value.retryable
    assert "ConnectError" in raised.value.message


def test_check_hook_turns_a_200_into_an_auth_error(
    server: LoopbackServer, fast_settings: HttpSettings
) -> None:
    def zoho_token_check(response: httpx.Response) -> Failure | None:
        error = response.json().get("error")
        return Failure(Category.AUTH, f"token refused: {error}") if error else None

    with client_for(server, fast_settings, check=zoho_token_check) as client:
        with pytest.raises(SyncError) as raised:
            client.request("POST", "/zoho", params={"kind": "token"})
        assert client.api_calls == 1
    assert raised.value.category is Category.AUTH
    assert "answered HTTP 200" in raised.value.message and "invalid_code" in raised.value.message


def test_check_hook_supplies_a_custom_retry_delay(
    server: LoopbackServer, fast_settings: HttpSettings, recording_sleep: RecordingSleep
) -> None:
    def zoho_check(response: httpx.Response) -> Failure | None:
        if response.status_code == 429:
            reset = float(response.headers["X-Rate-Limit-Reset"])
            return Failure(Category.RATE_LIMIT, response.text, retry_after=reset)
        return None

    with client_for(server, fast_settings, check=zoho_check, sleep=recording_sleep) as client:
        assert client.get_json("/zoho", params={"id": new_id()}) == {
            "code": 0,
            "message": "success",
        }
    assert recording_sleep.delays == [4.0]


def test_body_that_is_not_json_is_a_server_error(
    server: LoopbackServer, fast_settings: HttpSettings
) -> None:
    with client_for(server, fast_settings) as client, pytest.raises(SyncError) as raised:
        client.get_json("/text")
    assert raised.value.category is Category.SERVER and "proxy error" in raised.value.message


@pytest.mark.parametrize("kind", sorted(ODD_BODIES))
def test_bodies_the_fast_parser_refuses_are_read_as_the_standard_library_reads_them(
    server: LoopbackServer, fast_settings: HttpSettings, kind: str
) -> None:
    with client_for(server, fast_settings) as client:
        assert client.get_json(f"/odd/{kind}") == ODD_BODIES[kind][2]


def test_secrets_never_reach_logs_or_errors(
    server: LoopbackServer,
    fast_settings: HttpSettings,
    recording_sleep: RecordingSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client_secret = "cs-" + new_id()
    password = "pw-" + new_id()
    logger = logging.getLogger("hub_pipelines_tests.http")
    with client_for(server, fast_settings, logger=logger, sleep=recording_sleep) as client:
        client.redactor.register(client_secret)
        with caplog.at_level(logging.WARNING), pytest.raises(SyncError) as raised:
            # The server echoes the secret in its body; the URL carries it as a query param.
            params = {"client_secret": client_secret, "echo": client_secret}
            client.request("GET", "/always/503", params=params, headers={"Pwd": password})
    assert len(caplog.records) == 2  # two retries logged, with reason, attempt and delay
    assert "(attempt 1 of 3)" in caplog.records[0].getMessage()
    assert "retrying in" in caplog.records[0].getMessage()
    for text in (caplog.text, str(raised.value), raised.value.message):
        assert client_secret not in text and password not in text
        assert "client_secret=***" in text


@pytest.mark.parametrize(
    ("method", "path", "idempotent", "sent", "outcome"),
    [
        # the source may have acted: a non-idempotent request is sent once, the caller decides
        ("POST", "/slow", None, 1, OutcomeUnknown),
        ("PATCH", "/slow", None, 1, OutcomeUnknown),
        ("POST", "/always/503", None, 1, OutcomeUnknown),
        ("POST", "/drop", None, 1, OutcomeUnknown),
        # idempotent ones, or a POST the caller declares harmless to repeat, are retried
        ("GET", "/slow", None, 3, SyncError),
        ("PUT", "/always/503", None, 3, SyncError),
        ("POST", "/always/503", True, 3, SyncError),
        # the source certainly did not act (throttled, no connection): repeated even as a POST
        ("POST", "/flaky", None, 2, None),  # a 429 first
        ("POST", "http://127.0.0.1:9/nothing-listens-here", None, 3, SyncError),
        # refused outright: nothing to repeat
        ("POST", "/always/400", None, 1, SyncError),
    ],
)
def test_a_request_that_is_not_idempotent_is_repeated_only_when_the_source_did_not_act(
    server: LoopbackServer,
    recording_sleep: RecordingSleep,
    method: str,
    path: str,
    idempotent: bool | None,
    sent: int,
    outcome: type[SyncError] | None,
) -> None:
    settings = HttpSettings(retry_max_attempts=3, retry_initial_delay_ms=1, timeout_ms=200)
    request_id = new_id()
    with client_for(server, settings, sleep=recording_sleep) as client:
        params = {"id": request_id, "fail": 1, "status": 429}  # /flaky: one 429, then 200
        if outcome is None:
            client.request(method, path, params=params, idempotent=idempotent)
        else:
            with pytest.raises(SyncError) as raised:
                client.request(method, path, params=params, idempotent=idempotent)
            assert type(raised.value) is outcome
            assert ("not repeated" in raised.value.message) is (outcome is OutcomeUnknown)
        assert client.api_calls == sent
    if path.startswith("/slow"):
        assert HITS[f"/slow?{request_id}"] == sent  # what the server received, not only sent


def test_a_client_making_calls_at_once_keeps_that_many_connections_alive(
    server: LoopbackServer,
) -> None:
    """With fewer connections kept alive than calls in flight (the pool's default 2 against
    Zoho's 4 detail reads), every answer past them closed its connection and the next call
    opened a new one."""
    settings = HttpSettings()  # ACCOUNTING_POOL_MIN_SIZE 2
    client = client_for(server, settings, calls_at_once=4)
    with ThreadPoolExecutor(4) as pool:
        ports = list(pool.map(lambda _: client.get_json("/peer")["port"], range(80)))

    assert len(set(ports)) <= 4 and client.api_calls == 80
    assert settings.limits(4).max_keepalive_connections == 4
    assert settings.limits().max_keepalive_connections == 2  # one at a time: the setting's 2
    assert settings.limits(50).max_keepalive_connections == settings.pool_max_size


def test_calls_name_the_hub_and_its_version_unless_a_connector_names_itself(
    server: LoopbackServer,
) -> None:
    version = importlib.metadata.version("hub-pipelines")
    with client_for(server, HttpSettings()) as client:
        sent = client.get_json("/agent")["user_agent"]
    assert sent == f"accounting-integration-hub/{version}"
    with client_for(server, HttpSettings(), headers={"User-Agent": "tally-bridge/2"}) as client:
        assert client.get_json("/agent")["user_agent"] == "tally-bridge/2"


def test_no_cookie_a_source_sets_is_sent_back(server: LoopbackServer) -> None:
    """The sources' APIs authenticate by token; a cookie (a load balancer's affinity) is not
    state the hub keeps between calls."""
    with client_for(server, HttpSettings()) as client:
        assert [client.get_json("/cookie")["brought"] for _ in range(2)] == [None, None]


def test_calls_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bytes] = []

    def proxy(conn, received: bytes) -> None:
        seen.append(received)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: AWSALB=affinity\r\nContent-Length: 11\r\n\r\n"
            b'{"ok":true}'
        )

    with raw_server(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        with HttpClient(HttpSettings(), base_url="http://books.example.invalid/api") as client:
            assert client.get_json("/invoices", params={"page": 2}) == {"ok": True}
            assert client.get_json("/invoices", params={"page": 3}) == {"ok": True}
    targets = [received.split(b"\r\n", 1)[0] for received in seen]
    assert targets == [
        b"GET http://books.example.invalid/api/invoices?page=2 HTTP/1.1",
        b"GET http://books.example.invalid/api/invoices?page=3 HTTP/1.1",
    ]
    assert b"cookie:" not in seen[1].lower()  # no cookie kept through a proxy either
