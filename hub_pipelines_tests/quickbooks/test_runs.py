"""QuickBooks imports through Dagster into the real warehouse, for what the contract suite does not
cover: CDC tombstones and call counts, refresh-token rotation across a killed process and between
concurrent runs, the hard-expiry warning, and the real recordings replayed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from hub_pipelines.quickbooks.connector import QuickBooksResource
from hub_pipelines.quickbooks.simulator import DAY, replay, simulate
from hub_pipelines.simulation.books import generate
from hub_pipelines.simulation.replay import files_in
from hub_pipelines.tenants.token_store import ConfigTokenStore
from hub_pipelines_tests.conftest import REAL_FIXTURES
from hub_pipelines_tests.contract.conftest import (
    TENANT,
    failed_checks,
    metadata,
    small_books,
    warehouse_matches_books,
)
from hub_pipelines_tests.quickbooks.conftest import SYSTEM, calls


def recent_books():
    """Books whose last changes are minutes old: incremental runs can ask CDC (30 days)."""
    return generate(seed=21, parties=8, sales=30, as_of=datetime.now(UTC))


def token_requests(tenant) -> int:
    return sum(1 for entry in tenant.simulated.request_log if entry.path.endswith("/bearer"))


def test_every_call_carries_minorversion_75_and_a_quiet_rerun_costs_four_calls(tenant_of):
    tenant = tenant_of(SYSTEM, recent_books())
    assert tenant.materialize().success
    first = len(tenant.simulated.request_log)

    again = tenant.materialize()

    assert again.success
    # Intuit meters every read: one change read (CDC for invoices; the customers' cursor is
    # beyond CDC's 30 days, so a query) and one COUNT(*) per entity, nothing else.
    assert Counter(calls(tenant.simulated, first)) == {"query": 3, "cdc": 1}
    api = [e for e in tenant.simulated.request_log if "/v3/company/" in e.path]
    assert {entry.params.get("minorversion") for entry in api} == {"75"}
    warehouse_matches_books(tenant)


def test_a_deleted_invoice_arrives_as_a_cdc_tombstone_in_an_incremental_run(tenant_of):
    tenant = tenant_of(SYSTEM, recent_books())
    assert tenant.materialize().success
    gone = tenant.live_sales()[0]
    tenant.books.delete_sale(gone.key)
    before = len(tenant.simulated.request_log)

    result = tenant.materialize("invoices")

    assert result.success
    assert calls(tenant.simulated, before)[0] == "cdc"
    meta = metadata(result, "invoices")
    assert (meta["sync_type"], meta["records_deleted"]) == ("incremental", 1)
    deleted = tenant.query(
        "SELECT invoice_number FROM accounting.invoices WHERE tenant_id = %s AND system = %s "
        "AND deleted_at IS NOT NULL",
        (TENANT, SYSTEM),
    )
    assert deleted == [(gone.number,)]
    warehouse_matches_books(tenant)


KILLED_RIGHT_AFTER_SAVING = """
import os, signal, sys
from hub_pipelines.quickbooks.connector import QuickBooksResource
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.tenants.token_store import ConfigTokenStore
from hub_pipelines.vault import Vault

class KilledRightAfterSaving(ConfigTokenStore):
    def save(self, tokens):
        super().save(tokens)
        os.kill(os.getpid(), signal.SIGKILL)  # rotated and stored, its access token never used

registry = TenantRegistry(Vault.from_env())
config = registry.get(sys.argv[1], "quickbooks")
store = KilledRightAfterSaving(registry, config)
QuickBooksResource().connector(config.connection, store, lambda entity, ids: {}).test_connection()
"""


def test_a_rotated_refresh_token_survives_a_kill_right_after_the_rotation(tenant_of):
    tenant = tenant_of(SYSTEM, small_books())
    registered = tenant.stored_refresh_token()

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RIGHT_AFTER_SAVING, TENANT],
        env=os.environ.copy(),
        capture_output=True,
        timeout=120,
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert [entry.path.endswith("/bearer") for entry in tenant.simulated.request_log] == [True]
    rotated = tenant.simulated.refresh_token()
    assert rotated != registered and tenant.stored_refresh_token() == rotated
    tenant.simulated.faults.expire_tokens_after(0)  # the next run must refresh with it

    assert tenant.materialize().success
    assert token_requests(tenant) == 2
    assert tenant.stored_refresh_token() == tenant.simulated.refresh_token() != rotated
    warehouse_matches_books(tenant)


def test_two_concurrent_runs_of_one_tenant_refresh_once(tenant_of):
    tenant = tenant_of(SYSTEM, small_books())
    start, outcomes = threading.Barrier(2), []

    def run() -> None:
        config = tenant.registry.get(TENANT, SYSTEM)
        store = ConfigTokenStore(tenant.registry, config)
        connector = QuickBooksResource().connector(config.connection, store, lambda e, i: {})
        start.wait()
        try:
            outcomes.append(connector.test_connection().success)
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            outcomes.append(exc)
        finally:
            connector.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert outcomes == [True, True]
    assert token_requests(tenant) == 1  # the second run found the first one's tokens stored
    assert tenant.stored_refresh_token() == tenant.simulated.refresh_token()


def test_a_refresh_token_near_its_hard_expiry_is_warned_about_in_the_run_log(tenant_of):
    simulated = simulate(small_books())
    simulated.simulator.refresh_hard_expiry_seconds = 10 * DAY
    tenant = tenant_of(SYSTEM, simulated=simulated)

    result = tenant.materialize("customers")

    assert result.success
    expires = tenant.registry.get(TENANT, SYSTEM).connection.refresh_token_expires_at
    assert timedelta(days=9) < expires - datetime.now(UTC) <= timedelta(days=10)
    messages = [entry.user_message for entry in tenant.instance.all_logs(result.run_id)]
    warnings = [message for message in messages if "5-year limit" in message]
    assert len(warnings) == 1 and f"{expires:%Y-%m-%d}" in warnings[0]
    assert "hub tenants add" in warnings[0]
    assert not any(tenant.stored_refresh_token() in message for message in messages)


def test_a_far_hard_expiry_is_stored_without_a_warning(tenant_of):
    tenant = tenant_of(SYSTEM, small_books())

    result = tenant.materialize("customers")

    expires = tenant.registry.get(TENANT, SYSTEM).connection.refresh_token_expires_at
    assert expires - datetime.now(UTC) > timedelta(days=5 * 365 - 1)
    messages = [entry.user_message for entry in tenant.instance.all_logs(result.run_id)]
    assert not [message for message in messages if "5-year limit" in message]


@pytest.mark.real_fixtures
def test_the_real_recordings_replay_and_import_with_every_check_passing(tenant_of):
    tenant = tenant_of(SYSTEM, simulated=replay(files_in(REAL_FIXTURES / SYSTEM)))

    result = tenant.materialize()

    assert result.success
    assert failed_checks(result) == []
    assert metadata(result, "customers")["records_inserted"] == 33
    assert metadata(result, "invoices")["records_inserted"] == 37
    (total,) = tenant.query(
        "SELECT sum(total) FROM accounting.invoices WHERE tenant_id = %s AND system = %s",
        (TENANT, SYSTEM),
    )[0]
    assert str(total) == "10734.14"  # the recording's sum of TotalAmt
    # Customer 1 is in two recordings; the later version (the list's) is served.
    (name,) = tenant.query(
        "SELECT name FROM accounting.customers WHERE tenant_id = %s AND external_id = '1'",
        (TENANT,),
    )[0]
    assert name == "Test Customer Final"
