"""The authorisation server every simulator shares: clients, grants, refresh and access tokens.

One `TokenPolicy` covers the three token regimes of the systems we simulate:

| system | access | rotation | old refresh token | refresh expiry | token requests | active |
|---|---|---|---|---|---|---|
| Zoho Books | 3600 s | never | - | none | 10 per 600 s | 15 |
| QuickBooks Online | 3600 s | after N s (a day (unverified)) | refused | 100 d; 5 y hard | - | - |
| Xero | 1800 s | every refresh | 30 min grace | 60 d unused | - | - |

The server knows nothing of HTTP: `refresh` and `exchange_code` answer a `TokenGrant` or a
`TokenRefusal` naming the error ("invalid_client" | "invalid_grant" | "throttled"), and each shape
renders them as its system does (Zoho: HTTP 200 `{"error": "invalid_code"}`; Intuit and Xero:
HTTP 400 `{"error": "invalid_grant"}`). Every time is read through the injected `timer`
(monotonic seconds), so a test moves tokens through their lives with a fake timer.

A grant is one authorisation (one consent): its chain of refresh tokens, its access tokens and its
token-request window. A refresh token "expires" `refresh_idle_expiry_seconds` after it was issued:
for a token that rotates on every refresh that is "unused for that long" (Xero), for one rotated
on a schedule it is the rolling expiry Intuit counts down in `x_refresh_token_expires_in`. The hard
expiry counts from the authorisation and rotation does not extend it (Intuit, since Oct 2023).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NEVER = "never"
EVERY_REFRESH = "every_refresh"
# RFC 6749 recommends at most 10 minutes for an authorization code; Intuit and Xero both use it.
CODE_LIFETIME_SECONDS = 600.0


@dataclass(slots=True)
class TokenPolicy:
    """How one system issues tokens. Plain attributes: a test may change them at any time."""

    access_token_lifetime: int = 3600
    # "never" | "every_refresh" | seconds after its issue from which a refresh rotates the token
    rotation: str | float = NEVER
    previous_token_grace_seconds: float = 0.0  # 0: a superseded refresh token is refused at once
    refresh_idle_expiry_seconds: float | None = None  # since the refresh token's issue
    refresh_hard_expiry_seconds: float | None = None  # since the authorisation
    token_requests_per_window: int | None = None  # per grant; None: unlimited
    token_window_seconds: float | None = None
    max_active_access_tokens: int | None = None  # per grant; the oldest is dropped silently
    max_grants_per_client: int | None = None  # the oldest grant is revoked silently (Zoho: 20)

    def __post_init__(self) -> None:
        if self.rotation not in (NEVER, EVERY_REFRESH) and not isinstance(
            self.rotation, int | float
        ):
            raise ValueError(
                f"rotation: 'never', 'every_refresh' or seconds, not {self.rotation!r}"
            )

    def rotates(self, token_age: float) -> bool:
        if self.rotation == NEVER:
            return False
        if self.rotation == EVERY_REFRESH:
            return True
        return token_age >= float(self.rotation)


@dataclass(eq=False, slots=True)
class Grant:
    """One authorisation of one client: its current (and previous) refresh token."""

    client_id: str
    refresh_token: str
    scope: str
    created_at: float  # the hard expiry counts from here
    refresh_issued_at: float  # the current refresh token's issue: idle expiry and rotation age
    context: dict[str, Any] = field(default_factory=dict)  # what a shape binds: realm, tenants
    previous_token: str | None = None
    superseded_at: float = 0.0
    revoked: bool = False
    token_requests: deque[float] = field(default_factory=deque)
    access_tokens: deque[str] = field(default_factory=deque)  # oldest first


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A successful token answer, for the shape to render."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_token_expires_in: int | None  # None: the policy has no refresh expiry
    hard_expires_in: int | None  # only when asked for and the policy has a hard expiry
    scope: str
    rotated: bool  # refresh_token differs from the one presented


@dataclass(frozen=True, slots=True)
class TokenRefusal:
    error: str  # invalid_client | invalid_grant | throttled
    description: str = ""


@dataclass(slots=True)
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    state: str
    issued_at: float
    context: dict[str, Any]
    grant: Grant | None = None  # set when exchanged: a second exchange revokes it


def _default_token(kind: str) -> str:
    return secrets.token_urlsafe(32)


class OAuthServer:
    """Clients (id → secret), grants, and the refresh / authorization-code flows."""

    def __init__(
        self,
        policy: TokenPolicy | None = None,
        *,
        timer: Callable[[], float] = time.monotonic,
        lock: threading.RLock | None = None,
        new_token: Callable[[str], str] = _default_token,
    ) -> None:
        self.policy = policy or TokenPolicy()
        self.timer = timer
        self.lock = lock or threading.RLock()
        self.new_token = new_token  # kind ("access" | "refresh" | "code") -> token text
        self.clients: dict[str, str] = {}
        self.grants: list[Grant] = []  # oldest first
        self._by_refresh_token: dict[str, Grant] = {}  # current and previous tokens
        self._access_tokens: dict[str, tuple[Grant, float]] = {}  # token -> (grant, expires_at)
        self._codes: dict[str, _Code] = {}

    # --- clients and grants ----------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.clients[client_id] = client_secret

    def client_ok(self, client_id: str, client_secret: str | None) -> bool:
        secret = self.clients.get(client_id)
        presented = (client_secret or "").encode()
        return secret is not None and secrets.compare_digest(secret.encode(), presented)

    def issue_refresh_token(
        self,
        client_id: str,
        token: str | None = None,
        *,
        scope: str = "",
        context: dict[str, Any] | None = None,
    ) -> str:
        """A new grant, as a completed consent gives (test back door: no browser, no code)."""
        with self.lock:
            return self._new_grant(client_id, token, scope, context or {}).refresh_token

    def issue_access_token(self, refresh_token: str) -> str:
        """Back door for tests that do not exercise the token endpoint: no window, no rotation."""
        with self.lock:
            return self._new_access_token(self._by_refresh_token[refresh_token])

    def grant_of(self, access_token: str) -> Grant | None:
        """The live grant an access token belongs to (its realm or tenants in `context`)."""
        with self.lock:
            issued = self._access_tokens.get(access_token)
            if issued is None or issued[1] <= self.timer() or issued[0].revoked:
                return None
            return issued[0]

    def authorised(self, access_token: str) -> bool:
        return self.grant_of(access_token) is not None

    def expire_access_tokens(self) -> None:
        """Every issued access token stops working now (clients must refresh)."""
        with self.lock:
            self._access_tokens.clear()
            for grant in self.grants:
                grant.access_tokens.clear()

    def revoke(self, refresh_token: str) -> None:
        """The user disconnected the app: the grant's tokens stop working."""
        with self.lock:
            grant = self._by_refresh_token.get(refresh_token)
            if grant is not None:
                self._revoke(grant)

    # --- refresh ---------------------------------------------------------------------------------

    def refresh(
        self,
        client_id: str,
        client_secret: str | None,
        refresh_token: str,
        *,
        want_hard_expiry: bool = False,
    ) -> TokenGrant | TokenRefusal:
        with self.lock:
            if not self.client_ok(client_id, client_secret):
                return TokenRefusal("invalid_client")
            grant = self._by_refresh_token.get(refresh_token)
            if grant is None or grant.client_id != client_id:
                return TokenRefusal("invalid_grant", "unknown refresh token")
            now = self.timer()
            problem = self._refresh_problem(grant, refresh_token, now)
            if problem:
                return TokenRefusal("invalid_grant", problem)
            if self._window_full(grant, now):
                return TokenRefusal("throttled", "too many token requests")
            grant.token_requests.append(now)
            # A superseded token still in its grace gets the current one back (unverified:
            # Xero says only that the previous token "may be retried"), without a new rotation.
            presented_current = refresh_token == grant.refresh_token
            if presented_current and self.policy.rotates(now - grant.refresh_issued_at):
                self._rotate(grant, now)
            return self._token_grant(grant, refresh_token, now, want_hard_expiry)

    def _refresh_problem(self, grant: Grant, presented: str, now: float) -> str:
        """Why the presented refresh token no longer works ("" when it does)."""
        policy = self.policy
        if grant.revoked:
            return "grant revoked"
        hard = policy.refresh_hard_expiry_seconds
        if hard is not None and now - grant.created_at >= hard:
            return "refresh token past its maximum lifetime"
        idle = policy.refresh_idle_expiry_seconds
        if idle is not None and now - grant.refresh_issued_at >= idle:
            return "refresh token expired"
        grace = policy.previous_token_grace_seconds
        if presented != grant.refresh_token and now - grant.superseded_at >= grace:
            return "refresh token superseded"
        return ""

    def _window_full(self, grant: Grant, now: float) -> bool:
        limit, window = self.policy.token_requests_per_window, self.policy.token_window_seconds
        if limit is None or window is None:
            return False
        requests = grant.token_requests
        while requests and requests[0] <= now - window:
            requests.popleft()
        return len(requests) >= limit

    def _rotate(self, grant: Grant, now: float) -> None:
        if grant.previous_token is not None:
            self._by_refresh_token.pop(grant.previous_token, None)  # only one previous token
        grant.previous_token, grant.superseded_at = grant.refresh_token, now
        grant.refresh_token, grant.refresh_issued_at = self.new_token("refresh"), now
        self._by_refresh_token[grant.refresh_token] = grant

    def _token_grant(
        self, grant: Grant, presented: str, now: float, want_hard_expiry: bool
    ) -> TokenGrant:
        policy = self.policy
        idle, hard = policy.refresh_idle_expiry_seconds, policy.refresh_hard_expiry_seconds
        return TokenGrant(
            access_token=self._new_access_token(grant),
            expires_in=int(policy.access_token_lifetime),
            refresh_token=grant.refresh_token,
            refresh_token_expires_in=(
                None if idle is None else int(grant.refresh_issued_at + idle - now)
            ),
            hard_expires_in=(
                int(grant.created_at + hard - now)
                if want_hard_expiry and hard is not None
                else None
            ),
            scope=grant.scope,
            rotated=grant.refresh_token != presented,
        )

    # --- authorization code (browser onboarding) -------------------------------------------------

    def authorize(
        self,
        client_id: str,
        redirect_uri: str,
        scope: str,
        state: str,
        *,
        context: dict[str, Any] | None = None,
    ) -> str:
        """The user consented: a code for the client to exchange (single use, 10 minutes)."""
        with self.lock:
            if client_id not in self.clients:
                raise ValueError(f"unknown client {client_id!r}")
            code = self.new_token("code")
            self._codes[code] = _Code(
                client_id, redirect_uri, scope, state, self.timer(), context or {}
            )
            return code

    def exchange_code(
        self,
        client_id: str,
        client_secret: str | None,
        code: str,
        redirect_uri: str,
        *,
        want_hard_expiry: bool = False,
    ) -> TokenGrant | TokenRefusal:
        """A second exchange of a code revokes the grant the first one made (Intuit staff: a
        reused code poisons the grant; RFC 6749 §4.1.2 "SHOULD revoke")."""
        with self.lock:
            if not self.client_ok(client_id, client_secret):
                return TokenRefusal("invalid_client")
            issued = self._codes.get(code)
            if issued is None or issued.client_id != client_id:
                return TokenRefusal("invalid_grant", "unknown authorization code")
            if issued.grant is not None:
                self._revoke(issued.grant)
                return TokenRefusal("invalid_grant", "authorization code already used")
            now = self.timer()
            if now - issued.issued_at >= CODE_LIFETIME_SECONDS:
                return TokenRefusal("invalid_grant", "authorization code expired")
            if issued.redirect_uri != redirect_uri:
                return TokenRefusal("invalid_grant", "redirect_uri does not match")
            issued.grant = self._new_grant(client_id, None, issued.scope, issued.context)
            return self._token_grant(issued.grant, "", now, want_hard_expiry)

    # --- internals (called under the lock) -------------------------------------------------------

    def _new_grant(
        self, client_id: str, token: str | None, scope: str, context: dict[str, Any]
    ) -> Grant:
        if token in self._by_refresh_token:  # the same token issued again: a new consent
            self._revoke(self._by_refresh_token[token])
        now = self.timer()
        grant = Grant(client_id, token or self.new_token("refresh"), scope, now, now, context)
        self.grants.append(grant)
        self._by_refresh_token[grant.refresh_token] = grant
        limit = self.policy.max_grants_per_client
        if limit is not None:
            owned = [g for g in self.grants if g.client_id == client_id]
            for oldest in owned[:-limit]:
                self._revoke(oldest)
        return grant

    def _revoke(self, grant: Grant) -> None:
        grant.revoked = True
        for token in (grant.refresh_token, grant.previous_token):
            if token is not None:
                self._by_refresh_token.pop(token, None)
        for token in grant.access_tokens:
            self._access_tokens.pop(token, None)
        grant.access_tokens.clear()
        if grant in self.grants:
            self.grants.remove(grant)

    def _new_access_token(self, grant: Grant) -> str:
        token = self.new_token("access")
        self._access_tokens[token] = (grant, self.timer() + self.policy.access_token_lifetime)
        grant.access_tokens.append(token)
        limit = self.policy.max_active_access_tokens
        while limit is not None and len(grant.access_tokens) > limit:
            self._access_tokens.pop(grant.access_tokens.popleft(), None)
        return token
