"""The Dagster code location: thin on purpose; each domain folder brings its own pieces."""

import dagster as dg

from hub_pipelines.analytics.assets import customer_directory, gst_sales_summary
from hub_pipelines.imports.assets import customers, import_job, invoices
from hub_pipelines.imports.schedules import import_schedules
from hub_pipelines.imports.sensors import import_failure_sensor, import_retry_sensor
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.systems import connector_resources
from hub_pipelines.tenants.sensors import tenant_registry_sensor

defs = dg.Definitions(
    assets=[customers, invoices, gst_sales_summary, customer_directory],
    jobs=[import_job],
    schedules=import_schedules,
    sensors=[tenant_registry_sensor, import_failure_sensor, import_retry_sensor],
    resources={
        "warehouse": WarehouseResource(),
        "vault": VaultResource(encryption_key=dg.EnvVar("CREDENTIAL_ENCRYPTION_KEY")),
        **connector_resources(),
    },
)
