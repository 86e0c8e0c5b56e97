"""One scheduler tick with N tenant configs, measured the way the Dagster daemon runs it.

`python -m bench.ticks --configs 10000,100000` (`--profile` prints a cProfile top list,
`--evaluate-only` measures only the schedules' evaluation, `--storage sqlite` uses the local
dagster.yaml's storage instead of deploy/dagster.yaml's PostgreSQL, `--threads 4,8` runs the
daemon's ticks and run submissions in thread pools as `schedules: use_threads` does; by default
as deploy/dagster.yaml sets them, `--threads none` in one thread; `--pooled` puts PgBouncer in
front of the Dagster storage, see `bench.pooler`).

For each size: a scratch hub database (migrated) gets N enabled configs with the default
sync_config (customers daily, invoices every 6 hours), spread round-robin over the five systems and
written in one COPY with one shared encrypted connection blob (the schedules never open it). A
throwaway Dagster instance, its storage in a second scratch database of the same PostgreSQL (as
deploy/dagster.yaml, with the project's QueuedRunCoordinator), gets each system's tenant
partitions in one call per system. The code location is `hub_pipelines.definitions`, loaded in
process under the name `hub dev` gives it.

The measured step is one iteration of the scheduler daemon: `launch_scheduled_runs` from
`dagster._scheduler.scheduler`, what `dagster-daemon`'s SchedulerDaemon runs every 30 seconds.
For every schedule that is due it evaluates the schedule in the code location (the schedule's
function, then Dagster's resolution of its run requests: partition validation, tags), then for
every run request looks for an existing run with its run key, builds the execution plan, creates
the run (with its planned asset and check events) and submits it to the queue (a RUN_ENQUEUED
event; nothing is launched). It runs at the busiest minute of the day for these configs (the
minute with the most imports due, see `busiest_minute`; with all imports at the period's start, as
before the stagger, that is midnight), after two iterations one and two minutes earlier, so the
schedules have state and a previous tick, as under a running daemon. The only difference from the
daemon is the transport: the daemon reaches the code location over gRPC, which adds serialising
the run requests and a gRPC call per run for its execution plan.

Reported (`measure()`): seconds of that iteration, evaluation_seconds of it spent in the code
location evaluating schedules, slowest_schedule_seconds (the longest single schedule's tick),
run_requests, runs_created, instance_queries (SQL statements sent to the Dagster instance's
database; the hub's own queries are not counted) and, for 10,000 configs or fewer, a cProfile top
list under "profile" (of the following minute's tick, so the figures carry no profiler
overhead).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
import sqlalchemy as sa
import yaml
from dagster._core.definitions.timestamp import TimestampWithTimezone
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.code_location import InProcessCodeLocation
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._scheduler.scheduler import launch_scheduled_runs
from sqlalchemy.engine import make_url

from bench import pooler
from bench.database import create_scratch_database, drop_database, postgres_storage
from hub_pipelines.imports.schedules import (
    PERIODS,
    STEP,
    TIMEZONE,
    import_schedules,
    import_step,
)
from hub_pipelines.partitions import tenant_partitions
from hub_pipelines.settings import CODE_LOCATION_MODULE, CODE_LOCATION_NAME, SYSTEMS
from hub_pipelines.tenants.models import SyncConfig
from hub_pipelines.vault import KEY_VARIABLE, Vault, generate_key
from hub_pipelines.warehouse import db, migrations

DAY = datetime(2026, 11, 21, tzinfo=ZoneInfo(TIMEZONE))
DEPLOYED_INSTANCE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
RUN_COORDINATOR = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}


def deployed_threads() -> tuple[int, int] | None:
    """(num_workers, num_submit_workers) of deploy/dagster.yaml's scheduler, None when it does
    not use threads: the tick is measured as the production daemon runs it."""
    schedules = yaml.safe_load(DEPLOYED_INSTANCE.read_text()).get("schedules") or {}
    if not schedules.get("use_threads"):
        return None
    return schedules["num_workers"], schedules["num_submit_workers"]


def tenant_slugs(configs: int) -> list[str]:
    return [f"bench-{number:06d}" for number in range(configs)]


def system_of_config(number: int) -> str:
    return SYSTEMS[number % len(SYSTEMS)]


def busiest_minute(configs: int) -> tuple[datetime, int]:
    """The minute of DAY with the most imports due for these configs (default sync_config), and
    how many: each frequency's imports fall on the tenant's step of each of its periods."""
    sync = SyncConfig()
    due: Counter = Counter()
    for number, tenant in enumerate(tenant_slugs(configs)):
        system = system_of_config(number)
        for entity in sync.entities:
            frequency = getattr(sync, f"{entity}_frequency")
            period = PERIODS[frequency] // STEP
            first = import_step(system, tenant, frequency)
            for step in range(first, PERIODS["daily"] // STEP, period):
                due[step] += 1
    step, count = due.most_common(1)[0]
    return DAY + step * STEP, count


def register_configs(url: str, configs: int) -> None:
    """N enabled configs in one COPY; the credentials are one shared encrypted blob (schedules
    read only tenant, system, state and sync_config)."""
    sealed = Vault.from_env().encrypt({"bench": True}, "bench")
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(
            "COPY hub.accounting_configs (tenant_id, system, connection_config) FROM STDIN"
        ) as copy:
            for number, tenant in enumerate(tenant_slugs(configs)):
                copy.write_row((tenant, system_of_config(number), sealed))
        conn.execute("ANALYZE hub.accounting_configs")


def add_tenant_partitions(instance: dg.DagsterInstance, configs: int) -> None:
    by_system: dict[str, list[str]] = {system: [] for system in SYSTEMS}
    for number, tenant in enumerate(tenant_slugs(configs)):
        by_system[system_of_config(number)].append(tenant)
    for system, tenants in by_system.items():
        instance.add_dynamic_partitions(tenant_partitions(system).name, tenants)


def instance_overrides(storage: str, dagster_url: str) -> dict:
    """The instance of deploy/dagster.yaml (PostgreSQL storage) or of the local dagster.yaml
    (SQLite under the throwaway DAGSTER_HOME), both with the queued run coordinator."""
    overrides: dict = {"run_coordinator": RUN_COORDINATOR}
    if storage == "postgres":
        overrides["storage"] = postgres_storage(dagster_url)
    return overrides


class StatementCounter:
    """Counts SQL statements sent through SQLAlchemy to databases other than the hub's: those of
    the Dagster instance's storage (PostgreSQL or SQLite)."""

    def __init__(self, hub_database: str):
        self.hub_database = hub_database
        self.count = 0

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if conn.engine.url.database != self.hub_database:
            self.count += 1

    @contextmanager
    def listening(self) -> Iterator[StatementCounter]:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self)
        try:
            yield self
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", self)


class EvaluationTimer:
    """Adds up the time the daemon spends in the code location evaluating schedules (their
    functions and Dagster's resolution of the run requests), apart from creating the runs."""

    def __init__(self):
        self.seconds = 0.0

    @contextmanager
    def timing(self) -> Iterator[EvaluationTimer]:
        original = InProcessCodeLocation.get_schedule_execution_data

        def timed(location, *args, **kwargs):
            started = time.perf_counter()
            try:
                return original(location, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        InProcessCodeLocation.get_schedule_execution_data = timed
        try:
            yield self
        finally:
            InProcessCodeLocation.get_schedule_execution_data = original


def workspace_target() -> InProcessWorkspaceLoadTarget:
    return InProcessWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name=CODE_LOCATION_MODULE, attribute="defs"),
            location_name=CODE_LOCATION_NAME,
        )
    )


@contextmanager
def daemon_workspace(instance: dg.DagsterInstance):
    """The workspace a scheduler daemon would see: the hub's code location, in process."""
    with create_test_daemon_workspace_context(workspace_target(), instance) as workspace:
        yield workspace


def scheduler_iteration(workspace, at: datetime, threads: tuple[int, int] | None = None) -> list:
    """One iteration of the scheduler daemon at AT; the errors it reported. THREADS (workers,
    submit workers): as with `schedules: {use_threads: true, num_workers, num_submit_workers}`
    in dagster.yaml, the schedules' ticks run in a thread pool and submit their runs in another;
    the iteration counts until every tick has finished."""
    logger = logging.getLogger("bench.ticks.scheduler")
    logger.setLevel(logging.WARNING)
    end = at.astimezone(UTC)
    if not threads:
        errors = launch_scheduled_runs(workspace, logger, end, iteration_times={})
        return [error for error in errors if error is not None]
    futures: dict = {}
    with (
        ThreadPoolExecutor(max_workers=threads[0]) as ticks,
        ThreadPoolExecutor(max_workers=threads[1]) as submits,
    ):
        errors = list(
            launch_scheduled_runs(
                workspace,
                logger,
                end,
                iteration_times={},
                threadpool_executor=ticks,
                submit_threadpool_executor=submits,
                scheduler_run_futures=futures,
            )
        )
        for future in futures.values():
            future.result()
    return [error for error in errors if error is not None]


def schedules_in(workspace) -> list:
    """(code location, remote schedule) of every schedule in the workspace."""
    context = workspace.create_request_context()
    return [
        (entry.code_location, schedule)
        for entry in context.get_code_location_entries().values()
        for repository in entry.code_location.get_repositories().values()
        for schedule in repository.get_schedules()
    ]


def ticks_at(instance: dg.DagsterInstance, workspace, at: datetime) -> list:
    """The latest tick of every schedule, if it is the tick at AT."""
    latest = [
        instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id, limit=1)
        for _, schedule in schedules_in(workspace)
    ]
    return [ticks[0] for ticks in latest if ticks and ticks[0].timestamp == at.timestamp()]


def slowest_schedule_tick(ticks: list, started: float, serial: bool = True) -> float:
    """The longest single schedule tick of an iteration that began at STARTED: run one after
    the other (SERIAL), each took from the end of the previous one to its own end; in threads,
    at most from STARTED to its end."""
    ends = sorted(tick.end_timestamp for tick in ticks if tick.end_timestamp)
    starts = [started, *ends][: len(ends)] if serial else [started] * len(ends)
    return max((end - start for start, end in zip(starts, ends, strict=True)), default=0.0)


def evaluate_schedules(instance: dg.DagsterInstance, workspace, at: datetime) -> int:
    """Only the evaluation step of a tick: the call the daemon makes to the code location for
    each import schedule. Returns the run requests."""
    requests = 0
    names = {schedule.name for schedule in import_schedules}
    for code_location, schedule in schedules_in(workspace):
        if schedule.name not in names:
            continue
        data = code_location.get_schedule_execution_data(
            instance=instance,
            repository_handle=schedule.handle.repository_handle,
            schedule_name=schedule.name,
            scheduled_execution_time=TimestampWithTimezone(at.timestamp(), TIMEZONE),
            log_key=None,
        )
        requests += len(data.run_requests or [])
    return requests


def profile_top(profiler: cProfile.Profile, lines: int = 30) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


@contextmanager
def scratch_hub(configs: int) -> Iterator[tuple[str, str]]:
    """(hub database URL, Dagster storage URL): two scratch databases, the hub's migrated and
    holding CONFIGS configs, exported as HUB_DATABASE_URL for the code location; dropped after."""
    os.environ.setdefault(KEY_VARIABLE, generate_key())
    server, hub_url = create_scratch_database("hub_bench_ticks", migrated=False)
    _, dagster_url = create_scratch_database("dagster_bench_ticks", migrated=False)
    previous_url = os.environ.get("HUB_DATABASE_URL")
    os.environ["HUB_DATABASE_URL"] = hub_url
    db.database_url.cache_clear()
    try:
        migrations.upgrade(hub_url)
        register_configs(hub_url, configs)
        yield hub_url, dagster_url
    finally:
        if previous_url is None:
            os.environ.pop("HUB_DATABASE_URL", None)
        else:
            os.environ["HUB_DATABASE_URL"] = previous_url
        db.database_url.cache_clear()
        db.engine.cache_clear()
        drop_database(server, hub_url)
        drop_database(server, dagster_url)


def measure(
    configs: int,
    profile: bool | None = None,
    storage: str = "postgres",
    evaluate_only: bool = False,
    threads: tuple[int, int] | None = None,
    pooled: bool = False,
) -> dict:
    """One full scheduler tick with CONFIGS enabled configs, at the busiest minute of the day
    (see the module docstring). EVALUATE_ONLY: only the schedules' evaluation, no runs. THREADS:
    (workers, submit workers) of a threaded scheduler daemon (`scheduler_iteration`). POOLED:
    the Dagster storage reached through PgBouncer (`bench.pooler`)."""
    profile = configs <= 10_000 if profile is None else profile
    tick_at, expected = busiest_minute(configs)
    with (
        scratch_hub(configs) as (hub_url, dagster_url),
        storage_route(dagster_url, pooled) as storage_url,
        dg.instance_for_test(overrides=instance_overrides(storage, storage_url)) as instance,
        daemon_workspace(instance) as workspace,
    ):
        add_tenant_partitions(instance, configs)
        # Schedule state and a previous tick, as under a running daemon (not for the evaluation
        # alone: it would create the previous minute's runs, for one lookup of their keys).
        for minutes in () if evaluate_only else (2, 1):
            scheduler_iteration(workspace, tick_at - minutes * STEP + timedelta(seconds=5))
        runs_before = instance.get_runs_count()
        with (
            StatementCounter(make_url(hub_url).database).listening() as counter,
            EvaluationTimer().timing() as evaluation,
        ):
            started_at, started = time.time(), time.perf_counter()
            if evaluate_only:
                requests = evaluate_schedules(instance, workspace, tick_at)
                errors = []
            else:
                errors = scheduler_iteration(workspace, tick_at + timedelta(seconds=5), threads)
            seconds = time.perf_counter() - started
        ticks = [] if evaluate_only else ticks_at(instance, workspace, tick_at)
        result = {
            "configs": configs,
            "threads": list(threads) if threads else None,
            "pooled": pooled,
            "tick": tick_at.isoformat(),
            "imports_due": expected,
            "seconds": round(seconds, 3),
            "evaluation_seconds": round(evaluation.seconds, 3),
            "slowest_schedule_seconds": round(
                slowest_schedule_tick(ticks, started_at, serial=not threads), 3
            ),
            "run_requests": requests
            if evaluate_only
            else sum(len(tick.tick_data.run_keys or []) for tick in ticks),
            "runs_created": instance.get_runs_count() - runs_before,
            "instance_queries": counter.count,
            "errors": [str(error.message) for error in errors],
        }
        if profile:  # of the next minute's tick, so the figures above carry no overhead
            result["profile"] = profiled_tick(instance, workspace, tick_at + STEP, evaluate_only)
        return result


@contextmanager
def storage_route(dagster_url: str, pooled: bool) -> Iterator[str]:
    """The Dagster storage's URL, through PgBouncer when POOLED."""
    if not pooled:
        yield dagster_url
        return
    with pooler.pgbouncer(dagster_url) as pooled_url:
        yield pooled_url


def profiled_tick(instance: dg.DagsterInstance, workspace, at: datetime, evaluate_only: bool):
    profiler = cProfile.Profile()
    profiler.enable()
    if evaluate_only:
        evaluate_schedules(instance, workspace, at)
    else:
        scheduler_iteration(workspace, at + timedelta(seconds=5))
    profiler.disable()
    return f"cProfile of the tick at {at.isoformat()}:\n{profile_top(profiler)}"


def summary(result: dict) -> str:
    threads = result.get("threads")
    how = f"threads {threads[0]}+{threads[1]}" if threads else "one thread"
    how += ", pooled" if result.get("pooled") else ""
    line = (
        f"{result['configs']:>7,} configs ({how}), tick {result['tick']}: "
        f"{result['seconds']:.2f} s "
        f"(evaluation {result['evaluation_seconds']:.2f} s, slowest schedule "
        f"{result['slowest_schedule_seconds']:.2f} s), {result['run_requests']:,} run requests "
        f"({result['imports_due']:,} due), {result['runs_created']:,} runs created, "
        f"{result['instance_queries']:,} instance queries"
    )
    return line + (f"; errors: {result['errors']}" if result["errors"] else "")


def thread_option(value: str) -> tuple[int, int] | None:
    if value == "deployed":
        return deployed_threads()
    if value == "none":
        return None
    parts = value.split(",")
    if len(parts) != 2 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(
            f"{value!r}: WORKERS,SUBMIT_WORKERS as two positive numbers (e.g. 4,8), "
            "`deployed` or `none`"
        )
    return int(parts[0]), int(parts[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ticks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--configs", default="10000,100000", help="comma-separated sizes")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print a cProfile top list (default: for 10,000 configs or fewer)",
    )
    parser.add_argument("--json", action="store_true", help="print each result as a JSON line")
    parser.add_argument(
        "--storage",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="the instance's storage: deploy/dagster.yaml's (default) or the local dagster.yaml's",
    )
    parser.add_argument("--evaluate-only", action="store_true", help="no run creation")
    parser.add_argument(
        "--threads",
        metavar="WORKERS,SUBMIT_WORKERS",
        type=thread_option,
        default="deployed",
        help="a threaded scheduler daemon (schedules: use_threads, num_workers, "
        "num_submit_workers in dagster.yaml), e.g. 4,8; `none`: one thread; "
        "default: as deploy/dagster.yaml sets it",
    )
    parser.add_argument(
        "--pooled", action="store_true", help="the Dagster storage through PgBouncer"
    )
    args = parser.parse_args(argv)
    threads = args.threads
    for configs in (int(part) for part in args.configs.split(",") if part.strip()):
        result = measure(
            configs, args.profile, args.storage, args.evaluate_only, threads, args.pooled
        )
        profile = result.pop("profile", None)
        print(json.dumps(result) if args.json else summary(result), flush=True)
        if profile:
            print(profile, flush=True)


if __name__ == "__main__":
    main()
