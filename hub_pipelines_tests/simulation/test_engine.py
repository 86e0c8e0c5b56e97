"""The simulator engine on its own, over real HTTP on loopback: a tiny Shape with one list route
(paged by a 1-based `start`, as QuickBooks pages inside its query text) and a token endpoint,
driven through faults, every rate limit, the request log and a token rotation."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from starlette.requests import Request
from starlette.routing import BaseRoute

from hub_pipelines.connectors.loopback import ForwardingApp, LoopbackServer
from hub_pipelines.simulation.engine import (
    RateLimiter,
    RateLimits,
    RateStatus,
    Reply,
    SimulatorEngine,
)
from hub_pipelines.simulation.oauth_server import EVERY_REFRESH, TokenPolicy, TokenRefusal

IST = timezone(timedelta(hours=5, minutes=30))
CLIENT, SECRET = "tiny-client", "tiny-secret"
PAGE_SIZE = 10
ITEMS = "/t/acme/items"
THROTTLE_XML = '<Fault><Error code="3001"><Message>ThrottleExceeded</Message></Error></Fault>'


class FakeTime:
    """`clock` (aware datetime) and `timer` (monotonic seconds) moved by hand."""

    def __init__(self, now: datetime = datetime(2026, 3, 15, 12, 0, tzinfo=IST)) -> None:
        self.now, self.seconds = now, 5000.0

    def clock(self) -> datetime:
        return self.now

    def timer(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.seconds += seconds


class TinyShape(SimulatorEngine):
    """25 items per tenant; `start` pages them 10 at a time; throttles answer in XML."""

    def __init__(self, limits: RateLimits, policy: TokenPolicy | None = None, **options) -> None:
        super().__init__(limits=limits, token_policy=policy, **options)
        self.items = [{"id": n, "name": f"item {n}"} for n in range(1, 26)]
        self.oauth.add_client(CLIENT, SECRET)
        self.refresh_token = self.oauth.issue_refresh_token(CLIENT)

    def routes(self) -> list[BaseRoute]:
        return [
            self.api_route("/token", self.token, methods=("POST",), auth=False, limited=False),
            self.api_route("/t/{tenant}/items", self.list_items),
            self.api_route("/t/{tenant}/items.xml", self.list_items_xml),
        ]

    def token(self, request: Request, params: dict[str, str]) -> Reply:
        answer = self.oauth.refresh(
            params.get("client_id", ""), params.get("client_secret"), params["refresh_token"]
        )
        if isinstance(answer, TokenRefusal):
            return Reply(400, {"error": answer.error})
        return Reply(
            200, {"access_token": answer.access_token, "refresh_token": answer.refresh_token}
        )

    def list_items(self, request: Request, params: dict[str, str]) -> Reply:
        start = int(params.get("start") or 1) - 1
        return Reply(200, {"items": self.items[start : start + PAGE_SIZE]})

    def list_items_xml(self, request: Request, params: dict[str, str]) -> Reply:
        rows = self.list_items(request, params).body["items"]
        xml = "<Items>" + "".join(f'<Item id="{row["id"]}"/>' for row in rows) + "</Items>"
        return Reply(200, xml, kind="text", media_type="application/xml")

    def rate_key(self, request: Request, params: dict[str, str]) -> str:
        return request.path_params.get("tenant", "")

    def refuse(self, request: Request, params: dict[str, str]) -> Reply | None:
        if request.path_params["tenant"] == "stranger":
            return Reply(403, {"error": "tenant not connected"})
        return None

    def page_of(self, params: dict[str, str]) -> int:
        return (int(params.get("start") or 1) - 1) // PAGE_SIZE + 1

    def throttle_reply(self, status: RateStatus) -> Reply:
        headers = {"Retry-After": str(status.retry_after), "X-Problem": str(status.limit_hit)}
        return Reply(429, THROTTLE_XML, headers, kind="text", media_type="application/xml")

    def rate_headers(self, status: RateStatus) -> dict[str, str]:
        return {f"X-{name}-Remaining": str(left) for name, left in status.remaining.items()}

    def break_record(self, body, index: int):
        body["items"][index].pop("id")
        return body

    def not_found_reply(self, request: Request) -> Reply:
        return Reply(404, {"error": "no such thing", "path": request.url.path})


@pytest.fixture(scope="module")
def current() -> ForwardingApp:
    return ForwardingApp()


@pytest.fixture(scope="module")
def server(current: ForwardingApp):
    with LoopbackServer(current) as running:
        yield running


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make(current: ForwardingApp, server, fake_time: FakeTime):
    def build(policy: TokenPolicy | None = None, **limits) -> TinyShape:
        simulator = TinyShape(
            RateLimits(**limits), policy, clock=fake_time.clock, timer=fake_time.timer
        )
        current.app = simulator.app
        return simulator

    return build


@pytest.fixture
def sim(make) -> TinyShape:
    return make(per_minute=1000)


def client(sim: TinyShape, server: LoopbackServer) -> httpx.Client:
    token = sim.oauth.issue_access_token(sim.refresh_token)
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def api(sim: TinyShape, server: LoopbackServer):
    with client(sim, server) as http:
        yield http


def page(api: httpx.Client, number: int = 1, tenant: str = "acme") -> httpx.Response:
    return api.get(f"/t/{tenant}/items", params={"start": (number - 1) * PAGE_SIZE + 1})


def ids(response: httpx.Response) -> list:
    return [row.get("id") for row in response.json()["items"]]


# --- the pipeline and the request log ------------------------------------------------------------


def test_pages_are_served_logged_and_counted(sim, api, fake_time):
    first = page(api, 1)
    fake_time.advance(2)
    third = page(api, 3)
    assert ids(first) == list(range(1, 11)) and ids(third) == list(range(21, 26))
    assert first.headers["content-type"] == "application/json"
    assert (
        first.headers["x-minute-remaining"] == "999"
        and third.headers["x-minute-remaining"] == "998"
    )
    assert [(e.method, e.path, e.params, e.status) for e in sim.request_log] == [
        ("GET", ITEMS, {"start": "1"}, 200),
        ("GET", ITEMS, {"start": "21"}, 200),
    ]
    assert sim.request_log[1].timestamp - sim.request_log[0].timestamp == 2
    assert sim.request_log[1].at == fake_time.now
    assert (sim.requests_served, sim.requests_throttled, sim.requests_dropped) == (2, 0, 0)


def test_the_request_log_is_bounded(current, server, fake_time):
    sim = TinyShape(RateLimits(), clock=fake_time.clock, timer=fake_time.timer, log_size=2)
    current.app = sim.app
    with client(sim, server) as api:
        for number in (1, 2, 3):
            page(api, number)
    assert [e.params["start"] for e in sim.request_log] == ["11", "21"]
    assert sim.requests_served == 3


def test_a_missing_unknown_or_expired_token_gets_the_shapes_401(sim, api, server, fake_time):
    assert httpx.get(server.url + ITEMS).status_code == 401
    assert httpx.get(server.url + ITEMS, headers={"Authorization": "Bearer nope"}).json() == {
        "error": "unauthorised"
    }
    assert page(api).status_code == 200
    fake_time.advance(3600)  # the default access token lifetime
    assert page(api).status_code == 401


def test_tokens_expire_after_n_requests(sim, api):
    sim.faults.expire_tokens_after(2)
    assert [page(api).status_code for _ in range(3)] == [200, 200, 401]


def test_a_refused_request_counts_against_no_limit(sim, api, server):
    assert httpx.get(server.url + "/t/stranger/items").status_code == 401  # authenticated first
    refused = page(api, tenant="stranger")
    assert (refused.status_code, refused.json()) == (403, {"error": "tenant not connected"})
    assert "x-minute-remaining" not in refused.headers
    assert sim.limiter.status("stranger").remaining["minute"] == 1000


def test_unknown_urls_and_methods_answer_in_json(sim, api):
    missing = api.get("/nowhere")
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "no such thing", "path": "/nowhere"},
    )
    wrong = api.delete(ITEMS)
    assert (wrong.status_code, wrong.json()) == (405, {"error": "method not allowed"})
    assert list(sim.request_log) == []  # outside the pipeline


# --- faults --------------------------------------------------------------------------------------


def test_server_errors_then_recovery_only_on_their_path(sim, api):
    sim.faults.fail_next(2, status=503, path=ITEMS)
    assert page(api, tenant="other").status_code == 200
    failed = [page(api) for _ in range(2)]
    assert [(r.status_code, r.json()) for r in failed] == [
        (503, {"error": "internal server error"})
    ] * 2
    assert page(api).status_code == 200
    with pytest.raises(ValueError):
        sim.faults.fail_next(1, status=429)


def test_a_forced_throttle_uses_the_shapes_answer_for_the_named_limit(sim, api):
    sim.faults.throttle_next(1, limit="day")
    throttled = page(api)
    assert throttled.status_code == 429
    assert throttled.headers["content-type"] == "application/xml"
    assert throttled.text == THROTTLE_XML
    assert throttled.headers["x-problem"] == "day"
    assert throttled.headers["x-minute-remaining"] == "1000"  # rate headers on throttles too
    assert (sim.requests_throttled, sim.request_log[-1].status) == (1, 429)
    assert page(api).status_code == 200


def test_a_dropped_connection_is_a_transport_error(sim, api):
    sim.faults.drop_next(1)
    with pytest.raises(httpx.TransportError):
        page(api)
    assert page(api).status_code == 200
    assert sim.requests_dropped == 1 and sim.request_log[0].status is None


def test_a_truncated_page_heals_after_its_times(sim, api):
    sim.faults.malformed_page(ITEMS, 2, truncated=True, times=1)
    assert page(api, 1).json()["items"]
    broken = page(api, 2)
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        broken.json()
    assert ids(page(api, 2)) == list(range(11, 21))


def test_a_text_page_is_truncated_as_text(sim, api):
    sim.faults.malformed_page(ITEMS + ".xml", 1, truncated=True, times=1)
    broken, whole = api.get(ITEMS + ".xml"), api.get(ITEMS + ".xml")
    assert broken.status_code == 200 and broken.headers["content-type"] == "application/xml"
    assert whole.text.endswith("</Items>") and whole.text.startswith(broken.text)
    assert len(broken.text) == len(whole.text) // 2


def test_a_malformed_record_on_the_page_the_shape_names(sim, api):
    sim.faults.malformed_page(ITEMS, 2, record_index=3)  # page 2 = start 11 (page_of)
    assert None not in ids(page(api, 1))
    for _ in range(2):  # times=None: bad source data stays bad
        assert ids(page(api, 2)) == [11, 12, 13, None, 15, 16, 17, 18, 19, 20]
    assert sim.items[13]["id"] == 14  # the engine broke a copy


def test_after_page_runs_before_the_next_request(sim, api):
    seen = []

    def someone_deletes_the_first_item(body) -> None:
        seen.append(body["items"][0]["id"])
        del sim.items[0]

    sim.faults.after_page(ITEMS, 1, someone_deletes_the_first_item)
    assert ids(page(api, 1))[0] == 1
    assert ids(page(api, 2))[0] == 12  # the list shifted under the walk
    assert ids(page(api, 1))[0] == 2 and seen == [1]  # times=1


def test_latency_delays_every_answer_and_clear_removes_it(sim, api):
    sim.faults.latency = 1.0
    with pytest.raises(httpx.TimeoutException):
        api.get(ITEMS, timeout=0.1)  # nothing can arrive in the first second
    sim.faults.clear()
    assert page(api).status_code == 200


# --- rate limits ---------------------------------------------------------------------------------


def test_the_per_second_limit(make, server, fake_time):
    sim = make(per_second=3, per_minute=500)
    with client(sim, server) as api:
        assert [page(api).status_code for _ in range(3)] == [200] * 3
        refused = page(api)
        assert (refused.status_code, refused.headers["x-problem"]) == (429, "second")
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["x-second-remaining"] == "0"
        assert refused.headers["x-minute-remaining"] == "497"  # a refusal counts against nothing
        fake_time.advance(1)
        assert page(api).status_code == 200
    assert (sim.requests_served, sim.requests_throttled) == (4, 1)


def test_the_per_minute_limit_says_when_a_request_frees(make, server, fake_time):
    sim = make(per_minute=3)
    with client(sim, server) as api:
        remaining = []
        for _ in range(3):
            remaining.append(page(api).headers["x-minute-remaining"])
            fake_time.advance(10)
        assert remaining == ["2", "1", "0"]
        refused = page(api)  # 30 s after the first of the three
        assert (refused.status_code, refused.headers["x-problem"]) == (429, "minute")
        assert refused.headers["retry-after"] == "30"
        fake_time.advance(30)
        assert page(api).status_code == 200


def test_the_daily_limit_resets_at_midnight_in_its_zone(make, server, fake_time):
    fake_time.now = datetime(2026, 3, 15, 23, 59, 30, tzinfo=IST)
    sim = make(per_day=2, day_resets_in=IST)
    with client(sim, server) as api:
        assert [page(api).headers["x-day-remaining"] for _ in range(2)] == ["1", "0"]
        refused = page(api)
        assert (refused.status_code, refused.headers["x-problem"]) == (429, "day")
        assert refused.headers["retry-after"] == "30"  # seconds to midnight IST
        fake_time.advance(31)  # 00:00:01 IST, 18:30:01 UTC: a new day only in IST
        again = page(api)
        assert (again.status_code, again.headers["x-day-remaining"]) == (200, "1")


def test_the_daily_limit_in_utc_ignores_midnight_ist(make, server, fake_time):
    fake_time.now = datetime(2026, 3, 15, 23, 59, 30, tzinfo=IST)
    sim = make(per_day=1)  # day_resets_in defaults to UTC
    with client(sim, server) as api:
        assert page(api).status_code == 200
        fake_time.advance(60)
        assert page(api).status_code == 429


def test_six_concurrent_requests_to_a_five_concurrent_tenant(make, server):
    sim = make(concurrent=5, per_minute=60)
    sim.faults.latency = 0.5
    token = sim.oauth.issue_access_token(sim.refresh_token)

    async def at_once(n: int) -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            return await asyncio.gather(*(http.get(ITEMS) for _ in range(n)))

    answers = asyncio.run(at_once(6))
    assert sorted(a.status_code for a in answers) == [200] * 5 + [429]
    (refused,) = [a for a in answers if a.status_code == 429]
    assert refused.headers["x-problem"] == "concurrent"
    assert sim.limiter.status("acme").remaining["concurrent"] == 5  # every slot released
    sim.faults.latency = 0.0
    assert sorted(a.status_code for a in asyncio.run(at_once(5))) == [200] * 5


# --- the limiter on its own ----------------------------------------------------------------------


def limiter(fake_time: FakeTime, **limits) -> RateLimiter:
    return RateLimiter(RateLimits(**limits), clock=fake_time.clock, timer=fake_time.timer)


def test_the_longest_wait_is_named_first_and_refusals_count_nothing(fake_time):
    limits = limiter(fake_time, per_second=1, per_minute=2, per_day=2)
    assert limits.admit("a").admitted
    assert limits.admit("a").limit_hit == "second"
    fake_time.advance(1)
    assert limits.admit("a").admitted
    status = limits.admit("a")  # the minute and the day are both exhausted
    assert status.limit_hit == "day" and status.retry_after == status.resets_in["day"]
    assert limits.admit("b").admitted  # keys are counted apart
    assert limits.status("a").remaining == {"day": 0, "minute": 0, "second": 0}


def test_limits_changed_at_runtime_apply_to_the_next_request(fake_time):
    limits = limiter(fake_time, per_minute=1)
    assert limits.admit("a").admitted and not limits.admit("a").admitted
    limits.limits.per_minute = 5
    assert limits.admit("a").admitted
    assert limits.status("a").remaining["minute"] == 3


def test_concurrency_slots_are_taken_on_arrival_and_given_back(fake_time):
    limits = limiter(fake_time, concurrent=2)
    first, second, third = (limits.enter("a") for _ in range(3))
    assert [s.held for s in (first, second, third)] == [True, True, False]
    assert limits.admit("a", third).limit_hit == "concurrent"
    assert limits.admit("a", first).admitted
    limits.leave(first)
    limits.leave(third)
    limits.leave(first)  # twice is harmless
    assert limits.enter("a").held
    assert limits.status("a").remaining["concurrent"] == 0


# --- OAuth through a shape's token endpoint ------------------------------------------------------


def test_a_rotated_refresh_token_over_http(make, server):
    sim = make(TokenPolicy(rotation=EVERY_REFRESH), per_minute=100)
    form = {"client_id": CLIENT, "client_secret": SECRET, "refresh_token": sim.refresh_token}
    first = httpx.post(server.url + "/token", data=form)
    assert first.status_code == 200
    rotated = first.json()["refresh_token"]
    assert rotated != sim.refresh_token
    again = httpx.post(server.url + "/token", data=form)  # the superseded token
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})
    listed = httpx.get(
        server.url + ITEMS, headers={"Authorization": f"Bearer {first.json()['access_token']}"}
    )
    assert listed.status_code == 200
    assert sim.request_log[0].params["refresh_token"] == sim.refresh_token  # form fields logged
    assert "x-minute-remaining" not in first.headers  # not a rate-limited route
