"""BUSY tenants and connectors for the system tests: the simulator over loopback HTTP, through
Dagster (the contract suite's tenant) or straight to a connector."""

from __future__ import annotations

import pytest

from hub_pipelines.busy.connector import BusyConnector
from hub_pipelines.busy.simulator import simulate
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines.tenants.models import BusyConfig
from hub_pipelines_tests.contract.conftest import tenant_of  # noqa: F401 (the fixture)

# Retries in milliseconds: the tests are about what is retried, not how long it waits.
QUICK = HttpSettings(retry_initial_delay_ms=1, retry_max_delay_ms=5)


def connector(simulated, url: str, versions=None, log=None, **overrides) -> BusyConnector:
    """A connector reaching `simulated` at `url`; `overrides` change its connection config."""
    config = BusyConfig.model_validate({**simulated.connection_config(url), **overrides})
    versions = versions or (lambda _entity, _ids: {})
    return BusyConnector(config, versions=versions, settings=QUICK, log=log)


@pytest.fixture
def busy_of(tenant_of):  # noqa: F811 (the imported fixture)
    """`busy_of(books, **options)`: a registered tenant whose BUSY company serves `books`."""

    def make(books, *, register: bool = True, **options):
        return tenant_of("busy", simulated=simulate(books, **options), register=register)

    return make
