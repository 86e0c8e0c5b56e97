"""Pagination helpers (against a loopback Zoho-like endpoint and pure bodies) and value parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub_pipelines.connectors.base import (
    ListEndpoint,
    MappingError,
    OffsetPaginator,
    OverlappingWindows,
    PageNumberPaginator,
    money,
    parse_date,
    parse_timestamp,
    records_at,
    to_decimal,
)
from hub_pipelines.connectors.http import HttpClient
from hub_pipelines.connectors.settings import HttpSettings

CONTACTS = [{"contact_id": str(n)} for n in range(450)]


async def zoho_contacts(request: Request) -> Response:
    page = int(request.query_params["page"])
    per_page = int(request.query_params["per_page"])
    rows = CONTACTS[(page - 1) * per_page : page * per_page]
    has_more = page * per_page < len(CONTACTS)
    context = {"page": page, "per_page": per_page, "has_more_page": has_more}
    return JSONResponse({"code": 0, "contacts": rows, "page_context": context})


def test_zoho_style_pages_over_http(serve) -> None:
    server = serve([Route("/books/v3/contacts", zoho_contacts)])
    endpoint = ListEndpoint(
        "/books/v3/contacts",
        records_at("contacts"),
        lambda: PageNumberPaginator(
            page_size=200,
            max_page_size=200,
            has_more=lambda body, _records: body["page_context"]["has_more_page"],
        ),
        params={"organization_id": "60001"},
    )
    with HttpClient(HttpSettings(), base_url=server.url) as client:
        pages = list(endpoint.pages(lambda path, params: client.get_json(path, params=params)))
        assert client.api_calls == 3
    assert [len(page.records) for page in pages] == [200, 200, 50]
    assert [page.number for page in pages] == [1, 2, 3]
    assert pages[-1].records[-1] == {"contact_id": "449"}


def fake_source(bodies: list[Any]) -> tuple[list[dict[str, Any]], Any]:
    """A fetch function serving canned bodies and recording the params it was asked for."""
    asked: list[dict[str, Any]] = []

    def fetch(path: str, params: dict[str, Any]) -> Any:
        asked.append(params)
        return bodies[len(asked) - 1]

    return asked, fetch


def test_xero_style_page_count() -> None:
    bodies = [
        {"Invoices": [{"n": 1}], "pagination": {"page": 1, "pageCount": 2}},
        {"Invoices": [{"n": 2}], "pagination": {"page": 2, "pageCount": 2}},
    ]
    asked, fetch = fake_source(bodies)
    endpoint = ListEndpoint(
        "/Invoices",
        records_at("Invoices"),
        lambda: PageNumberPaginator(
            page_size=100,
            size_param="pageSize",
            has_more=lambda body, _: body["pagination"]["page"] < body["pagination"]["pageCount"],
        ),
    )
    assert [page.records for page in endpoint.pages(fetch)] == [[{"n": 1}], [{"n": 2}]]
    assert asked == [{"page": 1, "pageSize": 100}, {"page": 2, "pageSize": 100}]


def test_quickbooks_style_offset_in_query_text_stops_on_short_page() -> None:
    bodies = [
        {"QueryResponse": {"Customer": [{"Id": "1"}, {"Id": "2"}]}},
        {"QueryResponse": {"Customer": [{"Id": "3"}]}},
    ]
    asked, fetch = fake_source(bodies)

    def query(page: dict[str, Any]) -> dict[str, Any]:
        text = "SELECT * FROM Customer STARTPOSITION {STARTPOSITION} MAXRESULTS {MAXRESULTS}"
        return {"query": text.format(**page)}

    endpoint = ListEndpoint(
        "/v3/company/1/query",
        records_at("QueryResponse", "Customer"),
        lambda: OffsetPaginator(page_size=2, max_page_size=1000),
        params=query,
    )
    assert sum(len(page.records) for page in endpoint.pages(fetch)) == 3
    assert [params["query"].partition(" Customer ")[2] for params in asked] == [
        "STARTPOSITION 1 MAXRESULTS 2",
        "STARTPOSITION 3 MAXRESULTS 2",
    ]


def test_an_empty_page_ends_even_when_the_source_says_more() -> None:
    asked, fetch = fake_source([{"QueryResponse": {}}] * 5)  # QuickBooks omits the key when empty
    endpoint = ListEndpoint(
        "/q",
        records_at("QueryResponse", "Customer"),
        lambda: PageNumberPaginator(page_size=10, has_more=lambda _body, _records: True),
    )
    assert [page.records for page in endpoint.pages(fetch)] == [[]]
    assert len(asked) == 1


def test_page_size_above_the_source_maximum_is_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and 200"):
        PageNumberPaginator(page_size=500, max_page_size=200)


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (0.1, 2, Decimal("0.10")),
        (1180.0, 2, Decimal("1180.00")),
        (2, 4, Decimal("2.0000")),
        ("1,23,456.785", 2, Decimal("123456.79")),  # Indian grouping; half-up
        (" -12.345 ", 2, Decimal("-12.35")),
        (Decimal("9.99"), None, Decimal("9.99")),
        (1 / 3, None, Decimal("0.3333333333333333")),
        (-7, None, Decimal("-7")),
        (10**30, None, Decimal(10**30)),
        (None, 2, None),
        ("", 2, None),
    ],
)
def test_to_decimal(value: Any, places: int | None, expected: Decimal | None) -> None:
    assert to_decimal(value, places) == expected
    if expected is not None:
        assert str(to_decimal(value, places)) == str(expected)  # exact digits, no float noise


@pytest.mark.parametrize(
    "value", ["abc", "1,5", "NaN", "Infinity", True, float("inf"), float("nan")]
)
def test_to_decimal_refuses_non_numbers(value: Any) -> None:
    with pytest.raises(ValueError):
        to_decimal(value)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"Total": 1005.005}, Decimal("1005.01")),  # the float's shortest text, half up
        ({"Total": -0.0}, Decimal("-0.00")),
        ({"Total": "1,180.5"}, Decimal("1180.50")),
        ({"Total": None}, None),
        ({"Total": "  "}, None),
        ({}, None),
    ],
)
def test_money_reads_a_records_amount(record: dict, expected: Decimal | None) -> None:
    amount = money(record, "Total")
    assert amount == expected and str(amount) == str(expected)


@pytest.mark.parametrize("record", [{}, {"Total": None}, {"Total": ""}, {"Total": " \t"}])
def test_a_required_amount_absent_or_blank_is_missing(record: dict) -> None:
    with pytest.raises(MappingError, match=r"^Total: missing$"):
        money(record, "Total", required=True)


def test_an_amount_that_is_no_number_names_its_field() -> None:
    with pytest.raises(MappingError, match=r"^LineAmount: not a number: 'twelve'$"):
        money({"LineAmount": "twelve"}, "LineAmount")


def test_parse_timestamp_offsets() -> None:
    zoho = parse_timestamp("2025-03-01T02:17:40-0800")
    assert zoho == datetime(2025, 3, 1, 10, 17, 40, tzinfo=UTC)
    assert parse_timestamp("2025-03-01T00:00:00+0530").utcoffset() == timedelta(hours=5, minutes=30)
    assert parse_timestamp("2025-03-01T13:16:17-08:00").utcoffset() == timedelta(hours=-8)
    assert parse_timestamp("2025-03-01T00:00:00Z") == datetime(2025, 3, 1, tzinfo=UTC)
    assert parse_timestamp(None) is None and parse_timestamp(" ") is None


def test_parse_timestamp_without_offset_needs_a_default_zone() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    assert parse_timestamp("2025-03-01T10:00:00", default_tz=ist).utcoffset() == timedelta(
        hours=5, minutes=30
    )
    with pytest.raises(ValueError, match="without a UTC offset"):
        parse_timestamp("2025-03-01T10:00:00")


def test_parse_date() -> None:
    assert parse_date("2025-03-01") == date(2025, 3, 1)
    assert parse_date("2025-03-01T02:17:40-0800") == date(2025, 3, 1)
    assert parse_date("") is None


def test_overlapping_windows_refuse_a_max_page_size_that_could_leave_no_window():
    # With sizes 2..4 only, 12 rows read is a multiple of every size: no window could overlap the
    # last row read and reach past it.
    with pytest.raises(ValueError, match="max_page_size of at least 20"):
        OverlappingWindows(
            lambda page, per_page: {},
            records_at("rows"),
            lambda body: False,
            key=lambda row: row,
            identity=lambda row: row,
            page_size=3,
            max_page_size=4,
        )
