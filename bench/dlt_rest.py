"""Plain dlt pipelines for the JSON REST systems, making the calls the data needs, into the
benchmark database (a dataset of their own): what a team would write with dlt's REST client.

- Zoho Books: a refresh-token grant, then contacts and invoices list pages of 200
  (`page`, `per_page`) and one detail call per contact and per invoice (list rows carry neither
  addresses, GST fields nor lines), sequentially.
- QuickBooks Online: `SELECT * FROM Customer|Invoice … STARTPOSITION n MAXRESULTS 1000` pages.
- Xero: `Contacts` and `Invoices` (`where Type=="ACCREC"`) pages of 1,000 (`page`, `pageSize`), as
  the hub's connector asks (`hub_pipelines.xero.protocol.PAGE_SIZE`).

The lists carry the hub's filters and sort orders (all statuses, customers only, sorted by
creation or change), which an incremental pipeline needs too: the same calls cost the simulators
the same (each simulator keeps a listing's filtered, sorted rows between changes).

A list ends at its first short page (one more call when the count is a multiple of the page).
dlt's defaults otherwise: `merge` on the record's id (delete-insert through a staging dataset),
nested lists as child tables (the invoice lines, and deeper lists below them), JSON numbers as
double. No tax master is read: nothing is mapped. Tally (XML over HTTP) and BUSY (SQL in request
headers) have no dlt source and get no pipeline here; see bench/README.md.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import dlt
import requests
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth, BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import BasePaginator

from bench.database import dlt_credentials
from bench.load_stage import dlt_counts
from bench.simulator_process import CONTROL
from hub_pipelines.xero.protocol import PAGE_SIZE as XERO_PAGE_SIZE

CHANGE_ORDER = "ORDERBY MetaData.LastUpdatedTime"


class ShortPagePaginator(BasePaginator):
    """`page=1, 2, …` until a page holds fewer than `size` rows."""

    def __init__(self, size: int, page_param: str = "page") -> None:
        super().__init__()
        self.size, self.page_param, self.page = size, page_param, 1

    def init_request(self, request) -> None:
        request.params[self.page_param] = self.page

    def update_state(self, response, data: list[Any] | None = None) -> None:
        self.page += 1
        self._has_next_page = len(data or []) >= self.size

    def update_request(self, request) -> None:
        request.params[self.page_param] = self.page


class QueryPaginator(BasePaginator):
    """QuickBooks: the page is part of the query text (`STARTPOSITION n MAXRESULTS m`)."""

    def __init__(self, query: str, size: int = 1000) -> None:
        super().__init__()
        self.query, self.size, self.start = query, size, 1

    def _set(self, request) -> None:
        request.params["query"] = f"{self.query} STARTPOSITION {self.start} MAXRESULTS {self.size}"

    def init_request(self, request) -> None:
        self._set(request)

    def update_state(self, response, data: list[Any] | None = None) -> None:
        self.start += self.size
        self._has_next_page = len(data or []) >= self.size

    def update_request(self, request) -> None:
        self._set(request)


def _token(url: str, client: tuple[str, str], refresh_token: str, basic: bool) -> str:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if basic:
        answer = requests.post(url, data=form, auth=client, timeout=60)
    else:
        form.update(client_id=client[0], client_secret=client[1])
        answer = requests.post(url, data=form, timeout=60)
    answer.raise_for_status()
    return answer.json()["access_token"]


def _merged(name: str, key: str, pages: Iterator[list[dict]]) -> Any:
    return dlt.resource(pages, name=name, write_disposition="merge", primary_key=key)


def zoho_books(config: dict[str, Any]) -> list:
    token = _token(
        f"{config['accounts_url']}/oauth/v2/token",
        (config["client_id"], config["client_secret"]),
        config["refresh_token"],
        basic=False,
    )
    client = RESTClient(
        base_url=f"{config['api_base_url']}/books/v3/",
        auth=APIKeyAuth(name="Authorization", api_key=f"Zoho-oauthtoken {token}"),
    )
    org = {"organization_id": config["organization_id"]}

    def details(collection: str, key: str, one: str, listing: dict) -> Iterator[list[dict]]:
        for page in client.paginate(
            collection,
            params={**org, **listing, "per_page": 200},
            paginator=ShortPagePaginator(200),
            data_selector=collection,
        ):
            yield [client.get(f"{collection}/{row[key]}", params=org).json()[one] for row in page]

    every = {"filter_by": "Status.All"}
    contacts = {
        **every,
        "contact_type": "customer",
        "sort_column": "last_modified_time",
        "sort_order": "D",
    }
    invoices = {**every, "sort_column": "created_time", "sort_order": "A"}
    return [
        _merged("customers", "contact_id", details("contacts", "contact_id", "contact", contacts)),
        _merged("invoices", "invoice_id", details("invoices", "invoice_id", "invoice", invoices)),
    ]


def _app_token(config: dict[str, Any]) -> str:
    """An access token from a token endpoint taking the app's Basic client auth (Intuit, Xero)."""
    return _token(
        config["token_url"],
        (config["client_id"], config["client_secret"]),
        config["refresh_token"],
        basic=True,
    )


def pipeline_into(url: str, dataset: str, working: str):
    """A dlt pipeline writing `dataset` (a schema) of the benchmark database."""
    return dlt.pipeline(
        pipeline_name=dataset,
        pipelines_dir=working,
        destination=dlt.destinations.postgres(credentials=dlt_credentials(url)),
        dataset_name=dataset,
    )


def quickbooks(config: dict[str, Any]) -> list:
    token = _app_token(config)
    client = RESTClient(
        base_url=f"{config['api_base_url']}/v3/company/{config['realm_id']}/",
        headers={"Accept": "application/json"},
        auth=BearerTokenAuth(token),
    )

    def pages(entity: str, query: str) -> Iterator[list[dict]]:
        yield from client.paginate(
            "query",
            params={"minorversion": 75},
            paginator=QueryPaginator(query),
            data_selector=f"QueryResponse.{entity}",
        )

    customers = _merged(
        "customers",
        "Id",
        pages("Customer", f"SELECT * FROM Customer WHERE Active IN (true, false) {CHANGE_ORDER}"),
    )
    invoices = _merged("invoices", "Id", pages("Invoice", f"SELECT * FROM Invoice {CHANGE_ORDER}"))
    return [customers, invoices]


def xero(config: dict[str, Any]) -> list:
    token = _app_token(config)
    client = RESTClient(
        base_url=f"{config['api_base_url']}/api.xro/2.0/",
        headers={"Accept": "application/json", "Xero-Tenant-Id": config["xero_tenant_id"]},
        auth=BearerTokenAuth(token),
    )

    def pages(collection: str, params: dict[str, Any]) -> Iterator[list[dict]]:
        yield from client.paginate(
            collection,
            params={**params, "pageSize": XERO_PAGE_SIZE},
            paginator=ShortPagePaginator(XERO_PAGE_SIZE),
            data_selector=collection,
        )

    order = {"order": "UpdatedDateUTC ASC"}
    customers = _merged(
        "customers", "ContactID", pages("Contacts", {**order, "includeArchived": "true"})
    )
    invoices = _merged(
        "invoices", "InvoiceID", pages("Invoices", {**order, "where": 'Type=="ACCREC"'})
    )
    return [customers, invoices]


SOURCES = {"zoho_books": zoho_books, "quickbooks": quickbooks, "xero": xero}
LINE_TABLES = {
    "zoho_books": "invoices__line_items",
    "quickbooks": "invoices__line",
    "xero": "invoices__line_items",
}


def run(system: str, simulator_url: str, url: str, dataset: str) -> dict[str, int]:
    """Customers and invoices of the simulator into `dataset`; the rows of its main tables."""
    config = requests.get(f"{simulator_url}{CONTROL}config", timeout=60).json()
    with tempfile.TemporaryDirectory(prefix="bench_dlt_") as working:
        pipeline = pipeline_into(url, dataset, working)
        pipeline.run(SOURCES[system](config))
    counted = dlt_counts(url, dataset, "customers", "invoices", LINE_TABLES[system])
    return {
        "customers": counted["customers"],
        "invoices": counted["invoices"],
        "lines": counted[LINE_TABLES[system]],
    }
