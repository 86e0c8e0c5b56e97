"""QuickBooks protocol knowledge: query text, CDC, and the response checks on answers shaped as
Intuit sends them (bodies from the fact sheet's real captures; the checks are pure functions of a
response, so building `httpx.Response`s here is no mock of HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from hub_pipelines.connectors.errors import Category
from hub_pipelines.quickbooks.protocol import (
    CDC_MAX_OBJECTS,
    MAX_RESULTS,
    MINOR_VERSION,
    RECONNECT,
    cdc_is_full,
    cdc_params,
    cdc_reaches,
    company_url,
    count_query,
    is_deleted,
    parse_cdc,
    query_count,
    query_records,
    query_text,
    read_faults,
    response_check,
    token_check,
)
from hub_pipelines_tests.quickbooks.recordings import REALM, recorded

IST = timezone(timedelta(hours=5, minutes=30))
MARCH = datetime(2025, 3, 1, tzinfo=IST)


def answer(status: int, body: str | dict | list, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", f"{company_url('sandbox', REALM)}/query")
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


# --- queries -------------------------------------------------------------------------------------


def test_constants_and_hosts():
    assert MINOR_VERSION == 75 and MAX_RESULTS == 1000 and CDC_MAX_OBJECTS == 1000
    assert company_url("production", "123") == "https://quickbooks.api.intuit.com/v3/company/123"
    assert company_url("sandbox", "123").startswith("https://sandbox-quickbooks.api.intuit.com/")


def test_customer_query_includes_inactive_rows_and_filters_inclusively_with_an_offset():
    assert query_text("Customer", MARCH, 1001, 500) == (
        "SELECT * FROM Customer WHERE Active IN (true, false) AND "
        "MetaData.LastUpdatedTime >= '2025-03-01T00:00:00+05:30' "
        "ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1001 MAXRESULTS 500"
    )


def test_invoice_query_without_a_cursor_lists_everything_in_change_order():
    assert query_text("Invoice") == (
        "SELECT * FROM Invoice ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 1000"
    )
    utc = datetime(2025, 3, 1, 12, 30, 5, 999_999, tzinfo=UTC)  # rounded down to the second
    assert "MetaData.LastUpdatedTime >= '2025-03-01T12:30:05+00:00'" in query_text("Invoice", utc)
    assert "Active IN" in query_text("Invoice", include_inactive=True)


def test_count_query_counts_what_the_query_pages_through():
    assert count_query("Customer", MARCH) == (
        "SELECT COUNT(*) FROM Customer WHERE Active IN (true, false) AND "
        "MetaData.LastUpdatedTime >= '2025-03-01T00:00:00+05:30'"
    )
    assert count_query("Invoice") == "SELECT COUNT(*) FROM Invoice"


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda: query_text("Invoice", datetime(2025, 3, 1)), "without a UTC offset"),
        (lambda: query_text("Invoice", start_position=0), "1-based"),
        (lambda: query_text("Invoice", max_results=1001), "MAXRESULTS"),
        (lambda: query_text("Invoice WHERE Id = '1'"), "not a QuickBooks entity"),
        (lambda: cdc_params([], MARCH), "at least one entity"),
        (lambda: cdc_params(["Invoice", "TaxRate"], MARCH), "does not serve TaxRate"),
    ],
)
def test_requests_the_api_would_refuse_are_refused_here(call, problem):
    with pytest.raises(ValueError, match=problem):
        call()


def test_the_offset_in_query_text_survives_url_encoding():
    request = httpx.Request(
        "GET", "https://x/query", params={"query": query_text("Invoice", MARCH)}
    )
    assert "%2B05%3A30" in str(request.url)  # a bare "+" would arrive as a space


@pytest.mark.real_fixtures
def test_recorded_query_answers_give_their_rows_and_count():
    (customers,) = recorded("nango_customers.test.json")
    (invoices,) = recorded("nango_invoices.test.json")
    assert len(query_records(customers, "Customer")) == 33
    assert len(query_records(invoices, "Invoice")) == 37
    assert query_count(invoices) == 37
    assert query_records({"QueryResponse": {}, "time": "…"}, "Invoice") == []  # no rows: no key
    with pytest.raises(ValueError, match="QueryResponse"):
        query_records({"Fault": {}}, "Invoice")
    with pytest.raises(ValueError, match="totalCount"):
        query_count(customers)


# --- change data capture ---------------------------------------------------------------------------


def test_cdc_params_name_the_entities_and_an_encoded_offset():
    params = cdc_params(["Customer", "Invoice"], MARCH)
    assert params == {
        "entities": "Customer,Invoice",
        "changedSince": "2025-03-01T00:00:00+05:30",
        "minorversion": "75",
    }
    url = str(httpx.Request("GET", "https://x/cdc", params=params).url)
    assert "changedSince=2025-03-01T00%3A00%3A00%2B05%3A30" in url


CDC_ANSWER = {
    "CDCResponse": [
        {
            "QueryResponse": [
                {
                    "Customer": [{"Id": "1", "DisplayName": "Amy", "Active": False}],
                    "startPosition": 1,
                    "maxResults": 1,
                },
                {
                    "Invoice": [
                        {"Id": "130", "DocNumber": "1037", "TotalAmt": 362.07},
                        {
                            "Id": "177",
                            "status": "Deleted",
                            "domain": "QBO",
                            "MetaData": {"LastUpdatedTime": "2025-03-02T10:00:00-08:00"},
                        },
                    ],
                    "startPosition": 1,
                    "maxResults": 2,
                },
            ]
        }
    ],
    "time": "2025-03-03T06:34:42.123-07:00",
}


def test_cdc_answer_gives_changed_records_with_deleted_stubs_flagged():
    changes = parse_cdc(CDC_ANSWER)
    assert list(changes) == ["Customer", "Invoice"]
    assert [record["Id"] for record in changes["Invoice"]] == ["130", "177"]
    assert [is_deleted(record) for record in changes["Invoice"]] == [False, True]
    assert not cdc_is_full(changes)
    assert parse_cdc({"CDCResponse": [{"QueryResponse": [{}]}], "time": "…"}) == {}


def test_a_cdc_answer_at_its_cap_says_so_and_cdc_reaches_30_days():
    full = {"Invoice": [{"Id": str(n)} for n in range(CDC_MAX_OBJECTS)]}
    assert cdc_is_full(full)
    now = datetime(2025, 3, 31, tzinfo=UTC)
    assert cdc_reaches(now - timedelta(days=30), now)
    assert not cdc_reaches(now - timedelta(days=30, seconds=1), now)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"QueryResponse": {}}, "CDCResponse: expected a list"),
        ({"CDCResponse": [{"QueryResponse": {}}]}, r"CDCResponse\[0\]\.QueryResponse"),
        ({"CDCResponse": [{"QueryResponse": ["x"]}]}, r"QueryResponse\[0\]: not an object"),
        ({"CDCResponse": [{"QueryResponse": [{"Invoice": [1]}]}]}, r"\.Invoice: every record"),
    ],
)
def test_a_cdc_answer_of_another_shape_is_refused_naming_the_place(body, problem):
    with pytest.raises(ValueError, match=problem):
        parse_cdc(body)


# --- response checks -----------------------------------------------------------------------------

EXPIRED_TOKEN = {
    "warnings": None,
    "intuitObject": None,
    "fault": {
        "error": [
            {
                "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "detail": "Token expired",
                "code": "3200",
                "element": None,
            }
        ],
        "type": "AUTHENTICATION",
    },
    "report": None,
    "queryResponse": None,
    "batchItemResponse": [],
    "time": 1633520295688,
    "cdcresponse": [],
}
XML_AUTH = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><IntuitResponse '
    'xmlns="http://schema.intuit.com/finance/v3" time="2017-07-30T22:45:22.933-07:00">'
    '<Fault type="AuthenticationFault"><Error code="{code}"><Message>{message}</Message>'
    "<Detail>{detail}</Detail></Error></Fault></IntuitResponse>"
)
THROTTLED = (
    '<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" '
    'time="2017-07-30T22:45:22.933-07:00"><Fault type="SERVICE"><Error code="3001">'
    "<Message>message=ThrottleExceeded; errorCode=003001; statusCode={status}</Message>"
    "<Detail>The request limit was reached.  Try again later</Detail></Error></Fault>"
    "</IntuitResponse>"
)
VALIDATION = {
    "Fault": {
        "Error": [
            {
                "Message": "Error parsing query",
                "Detail": 'QueryParserError: Encountered " <INTEGER> "1 "" at line 1',
                "code": "4000",
                "element": "",
            }
        ],
        "type": "ValidationFault",
    },
    "time": "2025-03-01T00:00:00.000-08:00",
}
# The malformed validation fault seen in the wild: `</Error>` missing.
MALFORMED = (
    '<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2019-01-01T00:00:00Z">'
    '<Fault type="ValidationFault"><Error code="2020" element="Line">'
    "<Message>Required param missing, need to supply the required value for the API</Message>"
    "<Detail>Required parameter Line is missing in the request</Detail></Fault></IntuitResponse>"
)


def test_an_expired_token_is_auth_with_the_reconnect_fix_and_the_trace_id():
    failure = response_check(answer(401, EXPIRED_TOKEN, intuit_tid="1-abc-2"))
    assert failure.category == Category.AUTH and not failure.should_retry
    assert failure.code == "3200" and "Token expired" in failure.message
    assert "intuit_tid 1-abc-2" in failure.message
    assert failure.suggested_fix == RECONNECT


def test_an_xml_authentication_fault_is_auth():
    body = XML_AUTH.format(
        code="100",
        message="General Authentication Error",
        detail="AuthenticationErrorGeneral: SRV-110-Authentication Failure , statusCode: 401",
    )
    failure = response_check(answer(401, body))
    assert (failure.category, failure.code) == (Category.AUTH, "100")
    assert "General Authentication Error" in failure.message


def test_a_token_of_the_other_environment_is_a_config_error_with_its_fix():
    body = XML_AUTH.format(code="130", message="Accessing Wrong Cluster", detail="Wrong cluster")
    failure = response_check(answer(401, body))
    assert failure.category == Category.CONFIG and not failure.should_retry
    assert failure.code == "130" and "connection_config.environment" in failure.suggested_fix


def test_authorization_failed_is_auth_naming_the_scope():
    body = {
        "fault": {
            "error": [
                {
                    "message": "message=AuthorizationFailed; errorCode=003100; statusCode=403",
                    "detail": None,
                    "code": "3100",
                }
            ],
            "type": "SERVICE",
        }
    }
    failure = response_check(answer(403, body))
    assert (failure.category, failure.code, failure.should_retry) == (Category.AUTH, "3100", False)
    assert "com.intuit.quickbooks.accounting" in failure.suggested_fix


@pytest.mark.parametrize("status", [429, 403])
def test_throttle_fault_3001_waits_a_minute_whatever_the_status(status):
    failure = response_check(answer(status, THROTTLED.format(status=status)))
    assert failure.category == Category.RATE_LIMIT and failure.should_retry
    assert (failure.retry_after, failure.code) == (60, "3001")
    assert "ThrottleExceeded" in failure.message


def test_a_429_without_a_fault_still_waits_and_a_retry_after_wins():
    assert response_check(answer(429, "")).retry_after == 60
    assert response_check(answer(429, "", **{"Retry-After": "5"})).retry_after == 5


def test_a_validation_fault_is_our_request_being_wrong():
    failure = response_check(answer(400, VALIDATION))
    assert (failure.category, failure.code, failure.should_retry) == (
        Category.CONFIG,
        "4000",
        False,
    )
    assert "Error parsing query" in failure.message and "QueryParserError" in failure.message


def test_a_malformed_xml_fault_is_read_without_crashing():
    (fault,) = read_faults(answer(400, MALFORMED))
    assert (fault.type, fault.code) == ("ValidationFault", "2020")
    assert fault.detail == "Required parameter Line is missing in the request"
    assert response_check(answer(400, MALFORMED)).category == Category.CONFIG
    # Not a fault at all: no crash, no faults, the status decides.
    assert read_faults(answer(502, "<html><body>Bad gateway")) == []
    assert response_check(answer(400, "<<<")).category == Category.CONFIG


def test_an_object_that_is_gone_is_source_data():
    gone = {"Fault": {"Error": [{"Message": "Object Not Found", "code": "610"}], "type": "x"}}
    assert response_check(answer(400, gone)).category == Category.SOURCE_DATA
    assert response_check(answer(404, "")).category == Category.SOURCE_DATA


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_left_to_the_retrying_status_rules(status):
    assert response_check(answer(status, "<html>down</html>")) is None


def test_a_good_answer_passes_and_a_truncated_one_is_retried():
    assert response_check(answer(200, {"QueryResponse": {}, "time": "…"})) is None
    truncated = response_check(answer(200, '{"QueryResponse": {"Invoice": [{"Id": "1"'))
    assert truncated.category == Category.SERVER and truncated.should_retry
    # A fault answered with 200 is still a fault.
    assert response_check(answer(200, VALIDATION)).category == Category.CONFIG


# --- token endpoint ---------------------------------------------------------------------------------


def test_invalid_grant_needs_the_realm_reconnected():
    failure = token_check(answer(400, {"error": "invalid_grant"}))
    assert (failure.category, failure.code, failure.should_retry) == (
        Category.AUTH,
        "invalid_grant",
        False,
    )
    assert "Reconnect the QuickBooks company" in failure.suggested_fix
    assert "realm" in failure.suggested_fix
    described = token_check(
        answer(400, {"error": "invalid_grant", "error_description": "Token invalid"})
    )
    assert "Token invalid" in described.message


def test_invalid_client_is_the_apps_keys():
    failure = token_check(answer(401, {"error": "invalid_client"}))
    assert (failure.category, failure.should_retry) == (Category.CONFIG, False)
    assert "connection_config.client_secret" in failure.suggested_fix


def test_token_answers_that_are_no_refusal():
    tokens = {"token_type": "bearer", "access_token": "a", "refresh_token": "r", "expires_in": 3600}
    assert token_check(answer(200, tokens)) is None
    assert token_check(answer(503, "")) is None  # retried by the status rules
    other = token_check(answer(400, json.dumps({"error": "unsupported_grant_type"})))
    assert other.category == Category.AUTH
