"""End to end from a simulator (served by `bench.simulator_process`): the hub's import through
Dagster, as a scheduled run does it. Runs in a process of its own (`bench.measure e2e …`); the
dlt pipelines making the same calls are in `bench.dlt_rest`.

The hub: a tenant registered with the simulator's connection config (sealed in the vault, as
`hub tenants add` does), then `dg.materialize` of the system's customers and invoices import
assets, with their checks, for the tenant's partition, on a throwaway Dagster instance: its
storage in SQLite, as the local dagster.yaml has it, or (`hub_deployed`) in PostgreSQL through
PgBouncer, as deploy/dagster.yaml and docs/operations.md have it. Only the materialization is
timed. Unthrottled, the connector's own pace is lifted out of reach too
(the resource's `requests_per_minute`); rate-limited, the tenant config paces the client at the
share of the limit the hub uses against the real one (90 % for Zoho Books).
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx

from bench.database import postgres_storage
from bench.simulator_process import CONTROL

UNLIMITED_PACE = 10**7  # requests a minute: the connector's pacing never waits
# The tenant config's pace against the documented limit, by system (tenants/models.py defaults).
PACED_SHARE = {"zoho_books": (9, 10), "xero": (11, 12)}


def connection_config(simulator_url: str, system: str, per_minute: int | None) -> dict[str, Any]:
    config = httpx.get(f"{simulator_url}{CONTROL}config", timeout=60).json()
    if system in PACED_SHARE:
        share, whole = PACED_SHARE[system]
        config["requests_per_minute"] = (
            max(2, per_minute * share // whole) if per_minute else 100_000
        )
    return config


def connector_resource(system: str, per_minute: int | None) -> Any:
    from hub_pipelines.systems import AVAILABLE

    resource = AVAILABLE[system].resource
    if per_minute:
        return resource(requests_per_minute=None)  # the tenant config's pace
    options: dict[str, Any] = {"requests_per_minute": UNLIMITED_PACE}
    if "daily_limit" in resource.model_fields:
        options["daily_limit"] = 10**9
    return resource(**options)


def warehouse_counts(url: str, tenant: str, system: str) -> dict[str, int]:
    import psycopg

    counted = {}
    with psycopg.connect(url) as conn:
        for entity, table in (
            ("customers", "accounting.customers"),
            ("invoices", "accounting.invoices"),
            ("lines", "accounting.invoice_lines"),
        ):
            query = f"SELECT count(*) FROM {table} WHERE tenant_id = %s AND system = %s"
            counted[entity] = conn.execute(query, (tenant, system)).fetchone()[0]
    return counted


def hub_import(
    system: str,
    simulator_url: str,
    url: str,
    tenant: str,
    per_minute: int | None = None,
    dagster_storage: str | None = None,
) -> dict[str, Any]:
    """Import customers then invoices of `tenant` through Dagster; seconds and what loaded. The
    instance keeps its runs and events in SQLite, or in the PostgreSQL at `dagster_storage`."""
    import dagster as dg

    from hub_pipelines.imports.assets import import_asset, op_name
    from hub_pipelines.resources import VaultResource, WarehouseResource
    from hub_pipelines.tenants.registry import TenantRegistry
    from hub_pipelines.vault import KEY_VARIABLE, Vault, generate_key
    from hub_pipelines.warehouse import db

    os.environ["HUB_DATABASE_URL"] = url
    os.environ[KEY_VARIABLE] = generate_key()  # a scratch key for a scratch tenant
    db.database_url.cache_clear()
    document = {"connection_config": connection_config(simulator_url, system, per_minute)}
    TenantRegistry(Vault.from_env()).add(tenant, system, {**document, "sync_config": {}})
    entities = ("customers", "invoices")
    resources = {
        "warehouse": WarehouseResource(database_url=url),
        "vault": VaultResource(encryption_key=os.environ[KEY_VARIABLE]),
        system: connector_resource(system, per_minute),
    }
    run_config = {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "ops": {op_name(system, entity): {"config": {}} for entity in entities},
    }
    overrides = {"storage": postgres_storage(dagster_storage)} if dagster_storage else None
    with dg.instance_for_test(overrides=overrides) as instance:
        instance.add_dynamic_partitions(f"{system}_tenants", [tenant])
        started = time.perf_counter()
        result = dg.materialize(
            [import_asset(system, entity) for entity in entities],
            partition_key=tenant,
            instance=instance,
            resources=resources,
            run_config=run_config,
            raise_on_error=False,
        )
        seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"the hub's {system} import failed (its log is above)")
    return {"seconds": seconds, "rows": warehouse_counts(url, tenant, system)}
