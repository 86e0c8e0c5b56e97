"""The simulators' OAuth server: each token policy of Zoho, QuickBooks and Xero as pure logic under
a fake timer (the HTTP rendering is each shape's; see test_engine for one over loopback)."""

from __future__ import annotations

import pytest

from hub_pipelines.simulation.oauth_server import (
    EVERY_REFRESH,
    OAuthServer,
    TokenGrant,
    TokenPolicy,
    TokenRefusal,
)

CLIENT, SECRET = "app", "app-secret"
DAY = 86_400
REDIRECT = "https://hub.example/oauth/quickbooks/callback"


class Timer:
    def __init__(self) -> None:
        self.seconds = 1_000.0

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def timer() -> Timer:
    return Timer()


def server(timer: Timer, **policy) -> OAuthServer:
    oauth = OAuthServer(TokenPolicy(**policy), timer=timer)
    oauth.add_client(CLIENT, SECRET)
    return oauth


def refresh(oauth: OAuthServer, token: str, **options) -> TokenGrant | TokenRefusal:
    return oauth.refresh(CLIENT, SECRET, token, **options)


def granted(answer: TokenGrant | TokenRefusal) -> TokenGrant:
    assert isinstance(answer, TokenGrant), answer
    return answer


def refused(answer: TokenGrant | TokenRefusal) -> str:
    assert isinstance(answer, TokenRefusal), answer
    return answer.error


def test_zoho_never_rotates_and_access_tokens_live_their_lifetime(timer):
    oauth = server(timer, access_token_lifetime=3600)
    token = oauth.issue_refresh_token(CLIENT)
    first, second = granted(refresh(oauth, token)), granted(refresh(oauth, token))
    assert first.refresh_token == second.refresh_token == token and not first.rotated
    assert first.expires_in == 3600 and first.refresh_token_expires_in is None
    assert oauth.authorised(first.access_token) and oauth.authorised(second.access_token)
    timer.seconds += 3600
    assert not oauth.authorised(first.access_token)


def test_client_credentials_and_unknown_tokens_are_refused(timer):
    oauth = server(timer)
    token = oauth.issue_refresh_token(CLIENT)
    assert refused(oauth.refresh(CLIENT, "wrong", token)) == "invalid_client"
    assert refused(oauth.refresh("someone", SECRET, token)) == "invalid_client"
    assert refused(oauth.refresh(CLIENT, None, token)) == "invalid_client"
    assert refused(refresh(oauth, "made-up")) == "invalid_grant"
    oauth.add_client("other", "other-secret")
    assert refused(oauth.refresh("other", "other-secret", token)) == "invalid_grant"  # not theirs


def test_rotation_on_every_refresh_without_grace_refuses_the_old_token_at_once(timer):
    oauth = server(timer, rotation=EVERY_REFRESH)
    old = oauth.issue_refresh_token(CLIENT)
    new = granted(refresh(oauth, old))
    assert new.rotated and new.refresh_token != old
    assert refused(refresh(oauth, old)) == "invalid_grant"
    assert granted(refresh(oauth, new.refresh_token)).refresh_token != new.refresh_token


def test_xero_rotation_keeps_the_previous_token_for_its_grace(timer):
    oauth = server(timer, rotation=EVERY_REFRESH, previous_token_grace_seconds=1800)
    old = oauth.issue_refresh_token(CLIENT)
    current = granted(refresh(oauth, old)).refresh_token
    timer.seconds += 1799
    retried = granted(refresh(oauth, old))  # the answer was lost: the old token still works
    assert retried.refresh_token == current and oauth.authorised(retried.access_token)
    timer.seconds += 1
    assert refused(refresh(oauth, old)) == "invalid_grant"
    newest = granted(refresh(oauth, current)).refresh_token
    assert refused(refresh(oauth, old)) == "invalid_grant"  # two generations back: gone
    assert granted(refresh(oauth, current)).refresh_token == newest  # current is now previous


def test_quickbooks_rotates_after_a_number_of_seconds(timer):
    oauth = server(timer, rotation=DAY)
    token = oauth.issue_refresh_token(CLIENT)
    timer.seconds += DAY - 1
    assert granted(refresh(oauth, token)).refresh_token == token
    timer.seconds += 1
    rotated = granted(refresh(oauth, token))
    assert rotated.rotated and rotated.refresh_token != token
    assert refused(refresh(oauth, token)) == "invalid_grant"  # no grace (fact sheet §0)


def test_the_rolling_refresh_expiry_counts_down_and_restarts_with_each_new_token(timer):
    oauth = server(timer, rotation=DAY, refresh_idle_expiry_seconds=100 * DAY)
    token = oauth.issue_refresh_token(CLIENT)
    assert granted(refresh(oauth, token)).refresh_token_expires_in == 8_640_000  # 100 days
    timer.seconds += 4815
    assert granted(refresh(oauth, token)).refresh_token_expires_in == 8_640_000 - 4815
    timer.seconds += DAY
    rotated = granted(refresh(oauth, token))
    assert rotated.refresh_token_expires_in == 8_640_000
    timer.seconds += 100 * DAY
    assert refused(refresh(oauth, rotated.refresh_token)) == "invalid_grant"


def test_xero_refresh_tokens_expire_after_sixty_unused_days(timer):
    oauth = server(timer, rotation=EVERY_REFRESH, refresh_idle_expiry_seconds=60 * DAY)
    token = oauth.issue_refresh_token(CLIENT)
    timer.seconds += 59 * DAY
    token = granted(refresh(oauth, token)).refresh_token  # used in time: a fresh 60 days
    timer.seconds += 59 * DAY
    token = granted(refresh(oauth, token)).refresh_token
    timer.seconds += 60 * DAY
    assert refused(refresh(oauth, token)) == "invalid_grant"


def test_the_hard_expiry_is_reported_on_request_and_rotation_does_not_extend_it(timer):
    five_years = 5 * 365 * DAY
    oauth = server(timer, rotation=EVERY_REFRESH, refresh_hard_expiry_seconds=five_years)
    token = oauth.issue_refresh_token(CLIENT)
    assert granted(refresh(oauth, token)).hard_expires_in is None  # not asked for
    token = oauth.grants[0].refresh_token
    timer.seconds += 1000
    asked = granted(refresh(oauth, token, want_hard_expiry=True))
    assert asked.hard_expires_in == five_years - 1000
    timer.seconds += five_years - 1000
    assert refused(refresh(oauth, asked.refresh_token)) == "invalid_grant"


def test_no_hard_expiry_reported_when_the_policy_has_none(timer):
    oauth = server(timer)
    token = oauth.issue_refresh_token(CLIENT)
    assert granted(refresh(oauth, token, want_hard_expiry=True)).hard_expires_in is None


def test_the_token_request_window_refuses_and_a_refusal_does_not_count(timer):
    oauth = server(timer, token_requests_per_window=2, token_window_seconds=600)
    token = oauth.issue_refresh_token(CLIENT)
    granted(refresh(oauth, token))
    timer.seconds += 100
    granted(refresh(oauth, token))
    assert refused(refresh(oauth, token)) == "throttled"
    timer.seconds += 500  # the first request leaves the window
    granted(refresh(oauth, token))
    assert refused(refresh(oauth, token)) == "throttled"
    assert oauth.issue_access_token(token)  # the back door ignores the window


def test_the_oldest_access_token_drops_past_the_active_cap(timer):
    oauth = server(timer, max_active_access_tokens=2)
    token = oauth.issue_refresh_token(CLIENT)
    first = oauth.issue_access_token(token)
    second = granted(refresh(oauth, token)).access_token
    third = oauth.issue_access_token(token)
    assert [oauth.authorised(t) for t in (first, second, third)] == [False, True, True]


def test_expire_access_tokens_and_revoke(timer):
    oauth = server(timer)
    token = oauth.issue_refresh_token(CLIENT, context={"realm": "9130"})
    access = oauth.issue_access_token(token)
    assert oauth.grant_of(access).context == {"realm": "9130"}
    oauth.expire_access_tokens()
    assert not oauth.authorised(access)
    access = granted(refresh(oauth, token)).access_token
    oauth.revoke(token)  # the user disconnected the app
    assert not oauth.authorised(access)
    assert refused(refresh(oauth, token)) == "invalid_grant"


def test_the_oldest_grant_of_a_client_is_revoked_past_the_cap(timer):
    oauth = server(timer, max_grants_per_client=2)
    oldest, *_ = [oauth.issue_refresh_token(CLIENT) for _ in range(3)]
    assert refused(refresh(oauth, oldest)) == "invalid_grant"
    assert len(oauth.grants) == 2


def test_a_code_is_exchanged_once_and_a_reused_code_poisons_its_grant(timer):
    oauth = server(timer, rotation=EVERY_REFRESH)
    code = oauth.authorize(CLIENT, REDIRECT, "com.intuit.quickbooks.accounting", "state-1")
    tokens = granted(oauth.exchange_code(CLIENT, SECRET, code, REDIRECT))
    assert oauth.authorised(tokens.access_token)
    assert tokens.scope == "com.intuit.quickbooks.accounting"
    again = oauth.exchange_code(CLIENT, SECRET, code, REDIRECT)
    assert refused(again) == "invalid_grant"
    assert not oauth.authorised(tokens.access_token)  # Intuit: reuse poisons the grant
    assert refused(refresh(oauth, tokens.refresh_token)) == "invalid_grant"


def test_a_code_expires_in_ten_minutes_and_binds_its_redirect_and_client(timer):
    oauth = server(timer)
    oauth.add_client("other", "other-secret")
    code = oauth.authorize(CLIENT, REDIRECT, "scope", "s")
    assert refused(oauth.exchange_code(CLIENT, "wrong", code, REDIRECT)) == "invalid_client"
    assert refused(oauth.exchange_code("other", "other-secret", code, REDIRECT)) == "invalid_grant"
    wrong_redirect = oauth.exchange_code(CLIENT, SECRET, code, REDIRECT + "x")
    assert refused(wrong_redirect) == "invalid_grant"
    late = oauth.authorize(CLIENT, REDIRECT, "scope", "s")
    timer.seconds += 600
    assert refused(oauth.exchange_code(CLIENT, SECRET, late, REDIRECT)) == "invalid_grant"
    assert refused(oauth.exchange_code(CLIENT, SECRET, "made-up", REDIRECT)) == "invalid_grant"
    with pytest.raises(ValueError):
        oauth.authorize("nobody", REDIRECT, "scope", "s")


def test_a_code_grant_reports_its_expiries(timer):
    oauth = server(timer, refresh_idle_expiry_seconds=100 * DAY, refresh_hard_expiry_seconds=DAY)
    code = oauth.authorize(CLIENT, REDIRECT, "scope", "s", context={"realm": "9130"})
    tokens = granted(oauth.exchange_code(CLIENT, SECRET, code, REDIRECT, want_hard_expiry=True))
    assert (tokens.refresh_token_expires_in, tokens.hard_expires_in) == (100 * DAY, DAY)
    assert oauth.grant_of(tokens.access_token).context == {"realm": "9130"}


def test_a_policy_names_its_rotation():
    with pytest.raises(ValueError):
        TokenPolicy(rotation="sometimes")
