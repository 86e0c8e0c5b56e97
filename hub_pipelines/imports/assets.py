"""The partitioned import assets: `customers` and `invoices` (lines load with their invoice)."""

import dagster as dg

from hub_pipelines.imports.checks import check_specs
from hub_pipelines.imports.sync import ImportConfig, run_sync
from hub_pipelines.partitions import partition_dimensions, tenant_system_partitions
from hub_pipelines.systems import CONNECTOR_RESOURCES

# Which system's resource a run needs depends on its partition, so the assets ask for all.
_RESOURCES = {"warehouse", "vault", *CONNECTOR_RESOURCES}


def _import(context: dg.AssetExecutionContext, entity, config: ImportConfig):
    tenant, system = partition_dimensions(context.partition_key)
    resources = context.resources
    return run_sync(context, entity, config, resources.warehouse, resources.vault, tenant, system)


@dg.asset(
    partitions_def=tenant_system_partitions,
    required_resource_keys=_RESOURCES,
    check_specs=check_specs("customers"),
    group_name="imports",
    kinds={"postgres"},
    description="Customers of each tenant in each accounting system (accounting.customers).",
)
def customers(context: dg.AssetExecutionContext, config: ImportConfig) -> dg.MaterializeResult:
    return _import(context, "customers", config)


@dg.asset(
    partitions_def=tenant_system_partitions,
    deps=[customers],
    required_resource_keys=_RESOURCES,
    check_specs=check_specs("invoices"),
    group_name="imports",
    kinds={"postgres"},
    description="Sales invoices with lines and GST heads (accounting.invoices, "
    "accounting.invoice_lines).",
)
def invoices(context: dg.AssetExecutionContext, config: ImportConfig) -> dg.MaterializeResult:
    return _import(context, "invoices", config)


import_job = dg.define_asset_job(
    "import_job",
    selection=[customers, invoices],
    description="Import customers and invoices for one (tenant, system) partition.",
)
