"""OAuth token manager: refresh before expiry, single flight, rotation saved first, 401 retry."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.http import HttpClient, OutcomeUnknown
from hub_pipelines.connectors.oauth import (
    BearerAuth,
    InMemoryTokenStore,
    OAuthTokenManager,
    TokenSet,
    request_tokens,
)
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines_tests.connectors.test_redact import leaked_fragments

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def tokens(access: str, refresh: str | None = "refresh-1", expires_in: float = 3600) -> TokenSet:
    return TokenSet(access, refresh, NOW + timedelta(seconds=expires_in))


class CountingRefresh:
    """A refresh callback issuing access-N / refresh-N (rotating unless told otherwise)."""

    def __init__(self, *, rotate: bool = True, delay: float = 0.0) -> None:
        self.calls: list[str] = []
        self._rotate = rotate
        self._delay = delay

    def __call__(self, refresh_token: str) -> TokenSet:
        self.calls.append(refresh_token)
        time.sleep(self._delay)  # widens the race window in the concurrency test
        number = len(self.calls) + 1
        return tokens(f"access-{number}", f"refresh-{number}" if self._rotate else None)


def test_valid_token_is_reused_and_refreshed_within_skew() -> None:
    clock = Clock()
    store = InMemoryTokenStore(tokens("access-1", expires_in=400))
    refresh = CountingRefresh()
    manager = OAuthTokenManager(store, refresh, skew_seconds=300, clock=clock)
    assert manager.access_token() == "access-1"
    clock.now += timedelta(seconds=99)
    assert manager.access_token() == "access-1" and refresh.calls == []
    clock.now += timedelta(seconds=2)  # now within 300 s of expiry
    assert manager.access_token() == "access-2"
    assert refresh.calls == ["refresh-1"]
    assert store.load().refresh_token == "refresh-2"


def test_ten_threads_cause_one_refresh() -> None:
    store = InMemoryTokenStore(tokens("access-1", expires_in=60))  # already inside the skew
    refresh = CountingRefresh(delay=0.05)
    manager = OAuthTokenManager(store, refresh, clock=Clock())
    barrier = threading.Barrier(10)
    seen: list[str] = []

    def use() -> None:
        barrier.wait()
        seen.append(manager.access_token())

    threads = [threading.Thread(target=use) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(refresh.calls) == 1
    assert seen == ["access-2"] * 10


class RacingStore(InMemoryTokenStore):
    """Lets another worker win the race: it refreshes just before we get the lock."""

    def __init__(self, tokens: TokenSet) -> None:
        super().__init__(tokens)
        self.before_lock: Callable[[], object] | None = None

    @contextmanager
    def lock(self) -> Iterator[None]:
        other_worker, self.before_lock = self.before_lock, None
        if other_worker is not None:
            other_worker()
        with super().lock():
            yield


def test_tokens_refreshed_by_another_worker_are_used_not_refreshed_again() -> None:
    store = RacingStore(tokens("access-1", expires_in=60))
    refresh = CountingRefresh()
    ours = OAuthTokenManager(store, refresh, clock=Clock())
    theirs = OAuthTokenManager(store, refresh, clock=Clock())
    store.before_lock = theirs.access_token
    assert ours.access_token() == "access-2"
    assert refresh.calls == ["refresh-1"]  # their refresh only; ours re-read inside the lock


def test_zoho_style_refresh_without_refresh_token_keeps_the_old_one() -> None:
    store = InMemoryTokenStore(tokens("access-1", "zoho-refresh", expires_in=0))
    manager = OAuthTokenManager(store, CountingRefresh(rotate=False), clock=Clock())
    assert manager.access_token() == "access-2"
    assert store.load().refresh_token == "zoho-refresh"


def test_missing_tokens_are_an_auth_error() -> None:
    manager = OAuthTokenManager(InMemoryTokenStore(), CountingRefresh(), clock=Clock())
    with pytest.raises(SyncError) as raised:
        manager.access_token()
    assert raised.value.category is Category.AUTH


def test_invalidate_with_an_older_token_keeps_a_newer_one() -> None:
    store = InMemoryTokenStore(tokens("access-1"))
    refresh = CountingRefresh()
    manager = OAuthTokenManager(store, refresh, clock=Clock())
    manager.access_token()
    manager.invalidate("access-0")  # a late 401 for a token already replaced
    assert manager.access_token() == "access-1" and refresh.calls == []
    manager.invalidate("access-1")
    assert manager.access_token() == "access-2"


def test_token_set_repr_hides_tokens() -> None:
    assert "access-1" not in repr(tokens("access-1")) and "refresh-1" not in repr(tokens("a"))


class RotatingProvider:
    """Token endpoint + API on one loopback server, like Xero/QuickBooks.

    The token endpoint rotates the refresh token and rejects a superseded one with invalid_grant.
    The API records, for every request it authorises, what the store held at that moment: that is
    how the test observes "saved before used". `rotate=False` behaves like Zoho instead.
    `slow_answers` token requests are acted on at once but answered only after `delay` seconds;
    `meanwhile` runs while the first of them is pending (another process at work).
    """

    def __init__(self, store: InMemoryTokenStore, *, rotate: bool = True) -> None:
        self.store = store
        self.rotate = rotate
        self.valid_refresh = "refresh-1"
        self.valid_access = {"access-1"}
        self.revoked: set[str] = set()
        self.api_calls = 0
        self.token_posts: list[str | None] = []  # the refresh token of each POST received
        self.store_at_use: list[tuple[str, str | None, str | None]] = []
        self.generation = 1
        self.slow_answers = 0
        self.delay = 0.6
        self.meanwhile: Callable[[RotatingProvider], object] | None = None

    async def token(self, request: Request) -> Response:
        # Parsed by hand: Starlette's request.form() needs python-multipart, not installed here.
        sent = parse_qs((await request.body()).decode()).get("refresh_token", [None])[0]
        self.token_posts.append(sent)
        if sent != self.valid_refresh:
            return JSONResponse({"error": "invalid_grant"}, 400)
        body = self._issue()
        if self.slow_answers:
            self.slow_answers -= 1
            meanwhile, self.meanwhile = self.meanwhile, None
            if meanwhile is not None:
                meanwhile(self)
            await asyncio.sleep(self.delay)  # acted on; answered after the client gave up
        return JSONResponse(body)

    def _issue(self) -> dict[str, object]:
        self.generation += 1
        access = f"access-{self.generation}"
        self.valid_access.add(access)
        body: dict[str, object] = {"access_token": access, "expires_in": 1800}
        if self.rotate:
            self.valid_refresh = body["refresh_token"] = f"refresh-{self.generation}"
        return body

    async def contacts(self, request: Request) -> Response:
        self.api_calls += 1
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.valid_access or token in self.revoked:
            return JSONResponse({"Title": "Unauthorized"}, 401)
        stored = self.store.load()
        self.store_at_use.append((token, stored.access_token, stored.refresh_token))
        return JSONResponse({"Contacts": []})

    def routes(self) -> list[Route]:
        return [Route("/token", self.token, methods=["POST"]), Route("/contacts", self.contacts)]


@pytest.fixture
def provider_setup(serve):
    store = InMemoryTokenStore(tokens("access-1", "refresh-1"))
    provider = RotatingProvider(store)
    server = serve(provider.routes())
    client = HttpClient(
        HttpSettings(retry_max_attempts=2, retry_initial_delay_ms=1), base_url=server.url
    )

    def refresh(refresh_token: str) -> TokenSet:
        return request_tokens(client, "/token", data={"refresh_token": refresh_token})

    manager = OAuthTokenManager(store, refresh)
    yield store, provider, client, manager
    client.close()


def test_rotated_refresh_token_is_saved_before_the_new_access_token_is_used(provider_setup) -> None:
    store, provider, client, manager = provider_setup
    store.save(TokenSet("access-1", "refresh-1", datetime.now(UTC) + timedelta(seconds=10)))
    client.request("GET", "/contacts", auth=BearerAuth(manager))
    # The API saw the new token only once the store already held it and its rotated refresh token.
    assert provider.store_at_use == [("access-2", "access-2", "refresh-2")]
    assert store.saved[-1].refresh_token == "refresh-2"


def test_401_refreshes_once_and_retries(provider_setup) -> None:
    store, provider, client, manager = provider_setup
    store.save(TokenSet("access-1", "refresh-1", datetime.now(UTC) + timedelta(hours=1)))
    provider.revoked.add("access-1")  # revoked at the source although not expired locally
    assert client.get_json("/contacts", auth=BearerAuth(manager)) == {"Contacts": []}
    assert provider.api_calls == 2 and manager.refreshes == 1
    assert client.retries == 1


def test_second_401_is_an_auth_error(provider_setup) -> None:
    store, provider, client, manager = provider_setup
    store.save(TokenSet("access-1", "refresh-1", datetime.now(UTC) + timedelta(hours=1)))
    provider.revoked.update({"access-1", "access-2"})
    with pytest.raises(SyncError) as raised:
        client.request("GET", "/contacts", auth=BearerAuth(manager))
    assert raised.value.category is Category.AUTH and "after 2 attempts" in raised.value.message
    assert provider.api_calls == 2 and manager.refreshes == 1


def test_rejected_refresh_is_an_auth_error_with_a_fix(provider_setup) -> None:
    store, provider, client, manager = provider_setup
    store.save(TokenSet("access-1", "refresh-lost", datetime.now(UTC)))
    with pytest.raises(SyncError) as raised:
        manager.access_token()
    assert raised.value.category is Category.AUTH and not raised.value.retryable
    assert "invalid_grant" in raised.value.message and "Re-authorise" in raised.value.suggested_fix
    assert store.saved[-1].refresh_token == "refresh-lost"  # nothing overwritten


def test_zoho_200_error_from_token_endpoint_is_an_auth_error(serve) -> None:
    async def zoho_token(request: Request) -> Response:
        return JSONResponse({"error": "invalid_code"})  # Zoho's refusal comes with HTTP 200

    server = serve([Route("/oauth/v2/token", zoho_token, methods=["POST"])])
    with HttpClient(HttpSettings(), base_url=server.url) as client:
        with pytest.raises(SyncError) as raised:
            request_tokens(client, "/oauth/v2/token", params={"refresh_token": "1000.abc"})
        assert client.api_calls == 1
    assert raised.value.category is Category.AUTH and "invalid_code" in raised.value.message
    assert "1000.abc" not in raised.value.message


def other_process_refreshed(provider: RotatingProvider) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    provider.store.save(TokenSet("access-theirs", "refresh-theirs", expires))


def person_reconsented(provider: RotatingProvider) -> None:
    provider.valid_refresh = "refresh-consented"
    provider.store.save(TokenSet("", "refresh-consented", datetime.now(UTC)))


@pytest.mark.parametrize(
    ("rotate", "meanwhile", "posts", "access"),
    [
        # nothing changed and the refresh token may be spent: not repeated in this run
        (True, None, ["refresh-1"], None),
        # another process refreshed meanwhile: its tokens are used, nothing more is sent
        (True, other_process_refreshed, ["refresh-1"], "access-theirs"),
        # an unspent refresh token is stored now: one more refresh, with that one
        (True, person_reconsented, ["refresh-1", "refresh-consented"], "access-3"),
        # a provider that does not rotate (Zoho): repeating is harmless, once
        (False, None, ["refresh-1", "refresh-1"], "access-3"),
    ],
)
def test_a_refresh_whose_answer_is_lost_is_decided_after_rereading_the_store(
    serve, rotate, meanwhile, posts, access
) -> None:
    store = InMemoryTokenStore(TokenSet("access-1", "refresh-1", datetime.now(UTC)))
    provider = RotatingProvider(store, rotate=rotate)
    provider.slow_answers, provider.meanwhile = 1, meanwhile  # answered past the 200 ms timeout
    server = serve(provider.routes())
    settings = HttpSettings(retry_max_attempts=3, retry_initial_delay_ms=1, timeout_ms=200)
    with HttpClient(settings, base_url=server.url) as client:

        def refresh(refresh_token: str) -> TokenSet:
            return request_tokens(client, "/token", data={"refresh_token": refresh_token})

        manager = OAuthTokenManager(store, refresh, rotating_refresh_tokens=rotate)
        if access is None:
            with pytest.raises(SyncError) as raised:
                manager.access_token()
            error = raised.value
            assert error.category is Category.NETWORK and error.retryable
            assert "ReadTimeout" in error.message and "not repeated" in error.suggested_fix
            assert store.saved == []  # the stored refresh token is kept for the re-run
        else:
            assert manager.access_token() == access
            assert store.load().access_token == access
    assert provider.token_posts == posts  # one POST per decision, none from the retry loop


def zoho_token() -> str:
    return f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"


def jwt() -> str:
    return f"eyJhbGciOiJSUzI1NiJ9.{secrets.token_urlsafe(40)}.{secrets.token_urlsafe(30)}"


def opaque_token() -> str:
    return secrets.token_urlsafe(48)


def json_cut_in_token(token: str) -> str:
    return f'{{"access_token":"{token}","expires_in":3600}}'[: 17 + len(token) - 4]


def json_cut_after_token(token: str) -> str:
    return f'{{"access_token":"{token}","refresh_token":"{token[::-1]}","expi'


def long_json_cut_by_the_excerpt(token: str) -> str:  # the excerpt's 300 characters end in it
    return f'{{"scope":"{"ZohoBooks.fullaccess.all," * 10}","access_token":"{token}'


def form_encoded(token: str) -> str:
    return f"access_token={token}&expires_in=3600&token_type=Bearer"


def html_echo(token: str) -> str:
    return f"<html><body><p>Issued {token} to client 1000.X</p></body></html>"


@pytest.mark.parametrize(
    ("make_token", "body_of"),
    [
        (zoho_token, json_cut_in_token),
        (jwt, json_cut_in_token),
        (opaque_token, json_cut_in_token),
        (opaque_token, json_cut_after_token),
        (opaque_token, long_json_cut_by_the_excerpt),
        (opaque_token, form_encoded),
        (zoho_token, html_echo),
        (jwt, html_echo),
    ],
)
def test_an_unreadable_token_answer_never_shows_the_token(
    serve, caplog: pytest.LogCaptureFixture, make_token, body_of
) -> None:
    token = make_token()
    body = body_of(token)

    async def token_endpoint(request: Request) -> Response:
        return Response(body, 200, media_type="application/json")  # complete, yet not JSON

    server = serve([Route("/oauth/v2/token", token_endpoint, methods=["POST"])])
    store = InMemoryTokenStore(TokenSet("access-1", "refresh-1", datetime.now(UTC)))
    logger = logging.getLogger("hub_pipelines_tests.oauth")
    with HttpClient(HttpSettings(), base_url=server.url, logger=logger) as client:
        with pytest.raises(OutcomeUnknown) as direct:
            request_tokens(client, "/oauth/v2/token", data={"refresh_token": "refresh-1"})

        def refresh(refresh_token: str) -> TokenSet:
            return request_tokens(client, "/oauth/v2/token", data={"refresh_token": refresh_token})

        manager = OAuthTokenManager(store, refresh)
        with caplog.at_level(logging.DEBUG), pytest.raises(SyncError) as via_manager:
            manager.access_token()
        assert client.api_calls == 2  # one POST each: the issued tokens may be in that body
    assert direct.value.category is Category.SERVER and via_manager.value.retryable
    for error in (direct.value, via_manager.value):
        for text in (error.message, str(error), caplog.text):
            assert leaked_fragments(token, text) == set(), text
    assert "not a JSON object" in direct.value.message


def test_a_refresh_token_echoed_and_cut_by_the_excerpt_is_masked(serve) -> None:
    refresh_token = opaque_token()  # no credential shape: only its registration can hide it

    async def token_endpoint(request: Request) -> Response:
        sent = parse_qs((await request.body()).decode())["refresh_token"][0]
        page = f"<html><body>{'Bad request. ' * 19}You sent {sent}.</body></html>"
        return Response(page, 400, media_type="text/html")  # the excerpt ends inside the token

    server = serve([Route("/token", token_endpoint, methods=["POST"])])
    store = InMemoryTokenStore(TokenSet("access-1", refresh_token, datetime.now(UTC)))
    with HttpClient(HttpSettings(), base_url=server.url) as client:

        def refresh(token: str) -> TokenSet:
            return request_tokens(client, "/token", data={"refresh_token": token})

        with pytest.raises(SyncError) as raised:
            OAuthTokenManager(store, refresh).access_token()
    assert raised.value.category is Category.AUTH and raised.value.message.endswith("***…")
    assert leaked_fragments(refresh_token, raised.value.message) == set()
