"""Webhook notices end to end on loopback: a signed QuickBooks webhook reaches the service, lands
as a file, the landing sensor coalesces the tenant's notices into one incremental run, and the
change is in the warehouse; a forged webhook changes nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import dagster as dg
import httpx
import pytest
from starlette.applications import Starlette

from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.definitions import defs
from hub_pipelines.imports.assets import import_asset
from hub_pipelines.landing.sensors import landing_sensor
from hub_pipelines.quickbooks import simulator as qbo
from hub_pipelines.service import webhooks
from hub_pipelines_tests.contract.conftest import (  # noqa: F401 - fixtures
    TENANT,
    small_books,
    tenant_of,
    warehouse_matches_books,
)

VERIFIER = "verifier-token-of-the-contract-app"


@pytest.fixture
def quickbooks(tenant_of, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HUB_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("HUB_LANDING_SETTLE_SECONDS", "0")
    tenant = tenant_of("quickbooks", small_books(), register=False)
    tenant.register(webhook_verifier_token=VERIFIER)
    with LoopbackServer(Starlette(routes=webhooks.routes())) as service:
        yield tenant, service, tmp_path / "landing" / "quickbooks" / TENANT


def delivery(realm: str, invoice_id: str, token: str = VERIFIER) -> dict:
    change = qbo.WebhookChange("Invoice", invoice_id, "Update", datetime.now(UTC))
    body = qbo.webhook_body(realm, [change], cloud_events=True)
    return {"content": body, "headers": {"intuit-signature": qbo.webhook_signature(token, body)}}


def send(service: LoopbackServer, realm: str, invoice_id: str, token: str = VERIFIER):
    return post(service, delivery(realm, invoice_id, token))


def post(service: LoopbackServer, sent: dict) -> httpx.Response:
    return httpx.post(f"{service.url}/webhooks/quickbooks/{TENANT}", **sent)


def tick(tenant) -> list[dg.RunRequest]:
    time.sleep(0.01)  # a file is complete once untouched for the (zero) settle time
    context = dg.build_sensor_context(
        instance=tenant.instance, resources={"warehouse": tenant.resources["warehouse"]},
        definitions=defs,
    )  # fmt: skip
    with dg.partition_loading_context(dynamic_partitions_store=tenant.instance):
        return list(landing_sensor.evaluate_tick(context).run_requests or [])


def run(tenant, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [import_asset("quickbooks", e) for e in ("customers", "invoices")],
        selection=request.asset_selection,
        partition_key=request.partition_key,
        instance=tenant.instance,
        resources=tenant.resources,
        tags=request.tags,
    )


def files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def test_signed_notices_become_one_incremental_run_and_the_change_lands(quickbooks):
    tenant, service, folder = quickbooks
    assert tenant.materialize().success
    realm = tenant.registry.get(TENANT, "quickbooks").connection.realm_id
    issued = [s for s in tenant.books.live_sales() if s.status == "issued"]
    for sale in issued[:3]:
        tenant.books.edit_sale(sale.key)
        assert send(service, realm, str(sale.key)).status_code == 200

    (request,) = tick(tenant)  # three notices, one run, of the entity they name
    assert request.asset_selection == [import_asset("quickbooks", "invoices").key]
    result = run(tenant, request)
    tick(tenant)

    assert result.success
    events = result.get_asset_materialization_events()
    assert events[0].materialization.metadata["records_updated"].value == 3
    warehouse_matches_books(tenant)
    assert len(files(folder / "processed")) == 3 and files(folder) == []


def test_a_forged_or_replayed_notice_changes_nothing(quickbooks):
    tenant, service, folder = quickbooks
    realm = tenant.registry.get(TENANT, "quickbooks").connection.realm_id

    assert send(service, realm, "1", token="forged").status_code == 401
    assert files(folder) == [] and tick(tenant) == []

    sent = delivery(realm, "2")
    assert post(service, sent).status_code == 200
    (request,) = tick(tenant)
    assert run(tenant, request).success
    tick(tenant)
    assert post(service, sent).status_code == 200  # Intuit redelivers: acknowledged, not landed

    assert files(folder) == [] and tick(tenant) == []
    assert len(files(folder / "processed")) == 1


def test_an_unreadable_notice_fails_with_its_error_and_the_others_still_run(quickbooks):
    tenant, service, folder = quickbooks
    realm = tenant.registry.get(TENANT, "quickbooks").connection.realm_id
    assert send(service, realm, "7").status_code == 200
    (folder / "notice-garbage.json").write_text("{not json")

    (request,) = tick(tenant)

    assert files(folder / "failed") == ["notice-garbage.json"]
    (error,) = tenant.query(
        "SELECT error_message FROM hub.accounting_sync_errors WHERE scope = 'file'"
    )
    assert "notice-garbage.json" in error[0] and "not a readable notice" in error[0]
    assert run(tenant, request).success
    tick(tenant)
    assert len(files(folder / "processed")) == 1 and files(folder) == []
