"""The shipped Dagster instance configs load, and the production one runs on PostgreSQL."""

import shutil
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]


def test_local_instance_queues_runs_per_tenant_and_pools_per_system(tmp_path):
    shutil.copyfile(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        config = instance.get_concurrency_config()
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    # Pools (named after the systems) are enforced before a run starts, whatever launched it.
    assert config.pool_config.pool_granularity.value == "op"  # in-process runs wait too
    assert config.pool_config.default_pool_limit == 3
    limits = config.run_queue_config.tag_concurrency_limits
    assert limits == [
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]  # no deprecated dagster/partition/<dimension> tags


def test_production_instance_config_is_valid_and_uses_dagster_postgres(tmp_path, monkeypatch):
    # Connecting needs a TCP PostgreSQL (the embedded one listens on a Unix socket only), so this
    # validates the file against Dagster's instance schema, as `dagster-daemon` does at start-up.
    from dagster._core.instance.config import dagster_instance_config

    for name in ("HOST", "PORT", "DB", "USER", "PASSWORD"):
        monkeypatch.setenv(f"DAGSTER_PG_{name}", "5432" if name == "PORT" else "x")
    shutil.copyfile(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    postgres = config["storage"]["postgres"]["postgres_db"]
    assert postgres["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["granularity"] == "op"
