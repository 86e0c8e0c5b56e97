"""Serve an ASGI app (a simulator) on a loopback port from a background thread.

Used by tests, the demo and the benchmarks so that connectors talk real HTTP to the simulators.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on HOST:PORT now. Bound with SO_REUSEADDR, as servers bind:
    a port that only closed connections linger on (TIME_WAIT) is free for them."""
    try:
        socket.create_server((host, port)).close()  # sets SO_REUSEADDR on POSIX
    except OSError:
        return False
    return True


class LoopbackServer:
    """`with LoopbackServer(app) as server: httpx.get(server.url + "/health")`."""

    def __init__(
        self, app, host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None
    ) -> None:
        """`tls`: (certificate file, key file) to serve HTTPS."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        certificate, key = tls or (None, None)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=certificate,
            ssl_keyfile=key,
        )
        self.scheme = "https" if tls else "http"
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"simulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ForwardingApp:
    """An ASGI app that forwards to whatever `app` is set now: one loopback server for a test
    module, serving each test's fresh simulator (starting uvicorn per test would dominate)."""

    app = None

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)
