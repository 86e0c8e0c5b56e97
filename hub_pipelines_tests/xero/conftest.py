"""Xero tenants for the system tests: the contract suite's tenant (simulator over loopback HTTP,
registered config, Dagster), each with an organisation id of its own, since the client's rate
buckets are per organisation and per process."""

from __future__ import annotations

import uuid

import pytest

from hub_pipelines.xero.simulator import simulate
from hub_pipelines_tests.contract.conftest import tenant_of  # noqa: F401 (the fixture)

FAST = 100_000  # calls a minute on both sides, for tests that are not about the limits


def new_tenant_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def xero_of(tenant_of):  # noqa: F811 (the imported fixture)
    """`xero_of(books, **options)`: a registered tenant whose Xero organisation serves `books`;
    `options` are `simulate`'s (limits, suppliers), fast unless given."""

    def make(books, *, register: bool = True, **options):
        options = {"requests_per_minute": FAST, "daily_limit": 10**8, **options}
        simulated = simulate(books, tenant_id=new_tenant_id(), **options)
        return tenant_of("xero", simulated=simulated, register=register)

    return make
