"""The registry of accounting systems the hub can import from: one line per system.

Adding a system means a connector module (with its resource), a simulator module, and a line here.
"""

from __future__ import annotations

import dagster as dg

from hub_pipelines.zoho_books.connector import ZohoBooksResource

CONNECTOR_RESOURCES: dict[str, type[dg.ConfigurableResource]] = {
    "zoho_books": ZohoBooksResource,
}


def connector_resources() -> dict[str, dg.ConfigurableResource]:
    """Default resources, keyed by system, for `Definitions(resources=...)`."""
    return {system: resource() for system, resource in CONNECTOR_RESOURCES.items()}
