"""OAuth onboarding end to end: the hub service and each system's simulator on loopback, a real
PostgreSQL, and headless Chromium (Debian's `chromium`, driven by Playwright) clicking "Allow".

Chromium is required, not optional: when it cannot start, the browser test fails with the reason
(`.ci/run` installs the package when it is missing).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.quickbooks import simulator as quickbooks_simulator
from hub_pipelines.quickbooks.simulator import QuickBooksSimulator
from hub_pipelines.service.app import build_app
from hub_pipelines.service.onboarding import read_state, sign_state
from hub_pipelines.simulation.engine import SimulatorEngine
from hub_pipelines.tenants.connection_check import check_connection
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import Vault
from hub_pipelines.xero import simulator as xero_simulator
from hub_pipelines.xero.simulator import DEFAULT_TENANT_ID, XeroSimulator
from hub_pipelines.zoho_books import simulator as zoho_simulator
from hub_pipelines.zoho_books.simulator import DEFAULT_ORG_ID, ZohoBooksSimulator

ADMIN_TOKEN = "onboarding-test-admin-token-0123456789"
TENANT = "acme-traders"


@dataclass(frozen=True)
class Case:
    system: str
    env_prefix: str
    organisation: str
    make: Callable[[], SimulatorEngine]
    client: tuple[str, str]  # the simulator's registered app: id, secret


def _zoho() -> SimulatorEngine:
    simulator = ZohoBooksSimulator()
    simulator.add_organisation(DEFAULT_ORG_ID, "Acme Traders (Zoho)")
    return simulator


def _xero() -> SimulatorEngine:
    simulator = XeroSimulator()
    simulator.add_organisation(DEFAULT_TENANT_ID, "Acme Traders (Xero)")
    return simulator


CASES = [
    Case(
        "zoho_books",
        "HUB_ZOHO",
        "Acme Traders (Zoho)",
        _zoho,
        (zoho_simulator.DEFAULT_CLIENT_ID, zoho_simulator.DEFAULT_CLIENT_SECRET),
    ),
    Case(
        "quickbooks",
        "HUB_QUICKBOOKS",
        "Acme Traders (QuickBooks)",
        lambda: QuickBooksSimulator(company_name="Acme Traders (QuickBooks)"),
        (quickbooks_simulator.CLIENT_ID, quickbooks_simulator.CLIENT_SECRET),
    ),
    Case(
        "xero",
        "HUB_XERO",
        "Acme Traders (Xero)",
        _xero,
        (xero_simulator.CLIENT_ID, xero_simulator.CLIENT_SECRET),
    ),
]


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def service(warehouse: str, encryption_key: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The hub service on loopback; its public URL is the callback base."""
    server = LoopbackServer(build_app())
    monkeypatch.setenv("HUB_API_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("HUB_PUBLIC_URL", server.url)
    with server:
        yield server.url


def _point_at(monkeypatch: pytest.MonkeyPatch, case: Case, url: str) -> None:
    """The hub's app at this simulator: its client, its consent and token host, its API."""
    monkeypatch.setenv(f"{case.env_prefix}_CLIENT_ID", case.client[0])
    monkeypatch.setenv(f"{case.env_prefix}_CLIENT_SECRET", case.client[1])
    monkeypatch.setenv(f"{case.env_prefix}_ACCOUNTS_URL", url)
    monkeypatch.setenv(f"{case.env_prefix}_API_URL", url)


def _start(service: str, system: str, tenant: str = TENANT, **params: str) -> httpx.Response:
    return httpx.get(
        f"{service}/oauth/{system}/start",
        params={"tenant": tenant, **params},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        follow_redirects=False,
    )


def _raw_config(url: str, tenant: str, system: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT connection_config::text FROM hub.accounting_configs "
            "WHERE tenant_id = %s AND system = %s",
            (tenant, system),
        ).fetchone()
    return row[0] if row else ""


def _config_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM hub.accounting_configs").fetchone()[0]


# --- the browser flow ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.system for case in CASES])
def test_connecting_in_a_browser_stores_working_encrypted_tokens(
    case: Case,
    service: str,
    warehouse: str,
    chromium,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    simulator = case.make()
    with LoopbackServer(simulator.app) as system_server:
        _point_at(monkeypatch, case, system_server.url)
        started = _start(service, case.system)
        assert started.status_code == 302, started.text
        consent_url = started.headers["location"]
        assert consent_url.startswith(system_server.url)

        page = chromium.new_page()
        try:
            page.goto(consent_url)
            page.get_by_role("button", name="Allow").click()
            page.wait_for_url(f"{service}/oauth/{case.system}/callback*")
            screenshot = tmp_path / f"onboarding-{case.system}.png"
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"result page screenshot: {screenshot}")
            text = page.inner_text("body")
            html = page.content()
        finally:
            page.close()
        assert "connected" in text and case.organisation in text, text

        registry = TenantRegistry(Vault.from_env())
        stored = registry.get(TENANT, case.system).connection
        refresh_token = stored.refresh_token.get_secret_value()
        access_token = stored.access_token.get_secret_value()
        assert refresh_token not in html and access_token not in html
        raw = _raw_config(warehouse, TENANT, case.system)
        assert raw and refresh_token not in raw and access_token not in raw
        assert registry.row(TENANT, case.system).last_connection_status == "ok"

        # The stored refresh token works: with every access token expired, a connection test
        # must refresh (and, for QuickBooks and Xero, save the rotated token) to pass.
        simulator.oauth.expire_access_tokens()
        result, error = check_connection(registry, TENANT, case.system)
        assert result.success, error
        assert result.organisation == case.organisation
        assert screenshot.stat().st_size > 0


# --- states the callback refuses -------------------------------------------------------------------


def _state_from_start(service: str, system: str) -> str:
    location = httpx.URL(_start(service, system).headers["location"])
    return location.params["state"]


@pytest.fixture
def zoho_app(service: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ZohoBooksSimulator]:
    simulator = _zoho()
    with LoopbackServer(simulator.app) as server:
        _point_at(monkeypatch, CASES[0], server.url)
        yield simulator


def test_a_tampered_state_is_refused_and_nothing_is_stored(
    service: str, warehouse: str, zoho_app
) -> None:
    state = _state_from_start(service, "zoho_books")
    payload, _, mac = state.partition(".")
    vault = Vault.from_env()
    other = sign_state(vault, "someone-else", "zoho_books").partition(".")[0]
    for forged in (f"{other}.{mac}", f"{payload}.{mac[:-2]}AA", payload, "", "x.y"):
        answer = httpx.get(
            f"{service}/oauth/zoho_books/callback", params={"code": "anything", "state": forged}
        )
        assert answer.status_code == 400, forged
        assert "Refused" in answer.text
    assert _config_count(warehouse) == 0
    assert read_state(vault, state, "zoho_books").tenant == TENANT  # the genuine one verifies


def test_an_expired_state_is_refused(service: str, warehouse: str, zoho_app) -> None:
    vault = Vault.from_env()
    expired = sign_state(vault, TENANT, "zoho_books", now=time.time() - 601)
    answer = httpx.get(
        f"{service}/oauth/zoho_books/callback", params={"code": "anything", "state": expired}
    )
    assert answer.status_code == 400
    assert "expired" in answer.text
    assert _config_count(warehouse) == 0


def test_a_state_for_another_system_is_refused(service: str, warehouse: str, zoho_app) -> None:
    state = sign_state(Vault.from_env(), TENANT, "xero")
    answer = httpx.get(f"{service}/oauth/zoho_books/callback", params={"code": "c", "state": state})
    assert answer.status_code == 400
    assert _config_count(warehouse) == 0


def test_zoho_callback_naming_a_foreign_accounts_server_exchanges_nothing(
    service: str, warehouse: str, zoho_app
) -> None:
    state = _state_from_start(service, "zoho_books")
    answer = httpx.get(
        f"{service}/oauth/zoho_books/callback",
        params={"code": "c", "state": state, "accounts-server": "https://attacker.invalid"},
    )
    assert answer.status_code == 502
    assert "not one of Zoho" in answer.text
    assert not [entry for entry in zoho_app.request_log if entry.path == "/oauth/v2/token"]
    assert _config_count(warehouse) == 0


def test_a_denied_consent_stores_nothing(service: str, warehouse: str, zoho_app) -> None:
    state = _state_from_start(service, "zoho_books")
    answer = httpx.get(
        f"{service}/oauth/zoho_books/callback", params={"error": "access_denied", "state": state}
    )
    assert answer.status_code == 400
    assert "access_denied" in answer.text
    assert _config_count(warehouse) == 0


def test_start_needs_the_admin_token_and_a_valid_tenant(service: str, zoho_app) -> None:
    anonymous = httpx.get(f"{service}/oauth/zoho_books/start", params={"tenant": TENANT})
    assert anonymous.status_code == 401
    assert _start(service, "zoho_books", tenant="Not A Slug").status_code == 400
    assert _start(service, "tally").status_code == 404
    consent = httpx.URL(_start(service, "zoho_books").headers["location"])
    assert consent.path == "/oauth/v2/auth"
    assert consent.params["scope"] == (
        "ZohoBooks.contacts.READ,ZohoBooks.invoices.READ,ZohoBooks.settings.READ"
    )
    assert consent.params["access_type"] == "offline"
    assert consent.params["redirect_uri"] == f"{service}/oauth/zoho_books/callback"


def test_start_without_the_app_credentials_names_the_variables(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_XERO_CLIENT_ID", raising=False)
    monkeypatch.delenv("HUB_XERO_CLIENT_SECRET", raising=False)
    answer = _start(service, "xero")
    assert answer.status_code == 503
    assert "HUB_XERO_CLIENT_ID" in answer.text and "HUB_XERO_CLIENT_SECRET" in answer.text


def test_reconnecting_keeps_the_tenants_settings_and_replaces_the_token(
    service: str, warehouse: str, zoho_app
) -> None:
    registry = TenantRegistry(Vault.from_env())
    old_token = zoho_app.refresh_token
    registry.add(
        TENANT,
        "zoho_books",
        {
            "connection_config": {
                "organization_id": DEFAULT_ORG_ID,
                "client_id": zoho_simulator.DEFAULT_CLIENT_ID,
                "client_secret": zoho_simulator.DEFAULT_CLIENT_SECRET,
                "refresh_token": old_token,
                "requests_per_minute": 50,
            },
            "sync_config": {"customers_frequency": "hourly"},
        },
    )
    # The consent form posted without a browser: Allow, then follow the redirect to the hub.
    consent = httpx.URL(_start(service, "zoho_books").headers["location"])
    fields = {name: consent.params[name] for name in ("client_id", "redirect_uri", "state")}
    fields |= {"scope": consent.params["scope"], "decision": "allow"}
    answer = httpx.post(str(consent.copy_with(query=None)), data=fields, follow_redirects=True)
    assert answer.status_code == 200, answer.text
    config = registry.get(TENANT, "zoho_books")
    assert config.connection.refresh_token.get_secret_value() != old_token
    assert config.connection.requests_per_minute == 50
    assert config.row.sync_config.customers_frequency == "hourly"
