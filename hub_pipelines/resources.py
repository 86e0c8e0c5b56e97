"""Platform resources: the warehouse and the credential vault."""

from __future__ import annotations

import os

import dagster as dg
import sqlalchemy as sa

from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import OLD_KEYS_VARIABLE, Vault
from hub_pipelines.warehouse import db


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL warehouse. Empty `database_url` means: resolve from the environment
    (HUB_DATABASE_URL, DATABASE_*) or start the embedded server."""

    database_url: str = ""

    def url(self) -> str:
        return self.database_url or db.database_url()

    def engine(self) -> sa.Engine:
        return db.engine(self.url())

    def connect(self, **kwargs):
        return db.connect(self.url(), **kwargs)


class VaultResource(dg.ConfigurableResource):
    """Opens tenant credentials. The key arrives through `EnvVar("CREDENTIAL_ENCRYPTION_KEY")`;
    old keys (only during a rotation) are read from CREDENTIAL_ENCRYPTION_OLD_KEYS."""

    encryption_key: str

    def vault(self) -> Vault:
        return Vault.from_strings(self.encryption_key, os.environ.get(OLD_KEYS_VARIABLE))

    def registry(self, warehouse: WarehouseResource) -> TenantRegistry:
        return TenantRegistry(self.vault(), warehouse.url())
