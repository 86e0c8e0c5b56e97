"""Helpers for the connector framework tests: fast settings, a recording sleep, loopback apps."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.connectors.settings import HttpSettings


@pytest.fixture
def fast_settings() -> HttpSettings:
    return HttpSettings(
        retry_max_attempts=3, retry_initial_delay_ms=10, retry_max_delay_ms=5000, timeout_ms=5000
    )


class RecordingSleep:
    """Stands in for time.sleep where a test checks the delays chosen, not the waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def recording_sleep() -> RecordingSleep:
    return RecordingSleep()


class DroppedResponse(Response):
    """Promises 100 bytes, sends 7 and returns: uvicorn then closes the socket mid-body."""

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        headers = [(b"content-length", b"100"), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"part', "more_body": True})


def hit_counter(request: Request, hits: Counter[str]) -> int:
    """Counts calls per test-chosen `id` so one server serves many independent scenarios."""
    key = f"{request.url.path}?{request.query_params.get('id', '')}"
    hits[key] += 1
    return hits[key]


@pytest.fixture
def serve() -> Iterator:
    """`server = serve(routes)`: a Starlette app on a loopback port, stopped after the test."""
    servers: list[LoopbackServer] = []

    def start(routes: list[Route]) -> LoopbackServer:
        server = LoopbackServer(Starlette(routes=routes)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@contextmanager
def raw_server(answer: Callable[[socket.socket, bytes], None]) -> Iterator[str]:
    """A server on a loopback socket, for answers uvicorn would never give: `answer(connection,
    what it received)` serves each connection after its first read (a request's head)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # to see `stop` soon: closing a socket does not end an accept()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                answer(conn, conn.recv(65536))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
