"""`hub tenants test` (and `hub tenants add`): can the hub reach this tenant's system with the
stored credentials?"""

from __future__ import annotations

from hub_pipelines.canonical import ConnectionTest
from hub_pipelines.connectors.errors import Category, SyncError, classify
from hub_pipelines.tenants.models import TenantConfigError
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.tenants.token_store import ConfigTokenStore


def has_connection_test(system: str) -> bool:
    """Whether the system has a connector yet (only those can test a connection)."""
    from hub_pipelines.systems import AVAILABLE  # imports every connector: only when needed

    return system in AVAILABLE


def check_connection(
    registry: TenantRegistry, tenant: str, system: str
) -> tuple[ConnectionTest, SyncError | None]:
    """Run the connector's connection test with the stored config and record its outcome on the
    config row (`last_connection_test`, `last_connection_status`).

    The config must be stored first: a system with rotating refresh tokens may rotate the token
    during the test, and the connector saves the new one through the registry. A failed test
    comes back with a classified `SyncError` whose `suggested_fix` says what to do.
    """
    from hub_pipelines.systems import AVAILABLE  # imports every connector: only when needed

    config = registry.get(tenant, system)
    if system not in AVAILABLE:
        raise TenantConfigError(f"{system}: no connector is available for this system yet")
    error = None
    connector = None
    try:
        connector = (
            AVAILABLE[system]
            .resource()
            .connector(
                config.connection, ConfigTokenStore(registry, config), versions=lambda _e, _ids: {}
            )
        )
        result = connector.test_connection()
        if not result.success:  # reached the system, which refused the config (e.g. wrong org)
            error = SyncError(Category.CONFIG, result.message or "the connection test failed")
            result = ConnectionTest(False, result.latency_ms, message=str(error))
    except Exception as exc:  # classified for the operator, never re-raised with secrets
        error = classify(exc)
        result = ConnectionTest(False, 0, message=f"{error.category}: {error.message}")
    finally:
        if connector is not None:
            connector.close()
    registry.record_connection_test(config.row.id, result)
    return result, error
