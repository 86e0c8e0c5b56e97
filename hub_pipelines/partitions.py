"""The partitions, defined once: tenant × system.

Dimensions sort by name, so a string key reads "system|tenant"; always build keys with
`partition_key(tenant, system)` and read them with `partition_dimensions(key)`.
"""

from __future__ import annotations

import dagster as dg

from hub_pipelines.settings import SYSTEMS

tenants_partitions = dg.DynamicPartitionsDefinition(name="tenants")
systems_partitions = dg.StaticPartitionsDefinition(list(SYSTEMS))
tenant_system_partitions = dg.MultiPartitionsDefinition(
    {"tenant": tenants_partitions, "system": systems_partitions}
)


def partition_key(tenant_id: str, system: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"tenant": tenant_id, "system": system})


def partition_dimensions(key: str) -> tuple[str, str]:
    """(tenant, system) of a partition key string, robust across launch paths."""
    dims = tenant_system_partitions.get_partition_key_from_str(key).keys_by_dimension
    return dims["tenant"], dims["system"]
