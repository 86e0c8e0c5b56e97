"""A Zoho Books tenant wired end to end: simulator over loopback HTTP, registered config, Dagster."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg
import psycopg
import pytest

from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.imports.assets import import_asset, op_name
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import Vault
from hub_pipelines.zoho_books.connector import ZohoBooksResource
from hub_pipelines.zoho_books.simulator import ZohoBooksSimulator

TENANT = "acme"
SYSTEM = "zoho_books"
customers = import_asset(SYSTEM, "customers")
invoices = import_asset(SYSTEM, "invoices")
FAST = 100_000  # requests/minute on both sides for bulk tests
_org_ids = itertools.count(60012340000)


@dataclass
class ZohoTenant:
    """One registered tenant whose Zoho Books organisation lives in a simulator."""

    simulator: ZohoBooksSimulator
    server: LoopbackServer
    org_id: str
    warehouse_url: str
    instance: dg.DagsterInstance
    registry: TenantRegistry
    resources: dict = field(default_factory=dict)

    partition = TENANT  # a partition key is the tenant; the asset key names the system

    def register(self, requests_per_minute: int = FAST, sync_config=None, **overrides) -> None:
        self.registry.add(
            TENANT,
            "zoho_books",
            {
                "connection_config": {
                    "organization_id": self.org_id,
                    "client_id": self.simulator.client_id,
                    "client_secret": self.simulator.client_secret,
                    "refresh_token": self.simulator.refresh_token,
                    "api_base_url": self.server.url,
                    "accounts_url": self.server.url,
                    "requests_per_minute": requests_per_minute,
                    **overrides,
                },
                "sync_config": sync_config or {},
            },
        )

    def materialize(self, *assets, full_refresh: bool = False, tags=None, **resource_overrides):
        selected = list(assets) or [customers, invoices]
        run_config = {
            "ops": {
                op_name(SYSTEM, a.key.path[-1]): {"config": {"full_refresh": full_refresh}}
                for a in selected
            }
        }
        return dg.materialize(
            selected,
            partition_key=self.partition,
            instance=self.instance,
            resources={**self.resources, **resource_overrides},
            run_config=run_config,
            tags=tags,
            raise_on_error=False,
        )

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.warehouse_url) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: tuple = ()):
        return self.query(sql, params)[0][0]


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[-1] == asset:  # the entity: zoho_books/invoices → invoices
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"{asset} was not materialized")


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        f"{e.asset_key.path[-1]}.{e.check_name}": e for e in result.get_asset_check_evaluations()
    }


@pytest.fixture
def zoho(warehouse, encryption_key, monkeypatch) -> Iterator[ZohoTenant]:
    # Fast retries: the behaviour under test is that they happen, not how long they wait.
    monkeypatch.setenv("RETRY_INITIAL_DELAY", "5")
    monkeypatch.setenv("RETRY_MAX_DELAY", "50")
    simulator = ZohoBooksSimulator(requests_per_minute=FAST, daily_limit=10**8)
    org_id = str(next(_org_ids))  # rate-limit buckets are per organisation and per process
    simulator.add_organisation(org_id)
    with LoopbackServer(simulator.app) as server, dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("zoho_books_tenants", [TENANT])
        tenant = ZohoTenant(
            simulator,
            server,
            org_id,
            warehouse,
            instance,
            TenantRegistry(Vault.from_env()),
            resources={
                "warehouse": WarehouseResource(database_url=warehouse),
                "vault": VaultResource(encryption_key=encryption_key),
                "zoho_books": ZohoBooksResource(),
            },
        )
        tenant.register()
        yield tenant


def record_failure(zoho: ZohoTenant, result: dg.ExecuteInProcessResult) -> None:
    """What the daemon does with a failed run: evaluate the failure sensor on it."""
    from hub_pipelines.imports.sensors import import_failure_sensor

    context = dg.build_run_status_sensor_context(
        sensor_name="import_failure_sensor",
        dagster_instance=zoho.instance,
        dagster_run=zoho.instance.get_run_by_id(result.run_id),
        dagster_event=result.get_run_failure_event(),
        resources={"warehouse": WarehouseResource(database_url=zoho.warehouse_url)},
    ).for_run_failure()
    import_failure_sensor(context)


def retry_requests(instance: dg.DagsterInstance, warehouse_url: str) -> list[dg.RunRequest]:
    """One tick of the retry sensor, as the daemon evaluates it."""
    from hub_pipelines.definitions import defs
    from hub_pipelines.imports.sensors import import_retry_sensor

    context = dg.build_sensor_context(
        instance=instance,
        resources={"warehouse": WarehouseResource(database_url=warehouse_url)},
        repository_def=defs.get_repository_def(),
    )
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return import_retry_sensor.evaluate_tick(context).run_requests


def run_request(zoho: ZohoTenant, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Execute what a schedule or sensor requested: its selection, partition, config and tags."""
    return dg.materialize(
        [customers, invoices],
        selection=request.asset_selection,
        partition_key=request.partition_key,
        instance=zoho.instance,
        resources=zoho.resources,
        run_config=request.run_config,
        tags=request.tags,
    )
