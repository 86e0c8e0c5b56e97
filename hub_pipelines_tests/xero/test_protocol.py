"""Xero protocol knowledge: MS-JSON dates, list requests, limits headers and response checks,
on real recorded answers and on httpx.Response objects built here."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import httpx
import pytest

from hub_pipelines.connectors.errors import Category
from hub_pipelines.xero import protocol
from hub_pipelines.xero.protocol import (
    contacts_by_id_params,
    contacts_params,
    has_more_pages,
    if_modified_since,
    invoices_params,
    item_count,
    ms_json_calendar_date,
    ms_json_date,
    ms_json_text,
    remaining_limits,
    response_check,
    served_page_size,
    token_check,
)
from hub_pipelines_tests.xero.real import recordings

IST = timezone(timedelta(hours=5, minutes=30))
REQUEST = httpx.Request("GET", f"{protocol.API_BASE_URL}/Invoices")


def answer(status: int, body: object = b"", headers: dict[str, str] | None = None):
    """An answer as Xero would send it: JSON for dicts, text or bytes as given."""
    content = json.dumps(body).encode() if isinstance(body, dict | list) else body
    if isinstance(content, str):
        content = content.encode()
    return httpx.Response(status, content=content, headers=headers or {}, request=REQUEST)


# --- MS-JSON dates -----------------------------------------------------------------------------


def test_ms_json_dates_with_and_without_an_offset_are_utc_instants():
    assert ms_json_date("/Date(1539993600000+0000)/") == datetime(2018, 10, 20, tzinfo=UTC)
    assert ms_json_date("/Date(1552326816230)/") == datetime(
        2019, 3, 11, 17, 53, 36, 230000, tzinfo=UTC
    )
    # The offset is the local offset of the same instant: the milliseconds are UTC.
    assert ms_json_date("/Date(1539993600000+0530)/") == datetime(2018, 10, 20, tzinfo=UTC)
    assert ms_json_date("/Date(-86400000+0000)/") == datetime(1969, 12, 31, tzinfo=UTC)
    assert ms_json_date(" /Date(0)/ ").tzinfo is UTC


def test_calendar_dates_are_the_day_at_the_stated_offset():
    assert ms_json_calendar_date("/Date(1539993600000+0000)/") == date(2018, 10, 20)
    # 2018-10-19T18:30Z is 20 October at +05:30.
    assert ms_json_calendar_date("/Date(1539973800000+0530)/") == date(2018, 10, 20)
    assert ms_json_calendar_date("/Date(1539973800000)/") == date(2018, 10, 19)


@pytest.mark.parametrize(
    "text", ["2018-10-20T00:00:00", "/Date(abc)/", "/Date(1539993600000+00)/", "", None, 15]
)
def test_anything_but_an_ms_json_date_is_refused(text):
    with pytest.raises(ValueError, match="MS-JSON"):
        ms_json_date(text)


def test_ms_json_text_is_what_xero_writes_and_reads_back():
    moment = datetime(2019, 3, 11, 17, 53, 36, 230000, tzinfo=UTC)
    assert ms_json_text(moment, with_offset=False) == "/Date(1552326816230)/"
    assert ms_json_text(moment.astimezone(IST)) == "/Date(1552326816230+0000)/"
    assert ms_json_date(ms_json_text(moment)) == moment
    with pytest.raises(ValueError, match="timezone-aware"):
        ms_json_text(datetime(2019, 3, 11))


@pytest.mark.real_fixtures
def test_every_recorded_date_parses():
    (call,) = recordings("nango_invoices.test.json", "/api.xro/2.0/Invoices")
    body = call["response"]
    # /Date(1777034754042)/: the answer's own time, a second before its Date header.
    assert ms_json_date(body["DateTimeUTC"]) == datetime(2026, 4, 24, 12, 45, 54, 42000, tzinfo=UTC)
    assert call["headers"]["date"] == "Fri, 24 Apr 2026 12:45:54 GMT"
    for invoice in body["Invoices"]:
        issued = ms_json_calendar_date(invoice["Date"])
        assert issued.isoformat() == invoice["DateString"][:10]
        if "DueDate" in invoice:
            assert (
                ms_json_calendar_date(invoice["DueDate"]).isoformat()
                == (invoice["DueDateString"][:10])
            )
        assert ms_json_date(invoice["UpdatedDateUTC"]).tzinfo is UTC


def test_if_modified_since_is_utc_in_whole_seconds():
    moment = datetime(2025, 3, 1, 5, 30, 0, 999_999, tzinfo=IST)
    assert if_modified_since(moment) == "2025-03-01T00:00:00"  # dropped, never rounded up
    with pytest.raises(ValueError, match="timezone-aware"):
        if_modified_since(datetime(2025, 3, 1))


# --- list requests -----------------------------------------------------------------------------


def test_list_params_always_send_page_and_page_size():
    assert contacts_params(1) == {
        "page": 1,
        "pageSize": 1000,  # a tenth of the calls of Xero's documented 100
        "includeArchived": "true",
        "order": "UpdatedDateUTC ASC",
    }
    assert invoices_params(3, 1000) == {
        "page": 3,
        "pageSize": 1000,
        "where": 'Type=="ACCREC"',
        "order": "UpdatedDateUTC ASC",
    }
    assert httpx.Request(
        "GET", protocol.API_BASE_URL, params=invoices_params(1, 100)
    ).url.query == (b"page=1&pageSize=100&where=Type%3D%3D%22ACCREC%22&order=UpdatedDateUTC+ASC")


@pytest.mark.parametrize(("page", "size"), [(0, 100), (1, 0), (1, protocol.MAX_PAGE_SIZE + 1)])
def test_pages_out_of_range_are_refused(page, size):
    with pytest.raises(ValueError):
        invoices_params(page, size)


def test_contacts_by_id_stay_under_the_url_limit():
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(protocol.IDS_PER_REQUEST + 1)]
    params = contacts_by_id_params(ids[:2])
    assert params["IDs"] == f"{ids[0]},{ids[1]}" and params["includeArchived"] == "true"
    with pytest.raises(ValueError, match="at most 50"):
        contacts_by_id_params(ids)
    with pytest.raises(ValueError):
        contacts_by_id_params([])


@pytest.mark.real_fixtures
def test_the_recorded_walk_ends_at_the_page_count():
    first, second = recordings("nango_contacts.test.json", "/api.xro/2.0/Contacts")
    body = first["response"]
    assert body["pagination"] == {"page": 1, "pageSize": 100, "pageCount": 1, "itemCount": 63}
    assert not has_more_pages(body, body["Contacts"], 100)
    assert item_count(body) == 63
    # The recorder asked for page 2 anyway: an empty page that our walk never needs.
    assert second["request"]["params"]["page"] == "2" and second["response"]["Contacts"] == []
    (invoices,) = recordings("nango_invoices.test.json", "/api.xro/2.0/Invoices")
    assert invoices["request"]["params"] == {"page": "1", "pageSize": "100"}
    assert not has_more_pages(invoices["response"], invoices["response"]["Invoices"], 100)


def test_more_pages_follow_the_pagination_block_else_a_full_page():
    assert has_more_pages({"pagination": {"page": 1, "pageCount": 3}}, [], 100)
    assert not has_more_pages({"pagination": {"page": 3, "pageCount": 3}}, [{}] * 100, 100)
    assert has_more_pages({}, [{}] * 100, 100)
    assert not has_more_pages({}, [{}] * 99, 100)
    # Without the block, a page of Xero's documented 100 may be a full page served smaller.
    assert has_more_pages({}, [{}] * 100, 1000)
    assert not has_more_pages({}, [{}] * 99, 1000)


def test_the_size_a_page_was_served_at_is_its_pagination_page_size():
    assert served_page_size({"pagination": {"page": 1, "pageSize": 100, "pageCount": 1}}) == 100
    assert served_page_size({"pagination": {"page": 1}}) is None
    assert served_page_size({"pagination": {"pageSize": True}}) is None
    assert served_page_size([]) is None
    assert item_count({}) is None


def test_connected_tenant_is_found_whatever_the_case():
    connections = [
        {"id": "c1", "tenantId": "AEF86862-2015-4B6B-88BC-D89032CECC50", "tenantType": "ORG"},
        {"id": "c2", "tenantId": "59712f8f-45a3-4d45-a705-5d0c9748317e"},
    ]
    found = protocol.connected_tenant(connections, "aef86862-2015-4b6b-88bc-d89032cecc50")
    assert found is connections[0]
    assert protocol.connected_tenant(connections, "00000000-0000-0000-0000-000000000000") is None
    assert protocol.connected_tenant({"not": "a list"}, "x") is None


# --- limits ------------------------------------------------------------------------------------


def test_scopes_are_the_granular_read_scopes():
    scopes = protocol.SCOPES.split()
    assert "accounting.invoices.read" in scopes and "accounting.contacts.read" in scopes
    assert "accounting.settings.read" in scopes  # GET /TaxRates
    assert "offline_access" in scopes  # a refresh token
    assert not any(scope.startswith("accounting.transactions") for scope in scopes)


def test_limits_default_and_entry_tier():
    assert protocol.Limits(per_minute=60, concurrent=5, per_day=5000) == protocol.DEFAULT_LIMITS
    assert protocol.ENTRY_TIER_LIMITS.per_day == 1000
    assert protocol.SAFE_REQUESTS_PER_MINUTE < protocol.REQUESTS_PER_MINUTE
    assert protocol.SAFE_CONCURRENT_REQUESTS < protocol.CONCURRENT_REQUESTS


def test_remaining_limits_read_the_three_headers_case_blind():
    limits = remaining_limits(
        httpx.Headers(
            {
                "x-daylimit-remaining": "4971",
                "X-MinLimit-Remaining": "58",
                "X-AppMinLimit-Remaining": "9990",
            }
        )
    )
    assert limits == protocol.RemainingLimits(day=4971, minute=58, app_minute=9990)
    # /connections carries only the app-wide one; a plain dict works too.
    assert remaining_limits({"X-APPMINLIMIT-REMAINING": "9999"}) == protocol.RemainingLimits(
        app_minute=9999
    )


@pytest.mark.real_fixtures
def test_the_recording_proxys_headers_are_not_xero_limits():
    (call,) = recordings("nango_invoices.test.json", "/api.xro/2.0/Invoices")
    assert call["headers"]["x-ratelimit-remaining"] == "4960"  # nango's, not Xero's
    assert remaining_limits(call["headers"]) == protocol.RemainingLimits()


# --- response checks ---------------------------------------------------------------------------

TOKEN_EXPIRED = {
    "Type": None,
    "Title": "Unauthorized",
    "Status": 401,
    "Detail": "TokenExpired: token expired at 01/01/2001 00:00:00",
}
VALIDATION_JSON = {
    "ErrorNumber": 10,
    "Type": "ValidationException",
    "Message": "A validation exception occurred",
    "Elements": [
        {"ValidationErrors": [{"Message": "One or more line items must be specified"}]},
    ],
}
# The live API's XML answer, as pyxero's test data records it (trimmed).
VALIDATION_XML = """<ApiException xmlns:xsd="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <ErrorNumber>10</ErrorNumber>
  <Type>ValidationException</Type>
  <Message>A validation exception occurred</Message>
  <Elements>
    <DataContractBase xsi:type="Invoice">
      <ValidationErrors>
        <ValidationError><Message>One or more line items must be specified</Message></ValidationError>
        <ValidationError><Message>Invoice not of valid status for creation</Message></ValidationError>
      </ValidationErrors>
      <Type>ACCREC</Type>
    </DataContractBase>
  </Elements>
</ApiException>"""


def test_an_expired_access_token_is_auth_after_the_clients_one_refresh():
    failure = response_check(answer(401, TOKEN_EXPIRED))
    assert failure.category is Category.AUTH and failure.code == "TokenExpired"
    assert "TokenExpired: token expired at 01/01/2001" in failure.message
    # As for Zoho: HttpClient re-authenticates once on any 401 before this counts; after a
    # fresh token a second 401 is not retried.
    assert not failure.should_retry
    with_instance = {**TOKEN_EXPIRED, "Instance": "5e1a…", "Extensions": {}}
    assert response_check(answer(401, with_instance)).code == "TokenExpired"


def test_authorisation_unsuccessful_says_reconnect_with_the_scopes():
    body = {
        "Type": None,
        "Title": "Unauthorized",
        "Status": 401,
        "Detail": "AuthorizationUnsuccessful",
    }
    failure = response_check(answer(401, body))
    assert failure.category is Category.AUTH and failure.code == "AuthorizationUnsuccessful"
    assert protocol.SCOPES in failure.suggested_fix
    assert response_check(answer(401, "not json")).category is Category.AUTH


def test_a_tenant_that_is_not_connected_is_a_config_problem():
    body = {
        "Type": None,
        "Title": "Forbidden",
        "Status": 403,
        "Detail": "AuthenticationUnsuccessful",
    }
    failure = response_check(answer(403, body))
    assert failure.category is Category.CONFIG and not failure.should_retry
    assert "AuthenticationUnsuccessful" in failure.message
    assert "connection_config.xero_tenant_id" in failure.suggested_fix
    assert protocol.CONNECTIONS_URL in failure.suggested_fix


@pytest.mark.parametrize("body", [VALIDATION_JSON, VALIDATION_XML], ids=["json", "xml"])
def test_validation_exceptions_name_xeros_messages(body):
    failure = response_check(answer(400, body))
    assert failure.category is Category.CONFIG and not failure.should_retry
    assert failure.code == "ValidationException"
    assert "One or more line items must be specified" in failure.message
    assert "A validation exception occurred" in failure.message


def test_a_400_xero_did_not_explain_is_left_to_the_status_rules():
    assert response_check(answer(400, "<html>Bad Request</html>")) is None
    assert response_check(answer(400, "<ApiException><Type>Tru")) is None  # truncated
    assert response_check(answer(400, {"error": "something"})) is None


def test_the_daily_limit_is_not_retried_within_the_run_and_says_when_it_resets():
    headers = {"Retry-After": "3600", "X-Rate-Limit-Problem": "Day"}
    now = datetime(2026, 4, 24, 12, 0, tzinfo=UTC)
    failure = response_check(answer(429, "", headers), now=now)
    assert failure.category is Category.RATE_LIMIT
    assert not failure.should_retry and failure.retry_after == 3600 and failure.code == "day"
    assert "daily API limit" in failure.message
    assert "resets in 3600 s, at 2026-04-24 13:00 UTC" in failure.message
    assert "sync_config.invoices_frequency" in failure.suggested_fix


def test_the_daily_reset_is_dated_from_the_answers_date_header():
    headers = {
        "Retry-After": "60",
        "X-Rate-Limit-Problem": "day",
        "Date": "Fri, 24 Apr 2026 12:04:51 GMT",
    }
    failure = response_check(answer(429, "", headers))
    assert "at 2026-04-24 12:05 UTC" in failure.message
    no_wait = response_check(answer(429, "", {"X-Rate-Limit-Problem": "day"}))
    assert no_wait.retry_after is None and "within 24 hours" in no_wait.message


@pytest.mark.parametrize(
    ("problem", "named"),
    [
        ("minute", "per-minute"),
        ("Minute", "per-minute"),
        ("Concurrent", "concurrent"),
        ("AppMinute", "app-wide"),
        ("hour", "'hour'"),
        ("", "no X-Rate-Limit-Problem"),
    ],
)
def test_other_limits_are_retried_after_retry_after(problem, named):
    failure = response_check(
        answer(429, "", {"Retry-After": "20", "X-Rate-Limit-Problem": problem})
    )
    assert failure.category is Category.RATE_LIMIT and failure.should_retry
    assert failure.retry_after == 20 and named in failure.message


def test_a_503_is_retried_and_a_legacy_throttle_is_a_rate_limit():
    down = response_check(answer(503, "The Xero API is currently offline for maintenance"))
    assert down.category is Category.SERVER and down.should_retry
    legacy = "oauth_problem=rate%20limit%20exceeded&oauth_problem_advice=please%20wait"
    throttled = response_check(answer(503, legacy, {"Retry-After": "5"}))
    assert throttled.category is Category.RATE_LIMIT and throttled.retry_after == 5


@pytest.mark.parametrize("status", [200, 404, 500])
def test_other_answers_are_left_to_the_status_rules(status):
    assert response_check(answer(status, {"Invoices": []})) is None


# --- token endpoint ----------------------------------------------------------------------------


def test_a_spent_refresh_token_is_auth_not_retried_and_says_why():
    failure = token_check(answer(400, {"error": "invalid_grant"}))
    assert failure.category is Category.AUTH and not failure.should_retry
    assert failure.code == "invalid_grant"
    assert "single use" in failure.suggested_fix and "60 days" in failure.suggested_fix
    described = token_check(answer(400, {"error": "invalid_grant", "error_description": "expired"}))
    assert "invalid_grant: expired" in described.message


def test_wrong_app_credentials_name_the_config_fields():
    failure = token_check(answer(400, {"error": "invalid_client"}))
    assert failure.category is Category.AUTH and failure.code == "invalid_client"
    assert "connection_config.client_secret" in failure.suggested_fix


def test_other_token_answers_follow_the_shared_token_check():
    tokens = {"access_token": "a", "refresh_token": "r", "expires_in": 1800, "token_type": "Bearer"}
    assert token_check(answer(200, tokens)) is None
    assert token_check(answer(503, "down")) is None  # retried by the status rules
    assert token_check(answer(400, {"error": "unsupported_grant_type"})).category is Category.AUTH
