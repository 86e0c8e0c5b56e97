"""A system's simulator served from a process of its own, so it never shares a GIL with the
program it serves.

    python -m bench.simulator_process SYSTEM --invoices N [--customers M] [--per-minute R]

generates the company (`bench.companies`), renders it in the system's simulator, serves it on a
loopback port, and prints one JSON line, {"url": …, "generation_seconds": …}, once it answers:
generation is over before anyone times anything. It serves until its standard input closes.

Unthrottled by default: every rate limit is raised out of reach (the concurrency a system
documents, e.g. BUSY's one connection, stays: it is how the system works, not a quota); with
`--per-minute R` the per-minute limit is R (and 429s are counted). Token-issuing limits are
lifted, since every contender run asks for a token.

Besides the system's own API, `/__bench__/…` answers the harness: `config` (the tenant connection
config reaching the simulator, with the refresh token valid now: QuickBooks and Xero rotate it),
`truth` (how many customers, invoices and lines the system serves), `stats` (requests since the
last `reset`: by path, throttled, and the first and last API request times) and `reset` (POST).
`SimulatorProcess` starts one and asks these.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import httpx

HUGE_RATE = 10**8  # requests a second or a minute: never reached
HUGE_DAY = 10**9  # a day's quota (Zoho and Xero publish the limit in headers, so not None)
CONTROL = "/__bench__/"
TOKEN_PATHS = ("/oauth/", "/token", "/connect/token")
_ID_SEGMENT = re.compile(r"/(?=[^/]*\d)[^/]{6,}")  # a path segment holding an id


def api_path(path: str) -> str:
    """The path with its ids collapsed: /books/v3/invoices/123456 -> /books/v3/invoices/{id}."""
    return _ID_SEGMENT.sub("/{id}", path)


def is_token_request(path: str) -> bool:
    return any(part in path for part in TOKEN_PATHS)


# --- the server side -----------------------------------------------------------------------------


def set_limits(simulator: Any, per_minute: int | None) -> None:
    """Rates out of reach, or `per_minute` a minute; the documented concurrency stays."""
    limits = simulator.limiter.limits
    limits.per_second = None if limits.per_second is None or per_minute else HUGE_RATE
    limits.per_minute = per_minute or (None if limits.per_minute is None else HUGE_RATE)
    limits.per_day = None if limits.per_day is None else HUGE_DAY
    policy = simulator.oauth.policy
    policy.token_requests_per_window = None
    policy.max_active_access_tokens = None
    policy.max_grants_per_client = None


def truth(simulated: Any) -> dict[str, int]:
    """What the system serves; `lines_not_void` for the systems whose void document carries no
    lines (Tally's cancelled voucher has no entries)."""
    sales = simulated.books.live_sales(drafts=simulated.holds_drafts)
    return {
        "customers": len(simulated.books.parties),
        "invoices": len(sales),
        "lines": sum(len(sale.lines) for sale in sales),
        "lines_not_void": sum(len(sale.lines) for sale in sales if sale.status != "void"),
    }


def stats(simulated: Any) -> dict[str, Any]:
    log = list(simulated.request_log)
    api = [e for e in log if e.status is not None and not is_token_request(e.path)]
    return {
        "requests": len(log),
        "api_requests": len(api),
        "throttled": sum(1 for e in log if e.status == 429),
        "by_path": dict(Counter(api_path(e.path) for e in api)),
        "first_api_request": api[0].timestamp if api else None,
        "last_api_request": api[-1].timestamp if api else None,
    }


class ControlledApp:
    """The simulator's app, with `/__bench__/…` answered before it."""

    def __init__(self, simulated: Any, base_url: str) -> None:
        self.simulated, self.base_url = simulated, base_url

    def answer(self, path: str) -> Any:
        sim = self.simulated
        if path == "config":
            return sim.connection_config(self.base_url)
        if path == "truth":
            return truth(sim)
        if path == "stats":
            with sim.simulator.lock:
                return stats(sim)
        if path == "reset":
            with sim.simulator.lock:
                sim.request_log.clear()
            return {"reset": True}
        return None

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(CONTROL):
            await self.simulated.app(scope, receive, send)
            return
        body = self.answer(path[len(CONTROL) :])
        status = 404 if body is None else 200
        payload = json.dumps(body, default=str).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def serve(system: str, invoices: int, customers: int | None, per_minute: int | None) -> None:
    from bench.companies import company
    from hub_pipelines.connectors.loopback import LoopbackServer
    from hub_pipelines.systems import AVAILABLE

    started = time.perf_counter()
    module = importlib.import_module(AVAILABLE[system].simulator_module)
    simulated = module.simulate(company(invoices, customers))
    set_limits(simulated.simulator, per_minute)
    generation = time.perf_counter() - started
    app = ControlledApp(simulated, "")
    with LoopbackServer(app) as server:
        app.base_url = server.url
        print(json.dumps({"url": server.url, "generation_seconds": generation}), flush=True)
        sys.stdin.read()  # until the harness closes the pipe (or dies)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.simulator_process")
    parser.add_argument("system")
    parser.add_argument("--invoices", type=int, required=True)
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--per-minute", type=int, default=None)
    args = parser.parse_args(argv)
    serve(args.system, args.invoices, args.customers, args.per_minute)


# --- the harness side ----------------------------------------------------------------------------


class SimulatorProcess:
    """`with SimulatorProcess("xero", 10_000) as sim: sim.config()`."""

    def __init__(
        self,
        system: str,
        invoices: int,
        per_minute: int | None = None,
        customers: int | None = None,
    ) -> None:
        self.system, self.invoices, self.per_minute = system, invoices, per_minute
        self.customers = customers
        self.url = ""
        self.generation_seconds = 0.0
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> SimulatorProcess:
        command = [sys.executable, "-m", "bench.simulator_process", self.system]
        command += ["--invoices", str(self.invoices)]
        if self.per_minute:
            command += ["--per-minute", str(self.per_minute)]
        if self.customers:
            command += ["--customers", str(self.customers)]
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        ready = self._process.stdout.readline()
        if not ready:
            self._process.wait()
            raise RuntimeError(f"the {self.system} simulator did not start (see stderr above)")
        started = json.loads(ready)
        self.url, self.generation_seconds = started["url"], started["generation_seconds"]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is None:
            return
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _get(self, what: str) -> Any:
        answer = httpx.get(f"{self.url}{CONTROL}{what}", timeout=120)
        answer.raise_for_status()
        return answer.json()

    def config(self) -> dict[str, Any]:
        return self._get("config")

    def truth(self) -> dict[str, int]:
        return self._get("truth")

    def stats(self) -> dict[str, Any]:
        return self._get("stats")

    def reset(self) -> None:
        self._get("reset")


if __name__ == "__main__":
    main()
