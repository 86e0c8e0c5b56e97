"""`make bench` (`python -m bench`): the hub against the COPY floor and a dlt pipeline, on the same
data and the same PostgreSQL, and the figures of issue 12's table. bench/README.md explains each.

    python -m bench                         # everything (hours on two cores)
    python -m bench --only load --sizes 10000 --repeats 1
    python -m bench --only e2e --systems xero,busy --sizes 10000
    python -m bench --smoke                 # tiny sizes, one repeat, no results files
    python -m bench --table bench/results/2026-11-26-vm.json   # a results file's table again

Each timed measurement runs in a fresh process (`bench.measure`), contenders interleaved within
every repeat, on a scratch database of the configured (or embedded) PostgreSQL dropped at the
end. The table is printed and, unless --smoke, written with the raw figures to
bench/results/<UTC date>-<host>[-sections][-label].{md,json} (-2, -3, … rather than overwrite).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.database import scratch_database, server_version
from bench.runner import REPOSITORY
from bench.sections import RUNS, SECTIONS, SYSTEMS, Plan, say

RESULTS = REPOSITORY / "bench" / "results"
SMOKE = Plan(
    sizes=[200],
    repeats=1,
    memory_sizes=[200, 400],
    calls_invoices=400,
    tick_configs=[50],
    rate_per_minute=3_000,
    rate_invoices=30,
)


def sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def names(allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        chosen = [part.strip() for part in text.split(",") if part.strip()]
        unknown = sorted(set(chosen) - set(allowed))
        if unknown:
            raise argparse.ArgumentTypeError(f"{', '.join(unknown)}: choose from {allowed}")
        return chosen

    return parse


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", type=names(SECTIONS), help=f"sections: {', '.join(SECTIONS)}")
    parser.add_argument("--sizes", type=sizes, help="invoices, load and e2e (10000,100000)")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (3)")
    parser.add_argument("--memory-sizes", type=sizes, help="invoices (10000,100000,1000000)")
    parser.add_argument("--systems", type=names(SYSTEMS), help="e2e systems (all five)")
    parser.add_argument("--calls-invoices", type=int, help="invoices for calls (100000)")
    parser.add_argument("--tick-configs", type=sizes, help="configs for ticks (10000,100000)")
    parser.add_argument("--rate-per-minute", type=int, help="the simulator's limit (600)")
    parser.add_argument("--rate-invoices", type=int, help="invoices for rate (500)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument(
        "--results", type=Path, help="folder for the results files (bench/results; --smoke: none)"
    )
    parser.add_argument(
        "--label", help="added to the results files' name: <date>-<host>[-sections]-LABEL"
    )
    parser.add_argument(
        "--table", type=Path, metavar="RESULTS.json", help="print the table of a results file"
    )
    return parser.parse_args(argv)


def plan_of(args: argparse.Namespace) -> Plan:
    plan = Plan(**vars(SMOKE)) if args.smoke else Plan()
    for name in vars(plan):
        given = getattr(args, name, None)
        if given is not None:
            setattr(plan, name, given)
    return plan


def run(plan: Plan, sections: list[str], stem: Path | None) -> dict[str, Any]:
    """Every section in turn; the raw figures written after each (to `stem`.json) when given."""
    results: dict[str, Any] = {
        "started_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "options": vars(plan),
        "sections": {},
        "failed": {},
    }
    with scratch_database() as url:
        results["machine"] = report.machine(server_version(url))
        for section in sections:
            try:
                results["sections"][section] = RUNS[section](plan, url)
            except Exception as exc:  # noqa: BLE001 - the other sections still run
                say(f"{section} failed:\n{traceback.format_exc()}")
                results["failed"][section] = str(exc) or type(exc).__name__
            if stem is not None:
                report.write_json(results, stem)
    return results


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.table:
        print(report.markdown(json.loads(args.table.read_text())))
        return 0
    plan = plan_of(args)
    sections = args.only or list(SECTIONS)
    folder = args.results or (None if args.smoke else RESULTS)
    suffix = "" if sections == list(SECTIONS) else "-" + "-".join(sections)
    suffix += f"-{args.label}" if args.label else ""
    stem = report.unused_stem(folder, report.results_stem(suffix)) if folder is not None else None
    results = run(plan, sections, stem)
    text = report.markdown(results)
    print(text)
    if stem is not None:
        report.write_markdown(text, stem)
        say(f"results: {stem}.md and .json")
    for section, message in results["failed"].items():
        say(f"{section} FAILED: {message.splitlines()[0]}")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
