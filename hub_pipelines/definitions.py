"""The Dagster code location: thin on purpose; each domain folder brings its own pieces."""

import dagster as dg

from hub_pipelines import settings
from hub_pipelines.analytics.assets import ANALYTICS_ASSETS, analytics_refresh_sensor
from hub_pipelines.imports.assets import IMPORT_JOBS, all_import_assets
from hub_pipelines.imports.freshness import freshness_sensor
from hub_pipelines.imports.run_health import run_health_sensor
from hub_pipelines.imports.schedules import import_schedules
from hub_pipelines.imports.sensors import import_failure_sensor, import_retry_sensor
from hub_pipelines.landing.sensors import landing_sensor
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.retention.jobs import retention_daily, retention_job
from hub_pipelines.systems import connector_resources
from hub_pipelines.tenants.sensors import tenant_registry_sensor

# $HUB_HOME/hub.env (the demo's key) also for a plain `dagster dev` / `dg dev`; set variables win.
settings.load_local_env()

defs = dg.Definitions(
    assets=[*all_import_assets(), *ANALYTICS_ASSETS],
    jobs=[*IMPORT_JOBS, retention_job],
    schedules=[*import_schedules, retention_daily],
    sensors=[
        tenant_registry_sensor,
        import_failure_sensor,
        import_retry_sensor,
        run_health_sensor,
        freshness_sensor,
        analytics_refresh_sensor,
        landing_sensor,
    ],
    resources={
        "warehouse": WarehouseResource(),
        "vault": VaultResource(encryption_key=dg.EnvVar("CREDENTIAL_ENCRYPTION_KEY")),
        **connector_resources(),
    },
)
