"""What every HTTP connector and its Dagster resource share, so a system declares only what is its
own: its streams, its auth, its limits and its mapping.

`HttpConnector` gives a connector the members `run_sync` reads besides the walk (counters from its
HTTP client, the last walk's listing per entity, `close`). `ConnectorResource` is the resource
every system configures the same way (page size, cursor overlap, pace) and that builds one
connector per run step; a system adds its own options through `options()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar

import dagster as dg

from hub_pipelines.canonical import Entity, ListedRecord, Listing
from hub_pipelines.connectors.http import HttpClient


class HttpConnector:
    """A connector over one `HttpClient` (`self.http`)."""

    http: HttpClient

    @property
    def api_calls(self) -> int:
        return self.http.api_calls

    @property
    def retries(self) -> int:
        return self.http.retries

    @property
    def quota_remaining(self) -> int | None:
        """Requests left in the source's daily quota as its last answer said; None when unknown."""
        return self.http.quota_remaining

    def close(self) -> None:
        self.http.close()

    def new_listing(self, entity: Entity) -> Listing:
        """The listing a walk of `entity` fills as it goes (`listed` answers it afterwards)."""
        listing = Listing()
        self.__dict__.setdefault("_listings", {})[entity] = listing
        return listing

    def listed(self, entity: Entity) -> Listing:
        return self.__dict__.get("_listings", {}).get(entity) or Listing()

    def listing(self, entity: Entity) -> Iterator[ListedRecord]:
        raise NotImplementedError

    def all_ids(self, entity: Entity) -> Iterator[str]:
        return (record.external_id for record in self.listing(entity))


class ConnectorResource(dg.ConfigurableResource):
    """How the hub talks to one system; per-tenant credentials come from the vault at run time."""

    connector_class: ClassVar[type]
    page_size: int
    cursor_overlap_seconds: int = 300
    requests_per_minute: int | None = None  # None: the tenant config's (or the system's) pace

    def options(self) -> dict[str, Any]:
        """The system's own connector options, beyond the shared ones."""
        return {}

    def connector(self, config: Any, token_store: Any, versions: Any, log: Any = None) -> Any:
        return self.connector_class(
            config,
            token_store,
            versions=versions,
            page_size=self.page_size,
            cursor_overlap=timedelta(seconds=self.cursor_overlap_seconds),
            requests_per_minute=self.requests_per_minute,
            log=log,
            **self.options(),
        )
