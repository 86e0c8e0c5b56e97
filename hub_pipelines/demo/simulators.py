"""The demo's simulators, served by one background process that outlives `hub demo`.

Why a process of its own: the demo's tenants must stay reachable after the demo ends, for runs
launched from the UI, the schedules and `hub sync`; and QuickBooks and Xero rotate refresh tokens,
so the simulator that issued the token the hub stored must be the one that answers next time.
`hub demo` starts it when it is not running (or serves another size or month) and `hub demo
--stop` ends it. It listens on loopback only: each pair's simulator on its own port, and a control
endpoint on the base port:

    GET  /           {"size", "as_of", "pid", "pairs": {"TENANT/SYSTEM": {"port", "config"}}}
    GET  /export     the file pair's Tally Day Book export, as the office would drop it
    POST /webhook    {"url"}: a payment recorded in the webhook pair's Xero organisation, and
                     Xero's signed notice of it delivered to `url`; answers the receiver's status
    POST /stop       ends the process
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub_pipelines.demo.plan import (
    BASE_PORT,
    DEMO_LIMITS,
    FILE_PAIR,
    PAIRS,
    WEBHOOK_PAIR,
    DemoPair,
    books_as_of,
    port_of,
    scaled,
    still_clock,
)
from hub_pipelines.simulation.simulated import Simulated
from hub_pipelines.systems import AVAILABLE

HOST = "127.0.0.1"
CONTROL_SYSTEM = "hub-demo-simulators"  # how the control endpoint names itself


class DemoPortBusy(RuntimeError):
    """A demo port is held by a program that is not the demo's simulators."""


@dataclass
class ServedPair:
    pair: DemoPair
    port: int
    simulated: Simulated


def build(pair: DemoPair, size: str, as_of: datetime, port: int) -> ServedPair:
    from hub_pipelines.simulation.books import generate

    customers, invoices = scaled(pair, size)
    books = generate(
        seed=pair.seed,
        parties=customers,
        sales=invoices,
        max_lines=3,
        seller_state=pair.seller_state,
        as_of=as_of,
    )
    books.clock = lambda: still_clock(as_of)  # the demo's changes land at the same instant
    module = importlib.import_module(AVAILABLE[pair.system].simulator_module)
    return ServedPair(pair, port, module.simulate(books, **DEMO_LIMITS))


def first_open_sale(simulated: Simulated) -> int:
    """The sale the webhook's payment settles: chosen once, so every demo run pays the same one."""
    sales = simulated.books.sales
    return min(key for key, sale in sales.items() if sale.payment_status == "open")


class Control:
    """The control endpoint's answers, over the served pairs."""

    def __init__(self, size: str, as_of: datetime, served: dict[str, ServedPair]) -> None:
        self.size, self.as_of, self.served = size, as_of, served
        self.webhook_sale = first_open_sale(served[WEBHOOK_PAIR.key].simulated)
        self.stopped = threading.Event()

    def describe(self) -> dict[str, Any]:
        pairs = {
            key: {
                "port": s.port,
                "config": s.simulated.connection_config(f"http://{HOST}:{s.port}"),
            }
            for key, s in self.served.items()
            if s.pair.delivery == "api"
        }
        return {
            "system": CONTROL_SYSTEM,
            "size": self.size,
            "as_of": self.as_of.isoformat(),
            "pid": os.getpid(),
            "webhook_key": self.served[WEBHOOK_PAIR.key].simulated.simulator.webhook_key,
            "pairs": pairs,
        }

    def export(self) -> bytes:
        from hub_pipelines.tally.simulator import day_book_export

        return day_book_export(self.served[FILE_PAIR.key].simulated.simulator.company)

    def webhook(self, url: str) -> int:
        simulated = self.served[WEBHOOK_PAIR.key].simulated
        simulated.books.pay(self.webhook_sale, 100)
        simulator = simulated.simulator
        return simulator.send_webhook(url, simulator.webhook_delivery())

    def app(self) -> Starlette:
        async def root(request: Request) -> Response:
            return JSONResponse(self.describe())

        async def export(request: Request) -> Response:
            return Response(self.export(), media_type="text/xml; charset=utf-16")

        async def webhook(request: Request) -> Response:
            url = (await request.json())["url"]
            status = await run_in_threadpool(self.webhook, url)
            return JSONResponse({"receiver_status": status})

        async def stop(request: Request) -> Response:
            self.stopped.set()
            return JSONResponse({"stopping": True})

        return Starlette(
            routes=[
                Route("/", root),
                Route("/export", export),
                Route("/webhook", webhook, methods=["POST"]),
                Route("/stop", stop, methods=["POST"]),
            ]
        )


def serve(size: str, base_port: int) -> None:
    """The process's work: build every pair's simulator, serve them until stopped."""
    from hub_pipelines.connectors.loopback import LoopbackServer

    as_of = books_as_of()
    served = {pair.key: build(pair, size, as_of, port_of(pair, base_port)) for pair in PAIRS}
    control = Control(size, as_of, served)
    servers = [
        LoopbackServer(s.simulated.app, HOST, s.port)
        for s in served.values()
        if s.pair.delivery == "api"
    ]
    servers.append(LoopbackServer(control.app(), HOST, base_port))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: control.stopped.set())
    for server in servers:
        server.start()
    print(f"demo simulators ({size}) on {HOST}:{base_port}-{base_port + len(PAIRS)}", flush=True)
    control.stopped.wait()
    for server in reversed(servers):
        server.stop()


# --- the client side: `hub demo` ----------------------------------------------------------------


def control_url(base_port: int) -> str:
    return f"http://{HOST}:{base_port}"


def running(base_port: int) -> dict[str, Any] | None:
    """What the demo's simulators on `base_port` serve, or None when nothing listens there."""
    try:
        answer = httpx.get(control_url(base_port) + "/", timeout=5)
        info = answer.json()
    except httpx.ConnectError:
        return None
    except (httpx.HTTPError, ValueError):
        info = None
    if not isinstance(info, dict) or info.get("system") != CONTROL_SYSTEM:
        raise DemoPortBusy(
            f"port {base_port} is in use by a program that is not the demo's simulators; stop "
            f"it, or run the demo on other ports with `hub demo --base-port N` (it uses N to "
            f"N+{len(PAIRS)})"
        )
    return info


def _check_ports_free(base_port: int) -> None:
    from hub_pipelines.connectors.loopback import port_is_free

    for port in range(base_port, base_port + len(PAIRS) + 1):
        if not port_is_free(HOST, port):
            raise DemoPortBusy(
                f"port {port} is in use by another program; the demo's simulators need "
                f"{base_port}-{base_port + len(PAIRS)}: stop it, or choose other ports with "
                "`hub demo --base-port N`"
            )


def start(size: str, base_port: int, log: Path, timeout: float = 900) -> dict[str, Any]:
    """Start the background process and wait until it serves (generating the large books takes
    a minute or two); its output goes to `log`."""
    _check_ports_free(base_port)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "hub_pipelines.demo.simulators",
        "--size",
        size,
        "--base-port",
        str(base_port),
    ]
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo's simulators exited ({process.returncode}); see {log}")
        info = running(base_port)
        if info is not None:
            return info
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"the demo's simulators did not start in {timeout:.0f} s; see {log}")


def stop(base_port: int, timeout: float = 30) -> bool:
    """Stop the demo's simulators on `base_port`; False when none were running."""
    info = running(base_port)
    if info is None:
        return False
    httpx.post(control_url(base_port) + "/stop", timeout=5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(info["pid"]):
            return True
        time.sleep(0.2)
    os.kill(info["pid"], signal.SIGKILL)
    return True


def _exited(pid: int) -> bool:
    try:  # started by this process (the demo ran here): reap it, or it lingers as a zombie
        if os.waitpid(pid, os.WNOHANG)[0]:
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def ensure(size: str, base_port: int, log: Path) -> tuple[dict[str, Any], bool]:
    """The simulators serving this month's books at `size`, started (or restarted) when needed;
    and whether they were started now."""
    info = running(base_port)
    if info and info["size"] == size and info["as_of"] == books_as_of().isoformat():
        return info, False
    if info:
        stop(base_port)
    return start(size, base_port, log), True


def export_file(base_port: int) -> bytes:
    return httpx.get(control_url(base_port) + "/export", timeout=120).content


def send_webhook(base_port: int, receiver_url: str) -> int:
    answer = httpx.post(control_url(base_port) + "/webhook", json={"url": receiver_url}, timeout=30)
    return answer.json()["receiver_status"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("small", "large"), default="small")
    parser.add_argument("--base-port", type=int, default=BASE_PORT)
    args = parser.parse_args(argv)
    serve(args.size, args.base_port)


if __name__ == "__main__":
    main()
