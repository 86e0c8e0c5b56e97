"""The import schedules' stagger, through Dagster: each (config, entity) once per period at its
tenant's minute, the same few instance queries a tick whatever the number of tenants, and missed
minutes made up by the scheduler daemon's next tick without launching anything twice."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa

from bench.ticks import (
    RUN_COORDINATOR,
    daemon_workspace,
    deployed_threads,
    measure,
    scheduler_iteration,
)
from hub_pipelines.definitions import defs
from hub_pipelines.imports.schedules import (
    PERIODS,
    STEP,
    due_windows,
    import_schedules,
    import_step,
    import_time,
)
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.tenants.models import TenantConfigError
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import Vault

SYSTEM = "busy"
HOUR = datetime(2026, 11, 21, 10, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
CONNECTION = {"username": "u", "password": "p", "company_code": "Comp0001"}
HOURLY = {"customers_frequency": "hourly", "invoices_frequency": "hourly"}
PAIRS = [("customers", "hourly"), ("invoices", "hourly")]


def tenants_at_steps(steps: list[int], per_step: int = 1) -> list[str]:
    """Tenant slugs whose hourly imports fall on the given minutes of the hour, PER_STEP each,
    in the order of STEPS."""
    found: dict[int, list[str]] = {step: [] for step in steps}
    numbers = count()
    while any(len(tenants) < per_step for tenants in found.values()):
        tenant = f"t{next(numbers):05d}"
        tenants = found.get(import_step(SYSTEM, tenant, "hourly"))
        if tenants is not None and len(tenants) < per_step:
            tenants.append(tenant)
    return [tenant for step in steps for tenant in found[step]]


@pytest.fixture
def hub(warehouse, encryption_key):
    """A registry on the test database and a throwaway instance with the queued run coordinator
    (runs the daemon creates are queued, never launched)."""
    with dg.instance_for_test(overrides={"run_coordinator": RUN_COORDINATOR}) as instance:
        yield TenantRegistry(Vault.from_env(), warehouse), instance, warehouse


def register(hub, tenants: list[str], partitions: bool = True) -> None:
    registry, instance, _ = hub
    for tenant in tenants:
        registry.add(tenant, SYSTEM, {"connection_config": CONNECTION, "sync_config": HOURLY})
    if partitions:
        instance.add_dynamic_partitions(f"{SYSTEM}_tenants", tenants)


def evaluate(
    hub, when: datetime, frequency: str = "hourly", system: str = SYSTEM
) -> dg.ScheduleExecutionData:
    _, instance, url = hub
    schedule = next(s for s in import_schedules if s.name == f"{system}_imports_{frequency}")
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources={"warehouse": WarehouseResource(database_url=url)},
        repository_def=defs.get_repository_def(),
    ) as context:
        return schedule.evaluate_tick(context)


def requested(hub, when: datetime) -> list[tuple[str, str, str]]:
    """(tenant, entity, run key) of what the hourly schedule requests at WHEN."""
    return [
        (r.partition_key, r.asset_selection[0].path[1], r.run_key)
        for r in evaluate(hub, when).run_requests or []
    ]


def test_every_step_of_a_period_is_in_exactly_one_tick_window():
    for frequency, period in PERIODS.items():
        ticks = [HOUR + n * STEP for n in range(2 * period // STEP)]
        steps = Counter(
            window.start + step * STEP
            for tick in ticks
            for window in due_windows(frequency, tick - STEP, tick)
            for step in window.steps
        )
        assert set(steps) == set(ticks) and set(steps.values()) == {1}, frequency


def test_an_import_time_is_a_whole_minute_of_its_period_that_stays_put():
    tenant = "acme-traders"
    for frequency, period in PERIODS.items():
        first = import_time(SYSTEM, tenant, frequency, HOUR)
        start = HOUR.replace(hour=0) if frequency == "daily" else HOUR
        assert start <= first < start + period and first.second == 0
        assert import_time(SYSTEM, tenant, frequency, first + period) == first + period


def test_an_hour_of_ticks_requests_each_config_and_entity_once_at_its_minute(hub):
    importing = tenants_at_steps(list(range(0, 60, 3)))  # 20 tenants on 20 minutes of the hour
    paused, removed, unpartitioned = tenants_at_steps([1, 2, 4], per_step=1)
    register(hub, [*importing, paused, removed])
    register(hub, [unpartitioned], partitions=False)  # the tenant sensor has not added it yet
    registry, _, _ = hub
    registry.set_enabled(paused, SYSTEM, False)
    registry.remove(removed, SYSTEM)

    hour = [HOUR + minute * STEP for minute in range(60)]
    by_tick = {tick: requested(hub, tick) for tick in hour}
    pairs = Counter((tenant, entity) for found in by_tick.values() for tenant, entity, _ in found)
    assert pairs == Counter({(t, e): 1 for t in importing for e, _ in PAIRS})
    for tick, found in by_tick.items():
        assert all(import_time(SYSTEM, tenant, "hourly", tick) == tick for tenant, _, _ in found)
        assert all(key.startswith(f"hourly:{tick.isoformat()}:{SYSTEM}:") for *_, key in found)
    assert requested(hub, hour[3]) == by_tick[hour[3]]  # a re-evaluated tick: the same keys
    next_hour = {key for tick in hour for *_, key in requested(hub, tick + PERIODS["hourly"])}
    assert len(next_hour) == len(importing) * 2
    assert not next_hour & {key for found in by_tick.values() for *_, key in found}
    quiet = evaluate(hub, HOUR + STEP)  # the paused tenant's minute
    assert not quiet.run_requests
    assert quiet.skip_message == (
        f"none of the 21 enabled {SYSTEM} configs importing hourly is due at 2026-11-21 10:01 IST"
    )


class InstanceStatements:
    """SQL statements sent to the Dagster instance's storage (SQLite here, through SQLAlchemy;
    the hub's database is reached through psycopg and not counted)."""

    def __init__(self):
        self.count = 0

    def __call__(self, *args) -> None:
        self.count += 1

    def __enter__(self):
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc) -> None:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", self)


def test_a_tick_asks_the_instance_the_same_questions_for_3_or_30_due_tenants(hub):
    few, many = tenants_at_steps([7], per_step=3), tenants_at_steps([8], per_step=30)
    register(hub, few + many)
    evaluate(hub, HOUR)  # loads what a first evaluation loads once
    statements = []
    for minute, tenants in ((7, few), (8, many)):
        with InstanceStatements() as counted:
            result = evaluate(hub, HOUR + minute * STEP)
        assert {r.partition_key for r in result.run_requests} == set(tenants)
        statements.append(counted.count)
    assert statements[0] == statements[1]


def test_the_daemon_makes_up_missed_minutes_without_launching_anything_twice(hub):
    """The scheduler daemon evaluates only the latest missed tick of a schedule: the tick
    requests what fell due since the last tick that launched runs, minus what has a run."""
    first, second, fifth, sixth = tenants_at_steps([1, 2, 5, 6])
    register(hub, [first, second, fifth, sixth])
    _, instance, _ = hub
    seconds = timedelta(seconds=5)

    def runs() -> Counter:
        return Counter(
            (run.tags["dagster/partition"], tuple(key.path[1] for key in run.asset_selection))
            for run in instance.get_runs()
        )

    with daemon_workspace(instance) as workspace:
        for when in (HOUR + seconds, HOUR + STEP + seconds):
            assert scheduler_iteration(workspace, when) == []
        assert set(runs()) == {(first, ("customers",)), (first, ("invoices",))}
        # Down from 10:01:05 to 10:05:30: the daemon evaluates the 10:05 tick only.
        for when in (HOUR + 5 * STEP + 6 * seconds, HOUR + 5 * STEP + 8 * seconds):
            assert scheduler_iteration(workspace, when) == []
        assert {tenant for tenant, _ in runs()} == {first, second, fifth}
        assert scheduler_iteration(workspace, HOUR + 6 * STEP + seconds) == []
    assert runs() == Counter(
        {(t, (entity,)): 1 for t in (first, second, fifth, sixth) for entity, _ in PAIRS}
    )


def test_the_tick_bench_creates_the_runs_due_in_the_busiest_minute(warehouse_url):
    result = measure(12, profile=False)  # bench/ticks.py, smoke size: no timing asserted
    assert result["errors"] == []
    assert result["run_requests"] == result["runs_created"] == result["imports_due"] > 0
    assert result["instance_queries"] > 0


def test_the_tick_bench_runs_the_daemon_as_deployed_and_through_pgbouncer(warehouse_url):
    """As deploy/dagster.yaml's threaded scheduler, the Dagster storage behind PgBouncer
    (bench/pooler.py; `.ci/run` installs Debian's pgbouncer): the same runs, none lost."""
    threads = deployed_threads()
    assert threads is not None  # deploy/dagster.yaml evaluates schedules in threads
    result = measure(12, profile=False, threads=threads, pooled=True)
    assert (result["threads"], result["pooled"], result["errors"]) == (list(threads), True, [])
    assert result["run_requests"] == result["runs_created"] == result["imports_due"] > 0


def test_a_file_drop_tenant_is_never_scheduled_and_a_schedule_for_it_is_refused(hub):
    """It imports when a file lands; a scheduled run would only fail (nothing to connect to)."""
    registry, instance, url = hub
    file_drop = {"connection_config": {"file_drop": True}}
    row = registry.add("branch", "tally", file_drop)
    assert (row.sync_config.customers_frequency, row.sync_config.invoices_frequency) == (
        "manual",
        "manual",
    )
    with pytest.raises(TenantConfigError, match=r"sync_config\.invoices_frequency: a file-drop"):
        registry.add(
            "branch", "tally", {**file_drop, "sync_config": {"invoices_frequency": "daily"}}
        )
    registry.add(
        "live",
        "tally",
        {"connection_config": {"url": "http://127.0.0.1:9000", "company_name": "Live Co"}},
    )
    instance.add_dynamic_partitions("tally_tenants", ["branch", "live"])
    day = datetime(2026, 11, 2, tzinfo=ZoneInfo("Asia/Kolkata"))
    for frequency in ("every_6_hours", "daily"):
        for tenant in ("branch", "live"):  # at the minute each would be due
            when = import_time("tally", tenant, frequency, day)
            requests = evaluate(hub, when, frequency, "tally").run_requests or []
            due = {request.partition_key for request in requests}
            assert due == ({"live"} if tenant == "live" else set()), (frequency, tenant)
