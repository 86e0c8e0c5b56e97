"""`hub dev` after `hub demo`, in a browser: the Dagster UI shows every system's assets, the tenant
partitions of a partitioned asset and its check results, the hub service answers beside it, and
Ctrl-C stops everything.

Headless Debian chromium through Playwright (as service/test_onboarding.py: `.ci/run` installs
chromium when missing; no `playwright install`). Every page is saved as a full-page screenshot in
the test's tmp_path and copied to $HUB_UI_SCREENSHOTS when that is set; the paths are printed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from hub_pipelines import settings
from hub_pipelines.analytics.assets import VIEWS
from hub_pipelines.canonical import ENTITIES
from hub_pipelines.demo.plan import PAIRS
from hub_pipelines.vault import KEY_VARIABLE
from hub_pipelines_tests.dagster_webserver import code_location_loaded, free_port, wait_for
from hub_pipelines_tests.demo_hub import demo_hub

BIN_DIR = Path(sys.executable).parent
SCREENSHOTS_VARIABLE = "HUB_UI_SCREENSHOTS"
UI_TIMEOUT_MS = 120_000  # the React app's first load takes 30+ s on two busy cores
SYSTEM_ASSETS = [f"{system}/{entity}" for system in settings.SYSTEMS for entity in ENTITIES]
PARTITIONED = "tally/invoices"  # two demo tenants keep their books in Tally
PARTITIONED_TENANTS = sorted(pair.tenant for pair in PAIRS if pair.system == "tally")
CHECK = "matches_source"  # the warehouse holds what the source system reported
# How the zoomed-out asset graph draws a materialized asset (Dagster 1.13's minimal node)
MATERIALIZED_NODE = "[style*='--minimal-bg: var(--color-background-green)']"


@dataclass
class HubDev:
    """`hub dev` as a child of the test, leading a process group of its own."""

    process: subprocess.Popen[bytes]
    ui: str
    service: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, signum: int) -> tuple[int, list[psutil.Process]]:
        """SIGNUM to `hub dev`'s process group (where a terminal sends Ctrl-C's SIGINT); its
        exit status and the processes it started that are still alive 30 s after it exited."""
        family = psutil.Process(self.process.pid).children(recursive=True)
        os.killpg(self.process.pid, signum)
        status = self.process.wait(timeout=120)
        _, alive = psutil.wait_procs(family, timeout=30)
        return status, alive


@pytest.fixture(scope="module")
def demo_home(warehouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`hub demo` (small) done in a HUB_HOME of its own, on the session's warehouse, its
    simulators left serving on free ports (stopped at the end)."""
    from hub_pipelines.demo.run import run_demo

    home = tmp_path_factory.mktemp("ui-hub")
    with demo_hub(warehouse_url, home) as base_port:
        assert run_demo(size="small", base_port=base_port).success
        yield home


@pytest.fixture(scope="module")
def hub_dev(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubDev]:
    """`hub dev -p UI --service-port SERVICE` with the UI's code location loaded. The demo's
    key comes from $HUB_HOME/hub.env and DAGSTER_HOME from HUB_HOME, as on a developer's
    machine."""
    ui_port = free_port()
    service_port = next(port for port in iter(free_port, None) if port != ui_port)
    env = {k: v for k, v in os.environ.items() if k not in {KEY_VARIABLE, "DAGSTER_HOME"}}
    env["HUB_HOME"] = str(demo_home)
    log = tmp_path_factory.mktemp("hub-dev") / "hub-dev.log"
    command = [str(BIN_DIR / "hub"), "dev", "-p", str(ui_port), "--service-port", str(service_port)]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    dev = HubDev(process, f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{service_port}", log)

    def loaded() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"hub dev exited with {process.returncode}:\n{dev.output()}")
        return code_location_loaded(dev.ui)

    try:
        wait_for(loaded, 240, "hub dev's Dagster UI to load the code location")
        yield dev
    finally:
        if process.poll() is None:
            _, alive = dev.stop(signal.SIGTERM)
            for leftover in alive:
                leftover.kill()


@pytest.fixture
def open_page(chromium, hub_dev: HubDev) -> Iterator[Callable]:
    """A page of the UI at a path, in a window of the given size. Dagster greets a new
    instance with a "Join the Dagster community" dialog over the page: it is skipped whenever
    it shows (the instance remembers, so it shows once)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    pages = []

    def open_page(path: str, width: int = 1600, height: int = 1300, init_script: str = ""):
        page = chromium.new_page(viewport={"width": width, "height": height})
        pages.append(page)
        page.set_default_timeout(UI_TIMEOUT_MS)
        if init_script:
            page.add_init_script(init_script)
        welcome = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
        page.add_locator_handler(
            welcome, lambda: welcome.get_by_role("button", name="Skip").click()
        )
        page.goto(hub_dev.ui + path)
        return page

    yield open_page
    for page in pages:
        page.close()


@pytest.fixture
def save_screenshot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable:
    """A full-page screenshot in the test's tmp_path, copied to $HUB_UI_SCREENSHOTS when set,
    taken once no dialog covers the page; the paths go to the terminal even when pytest captures
    output, for the CI log to point at them."""
    from playwright.sync_api import expect

    def save_screenshot(page, name: str) -> Path:
        expect(page.get_by_role("dialog")).to_have_count(0)  # runs the handler if one opened
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        saved = [path]
        if os.environ.get(SCREENSHOTS_VARIABLE):
            target = Path(os.environ[SCREENSHOTS_VARIABLE])
            target.mkdir(parents=True, exist_ok=True)
            saved.append(Path(shutil.copy(path, target / path.name)))
        with capsys.disabled():
            print(f"\nscreenshot: {' and '.join(map(str, saved))}")
        return path

    return save_screenshot


# --- the tests, in order: the last one stops `hub dev` ------------------------------------------


def test_hub_dev_says_where_everything_serves_and_the_service_answers(hub_dev: HubDev) -> None:
    output = hub_dev.output()
    assert f"the Dagster UI:    {hub_dev.ui} " in output
    assert f"the hub service:  {hub_dev.service} (hub serve)" in output
    assert "the demo's simulators (small books) on 127.0.0.1:" in output  # serve_demo_sources
    response = httpx.get(f"{hub_dev.service}/health", timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["parts"]["database"]["status"] == "up"


def test_the_asset_graph_shows_every_systems_assets(open_page, save_screenshot) -> None:
    """The global lineage, every group expanded (the UI's Alt+E), laid out top to bottom so all
    fourteen assets fit one window: one group per system holding its customers and invoices,
    materialized, and the analytics group holding the analyst views."""
    from playwright.sync_api import expect

    vertical = "localStorage.setItem('asset-graph-direction', JSON.stringify('vertical'))"
    page = open_page("/asset-groups", width=2400, height=1400, init_script=vertical)
    graph = page.locator("[data-svg-viewport]")
    for group in (*settings.SYSTEMS, "analytics"):
        expect(graph.get_by_text(group, exact=True)).to_be_visible()
    page.keyboard.press("Alt+e")  # "Expand all groups"
    for entity in ENTITIES:  # each system's, drawn as materialized once the status loads
        named = page.get_by_text(entity, exact=True)
        expect(graph.locator(MATERIALIZED_NODE).filter(has=named)).to_have_count(
            len(settings.SYSTEMS)
        )
    for view in VIEWS:
        expect(graph.get_by_text(view, exact=True)).to_be_visible()
    save_screenshot(page, "asset-graph")


def test_the_catalog_lists_every_asset_with_its_tenant_partitions(
    open_page, save_screenshot
) -> None:
    from playwright.sync_api import expect

    page = open_page("/assets")  # a window tall enough for every row of the (virtual) table
    for key in SYSTEM_ASSETS:
        tenants = sum(1 for pair in PAIRS if pair.system == key.split("/")[0])
        # the asset's row: the nearest element around its link that has the partition count
        # ("- partitions" while the status loads, then "2 partitions")
        row = page.locator(f'a[href="/assets/{key}"]').locator(
            "xpath=ancestor::div[contains(., 'partition')][1]"
        )
        count = re.compile(rf"(^|\s){tenants} partitions?$", re.MULTILINE)
        expect(row).to_contain_text(count, use_inner_text=True)
    for view in VIEWS:
        expect(page.locator(f'a[href="/assets/{view}"]')).to_be_visible()
    save_screenshot(page, "asset-catalog")


def test_a_partitioned_asset_shows_its_tenant_partitions(open_page, save_screenshot) -> None:
    from playwright.sync_api import expect

    page = open_page(f"/assets/{PARTITIONED}?view=partitions")
    expect(page.get_by_text(f"Materialized ({len(PARTITIONED_TENANTS)})")).to_be_visible()
    for tenant in PARTITIONED_TENANTS:
        expect(page.get_by_text(tenant, exact=True).first).to_be_visible()
    page.get_by_text(PARTITIONED_TENANTS[-1], exact=True).first.click()
    expect(page).to_have_url(re.compile(f"partition={PARTITIONED_TENANTS[-1]}"))
    expect(page.get_by_text("records_fetched", exact=True)).to_be_visible()  # its run's metadata
    save_screenshot(page, "partitioned-asset-partitions")


def test_a_partitioned_asset_shows_its_check_results_per_tenant(open_page, save_screenshot) -> None:
    from playwright.sync_api import expect

    page = open_page(f"/assets/{PARTITIONED}?view=checks")
    check = page.get_by_text(CHECK, exact=True).first
    # its entry in the list of the asset's checks, once the statuses have loaded
    entry = check.locator("xpath=ancestor::*[contains(., 'Succeeded')][1]")
    expect(entry).to_contain_text(re.compile(rf"^({CHECK}\s*)+Succeeded$"), use_inner_text=True)
    expect(page.get_by_text("Failed", exact=True)).to_have_count(0)  # no check of the list
    check.click()
    expect(page).to_have_url(re.compile(f"checkDetail={CHECK}"))
    expect(page.get_by_text("Evaluation result")).to_be_visible()
    expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
    page.get_by_role("tab", name="Partitions", exact=True).last.click()  # the check's own tab
    expect(page.get_by_text(f"Passed ({len(PARTITIONED_TENANTS)})")).to_be_visible()
    for tenant in PARTITIONED_TENANTS:
        expect(page.get_by_text(tenant, exact=True).first).to_be_visible()
    save_screenshot(page, "partitioned-asset-checks")


def test_ctrl_c_stops_the_ui_the_daemon_and_the_service(hub_dev: HubDev) -> None:
    status, alive = hub_dev.stop(signal.SIGINT)
    assert status == 0, hub_dev.output()[-3000:]
    assert not alive, [process.cmdline() for process in alive]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{hub_dev.service}/health", timeout=5)
