"""Captured payloads replayed through a system's simulator import through Dagster into the same
tables, with the checks passing (`hub simulate SYSTEM --from DIR`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hub_pipelines.simulation.replay import files_in
from hub_pipelines.systems import AVAILABLE
from hub_pipelines.tenants.models import parse_connection_config
from hub_pipelines_tests.conftest import REAL_FIXTURES
from hub_pipelines_tests.contract.conftest import (
    TENANT,
    failed_checks,
    lines_outside_their_invoices,
    metadata,
)

# Systems whose captured list answers hold whole records (lines included). Zoho's list rows
# carry no lines, and the captures hold details for only some invoices: see the test below.
WHOLE_LISTS = sorted(set(AVAILABLE) - {"zoho_books"})
# What each system's captures hold at least one of: BUSY's live captures are schema listings, a
# voucher-number sample and three accounts, but no sale voucher.
CAPTURED = {"busy": "customers"}


@pytest.mark.real_fixtures
@pytest.mark.parametrize("system", WHOLE_LISTS)
def test_real_payloads_replayed_import_with_the_checks_passing(system, tenant_of):
    import importlib

    module = importlib.import_module(AVAILABLE[system].simulator_module)
    tenant = tenant_of(system, simulated=module.replay(files_in(REAL_FIXTURES / system)))

    result = tenant.materialize()

    assert result.success
    assert failed_checks(result) == []
    entity = CAPTURED.get(system, "invoices")
    held = tenant.query(
        f"SELECT count(*) FROM accounting.{entity} WHERE tenant_id = %s AND system = %s",
        (TENANT, system),
    )[0][0]
    assert held == metadata(result, entity)["dagster/row_count"] > 0
    if entity == "invoices":
        assert lines_outside_their_invoices(tenant) == []


@pytest.mark.real_fixtures
def test_replayed_zoho_captures_load_the_invoices_with_details_and_name_the_others(tenant_of):
    from hub_pipelines.zoho_books.rendering import replay

    tenant = tenant_of(
        "zoho_books", simulated=replay(files_in(REAL_FIXTURES / "zoho_books")), register=False
    )
    tenant.register(sync_config={"error_threshold": 1})

    result = tenant.materialize()

    assert result.success
    loaded = tenant.query(
        "SELECT count(*) FROM accounting.invoices WHERE tenant_id = %s AND system = 'zoho_books'",
        (TENANT,),
    )[0][0]
    errors = tenant.query(
        "SELECT error_message FROM hub.accounting_sync_errors "
        "WHERE tenant_id = %s AND entity_type = 'invoices'",
        (TENANT,),
    )
    assert loaded >= 1 and errors
    assert all("line_items" in message for (message,) in errors)
    assert lines_outside_their_invoices(tenant) == []


@pytest.mark.real_fixtures
def test_hub_simulate_from_a_folder_writes_a_config_the_registry_accepts(tmp_path):
    config_file = tmp_path / "tenant.json"
    port = _free_port()
    hub = Path(sys.executable).with_name("hub")
    folder = REAL_FIXTURES / "zoho_books"
    process = subprocess.Popen(  # noqa: S603
        [str(hub), "simulate", "zoho_books", "--from", str(folder), "--port", str(port),
         "--config-out", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        _wait_until_served(port, process)
        document = json.loads(config_file.read_text())
        config = parse_connection_config("zoho_books", document["connection_config"])
        assert str(config.api_base_url).rstrip("/") == f"http://127.0.0.1:{port}"
        assert config.requests_per_minute == 30_000  # the pace it serves, not Zoho's real 90
        assert config_file.stat().st_mode & 0o077 == 0  # credentials: owner only
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"hub tenants add TENANT zoho_books --config {config_file}" in output


@pytest.mark.parametrize(
    ("system", "limits", "paced"),
    [
        ("zoho_books", {"requests_per_minute": 30_000, "daily_limit": 10**7}, 30_000),
        ("xero", {"requests_per_minute": 600}, 600),
        ("quickbooks", {"requests_per_minute": 600}, None),  # its config holds no pace
    ],
)
def test_a_simulators_config_is_paced_at_what_it_serves(system, limits, paced):
    from hub_pipelines.cli import _paced_to
    from hub_pipelines.tenants.models import CONNECTION_MODELS

    config = _paced_to({"organization_id": "1"}, system, limits)
    assert config.get("requests_per_minute") == paced
    added = set(config) - {"organization_id"}
    assert added <= set(CONNECTION_MODELS[system].model_fields)  # nothing its model refuses


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_served(port: int, process: subprocess.Popen) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"hub simulate exited: {process.communicate()[0]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError("hub simulate did not serve within 60 s")
