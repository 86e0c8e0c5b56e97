"""The Dagster code location: thin on purpose; each domain folder brings its own pieces."""

import dagster as dg

from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.tenants.sensors import tenant_registry_sensor

defs = dg.Definitions(
    sensors=[tenant_registry_sensor],
    resources={
        "warehouse": WarehouseResource(),
        "vault": VaultResource(encryption_key=dg.EnvVar("CREDENTIAL_ENCRYPTION_KEY")),
    },
)
