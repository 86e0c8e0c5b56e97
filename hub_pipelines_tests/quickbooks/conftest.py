"""QuickBooks tenants wired end to end by the contract suite's `tenant_of` (the simulator over
loopback HTTP, a registered config, Dagster), and a connector straight to a simulator."""

from __future__ import annotations

from datetime import UTC, datetime

from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.connectors.oauth import InMemoryTokenStore, TokenSet
from hub_pipelines.quickbooks.connector import QuickBooksConnector
from hub_pipelines.simulation.simulated import Simulated
from hub_pipelines.tenants.models import QuickBooksConfig
from hub_pipelines_tests.contract.conftest import tenant_of  # noqa: F401 - the fixture

SYSTEM = "quickbooks"
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def connector_to(simulated: Simulated, server: LoopbackServer, **options) -> QuickBooksConnector:
    """A connector straight to the simulator, its tokens in memory (no warehouse)."""
    config = QuickBooksConfig.model_validate(simulated.connection_config(server.url))
    refresh = config.refresh_token.get_secret_value()
    store = InMemoryTokenStore(TokenSet("", refresh, NEVER))
    return QuickBooksConnector(config, store, versions=lambda _entity, _ids: {}, **options)


def calls(simulated: Simulated, since: int = 0) -> list[str]:
    """The last part of each API path the simulator answered (query, cdc, …), token requests
    left out, from request `since` on."""
    log = list(simulated.request_log)[since:]
    return [entry.path.rsplit("/", 1)[-1] for entry in log if "/v3/company/" in entry.path]
