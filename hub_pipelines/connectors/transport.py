"""An httpx transport whose HTTP/1.1 answers are parsed by httptools (llhttp, in C): the same
requests and answers as httpx's own transport, at a fraction of its CPU.

Why: a Zoho Books import makes one detail call per invoice, and the import's process is bound by
the CPU of its HTTP client. In a GIL profile of a 30,000-invoice import, httpx's default transport
(httpcore and h11, pure Python) held the GIL 29 % of the time; `http.client` did little better,
its headers going through the pure-Python email parser. httptools is the parser uvicorn serves
with. `HttpClient` keeps httpx's API (requests, responses, errors, proxies from the environment)
and swaps only the wire.

What it does as httpcore does:
- keeps up to `max_keepalive_connections` idle connections per origin, for `keepalive_expiry`
  seconds, and never reuses one the server has closed or written to while idle (readable);
- limits the connections in use at once to `max_connections` (else `httpx.PoolTimeout`);
- applies the request's connect, write and read timeouts;
- raises httpx's own exceptions: a failure before the request left is `ConnectError` or
  `ConnectTimeout` (safe to send again), later ones `WriteError`, `ReadTimeout`, `ReadError`
  or `RemoteProtocolError` (a body cut short included);
- verifies TLS with the context httpx would build (certifi, or `SSL_CERT_FILE`);
- streams the body, and gives the connection back once the body is read to its end.
HTTP/1.1 only, as the hub's clients already were.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from itertools import chain
from typing import Any

import httptools
import httpx

Origin = tuple[bytes, bytes, int]
DEFAULT_PORTS = {b"http": 80, b"https": 443}
READ_CHUNK = 64 * 1024
# Bytes that would end a header or the request line early: a request smuggled inside another.
_FORBIDDEN_IN_HEADERS = re.compile(rb"[\r\n\0]")
_CUT_SHORT = "peer closed connection without sending complete message body"
UNLIMITED = 2**31 - 1
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's


class HttptoolsTransport(httpx.BaseTransport):
    """`httpx.Client(transport=HttptoolsTransport(limits))`; thread-safe."""

    def __init__(
        self, limits: httpx.Limits = DEFAULT_LIMITS, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """`limits`: None in any of them is no limit."""
        self._ssl_context = ssl_context or httpx.create_ssl_context()
        self._max_idle = _or_unlimited(limits.max_keepalive_connections)
        self._expiry = _or_unlimited(limits.keepalive_expiry)
        self._in_use = threading.BoundedSemaphore(_or_unlimited(limits.max_connections))
        self._idle: dict[Origin, list[tuple[socket.socket, float]]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        head = _request_head(request)
        timeouts = request.extensions.get("timeout", {})
        if not self._in_use.acquire(timeout=timeouts.get("pool")):
            raise httpx.PoolTimeout("no connection of the pool was free in time", request=request)
        origin = _origin(request)
        try:
            sock = self._connection(origin, request, timeouts)
        except BaseException:
            self._in_use.release()
            raise
        answer = _Answer(self, origin, sock, request)
        try:
            _send(sock, head + request.read(), request, timeouts)
            answer.read_head(timeouts.get("read"))
        except BaseException:
            answer.close()
            raise
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=answer,
            extensions={"http_version": answer.http_version, "reason_phrase": answer.reason},
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for sock, _ in chain.from_iterable(idle.values()):
            sock.close()

    def _connection(
        self, origin: Origin, request: httpx.Request, timeouts: dict[str, Any]
    ) -> socket.socket:
        """An idle connection to the origin still open, else a new one."""
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                sock, since = idle.pop() if idle else (None, 0.0)
            if sock is None:
                return self._connect(origin, request, timeouts.get("connect"))
            if time.monotonic() - since < self._expiry and _still_open(sock):
                return sock
            sock.close()

    def _connect(self, origin: Origin, request: httpx.Request, timeout: float | None):
        scheme, host, port = origin
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"the URL's scheme {scheme!r} is not http or https")
        try:
            sock = socket.create_connection((host.decode("ascii"), port), timeout=timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except OSError as exc:  # refused, unreachable, no such host
            raise httpx.ConnectError(str(exc), request=request) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == b"https":
            try:
                return self._ssl_context.wrap_socket(sock, server_hostname=host.decode("ascii"))
            except TimeoutError as exc:
                sock.close()
                message = str(exc) or "TLS handshake timed out"
                raise httpx.ConnectTimeout(message, request=request) from exc
            except OSError as exc:  # ssl.SSLError included: a certificate refused
                sock.close()
                raise httpx.ConnectError(str(exc), request=request) from exc
        return sock

    def _release(self, origin: Origin, sock: socket.socket, reusable: bool) -> None:
        keep = False
        if reusable:
            with self._lock:
                idle = self._idle.setdefault(origin, [])
                keep = not self._closed and len(idle) < self._max_idle
                if keep:
                    idle.append((sock, time.monotonic()))
        if not keep:
            sock.close()
        self._in_use.release()


class _Answer(httpx.SyncByteStream):
    """One answer read from its connection through httptools: its head first, then its body
    chunk by chunk (`httpx.Response.read()` or `iter_bytes()`). The connection goes back to the
    pool once the body is read to its end and the server keeps it open, else it is closed."""

    def __init__(
        self,
        transport: HttptoolsTransport,
        origin: Origin,
        sock: socket.socket,
        request: httpx.Request,
    ) -> None:
        self._transport, self._origin, self._sock, self._request = transport, origin, sock, request
        self._parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self._chunks: list[bytes] = []
        self._head_done = self._complete = self._framed = self._keep_alive = False
        self._received = 0

    # httptools' callbacks
    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self._framed |= name.lower() in (b"content-length", b"transfer-encoding")

    def on_headers_complete(self) -> None:
        self._head_done = True
        # Asked now: once the message is complete, llhttp has reset what it knew.
        self._keep_alive = self._parser.should_keep_alive()
        if self._request.method == "HEAD":  # a HEAD answer has no body, whatever it announces
            self._complete = True

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        self._complete = True

    # the reading
    def read_head(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)
        while not self._head_done:
            self._receive()
        self.status = self._parser.get_status_code()
        self.http_version = f"HTTP/{self._parser.get_http_version()}".encode("ascii")

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunks, self._chunks = self._chunks, []
            if chunks:
                yield b"".join(chunks)
            if self._complete:
                return
            self._receive()

    def close(self) -> None:
        if self._sock is None:
            return
        sock, self._sock = self._sock, None
        reusable = self._complete and self._keep_alive
        self._transport._release(self._origin, sock, reusable)

    def _receive(self) -> None:
        try:
            data = self._sock.recv(READ_CHUNK)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=self._request) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc), request=self._request) from exc
        if not data:
            self._end_of_stream()
            return
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            message = f"the server's answer is not valid HTTP/1.1: {exc}"
            raise httpx.RemoteProtocolError(message, request=self._request) from exc

    def _end_of_stream(self) -> None:
        """The server closed the connection: the end of a body it did not frame, else an
        answer cut short."""
        if not self._received:
            message = "Server disconnected without sending a response."
            raise httpx.RemoteProtocolError(message, request=self._request)
        if self._head_done and not self._framed:
            self._complete = True  # read until the connection closes (HTTP/1.0 style)
            return
        raise httpx.RemoteProtocolError(_CUT_SHORT, request=self._request)


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers, as HTTP/1.1 puts them on the wire."""
    fields = request.headers.raw
    if _FORBIDDEN_IN_HEADERS.search(b"\x01".join(chain.from_iterable(fields))):
        raise httpx.LocalProtocolError("a header holds a line break or NUL", request=request)
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines += [b"%s: %s" % field for field in fields]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _send(sock: socket.socket, data: bytes, request: httpx.Request, timeouts: dict) -> None:
    sock.settimeout(timeouts.get("write"))
    try:
        sock.sendall(data)
    except TimeoutError as exc:
        raise httpx.WriteTimeout(str(exc) or "write timed out", request=request) from exc
    except OSError as exc:
        raise httpx.WriteError(str(exc), request=request) from exc


def _or_unlimited(limit: float | None) -> float:
    return UNLIMITED if limit is None else limit


def _origin(request: httpx.Request) -> Origin:
    url = request.url
    return url.raw_scheme, url.raw_host, url.port or DEFAULT_PORTS.get(url.raw_scheme, 0)


def _still_open(sock: socket.socket) -> bool:
    """An idle keep-alive connection is readable only when the server closed it (or wrote to it
    unasked): either way it cannot carry the next request. poll, not select: select refuses a
    descriptor past 1,023, which a busy process reaches."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    try:
        return not poller.poll(0)
    except OSError:
        return False
