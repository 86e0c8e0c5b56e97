"""The figures of issue 12's table from a run's raw results, the machine they ran on, and the
results files (`bench/results/<UTC date>-<host>.json` and `.md`)."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.runner import REPOSITORY

PACKAGES = ("dagster", "dlt", "psycopg", "psycopg2-binary", "httpx", "uvicorn")
NO_DLT = "no dlt pipeline (no dlt source: see bench/README.md)"


# --- the machine ---------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    def git(*arguments: str) -> str:
        done = subprocess.run(  # noqa: S603 - git, fixed arguments
            ["git", *arguments],  # noqa: S607
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def machine(postgres_version: str) -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": postgres_version,
        "packages": versions,
        "commit": git_commit(),
    }


# --- statistics ----------------------------------------------------------------------------------


def seconds(samples: Iterable[dict]) -> list[float]:
    return [sample["seconds"] for sample in samples]


def peak(samples: list[dict]) -> str:
    """The highest peak RSS of the samples, and its growth over the process's RSS at start."""
    top = max(samples, key=lambda sample: sample["peak_rss_mb"])
    grown = top["peak_rss_mb"] - top["rss_at_start_mb"]
    return f"{top['peak_rss_mb']:.0f} MB (+{grown:.0f})"


def ratio(numerators: list[float], denominators: list[float]) -> tuple[float, float]:
    """(median ÷ median, min ÷ min)."""
    median = statistics.median(numerators) / statistics.median(denominators)
    return median, min(numerators) / min(denominators)


def times(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f} s)"


def factor(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f}× (min {pair[1]:.2f}×)"


def size_label(size: int | str) -> str:
    size = int(size)
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    return f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else f"{size}"


# --- the table -----------------------------------------------------------------------------------


def net(values: list[float], reading: list[float]) -> list[float]:
    """Times less the median time of reading the pages alone (never below a millisecond)."""
    least = statistics.median(reading)
    return [max(value - least, 0.001) for value in values]


def load_rows(load: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for size, figures in load.items():
        s = figures["samples"]
        read, floor, hub, again, dlt = (
            seconds(s[c]) for c in ("read", "floor", "hub", "hub_reload", "dlt")
        )
        counted = figures["rows"]
        what = (
            f"load stage, first load, {size_label(size)} invoices "
            f"({counted['invoices']:,} + {counted['lines']:,} lines)"
        )
        rows.append(
            (
                what,
                f"{factor(ratio(hub, floor))} a plain COPY of the same rows, "
                f"{factor(ratio(net(hub, read), net(floor, read)))} net of reading the pages "
                f"({times(read)}); hub {times(hub)}, COPY {times(floor)}; peak RSS hub "
                f"{peak(s['hub'])}, COPY {peak(s['floor'])}",
                f"dlt {factor(ratio(dlt, hub))} the hub's time ({times(dlt)}), "
                f"peak RSS {peak(s['dlt'])}",
                "≤ 1.2× the COPY floor",
            )
        )
        rows.append(
            (
                f"load stage, unchanged re-load, {size_label(size)}",
                f"{factor(ratio(again, hub))} of a first load ({times(again)}), "
                f"{factor(ratio(net(again, read), net(hub, read)))} net of reading; the COPY "
                f"floor's whole write is {factor(ratio(net(floor, read), net(hub, read)))} of it",
                "—",
                "≤ 0.1× of a first load",
            )
        )
    return rows


# The hub with Dagster's storage as deployed, beside the local instance's SQLite.
DEPLOYED = "as deployed (Dagster's storage in PostgreSQL through PgBouncer)"


def e2e_rows(e2e: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for system, by_size in e2e.items():
        for size, figures in by_size.items():
            s = figures["samples"]
            hub = seconds(s["hub"])
            calls = s["hub"][0]["api_requests"]
            what = f"end to end, {system}, {size_label(size)} invoices, unthrottled"
            deployed = seconds(s["hub_deployed"]) if s.get("hub_deployed") else None
            if "dlt" not in s:
                figure = f"hub {times(hub)}, peak RSS {peak(s['hub'])}, {calls:,} requests"
                if deployed:
                    figure += f"; {DEPLOYED}: hub {times(deployed)}"
                rows.append((what, figure, NO_DLT, "—"))
                continue
            dlt = seconds(s["dlt"])
            figure = (
                f"hub {factor(ratio(hub, dlt))} dlt's time: hub {times(hub)} vs dlt "
                f"{times(dlt)}; peak RSS hub {peak(s['hub'])} vs dlt {peak(s['dlt'])}; "
                f"requests hub {calls:,}, dlt {s['dlt'][0]['api_requests']:,}"
            )
            if deployed:
                against = factor(ratio(deployed, dlt))
                figure += f"; {DEPLOYED}: hub {against} dlt's time, {times(deployed)}"
            rows.append(
                (
                    what,
                    figure,
                    "a plain dlt pipeline making the same calls",
                    "≤ 0.5× dlt's time (≥ 2× faster), less memory",
                )
            )
    return rows


def memory_rows(memory: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    peaks = ", ".join(
        f"{size_label(size)}: {peak([figures])} in {figures['seconds']:.0f} s"
        for size, figures in memory["sizes"].items()
    )
    what = f"memory, hub end to end ({memory['system']}), peak RSS"
    return [(what, peaks, "—", "flat from 10k to 1M (bounded by a page)")]


def per_run(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Calls and minimum of each run, both entities together."""
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        total = totals.setdefault(row["run"], {"calls": 0, "minimum": 0})
        total["calls"] += row["calls"]
        total["minimum"] += row["minimum"]
    return totals


def calls_rows(calls: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    goals = {"1 % changed": "≤ 1.05× minimum", "no change": "≤ 2× minimum"}
    rows = []
    for run, total in per_run(calls["rows"]).items():
        least = total["minimum"]
        rows.append(
            (
                f"calls for a run '{run}' at {size_label(calls['invoices'])} (Zoho Books)",
                f"{total['calls']:,} = {total['calls'] / least:.2f}× the minimum",
                f"protocol minimum {least:,}",
                goals.get(run, "—"),
            )
        )
    return rows


def ticks_rows(ticks: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Seconds per size, what the tick did (bench.ticks's own figures, when it gives them), and
    the growth from the smallest size to the largest against linear."""
    if "missing" in ticks:
        return [("schedule tick", ticks["missing"], "—", "≤ 3 s at 10,000")]
    rows, medians = _tick_rows(ticks["samples"], "")
    if "pooled" in ticks:
        rows += _tick_rows(ticks["pooled"], ", Dagster storage through PgBouncer")[0]
    elif "pooled_missing" in ticks:
        rows.append(("schedule tick through PgBouncer", ticks["pooled_missing"], "—", "—"))
    if len(medians) > 1:
        small, large = min(medians), max(medians)
        growth = medians[large] / medians[small]
        rows.append(
            (
                f"schedule tick, {small:,} → {large:,} configs",
                f"{growth:.1f}× the time for {large / small:.0f}× the configs",
                "—",
                "linear or better",
            )
        )
    return rows


def _tick_rows(by_configs: dict[str, list], route: str) -> tuple[list[tuple], dict[int, float]]:
    rows, medians = [], {}
    for configs, samples in by_configs.items():
        taken = seconds(samples)
        medians[int(configs)] = statistics.median(taken)
        evaluation = [sample.get("evaluation_seconds", 0.0) for sample in samples]
        did = ", ".join(
            f"{samples[0][name]:,} {name.replace('_', ' ')}"
            for name in ("run_requests", "runs_created", "instance_queries")
            if isinstance(samples[0].get(name), int)
        )
        threads = samples[0].get("threads")
        how = f"daemon threads {threads[0]}+{threads[1]}" if threads else "daemon in one thread"
        rows.append(
            (
                f"schedule tick, {int(configs):,} configs{route}",
                f"{times(taken)} ({how}); evaluating the schedules {times(evaluation)}"
                + (f"; {did}" if did else ""),
                "—",
                "≤ 3 s at 10,000; linear to 100,000",
            )
        )
    return rows, medians


def rate_rows(rate: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    samples, limit = rate["samples"], rate["per_minute"]
    floors = [60 * sample["api_requests"] / limit for sample in samples]
    wall = ratio(seconds(samples), floors)
    wire = ratio([sample.get("wire_seconds", 0.0) for sample in samples], floors)
    throttled = sum(sample["throttled"] for sample in samples)
    return [
        (
            f"rate-limited wall time ({rate['system']}, {limit}/min, "
            f"{samples[0]['api_requests']:,} requests)",
            f"{factor(wall)} requests ÷ limit (on the wire {factor(wire)}); "
            f"{throttled} × 429 in {len(samples)} runs",
            "—",
            "≤ 1.15× with zero 429s",
        )
    ]


ROWS = {
    "load": load_rows,
    "e2e": e2e_rows,
    "memory": memory_rows,
    "calls": calls_rows,
    "ticks": ticks_rows,
    "rate": rate_rows,
}


def section_rows(results: dict[str, Any], section: str) -> list[tuple[str, str, str, str]]:
    """The section's rows; a failed section, or one whose figures cannot be read, as one row
    saying so (the raw figures stay in the .json)."""
    if section in results.get("failed", {}):
        message = results["failed"][section].splitlines()[0]
        return [(section, f"FAILED: {message}", "—", "—")]
    try:
        return ROWS[section](results["sections"][section])
    except (KeyError, TypeError, ValueError, ZeroDivisionError, statistics.StatisticsError) as exc:
        return [(section, f"no figure ({type(exc).__name__}: {exc})", "—", "—")]


def table(results: dict[str, Any]) -> str:
    lines = ["| what | figure | reference | goal |", "|---|---|---|---|"]
    for section in ROWS:
        if section in results["sections"] or section in results.get("failed", {}):
            lines += ["| " + " | ".join(row) + " |" for row in section_rows(results, section)]
    return "\n".join(lines)


def machine_lines(about: dict[str, Any]) -> str:
    packages = ", ".join(f"{name} {version}" for name, version in about["packages"].items())
    return "\n".join(
        [
            f"- machine: {about['host']}, {about['cpus']} × {about['cpu']}, "
            f"{about['memory_gb']} GB, {about['os']}",
            f"- Python {about['python']}, PostgreSQL {about['postgresql']}; {packages}",
            f"- commit {about['commit']}",
        ]
    )


def markdown(results: dict[str, Any]) -> str:
    options = results["options"]
    return (
        f"# make bench, {results['started_at']}\n\n"
        f"{machine_lines(results['machine'])}\n"
        f"- {options['repeats']} interleaved repeats per figure, each measurement in a fresh "
        f"process; times are median (min), ratios median ÷ median (min ÷ min); sections: "
        f"{', '.join(results['sections'])}\n\n"
        f"{table(results)}\n"
    )


def results_stem(suffix: str = "") -> str:
    """`<UTC date>-<host><suffix>`: the results files' name without its extension."""
    return f"{datetime.now(UTC):%Y-%m-%d}-{socket.gethostname()}{suffix}"


def unused_stem(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/name-2` (-3, …) when a results file of that name exists: a run
    never overwrites an earlier one's figures (two runs of the same sections on one day)."""
    stem, number = folder / name, 1
    while any(stem.with_name(stem.name + ext).exists() for ext in (".json", ".md")):
        number += 1
        stem = folder / f"{name}-{number}"
    return stem


def write_json(results: dict[str, Any], stem: Path) -> Path:
    """The raw figures (written after every section, so a failure later loses none)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    target = stem.with_name(stem.name + ".json")
    target.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return target


def write_markdown(text: str, stem: Path) -> Path:
    target = stem.with_name(stem.name + ".md")
    target.write_text(text)
    return target
