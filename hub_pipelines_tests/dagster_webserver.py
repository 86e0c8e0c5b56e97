"""A real `dagster dev` (webserver + daemon) for tests that use the hub as operators do: through
the UI's GraphQL API, with the daemon running schedules, sensors, backfills and the run queue."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from hub_pipelines.connectors.loopback import port_is_free


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ephemeral_ports_start() -> int:
    """The first port the kernel hands to outgoing connections (Linux's default: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(count: int, attempts: int = 200) -> int:
    """The first of COUNT consecutive loopback ports that are free now (the demo's simulators
    take a base port and the ones after it). Searched below the ephemeral range: in it, the
    lingering client ends of closed connections (TIME_WAIT) hold ports a server cannot bind,
    and on a busy machine few runs of seven are left there."""
    top = min(ephemeral_ports_start(), 65536) - count
    for _ in range(attempts):
        base = random.randint(10000, top)  # noqa: S311 (not a secret)
        if all(port_is_free("127.0.0.1", base + i) for i in range(count)):
            return base
    raise AssertionError(f"found no {count} consecutive free ports in {attempts} attempts")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 1.0):
    """Poll until `condition()` is truthy and return it; fail naming what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class DagsterDev:
    """`dagster dev -m hub_pipelines.definitions` in its own process group, on a free port."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env, self.cwd, self.log = env, cwd, log

    def __enter__(self) -> DagsterDev:
        command = [
            *(sys.executable, "-m", "dagster", "dev"),
            *("-m", "hub_pipelines.definitions", "-p", str(self.port), "-h", "127.0.0.1"),
        ]
        self.output = self.log.open("w")
        self.process = subprocess.Popen(  # noqa: S603
            command,
            env=self.env,
            cwd=self.cwd,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._answers, 120, "dagster dev to answer")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"dagster dev exited: {self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/server_info", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.output.close()

    def graphql(self, query: str, **variables) -> dict:
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""

BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status }
  }
}
"""

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""


def launch_backfill(dev: DagsterDev, assets: list[list[str]], **params) -> str:
    selection = [{"path": path} for path in assets]
    data = dev.graphql(LAUNCH_BACKFILL, params={"assetSelection": selection, **params})
    outcome = data["launchPartitionBackfill"]
    assert outcome["__typename"] == "LaunchBackfillSuccess", outcome
    return outcome["backfillId"]


def backfill_status(dev: DagsterDev, backfill_id: str) -> str:
    data = dev.graphql(BACKFILL_STATUS, id=backfill_id)
    return data["partitionBackfillOrError"]["status"]


def launch_run(dev: DagsterDev, tags: dict[str, str], assets=(), checks=()) -> str:
    """What the UI's Materialize / Execute buttons send: the implicit asset job, a selection
    and tags (a partitioned launch carries only `dagster/partition`)."""
    params = {
        "selector": {
            "repositoryLocationName": "hub_pipelines.definitions",
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": path} for path in assets],
            "assetCheckSelection": [
                {"assetKey": {"path": path}, "name": name} for path, name in checks
            ],
        },
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        "mode": "default",
    }
    outcome = dev.graphql(LAUNCH_RUN, params=params)["launchRun"]
    assert outcome["__typename"] == "LaunchRunSuccess", outcome
    return outcome["run"]["runId"]


LOCATION_STATUS = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"


def code_location_loaded(url: str) -> bool:
    """Whether the webserver at URL answers GraphQL with every code location loaded."""
    try:
        response = httpx.post(f"{url}/graphql", json={"query": LOCATION_STATUS}, timeout=5)
        entries = response.json()["data"]["workspaceOrError"]["locationEntries"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return False
    return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)
