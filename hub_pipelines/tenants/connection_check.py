"""`hub tenants test`: can the hub reach this tenant's system with the stored credentials?"""

from __future__ import annotations

from hub_pipelines.canonical import ConnectionTest
from hub_pipelines.connectors.errors import SyncError, classify
from hub_pipelines.tenants.models import TenantConfigError
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.tenants.token_store import ConfigTokenStore


def check_connection(
    registry: TenantRegistry, tenant: str, system: str
) -> tuple[ConnectionTest, SyncError | None]:
    """Run the connector's connection test and record its outcome on the config row."""
    from hub_pipelines.systems import AVAILABLE  # imports every connector: only when needed

    config = registry.get(tenant, system)
    if system not in AVAILABLE:
        raise TenantConfigError(f"{system}: no connector is available for this system yet")
    connector = (
        AVAILABLE[system]
        .resource()
        .connector(
            config.connection, ConfigTokenStore(registry, config), versions=lambda _e, _ids: {}
        )
    )
    error = None
    try:
        result = connector.test_connection()
    except Exception as exc:  # classified for the operator, never re-raised with secrets
        error = classify(exc)
        result = ConnectionTest(False, 0, message=f"{error.category}: {error.message}")
    finally:
        connector.close()
    registry.record_connection_test(config.row.id, result)
    return result, error
