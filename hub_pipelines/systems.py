"""The registry of accounting systems the hub can import from: one line per system.

Adding a system means a connector module (with its resource), a simulator module, and a line here.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from hub_pipelines.quickbooks.connector import QuickBooksResource
from hub_pipelines.xero.connector import XeroResource
from hub_pipelines.zoho_books.connector import ZohoBooksResource


@dataclass(frozen=True)
class SystemEntry:
    label: str  # the product's name, as its users know it
    resource: type[dg.ConfigurableResource]
    simulator_module: str  # offers serve(host, port, **options) for `hub simulate`
    # Offers simulate(books, **limits) -> Simulated: Books rendered in the system's wire shape
    # (the contract suite, `hub simulate`, the demo).
    books_module: str


AVAILABLE: dict[str, SystemEntry] = {
    "zoho_books": SystemEntry(
        "Zoho Books",
        ZohoBooksResource,
        "hub_pipelines.zoho_books.simulator",
        "hub_pipelines.zoho_books.rendering",
    ),
    "quickbooks": SystemEntry(
        "QuickBooks Online",
        QuickBooksResource,
        "hub_pipelines.quickbooks.simulator",
        "hub_pipelines.quickbooks.simulator",
    ),
    "xero": SystemEntry(
        "Xero", XeroResource, "hub_pipelines.xero.simulator", "hub_pipelines.xero.simulator"
    ),
}
CONNECTOR_RESOURCES = {system: entry.resource for system, entry in AVAILABLE.items()}


def connector_resources() -> dict[str, dg.ConfigurableResource]:
    """Default resources, keyed by system, for `Definitions(resources=...)`."""
    return {system: resource() for system, resource in CONNECTOR_RESOURCES.items()}
