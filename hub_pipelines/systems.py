"""The registry of accounting systems the hub can import from: one line per system.

Adding a system means a connector module (with its resource), a simulator module, and a line here.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from hub_pipelines.busy.connector import BusyResource
from hub_pipelines.quickbooks.connector import QuickBooksResource
from hub_pipelines.tally.connector import TallyResource
from hub_pipelines.xero.connector import XeroResource
from hub_pipelines.zoho_books.connector import ZohoBooksResource


@dataclass(frozen=True)
class SystemEntry:
    label: str  # the product's name, as its users know it
    resource: type[dg.ConfigurableResource]
    # Offers simulate(books, **limits) and replay(paths, **limits) -> Simulated: Books, or
    # captured payloads, served in the system's wire shape (`hub simulate`, the contract suite).
    simulator_module: str


AVAILABLE: dict[str, SystemEntry] = {
    "zoho_books": SystemEntry(
        "Zoho Books",
        ZohoBooksResource,
        "hub_pipelines.zoho_books.rendering",
    ),
    "quickbooks": SystemEntry(
        "QuickBooks Online",
        QuickBooksResource,
        "hub_pipelines.quickbooks.simulator",
    ),
    "xero": SystemEntry("Xero", XeroResource, "hub_pipelines.xero.simulator"),
    "tally": SystemEntry("Tally", TallyResource, "hub_pipelines.tally.simulator"),
    "busy": SystemEntry("BUSY", BusyResource, "hub_pipelines.busy.simulator"),
}
CONNECTOR_RESOURCES = {system: entry.resource for system, entry in AVAILABLE.items()}


def connector_resources() -> dict[str, dg.ConfigurableResource]:
    """Default resources, keyed by system, for `Definitions(resources=...)`."""
    return {system: resource() for system, resource in CONNECTOR_RESOURCES.items()}
