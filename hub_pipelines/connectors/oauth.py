"""OAuth 2 refresh-token flows: cached access tokens, single-flight refresh, rotation-safe saves.

Zoho refresh tokens are long-lived and never rotated, but token creation is capped (10 per 10 min):
cache and share access tokens. QuickBooks may rotate and Xero always rotates the refresh token on
every refresh: the new one must be persisted **before** it is used, or a crash between "used" and
"saved" leaves a dead token that only a person can replace by re-consenting. Two processes
refreshing the same token set also kill it, hence "one refresh at a time per tenant config".

A refresh is a POST, and its answer can be lost after the provider acted on it (a read timeout, a
dropped connection, a 5xx, a truncated body). The HTTP client does not repeat it (`OutcomeUnknown`);
the manager re-reads the stored tokens and then decides, sending at most one more request:
* usable tokens are stored now (another process refreshed meanwhile): use them, no request;
* a refresh token other than the one sent is stored (rotated or re-consented elsewhere): it is
  unspent, refresh with it;
* nothing changed and the system does not rotate refresh tokens (Zoho): repeat the refresh once;
* nothing changed and it may rotate (QuickBooks, Xero, the default): do not repeat now. The refresh
  token sent may already be spent, and a provider that detects reuse of a spent refresh token
  revokes the whole grant. The run fails with a retryable error; its re-run reads the store again
  and refreshes with what it finds (a provider that keeps the previous refresh token valid for a
  grace period accepts it; otherwise the answer is `invalid_grant`: re-authorise).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from hub_pipelines.connectors.errors import REAUTHORISE_STEPS, Category, SyncError
from hub_pipelines.connectors.http import (
    Failure,
    HttpClient,
    OutcomeUnknown,
    body_excerpt,
    json_body,
)
from hub_pipelines.connectors.redact import Redactor, default_redactor

REAUTHORISE = (
    "Re-authorise the connection: the refresh token was rejected (revoked, expired, or a "
    "rotated token was lost). " + REAUTHORISE_STEPS
)
LOST_REFRESH = (
    "The token endpoint's answer to a refresh was lost, and the refresh token may have been "
    "rotated by it, so the refresh was not repeated in this run (repeating a spent refresh token "
    "can revoke the grant). The retry sensor re-runs the import, which refreshes again with the "
    "stored token; if the provider then refuses it (invalid_grant), re-authorise the connection: "
    + REAUTHORISE_STEPS
)


@dataclass(frozen=True, slots=True)
class TokenSet:
    """One tenant's OAuth tokens; tokens are kept out of `repr` so they never reach a log."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # api_domain, scope, …

    def __post_init__(self) -> None:
        if self.expires_at.tzinfo is None:
            raise ValueError("TokenSet.expires_at must be timezone-aware")

    @classmethod
    def from_token_response(cls, body: Mapping[str, Any], now: datetime | None = None) -> TokenSet:
        """Parse a standard token endpoint answer (`access_token`, `expires_in`, …)."""
        if body.get("error") or not body.get("access_token"):
            error = body.get("error") or "no access_token in the answer"
            raise SyncError(Category.AUTH, f"token endpoint refused the refresh: {error}")
        now = now or datetime.now(UTC)
        expires_in = float(body.get("expires_in") or 3600)
        known = {"access_token", "refresh_token", "expires_in"}
        return cls(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token") or None,
            expires_at=now + timedelta(seconds=expires_in),
            extra={key: value for key, value in body.items() if key not in known},
        )


class TokenStore(Protocol):
    """Where one tenant config's tokens live (production: encrypted row + advisory lock)."""

    def load(self) -> TokenSet | None: ...

    def save(self, tokens: TokenSet) -> None: ...

    def lock(self) -> AbstractContextManager[Any]:
        """Held around a refresh: one refresh at a time per tenant config, across processes."""
        ...


class InMemoryTokenStore:
    """A `TokenStore` for tests and simulator demos; `saved` records every save in order."""

    def __init__(self, tokens: TokenSet | None = None) -> None:
        self._tokens = tokens
        self._lock = threading.Lock()
        self.saved: list[TokenSet] = []

    def load(self) -> TokenSet | None:
        return self._tokens

    def save(self, tokens: TokenSet) -> None:
        self._tokens = tokens
        self.saved.append(tokens)

    def lock(self) -> AbstractContextManager[Any]:
        return self._lock


RefreshFunction = Callable[[str], TokenSet]


class OAuthTokenManager:
    """Hands out a valid access token, refreshing at most once per expiry across workers."""

    def __init__(
        self,
        store: TokenStore,
        refresh: RefreshFunction,
        *,
        skew_seconds: float = 300,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        redactor: Redactor | None = None,
        rotating_refresh_tokens: bool = True,
    ) -> None:
        """`refresh(refresh_token)` calls the token endpoint and returns the new TokenSet.
        `rotating_refresh_tokens=False` (Zoho) lets a refresh whose answer was lost be repeated
        once in the same run (module docstring)."""
        self._rotating = rotating_refresh_tokens
        self._store = store
        self._refresh = refresh
        self._skew = timedelta(seconds=skew_seconds)
        self._clock = clock
        self._redactor = redactor or default_redactor()
        self._lock = threading.Lock()  # in-process single flight, before the store's lock
        self._cached: TokenSet | None = None
        self._rejected: str | None = None  # an access token the source answered 401 to
        self.refreshes = 0

    def access_token(self) -> str:
        tokens = self._usable(self._cached) or self._usable(self._remember(self._store.load()))
        return (tokens or self._refresh_once()).access_token

    def invalidate(self, rejected_access_token: str | None = None) -> None:
        """After a 401: never hand out that token again. Passing the token that was sent keeps a
        token another thread refreshed in the meantime."""
        with self._lock:
            cached = self._cached
            rejected = rejected_access_token or (cached.access_token if cached else None)
            self._rejected = rejected
            if cached is not None and cached.access_token == rejected:
                self._cached = None

    def _refresh_once(self) -> TokenSet:
        with self._lock:
            tokens = self._usable(self._cached)  # another thread refreshed while we waited
            if tokens is not None:
                return tokens
            with self._store.lock():
                # Re-read under the lock: another worker may have refreshed (and rotated) already.
                current = self._store.load()
                tokens = self._usable(current) or self._refresh_and_save(current)
            self._remember(tokens)
            return tokens

    def _refresh_and_save(self, current: TokenSet | None) -> TokenSet:
        if current is None or not current.refresh_token:
            raise SyncError(Category.AUTH, "no OAuth refresh token is stored for this connection")
        try:
            return self._save(current, self._refresh(current.refresh_token))
        except OutcomeUnknown as lost:
            return self._after_lost_answer(current, lost)

    def _after_lost_answer(self, sent: TokenSet, lost: OutcomeUnknown) -> TokenSet:
        """The provider may have refreshed without us seeing the answer: look at the store, then
        decide (module docstring). Still under the store's lock."""
        stored = self._store.load()
        if (usable := self._usable(stored)) is not None:
            return usable
        if stored and stored.refresh_token and stored.refresh_token != sent.refresh_token:
            again = stored  # a refresh token we did not send is unspent
        elif not self._rotating:
            again = sent
        else:
            raise SyncError(
                lost.category,
                lost.message,
                suggested_fix=LOST_REFRESH,
                retryable=True,
                code=lost.code,
            ) from lost
        return self._save(again, self._refresh(again.refresh_token or ""))

    def _save(self, current: TokenSet, fresh: TokenSet) -> TokenSet:
        if not fresh.refresh_token:  # Zoho does not rotate: the old refresh token stays valid
            fresh = replace(fresh, refresh_token=current.refresh_token)
        self._redactor.register(fresh.access_token, fresh.refresh_token)
        # Saved before anyone uses it: a rotated refresh token that is lost needs a re-consent.
        self._store.save(fresh)
        self.refreshes += 1
        return fresh

    def _usable(self, tokens: TokenSet | None) -> TokenSet | None:
        if tokens is None or tokens.access_token == self._rejected:
            return None
        if tokens.expires_at - self._clock() <= self._skew:
            return None
        return tokens

    def _remember(self, tokens: TokenSet | None) -> TokenSet | None:
        if tokens is not None:
            self._redactor.register(tokens.access_token, tokens.refresh_token)
            self._cached = tokens
        return tokens


class BearerAuth:
    """`HttpClient` authenticator: `Authorization: <scheme> <token>`, fresh token after a 401."""

    def __init__(
        self, manager: OAuthTokenManager, *, scheme: str = "Bearer", header: str = "Authorization"
    ) -> None:
        self._manager = manager
        self._scheme = scheme  # Zoho: "Zoho-oauthtoken"
        self._header = header

    def headers(self) -> dict[str, str]:
        return {self._header: f"{self._scheme} {self._manager.access_token()}"}

    def unauthorized(self, sent: Mapping[str, str]) -> None:
        token = sent.get(self._header, "").removeprefix(f"{self._scheme} ")
        self._manager.invalidate(token or None)


def token_response_check(response: httpx.Response) -> Failure | None:
    """Response check for token endpoints: refusals are AUTH, whatever the status says.

    Zoho answers 200 `{"error": "invalid_code"}`; Intuit and Xero 400 `{"error": "invalid_grant"}`.
    """
    if response.status_code == 429 or response.status_code >= 500:
        return None  # throttled or down: the default rules retry
    try:
        error = json_body(response).get("error")
    except (ValueError, AttributeError):
        error = None
    if error or response.status_code >= 400:
        detail = f"token endpoint refused the refresh: {error or body_excerpt(response)}"
        return Failure(
            Category.AUTH,
            detail,
            code=str(error or response.status_code),
            suggested_fix=REAUTHORISE,
        )
    return None


def request_tokens(
    client: HttpClient,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    check: Callable[[httpx.Response], Failure | None] = token_response_check,
) -> TokenSet:
    """POST a refresh (or code exchange) to a token endpoint and parse the answer. `check` lets a
    system tell its own refusals apart (e.g. Zoho's temporary token-creation block).

    An answer that cannot be read (not a JSON object, e.g. truncated) raises `OutcomeUnknown`: the
    endpoint may have issued tokens. Its text, which can hold those tokens, is redacted."""
    response = client.request("POST", url, params=params, data=data, headers=headers, check=check)
    try:
        body = json_body(response)
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        message = "the token endpoint answered a body that is not a JSON object: "
        raise OutcomeUnknown(
            Category.SERVER,
            client.redactor.redact(message + body_excerpt(response)),
            code="invalid_json",
        )
    return TokenSet.from_token_response(body)
