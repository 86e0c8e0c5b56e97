"""Two tenants' books imported through Dagster from several systems, then the analyst views
refreshed through their assets: the data every analytics test reads.

`acme` keeps one business in Tally, Xero and BUSY (the same customers in three systems; BUSY
states no due dates), with a void, a draft, part payments and a sale deleted after it was
imported. `beta` keeps another business in QuickBooks Online and Zoho Books. Built once for the
package (imports take seconds) in the session's database; tests that change data do it inside a
transaction they roll back, and tests needing other data use a database of their own
(`empty_database_url`), never the `warehouse` fixture, which would empty this one.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import psycopg
import pytest

from hub_pipelines.analytics.assets import ANALYTICS_ASSETS
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.imports.assets import import_asset, op_name
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.simulation import books as generated
from hub_pipelines.simulation.simulated import Simulated
from hub_pipelines.systems import AVAILABLE
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import KEY_VARIABLE, OLD_KEYS_VARIABLE, Vault, generate_key
from hub_pipelines_tests.conftest import empty_tables

AS_OF = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
FAST = 100_000  # requests per minute: these tests are not about limits
TENANT_SYSTEMS = {"acme": ("tally", "xero", "busy"), "beta": ("quickbooks", "zoho_books")}
SEEDS = {"acme": 11, "beta": 12}
# The views of schema accounting that analysts read (the tables aside).
ANALYST_VIEWS = {
    "customer_360",
    "customer_360_records",
    "customer_directory",
    "gst_sales_summary",
    "receivables_ageing",
    "sync_health",
}


@dataclass
class Imported:
    """The imported warehouse, the Dagster instance holding the runs, and the books."""

    url: str
    instance: dg.DagsterInstance
    books: dict[str, generated.Books]
    refresh: dg.ExecuteInProcessResult  # the analyst assets' run after the imports

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: tuple = ()):
        return self.query(sql, params)[0][0]

    def refresh_views(self) -> dg.ExecuteInProcessResult:
        return refresh_views(self.instance, self.url)


def refresh_views(instance: dg.DagsterInstance, url: str, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ANALYTICS_ASSETS,
        instance=instance,
        resources={"warehouse": WarehouseResource(database_url=url)},
        **kwargs,
    )


@contextmanager
def rolled_back(url: str) -> Iterator[psycopg.Connection]:
    """A connection whose changes (data, refreshed views) are all undone at the end."""
    with psycopg.connect(url) as conn:
        try:
            yield conn
        finally:
            conn.rollback()


def refresh(conn: psycopg.Connection, *views: str) -> None:
    for view in views:
        conn.execute(f"REFRESH MATERIALIZED VIEW analytics_store.{view}")


def business(seed: int) -> generated.Books:
    """A small business with a void, a draft and part payments on record (of sales in rupees,
    so that the exports stay issued)."""
    books = generated.generate(seed=seed, parties=12, sales=40, as_of=AS_OF)
    issued = [
        sale
        for sale in books.live_sales()
        if sale.status == "issued" and sale.paid_percent == 0 and sale.currency == "INR"
    ]
    books.void_sale(issued[0].key)
    books.edit_sale(issued[1].key, status="draft")
    books.pay(issued[2].key, 40)
    return books


def simulate(system: str, books: generated.Books) -> Simulated:
    module = importlib.import_module(AVAILABLE[system].simulator_module)
    limits = {"requests_per_minute": FAST} if system == "zoho_books" else {}
    return module.simulate(books, **limits)


def import_entities(
    instance: dg.DagsterInstance,
    url: str,
    tenant: str,
    system: str,
    entities: tuple[str, ...] = ("customers", "invoices"),
    full_refresh: bool = False,
) -> dg.ExecuteInProcessResult:
    selected = [import_asset(system, entity) for entity in entities]
    ops = {op_name(system, e): {"config": {"full_refresh": full_refresh}} for e in entities}
    return dg.materialize(
        selected,
        partition_key=tenant,
        instance=instance,
        resources={
            "warehouse": WarehouseResource(database_url=url),
            "vault": VaultResource(encryption_key=os.environ[KEY_VARIABLE]),
            system: AVAILABLE[system].resource(),
        },
        run_config={"ops": ops},
        raise_on_error=False,
    )


@pytest.fixture(scope="package")
def imported(warehouse_url: str) -> Iterator[Imported]:
    empty_tables(warehouse_url)
    servers: list[LoopbackServer] = []
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setenv(KEY_VARIABLE, generate_key())
        patch.delenv(OLD_KEYS_VARIABLE, raising=False)
        patch.setenv("RETRY_INITIAL_DELAY", "5")
        patch.setenv("RETRY_MAX_DELAY", "50")
        registry = TenantRegistry(Vault.from_env())
        books = {tenant: business(SEEDS[tenant]) for tenant in TENANT_SYSTEMS}
        try:
            for tenant, systems in TENANT_SYSTEMS.items():
                for system in systems:
                    simulated = simulate(system, books[tenant])
                    server = LoopbackServer(simulated.app).start()
                    servers.append(server)
                    instance.add_dynamic_partitions(f"{system}_tenants", [tenant])
                    config = simulated.connection_config(server.url)
                    registry.add(tenant, system, {"connection_config": config, "sync_config": {}})
                    assert import_entities(instance, warehouse_url, tenant, system).success
            # A sale cancelled after it was imported: marked deleted by the next full refresh.
            gone = next(s for s in books["acme"].live_sales() if s.status == "issued")
            books["acme"].delete_sale(gone.key)
            for system in TENANT_SYSTEMS["acme"]:
                result = import_entities(
                    instance, warehouse_url, "acme", system, ("invoices",), full_refresh=True
                )
                assert result.success
            refresh = refresh_views(instance, warehouse_url)
            assert refresh.success
            yield Imported(warehouse_url, instance, books, refresh)
        finally:
            for server in servers:
                server.stop()
