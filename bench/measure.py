"""One measurement in a fresh process: `python -m bench.measure WHAT …` prints one result line,
`BENCH-RESULT {json}`, with the seconds, the process's peak resident memory (VmHWM) and its
resident memory just before the measured work began (after its imports).

    python -m bench.measure load --contender read|floor|hub|dlt --pages FILE
                                 --target TENANT_OR_DATASET
    python -m bench.measure e2e --contender hub|dlt --system SYSTEM --simulator URL --target NAME
                                [--per-minute R]
    python -m bench.measure tick --configs N

The database is `BENCH_DATABASE_URL` (never on a command line: it may hold a password).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

RESULT_PREFIX = "BENCH-RESULT "
DATABASE_VARIABLE = "BENCH_DATABASE_URL"


def megabytes_now() -> float:
    return psutil.Process().memory_info().rss / 2**20


def peak_megabytes() -> float:
    """The process's peak resident memory: VmHWM, the high-water mark of its own address space.
    Not `ru_maxrss`: on Linux that keeps the largest RSS the process had before exec, i.e. the
    harness's own memory at fork time, which would hide everything below it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def measured(work: Callable[[], dict[str, Any]], timed_inside: bool = False) -> dict[str, Any]:
    """Run `work` and add the time (unless it timed itself: `seconds` in its answer) and memory."""
    at_start = megabytes_now()
    started = time.perf_counter()
    answer = work()
    seconds = time.perf_counter() - started
    result = {"seconds": seconds, **answer} if not timed_inside else dict(answer)
    result.update(rss_at_start_mb=round(at_start, 1), peak_rss_mb=round(peak_megabytes(), 1))
    return result


def load(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Every contender under the collector threshold an import runs with (the hub's loader never
    runs without it), so reading the same pages costs each the same."""
    from hub_pipelines.imports.collection import bulk_allocation

    with bulk_allocation():
        return _load(args, url, Path(args.pages))


def _load(args: argparse.Namespace, url: str, pages: Path) -> dict[str, Any]:
    from bench import load_stage

    if args.contender == "read":
        return measured(lambda: {"rows": load_stage.read_only(pages)})
    if args.contender == "floor":
        return measured(lambda: {"rows": load_stage.copy_floor(pages, url, args.target)})
    if args.contender == "hub":
        import hub_pipelines.warehouse.loader  # noqa: F401 - imported before the clock starts

        return measured(lambda: {"rows": load_stage.hub_loader(pages, url, args.target)})
    import dlt  # noqa: F401 - imported before the clock starts

    return measured(lambda: {"rows": load_stage.dlt_pipeline(pages, url, args.target)})


def e2e(args: argparse.Namespace, url: str) -> dict[str, Any]:
    if args.contender == "hub":
        import dagster  # noqa: F401 - imported before the clock starts

        from bench.end_to_end import hub_import
        from hub_pipelines import definitions  # noqa: F401 - every system's assets and resources

        return measured(
            lambda: hub_import(
                args.system, args.simulator, url, args.target, args.per_minute, args.dagster_storage
            ),
            timed_inside=True,
        )
    from bench import dlt_rest

    return measured(lambda: {"rows": dlt_rest.run(args.system, args.simulator, url, args.target)})


def tick(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """`bench.ticks.measure(configs)` (it makes its own scratch databases), without its
    profiler, which would slow the tick it times."""
    from bench import ticks

    threads = ticks.deployed_threads()  # the daemon as deployed
    return measured(
        lambda: ticks.measure(args.configs, profile=False, threads=threads, pooled=args.pooled),
        timed_inside=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.measure")
    commands = parser.add_subparsers(dest="what", required=True)
    loading = commands.add_parser("load")
    loading.add_argument("--contender", choices=("read", "floor", "hub", "dlt"), required=True)
    loading.add_argument("--pages", required=True)
    loading.add_argument("--target", required=True, help="tenant (floor, hub) or dlt dataset")
    loading.set_defaults(func=load)
    importing = commands.add_parser("e2e")
    importing.add_argument("--contender", choices=("hub", "dlt"), required=True)
    importing.add_argument("--system", required=True)
    importing.add_argument("--simulator", required=True, help="the simulator's base URL")
    importing.add_argument("--target", required=True, help="tenant (hub) or dlt dataset")
    importing.add_argument("--per-minute", type=int, default=None)
    importing.add_argument(
        "--dagster-storage", default=None, help="the hub's Dagster storage: a PostgreSQL URL"
    )
    importing.set_defaults(func=e2e)
    ticking = commands.add_parser("tick")
    ticking.add_argument("--configs", type=int, required=True)
    ticking.add_argument("--pooled", action="store_true", help="Dagster storage via PgBouncer")
    ticking.set_defaults(func=tick)
    args = parser.parse_args(argv)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # dlt: no usage pings
    result = args.func(args, os.environ.get(DATABASE_VARIABLE, ""))
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    sys.exit(main())
