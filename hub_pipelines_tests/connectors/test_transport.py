"""The httptools transport on the wire: TLS verified against a loopback HTTPS server, answers a
server frames every way HTTP/1.1 allows (length, chunks, the connection's end), answers cut short
or not HTTP at all, idle connections the server closed, timeouts, the pool's limit, and requests
whose headers would smuggle another. Servers are real: uvicorn, or a raw socket where uvicorn
cannot misbehave as needed."""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.connectors.transport import DEFAULT_LIMITS, HttptoolsTransport
from hub_pipelines_tests.connectors.conftest import raw_server


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {"method": request.method, "body": body.decode(), "port": request.client.port}
    )


async def chunked(request: Request) -> Response:
    parts = int(request.query_params["parts"])
    return StreamingResponse(f"part {n};".encode() for n in range(parts))


async def gzipped(request: Request) -> Response:
    return Response(gzip.compress(b"x" * 10_000), headers={"content-encoding": "gzip"})


APP = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST"]),
        Route("/chunked", chunked),
        Route("/gzip", gzipped),
    ]
)


def client(**options) -> httpx.Client:
    limits = options.pop("limits", DEFAULT_LIMITS)
    transport = HttptoolsTransport(limits, ssl_context=options.pop("ssl_context", None))
    return httpx.Client(transport=transport, **options)


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(APP) as started:
        yield started


def test_a_post_body_and_a_chunked_answer_cross_whole(server: LoopbackServer) -> None:
    with client(base_url=server.url) as http:
        assert http.post("/echo", content=b"a=1&b=2").json()["body"] == "a=1&b=2"
        answer = http.get("/chunked", params={"parts": 5000})
    assert answer.headers["transfer-encoding"] == "chunked"
    assert answer.text == "".join(f"part {n};" for n in range(5000))


def test_a_gzipped_answer_is_decoded_as_httpx_decodes_it(server: LoopbackServer) -> None:
    with client() as http:
        answer = http.get(f"{server.url}/gzip")
    assert answer.content == b"x" * 10_000


def test_answers_read_to_their_end_leave_their_connection_for_the_next_call(
    server: LoopbackServer,
) -> None:
    with client(base_url=server.url) as http:
        ports = {http.get("/echo").json()["port"] for _ in range(20)}
        with http.stream("GET", "/chunked", params={"parts": 3}) as unread:
            assert unread.status_code == 200  # closed before its body was read: not reused
        ports |= {http.get("/echo").json()["port"] for _ in range(2)}
    assert len(ports) == 2


def test_the_pool_lends_at_most_max_connections(server: LoopbackServer) -> None:
    limits = httpx.Limits(max_connections=1)
    with client(base_url=server.url, limits=limits, timeout=httpx.Timeout(5, pool=0.2)) as http:
        with http.stream("GET", "/chunked", params={"parts": 3}), pytest.raises(httpx.PoolTimeout):
            http.get("/echo")
        assert http.get("/echo").status_code == 200  # given back once the stream closed


def test_a_header_that_would_smuggle_a_request_is_refused_before_sending(
    server: LoopbackServer,
) -> None:
    with client() as http, pytest.raises(httpx.LocalProtocolError, match="line break"):
        http.get(f"{server.url}/echo", headers={"X-Note": "a\r\nGET /admin HTTP/1.1"})


# --- TLS -----------------------------------------------------------------------------------------


def self_signed(tmp_path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by its own key: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub loopback")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def test_tls_is_verified_against_the_trusted_certificates(tmp_path) -> None:
    certificate, key = self_signed(tmp_path)
    with LoopbackServer(APP, tls=(certificate, key)) as https:
        assert https.url.startswith("https://")
        with client() as http, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
            http.get(f"{https.url}/echo")  # httpx's default trust (certifi): not this one
        trusting = ssl.create_default_context(cafile=certificate)
        with client(ssl_context=trusting, base_url=https.url) as http:
            answers = [http.post("/echo", content=b"over tls").json() for _ in range(3)]
    assert {answer["body"] for answer in answers} == {"over tls"}
    assert len({answer["port"] for answer in answers}) == 1  # one TLS connection, kept alive


# --- a raw socket server: answers uvicorn would never give -----------------------------------


def test_a_body_ended_by_the_connection_closing_is_read_whole() -> None:
    def close_delimited(conn: socket.socket, _: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")

    with raw_server(close_delimited) as url, client() as http:
        assert http.get(url).text == "all of it"


@pytest.mark.parametrize(
    ("wire", "error", "message"),
    [
        (b"", httpx.RemoteProtocolError, "without sending a response"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345",
            httpx.RemoteProtocolError,
            "complete message body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n",
            httpx.RemoteProtocolError,
            "complete message body",
        ),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", httpx.RemoteProtocolError, "not valid HTTP"),
    ],
    ids=["nothing", "length-cut", "chunks-cut", "not-http"],
)
def test_an_answer_cut_short_or_not_http_is_a_protocol_error(wire, error, message) -> None:
    answer = lambda conn, _: conn.sendall(wire)  # noqa: E731
    with raw_server(answer) as url, client() as http, pytest.raises(error, match=message):
        http.get(url).read()


def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    answered = iter(range(3))
    closed = threading.Event()

    def once_then_close(conn: socket.socket, _: bytes) -> None:
        number = next(answered)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(number)), number)
        )
        conn.close()
        closed.set()

    def call(http: httpx.Client, url: str) -> str:
        """After the server closed the connection: a request sent while it closes is a race
        no client can win (the server resets it), and HttpClient retries it."""
        closed.clear()
        text = http.get(url).text
        assert closed.wait(5)
        return text

    with raw_server(once_then_close) as url, client() as http:
        # The server closes each connection after one answer that said it would stay open.
        assert [call(http, url) for _ in range(3)] == ["0", "1", "2"]


def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    release = threading.Event()
    with raw_server(lambda conn, _: release.wait(5)) as url, client(timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get(url)
        release.set()


def test_a_refused_connection_is_a_connect_error_that_sent_nothing() -> None:
    port = socket.create_server(("127.0.0.1", 0))
    address = port.getsockname()
    port.close()  # nobody listens there now
    with client() as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://{address[0]}:{address[1]}/")
