"""Faults, bad records, crashes and rate limits: the import still ends equal to the source."""

import os
import signal
import subprocess
import sys
import time

import pytest

from hub_pipelines.zoho_books.connector import ZohoBooksResource
from hub_pipelines_tests.zoho_books.conftest import TENANT, checks, customers, invoices, metadata
from hub_pipelines_tests.zoho_books.test_import import warehouse_equals_source


def _retry_logs(zoho, result) -> list[str]:
    return [
        entry.user_message
        for entry in zoho.instance.all_logs(result.run_id)
        if "retrying" in (entry.user_message or "")
    ]


@pytest.mark.parametrize(
    "inject",
    [
        pytest.param(lambda f: f.throttle_next(4, path="/books/v3/invoices"), id="429-burst"),
        pytest.param(lambda f: f.fail_next(4, status=503), id="5xx"),
        pytest.param(lambda f: f.drop_next(3, path="/books/v3/invoices"), id="dropped-connections"),
        pytest.param(lambda f: f.expire_tokens_after(25), id="token-expiry-mid-run"),
        pytest.param(
            lambda f: f.malformed_page("/books/v3/invoices", 1, truncated=True, times=2),
            id="truncated-json-body",
        ),
    ],
)
def test_import_survives_each_fault_and_logs_the_retries(zoho, inject):
    zoho.simulator.seed_generated(zoho.org_id, customers=15, invoices=60)
    assert zoho.materialize(customers).success
    inject(zoho.simulator.faults)
    result = zoho.materialize(invoices)
    assert result.success
    warehouse_equals_source(zoho)
    assert _retry_logs(zoho, result), "the run log shows no retry"
    assert metadata(result, "invoices")["retries"] >= 1


def test_a_malformed_record_lands_in_the_errors_table_and_the_rest_load(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=10, invoices=50)
    broken = zoho.simulator.invoice_ids(zoho.org_id)[7]
    zoho.simulator.faults.malformed_page(f"/books/v3/invoices/{broken}")
    result = zoho.materialize()
    assert result.success  # 1 of 50 is under the 5 % threshold
    assert metadata(result, "invoices")["records_failed"] == 1
    assert metadata(result, "invoices")["records_inserted"] == 49
    category, message, payload, fix, partition = zoho.query(
        "SELECT category, error_message, raw_payload, suggested_fix, partition_key "
        "FROM hub.accounting_sync_errors WHERE entity_id = %s",
        (broken,),
    )[0]
    assert category == "MAPPING"
    assert "rate" in message and "1,2O0.OO" in message
    assert payload["invoice_id"] == broken and payload["line_items"]
    assert fix and partition == TENANT
    status = zoho.scalar(
        "SELECT status FROM hub.accounting_sync_logs WHERE dagster_run_id = %s "
        "AND entity_type = 'invoices'",
        (result.run_id,),
    )
    assert status == "partial"

    # Once the source is fixed, the next incremental run picks the record up: nothing was lost.
    zoho.simulator.faults.clear()
    again = zoho.materialize(invoices)
    assert metadata(again, "invoices")["records_inserted"] == 1
    warehouse_equals_source(zoho)


def test_a_list_row_without_id_is_recorded_with_its_payload(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=20)
    zoho.simulator.faults.malformed_page("/books/v3/invoices", 1, record_index=3, times=1)
    result = zoho.materialize()
    assert metadata(result, "invoices")["records_failed"] == 1
    category, payload = zoho.query(
        "SELECT category, raw_payload FROM hub.accounting_sync_errors WHERE entity_type = 'invoices'"
    )[0]
    assert category == "SOURCE_DATA"
    assert "invoice_id" not in payload and payload["invoice_number"]


def test_past_the_error_threshold_the_run_fails_but_good_rows_stay(zoho):
    zoho.register(sync_config={"error_threshold": 0.0})
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=20)
    zoho.simulator.faults.malformed_page(
        f"/books/v3/invoices/{zoho.simulator.invoice_ids(zoho.org_id)[0]}"
    )
    result = zoho.materialize()
    assert not result.success
    assert zoho.scalar("SELECT count(*) FROM accounting.invoices") == 19
    message = zoho.scalar(
        "SELECT error_message FROM hub.accounting_sync_logs WHERE dagster_run_id = %s "
        "AND entity_type = 'invoices'",
        (result.run_id,),
    )
    assert "1 of 20 records failed" in message and "error threshold" in message


CRASHING_RUN = """
import dagster as dg
from hub_pipelines.imports.assets import import_asset
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.zoho_books.connector import ZohoBooksResource
import os
with dg.instance_for_test() as instance:
    instance.add_dynamic_partitions("zoho_books_tenants", ["acme"])
    dg.materialize(
        [import_asset("zoho_books", "customers"), import_asset("zoho_books", "invoices")],
        partition_key="acme",
        instance=instance,
        resources={
            "warehouse": WarehouseResource(database_url=os.environ["HUB_DATABASE_URL"]),
            "vault": VaultResource(encryption_key=os.environ["CREDENTIAL_ENCRYPTION_KEY"]),
            "zoho_books": ZohoBooksResource(page_size=20),
        },
    )
"""


def test_a_run_killed_mid_import_and_rerun_leaves_no_duplicates_and_loses_nothing(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=20, invoices=200)
    zoho.simulator.faults.latency = 0.01  # slow enough to be killed half-way
    env = {**os.environ, "HUB_DATABASE_URL": zoho.warehouse_url}
    worker = subprocess.Popen([sys.executable, "-c", CRASHING_RUN], env=env)
    deadline = time.monotonic() + 120
    loaded = 0
    while loaded < 40 and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
        loaded = zoho.scalar("SELECT count(*) FROM accounting.invoices")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert 0 < loaded < 200, f"the worker was not killed mid-run ({loaded} invoices)"

    zoho.simulator.faults.clear()
    result = zoho.materialize(zoho_books=ZohoBooksResource(page_size=20))
    assert result.success
    warehouse_equals_source(zoho)
    assert all(e.passed for e in checks(result).values())
    duplicates = zoho.scalar(
        "SELECT count(*) FROM (SELECT entity_id FROM hub.accounting_sync_errors "
        "GROUP BY entity_id, error_message HAVING count(*) > 1) d"
    )
    assert duplicates == 0


def test_the_connector_stays_under_zohos_real_rate_limit(zoho):
    zoho.simulator.requests_per_minute = 100  # the real per-organisation limit
    zoho.simulator.seed_generated(zoho.org_id, customers=9, invoices=0)
    zoho.register(requests_per_minute=100)  # at the limit, not under it
    result = zoho.materialize(customers)
    assert result.success
    api = [e.timestamp for e in zoho.simulator.request_log if "/books/v3/" in e.path]
    assert len(api) >= 10
    assert zoho.simulator.requests_throttled == 0
    # Paced at the limit: on average one request per 60 s / 100, never a burst (an unpaced
    # client sends all of these within a few milliseconds). Arrival jitter on a busy machine may
    # bring two neighbours closer than 0.6 s, so single gaps get a looser bound.
    gaps = [later - earlier for earlier, later in zip(api, api[1:], strict=False)]
    assert (api[-1] - api[0]) / len(gaps) >= 0.6 * 0.97, gaps
    assert min(gaps) >= 0.3, gaps
