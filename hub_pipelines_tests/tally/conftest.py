"""Tally tenants for the system tests: the contract suite's tenant (the simulator over loopback
HTTP, a registered config, Dagster), serving generated books as a Tally company."""

from __future__ import annotations

import pytest

from hub_pipelines.tally.connector import TallyConnector, TallyResource
from hub_pipelines.tally.simulator import simulate
from hub_pipelines.tenants.models import TallyConfig
from hub_pipelines_tests.contract.conftest import small_books, tenant_of  # noqa: F401


@pytest.fixture
def tally_of(tenant_of):  # noqa: F811 (the imported fixture)
    """`tally_of(books=None, page_size=None, **limits)`: a registered tenant whose Tally serves
    `books` (the contract's small books by default), with `page_size` objects per request."""

    def make(books=None, *, page_size: int | None = None, **limits):
        tenant = tenant_of("tally", simulated=simulate(books or small_books(), **limits))
        if page_size is not None:
            tenant.resources["tally"] = TallyResource(page_size=page_size)
        return tenant

    return make


def connector(simulated, url: str, **options) -> TallyConnector:
    """A connector straight at a simulator, outside Dagster (no warehouse: no delete diff)."""
    config = TallyConfig.model_validate(simulated.connection_config(url))
    return TallyConnector(config, versions=lambda _entity, _ids: {}, **options)
