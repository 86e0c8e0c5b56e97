"""Token bucket: no sliding window ever holds more than the limit, across threads and clients."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hub_pipelines.connectors.http import HttpClient
from hub_pipelines.connectors.ratelimit import TokenBucket, bucket_for
from hub_pipelines.connectors.settings import HttpSettings


class FakeClock:
    """Simulated time: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def max_in_any_window(timestamps: list[float], window: float) -> int:
    """The largest number of timestamps inside one closed window [t, t + window]."""
    ordered = sorted(timestamps)
    most, start = 0, 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] > window:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.parametrize("burst", [1, 10])
def test_simulated_three_minutes_at_100_per_minute(burst: int) -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, burst, clock=clock, sleep=clock.sleep)
    start = clock.now
    sent: list[float] = []
    while clock.now - start < 180:
        bucket.acquire()
        sent.append(clock.now)
    assert max_in_any_window(sent, 60.0) <= 100
    # Not needlessly slow either: the sustained rate is limit - burst per minute.
    assert len(sent) >= 3 * (100 - burst)


def test_waiting_threads_reserve_distinct_slots() -> None:
    clock = FakeClock()
    lock = threading.Lock()
    bucket = TokenBucket(61, clock=clock, sleep=lambda _seconds: None)  # one token per second
    waits: list[float] = []

    start = threading.Barrier(5)

    def take() -> None:
        start.wait()
        wait = bucket.acquire()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])


def test_bucket_rejects_a_burst_that_leaves_no_refill() -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(5, burst=5)


def test_registry_shares_one_bucket_per_organisation() -> None:
    org = f"zoho_books:{uuid.uuid4().hex}"
    assert bucket_for(org, 90) is bucket_for(org, 90)
    assert bucket_for(org, 90) is not bucket_for(f"{org}-other", 90)


def test_a_new_limit_for_an_organisation_replaces_its_bucket() -> None:
    """A process that outlives a config change (or serves several runs) paces at the new limit."""
    org = f"zoho_books:{uuid.uuid4().hex}"
    old = bucket_for(org, 90)
    new = bucket_for(org, 30_000)
    assert new is not old and new.limit == 30_000
    assert bucket_for(org, 30_000) is new


def test_two_clients_of_one_org_stay_under_the_limit_on_the_wire(serve) -> None:
    """600/min expressed as 10 per 1 s window so ~2 s of traffic exercises many full windows."""
    received: list[float] = []

    async def record(request: Request) -> Response:
        received.append(time.monotonic())
        return PlainTextResponse("ok")

    server = serve([Route("/contacts", record)])
    org = f"xero:{uuid.uuid4().hex}"
    bucket_for(org, 10, window=1.0)  # the clients' calls with the same limit share this window
    settings = HttpSettings(timeout_ms=5000)
    clients = [HttpClient(settings, base_url=server.url, rate_limit=10) for _ in range(2)]

    start = threading.Barrier(len(clients))

    def sync(client: HttpClient) -> None:
        start.wait()  # both clients really send at once
        for _ in range(10):
            client.request("GET", "/contacts", rate_key=org)

    threads = [threading.Thread(target=sync, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    assert len(received) == 20
    assert max_in_any_window(received, 1.0) <= 10
