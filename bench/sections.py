"""The sections of `make bench`: each runs its measurements (every timed one in a fresh process,
contenders interleaved within each repeat) and returns its raw figures.

- load: the load stage (reading alone, COPY floor, hub loader first load and re-load, dlt);
- e2e: end to end from each system's simulator (hub through Dagster; dlt for the JSON systems);
- memory: the hub's end-to-end peak memory up to 1M invoices (QuickBooks);
- calls: API calls per run at 100k invoices (`bench.api_calls`);
- ticks: one schedule tick at 10,000 and 100,000 configs (`bench.ticks`, when present);
- rate: an import against a per-minute limit, wall time against requests ÷ limit.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import datasets, pooler, runner
from bench.database import drop_schema, forget_tenant, settle
from bench.simulator_process import SimulatorProcess

SECTIONS = ("load", "e2e", "memory", "calls", "ticks", "rate")
SYSTEMS = ("zoho_books", "quickbooks", "xero", "tally", "busy")
# The JSON REST systems with a dlt pipeline (bench.dlt_rest.SOURCES; dlt is not imported here).
DLT_SYSTEMS = ("zoho_books", "quickbooks", "xero")
# One query page holds 1,000 invoices with their lines: 1M invoices are 1,000 calls (Zoho needs a
# detail call per invoice), so a 1M import takes minutes. The same 200
# customers at every size: the simulator sums each customer's balance over every sale while it
# renders (customers × invoices), and the hub's memory must not depend on them anyway.
MEMORY_SYSTEM = "quickbooks"
MEMORY_CUSTOMERS = 200
RATE_SYSTEM = "zoho_books"
TICKS_MISSING = "bench/ticks.py not present"


@dataclass
class Plan:
    sizes: list[int] = field(default_factory=lambda: [10_000, 100_000])
    repeats: int = 3
    memory_sizes: list[int] = field(default_factory=lambda: [10_000, 100_000, 1_000_000])
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    calls_invoices: int = 100_000
    tick_configs: list[int] = field(default_factory=lambda: [10_000, 100_000])
    rate_per_minute: int = 600  # Zoho's documented 100 a minute, scaled up six times
    rate_invoices: int = 500  # with 50 customers: ~560 requests, about a minute at 540 a minute


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _brief(result: dict[str, Any]) -> str:
    return f"{result['seconds']:.2f} s, peak {result['peak_rss_mb']:.0f} MB"


# --- a. the load stage ---------------------------------------------------------------------------

LOAD_CONTENDERS = ("read", "floor", "hub", "hub_reload", "dlt")
WARM_UP = ("--target", "warm-up")


def load_stage(plan: Plan, url: str) -> dict[str, Any]:
    figures = {}
    for size in plan.sizes:
        started = time.perf_counter()
        pages = datasets.ensure_pages(size)
        prepared = time.perf_counter() - started
        source = ["--pages", str(pages)]
        # Untimed: so that no contender pays alone for bringing the file into the page cache or
        # for the server's first writes of this size.
        warm_up = runner.measure("load", ["--contender", "floor", *source, *WARM_UP], url)
        forget_tenant(url, WARM_UP[1])
        say(f"load {size:,} warm-up (COPY floor, not counted): {_brief(warm_up)}")
        samples: dict[str, list] = {contender: [] for contender in LOAD_CONTENDERS}
        for repeat in range(plan.repeats):
            floor, hub, dataset = f"floor-{repeat}", f"hub-{repeat}", f"dlt_load_{size}_{repeat}"
            runs: list[tuple[str, list[str], Callable[[], None] | None]] = [
                ("read", ["read", "-"], None),
                ("floor", ["floor", floor], lambda t=floor: forget_tenant(url, t)),
                ("hub", ["hub", hub], None),
                ("hub_reload", ["hub", hub], lambda t=hub: forget_tenant(url, t)),
                ("dlt", ["dlt", dataset], lambda d=dataset: drop_schema(url, d)),
            ]
            for name, (contender, target), clean_up in runs:
                settle(url)
                arguments = ["--contender", contender, *source, "--target", target]
                result = runner.measure("load", arguments, url)
                samples[name].append(result)
                say(f"load {size:,} #{repeat + 1} {name}: {_brief(result)}")
                if clean_up:
                    clean_up()
        figures[str(size)] = {
            "rows": datasets.counts(pages),
            "cache_file": pages.name,
            "preparation_seconds": round(prepared, 1),
            "warm_up": warm_up,
            "samples": samples,
        }
    return figures


# --- b. end to end -------------------------------------------------------------------------------


def _import(
    sim: SimulatorProcess,
    contender: str,
    target: str,
    url: str,
    per_minute: int | None = None,
    dagster_storage: str | None = None,
) -> dict[str, Any]:
    arguments = ["--contender", contender, "--system", sim.system, "--simulator", sim.url]
    arguments += ["--target", target]
    if per_minute:
        arguments += ["--per-minute", str(per_minute)]
    if dagster_storage:
        arguments += ["--dagster-storage", dagster_storage]
    sim.reset()
    result = runner.measure("e2e", arguments, url)
    traffic = sim.stats()
    result.update(api_requests=traffic["api_requests"], by_path=traffic["by_path"])
    result.update(throttled=traffic["throttled"])
    if traffic["first_api_request"] is not None:
        result["wire_seconds"] = traffic["last_api_request"] - traffic["first_api_request"]
    return result


def _slug(system: str) -> str:
    return system.replace("_", "-")


def end_to_end(plan: Plan, url: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for size in plan.sizes:
        for system in plan.systems:
            with SimulatorProcess(system, size) as sim, pooler.dagster_storage() as deployed:
                # hub: Dagster's storage in SQLite (the local dagster.yaml); hub_deployed: in
                # PostgreSQL through PgBouncer (deploy/dagster.yaml, docs/operations.md).
                contenders = ("hub", *(("hub_deployed",) if deployed else ()))
                contenders += ("dlt",) if system in DLT_SYSTEMS else ()
                samples: dict[str, list] = {contender: [] for contender in contenders}
                for repeat in range(plan.repeats):
                    for contender in contenders:
                        settle(url)
                        if contender.startswith("hub"):
                            storage = deployed if contender == "hub_deployed" else None
                            tenant = f"e2e-{_slug(system)}-{size}-{repeat}{'-d' if storage else ''}"
                            result = _import(sim, "hub", tenant, url, dagster_storage=storage)
                            forget_tenant(url, tenant)
                        else:
                            dataset = f"dlt_{system}_{size}_{repeat}"
                            result = _import(sim, "dlt", dataset, url)
                            drop_schema(url, dataset)
                        samples[contender].append(result)
                        say(f"e2e {system} {size:,} #{repeat + 1} {contender}: {_brief(result)}")
                figures.setdefault(system, {})[str(size)] = {
                    "truth": sim.truth(),
                    "generation_seconds": round(sim.generation_seconds, 1),
                    "samples": samples,
                }
    return figures


# --- c. memory -----------------------------------------------------------------------------------


def memory(plan: Plan, url: str) -> dict[str, Any]:
    """The hub's end-to-end import once per size (its peak memory is the figure)."""
    sizes = {}
    for size in plan.memory_sizes:
        with SimulatorProcess(MEMORY_SYSTEM, size, customers=MEMORY_CUSTOMERS) as sim:
            settle(url)
            tenant = f"memory-{size}"
            result = _import(sim, "hub", tenant, url)
            forget_tenant(url, tenant)
            result["truth"] = sim.truth()
            result["generation_seconds"] = round(sim.generation_seconds, 1)
        sizes[str(size)] = result
        say(f"memory {MEMORY_SYSTEM} {size:,}: {_brief(result)}")
    return {"system": MEMORY_SYSTEM, "sizes": sizes}


# --- d. API calls --------------------------------------------------------------------------------


def api_calls(plan: Plan, url: str) -> dict[str, Any]:
    say(f"calls: Zoho Books, {plan.calls_invoices:,} invoices, four runs")
    stdout = runner.run_module(
        "bench.api_calls", ["--json", "--invoices", str(plan.calls_invoices)], url
    )
    return json.loads(stdout.strip().splitlines()[-1])


# --- e. schedule ticks ---------------------------------------------------------------------------


def ticks(plan: Plan, url: str) -> dict[str, Any]:
    if importlib.util.find_spec("bench.ticks") is None:
        say(f"ticks: {TICKS_MISSING}")
        return {"missing": TICKS_MISSING}
    routes = {"samples": []} | ({"pooled": ["--pooled"]} if pooler.available() else {})
    measured: dict[str, Any] = {
        route: {str(configs): [] for configs in plan.tick_configs} for route in routes
    }
    for repeat in range(plan.repeats):
        for configs in plan.tick_configs:
            for route, options in routes.items():  # interleaved: direct, then pooled
                result = runner.measure("tick", ["--configs", str(configs), *options], url)
                measured[route][str(configs)].append(result)
                label = " through PgBouncer" if options else ""
                say(f"ticks {configs:,}{label} #{repeat + 1}: {_brief(result)}")
    if not pooler.available():
        measured["pooled_missing"] = "pgbouncer not installed (apt-get install pgbouncer)"
    return measured


# --- f. rate-limited -----------------------------------------------------------------------------


def rate_limited(plan: Plan, url: str) -> dict[str, Any]:
    """A fresh simulator per repeat: a sliding minute window starts empty for every run."""
    samples = []
    for repeat in range(plan.repeats):
        with SimulatorProcess(RATE_SYSTEM, plan.rate_invoices, plan.rate_per_minute) as sim:
            tenant = f"rate-{repeat}"
            result = _import(sim, "hub", tenant, url, per_minute=plan.rate_per_minute)
            forget_tenant(url, tenant)
        samples.append(result)
        say(f"rate {RATE_SYSTEM} #{repeat + 1}: {_brief(result)}, {result['throttled']} × 429")
    return {
        "system": RATE_SYSTEM,
        "per_minute": plan.rate_per_minute,
        "invoices": plan.rate_invoices,
        "samples": samples,
    }


RUNS: dict[str, Callable[[Plan, str], dict[str, Any]]] = {
    "load": load_stage,
    "e2e": end_to_end,
    "memory": memory,
    "calls": api_calls,
    "ticks": ticks,
    "rate": rate_limited,
}
