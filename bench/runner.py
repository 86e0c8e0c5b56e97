"""Runs one measurement in a fresh process (`bench.measure`) and reads its result line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.measure import DATABASE_VARIABLE, RESULT_PREFIX

REPOSITORY = Path(__file__).resolve().parents[1]


class MeasurementFailed(RuntimeError):
    pass


def child_environment(database_url: str) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        DATABASE_VARIABLE: database_url,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPOSITORY), path) if p),
        "RUNTIME__DLTHUB_TELEMETRY": "false",  # dlt: no usage pings from a benchmark
    }


def result_line(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return None


def run_module(module: str, arguments: list[str], database_url: str) -> str:
    """`python -m module arguments…` from the repository; its standard output."""
    done = subprocess.run(  # noqa: S603 - this interpreter, our own modules
        [sys.executable, "-m", module, *arguments],
        cwd=REPOSITORY,
        env=child_environment(database_url),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        tail = "\n".join(done.stderr.splitlines()[-40:])
        raise MeasurementFailed(f"python -m {module} {' '.join(arguments)} failed:\n{tail}")
    return done.stdout


def measure(what: str, arguments: list[str], database_url: str) -> dict[str, Any]:
    """One `bench.measure` run: its result (seconds, peak_rss_mb, rss_at_start_mb, …)."""
    stdout = run_module("bench.measure", [what, *arguments], database_url)
    result = result_line(stdout)
    if result is None:
        raise MeasurementFailed(f"bench.measure {what} printed no result:\n{stdout[-2000:]}")
    return result
