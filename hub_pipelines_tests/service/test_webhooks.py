"""POST /webhooks/{system}/{tenant} over real loopback HTTP, against a real registry (PostgreSQL,
encrypted configs) and a real landing folder; and notice files read back by `read_notice`."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.quickbooks import simulator as qbo
from hub_pipelines.service import webhooks
from hub_pipelines.service.notices import read_notice
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import Vault
from hub_pipelines.xero.simulator import XeroSimulator
from hub_pipelines.zoho_books import simulator as zoho

VERIFIER_TOKEN = "qbo-verifier-token-for-tests"
ZOHO_SECRET = "ZohoSecret123456"
REALM = "9130357766900456"
XERO_ORG = "3f1e2b7c-1111-4d2a-9c3b-0a1b2c3d4e5f"
ZOHO_ORG = "60012345678"
OAUTH = {"client_id": "client", "client_secret": "secret-1", "refresh_token": "refresh-1"}


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_LANDING_DIR", str(tmp_path / "landing"))
    return tmp_path / "landing"


@pytest.fixture
def tenants(warehouse: str, encryption_key: str) -> TenantRegistry:
    """`acme` on the three systems with their webhook secrets; `plain` on QuickBooks without."""
    registry = TenantRegistry(Vault.from_env())
    xero_key = XeroSimulator().webhook_key
    registry.add(
        "acme", "quickbooks", {**OAUTH, "realm_id": REALM, "webhook_verifier_token": VERIFIER_TOKEN}
    )
    registry.add("acme", "xero", {**OAUTH, "xero_tenant_id": XERO_ORG, "webhook_key": xero_key})
    registry.add(
        "acme", "zoho_books", {**OAUTH, "organization_id": ZOHO_ORG, "webhook_secret": ZOHO_SECRET}
    )
    registry.add("plain", "quickbooks", {**OAUTH, "realm_id": REALM})
    return registry


def serve(**options) -> LoopbackServer:
    """The webhook routes alone in a small app (the service's app.py mounts the same routes)."""
    return LoopbackServer(Starlette(routes=webhooks.routes(**options)))


@pytest.fixture
def service(tenants: TenantRegistry, landing: Path):
    with serve() as server:
        yield server


def landed(landing: Path) -> list[Path]:
    """Every file in the landing folder, temporary ones included (there must be none)."""
    return sorted(path for path in landing.rglob("*") if path.is_file())


def quickbooks_change(entity_id: str = "130") -> qbo.WebhookChange:
    return qbo.WebhookChange("Invoice", entity_id, "Update", datetime(2026, 5, 1, 10, tzinfo=UTC))


def post(server: LoopbackServer, path: str, body: bytes, headers: dict[str, str]):
    return httpx.post(server.url + path, content=body, headers=headers, timeout=10)


def signed_quickbooks(body: bytes, token: str = VERIFIER_TOKEN) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "intuit-signature": qbo.webhook_signature(token, body),
    }


def xero_delivery(signed: bool = True, events: list[dict] | None = None):
    simulator = XeroSimulator()
    if events is None:
        org = simulator.add_organisation(XERO_ORG, "Acme")
        simulator.queue_event(org, "INVOICE", str(uuid.uuid4()), created=True)
    return simulator.webhook_delivery(signed=signed, events=events)


def zoho_invoice() -> dict:
    return {
        "invoice_id": "460000000012345",
        "invoice_number": "INV-000012",
        "status": "sent",
        "total": 1180.0,
        "last_modified_time": "2026-05-01T15:30:00+0530",
    }


# --- accepted deliveries -----------------------------------------------------------------------


def test_quickbooks_cloud_events_land_one_notice_file(service, landing):
    body = qbo.webhook_body(REALM, [quickbooks_change()], cloud_events=True)
    answer = post(service, "/webhooks/quickbooks/acme", body, signed_quickbooks(body))
    assert answer.status_code == 200
    [path] = landed(landing)
    assert path.parent == landing / "quickbooks" / "acme"
    assert path.name.startswith("notice-") and path.suffix == ".json"
    document = json.loads(path.read_bytes())
    assert document["body"].encode() == body  # byte for byte
    assert document["system"] == "quickbooks" and document["tenant"] == "acme"
    assert document["account_id"] == REALM
    assert datetime.fromisoformat(document["received_at"]).tzinfo is not None
    assert "intuit-signature" not in document["headers"]
    [notice] = read_notice(path)
    assert (notice.account_id, notice.entity, notice.external_id, notice.operation) == (
        REALM,
        "invoices",
        "130",
        "updated",
    )


def test_quickbooks_legacy_payload_from_the_simulator(service, landing):
    answer = qbo.send_webhook(
        service.url + "/webhooks/quickbooks/acme", VERIFIER_TOKEN, REALM, [quickbooks_change("7")]
    )
    assert answer.status_code == 200
    [path] = landed(landing)
    [notice] = read_notice(path)
    assert (notice.external_id, notice.operation, notice.occurred_at.year) == ("7", "updated", 2026)


def test_xero_delivery_lands_and_a_redelivery_of_its_events_does_not(service, landing):
    body, headers = xero_delivery()
    assert post(service, "/webhooks/xero/acme", body, headers).status_code == 200
    # Xero retries with a new entropy (another body, another signature): the same events.
    events = json.loads(body)["events"]
    again, again_headers = xero_delivery(events=events)
    assert again != body
    assert post(service, "/webhooks/xero/acme", again, again_headers).status_code == 200
    [path] = landed(landing)
    [notice] = read_notice(path)
    assert (notice.system, notice.account_id, notice.entity) == ("xero", XERO_ORG, "invoices")
    assert notice.external_id == events[0]["resourceId"]


def test_zoho_default_payload_lands_with_the_tenants_organisation(service, landing):
    url = service.url + "/webhooks/zoho_books/acme"
    assert zoho.send_webhook(url, "invoice", zoho_invoice(), ZOHO_SECRET).status_code == 200
    [path] = landed(landing)
    assert path.parent == landing / "zoho_books" / "acme"
    [notice] = read_notice(path)
    assert notice.account_id == ZOHO_ORG
    assert (notice.entity, notice.external_id, notice.operation) == (
        "invoices",
        "460000000012345",
        "updated",
    )
    assert notice.occurred_at == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def test_the_same_event_twice_lands_one_file(service, landing):
    body = qbo.webhook_body(REALM, [quickbooks_change()], cloud_events=True)
    for _ in range(3):
        assert (
            post(service, "/webhooks/quickbooks/acme", body, signed_quickbooks(body)).status_code
            == 200
        )
    assert len(landed(landing)) == 1


def test_a_replay_after_the_sensor_handled_the_file_lands_nothing(service, landing):
    body = qbo.webhook_body(REALM, [quickbooks_change()], cloud_events=True)
    assert (
        post(service, "/webhooks/quickbooks/acme", body, signed_quickbooks(body)).status_code == 200
    )
    [path] = landed(landing)
    (path.parent / "processed").mkdir()
    path.rename(path.parent / "processed" / path.name)  # what the landing sensor does
    assert (
        post(service, "/webhooks/quickbooks/acme", body, signed_quickbooks(body)).status_code == 200
    )
    assert landed(landing) == [path.parent / "processed" / path.name]


def test_distinct_events_land_distinct_files(service, landing):
    for entity_id in ("1", "2"):
        body = qbo.webhook_body(REALM, [quickbooks_change(entity_id)], cloud_events=True)
        post(service, "/webhooks/quickbooks/acme", body, signed_quickbooks(body))
    assert len(landed(landing)) == 2


# --- refused deliveries ------------------------------------------------------------------------


def test_a_forged_signature_is_refused_and_nothing_is_written(service, landing):
    body = qbo.webhook_body(REALM, [quickbooks_change()], cloud_events=True)
    forged = signed_quickbooks(body, token="not-the-verifier-token")
    assert post(service, "/webhooks/quickbooks/acme", body, forged).status_code == 401
    unsigned = {"Content-Type": "application/json"}
    assert post(service, "/webhooks/quickbooks/acme", body, unsigned).status_code == 401
    tampered = body.replace(b'"130"', b'"131"')
    assert (
        post(service, "/webhooks/quickbooks/acme", tampered, signed_quickbooks(body)).status_code
        == 401
    )
    zoho_body = json.dumps({"invoice": zoho_invoice()}).encode()
    wrong = {"X-Zoho-Webhook-Signature": zoho.webhook_signature("OtherSecret1234", zoho_body)}
    assert post(service, "/webhooks/zoho_books/acme", zoho_body, wrong).status_code == 401
    assert landed(landing) == []


def test_xero_intent_to_receive(service, landing):
    """Xero activates a webhook only when a correctly signed empty delivery gets 200 and a
    mis-signed one 401; neither is a change, so nothing lands."""
    body, headers = xero_delivery(events=[])
    assert post(service, "/webhooks/xero/acme", body, headers).status_code == 200
    body, headers = xero_delivery(signed=False, events=[])
    assert post(service, "/webhooks/xero/acme", body, headers).status_code == 401
    assert landed(landing) == []


def test_oversized_bodies_are_refused_without_writing(service, landing):
    big = b'{"events": [' + b" " * webhooks.MAX_BODY + b"]}"
    headers = {"x-xero-signature": "AAAA", "Content-Type": "application/json"}
    assert post(service, "/webhooks/xero/acme", big, headers).status_code == 413

    def chunks():  # no Content-Length: the cap applies while streaming
        for _ in range(20):
            yield b" " * 65536

    answer = httpx.post(
        service.url + "/webhooks/xero/acme", content=chunks(), headers=headers, timeout=10
    )
    assert answer.status_code == 413
    assert landed(landing) == []


def test_unknown_systems_and_tenants_and_missing_secrets(service, landing):
    body = qbo.webhook_body(REALM, [quickbooks_change()], cloud_events=True)
    headers = signed_quickbooks(body)
    assert post(service, "/webhooks/quickbooks/nobody", body, headers).status_code == 404
    assert post(service, "/webhooks/tally/acme", body, headers).status_code == 404
    assert post(service, "/webhooks/quickbooks/Not%20A%20Slug", body, headers).status_code == 404
    answer = post(service, "/webhooks/quickbooks/plain", body, headers)
    assert answer.status_code == 401 and "webhook_verifier_token" in answer.text
    assert httpx.get(service.url + "/webhooks/quickbooks/acme").status_code == 405
    assert landed(landing) == []


def test_a_good_signature_over_an_unparseable_payload_is_400(service, landing):
    for body in (b"not json", b'{"something": "else"}', b"\xff\xfe"):
        answer = post(service, "/webhooks/quickbooks/acme", body, signed_quickbooks(body))
        assert answer.status_code == 400
    body = json.dumps({"invoice": {"no_id": 1}}).encode()
    signed = {"X-Zoho-Webhook-Signature": zoho.webhook_signature(ZOHO_SECRET, body)}
    assert post(service, "/webhooks/zoho_books/acme", body, signed).status_code == 400
    assert landed(landing) == []


def test_rate_limit_per_tenant(tenants, landing):
    with serve(rate=0.5, burst=3) as server:
        answers = []
        for entity_id in range(5):
            body = qbo.webhook_body(REALM, [quickbooks_change(str(entity_id))], cloud_events=True)
            answers.append(post(server, "/webhooks/quickbooks/acme", body, signed_quickbooks(body)))
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        assert int(answers[-1].headers["retry-after"]) >= 1
        # Another tenant (here: another system of the same tenant) has its own bucket.
        body, headers = xero_delivery()
        assert post(server, "/webhooks/xero/acme", body, headers).status_code == 200
    assert len(landed(landing)) == 4


def test_tenant_configs_are_decrypted_once_per_burst(tenants, landing):
    loads = []

    def counting_load(system: str, tenant: str):
        loads.append((system, tenant))
        return webhooks.load_receiver(system, tenant)

    with serve(load=counting_load) as server:
        for entity_id in range(10):
            body = qbo.webhook_body(REALM, [quickbooks_change(str(entity_id))], cloud_events=True)
            post(server, "/webhooks/quickbooks/acme", body, signed_quickbooks(body))
        for _ in range(3):
            post(server, "/webhooks/quickbooks/nobody", b"{}", {})
    assert loads == [("quickbooks", "acme"), ("quickbooks", "nobody")]
    assert len(landed(landing)) == 10


def test_no_secret_signature_or_body_in_the_logs(service, landing, caplog):
    caplog.set_level(logging.DEBUG)
    body = qbo.webhook_body(REALM, [quickbooks_change("804711377215")], cloud_events=True)
    headers = signed_quickbooks(body)
    post(service, "/webhooks/quickbooks/acme", body, headers)
    post(service, "/webhooks/quickbooks/acme", body, signed_quickbooks(body, "wrong-token"))
    zoho.send_webhook(
        service.url + "/webhooks/zoho_books/acme", "invoice", zoho_invoice(), ZOHO_SECRET
    )
    text = caplog.text + " ".join(json.dumps(vars(r), default=str) for r in caplog.records)
    assert "webhook landed" in text and "bad signature" in text
    for secret in (
        VERIFIER_TOKEN,
        ZOHO_SECRET,
        headers["intuit-signature"],
        "804711377215",
        "INV-000012",
    ):
        assert secret not in text


# --- notice files ------------------------------------------------------------------------------


def test_read_notice_names_the_file_and_the_problem(tmp_path):
    broken = tmp_path / "notice-broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="notice-broken.json.*not a readable JSON"):
        read_notice(broken)
    foreign = tmp_path / "notice-foreign.json"
    foreign.write_text(json.dumps({"events": []}))
    with pytest.raises(ValueError, match="notice-foreign.json.*not a hub webhook notice"):
        read_notice(foreign)
    bad_body = tmp_path / "notice-bad.json"
    document = {"format": "hub.webhook-notice/1", "system": "xero", "body": '{"events": 3}'}
    bad_body.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="notice-bad.json: events: expected a list"):
        read_notice(bad_body)


def test_load_benchmark_smoke(warehouse: str):
    """`python -m bench.webhooks` in small: a uvicorn process, concurrent signed deliveries and
    replays, every event landed exactly once (timings are the benchmark's, never asserted)."""
    from bench.webhooks import measure

    result = measure(warehouse, count=20, concurrency=5)
    assert result.statuses == {200: 22}
    assert result.landed == result.distinct_events_landed == 20


def test_an_unreadable_registry_answers_503(tenants, landing, monkeypatch):
    monkeypatch.delenv("CREDENTIAL_ENCRYPTION_KEY")
    body = qbo.webhook_body(REALM, [quickbooks_change()], cloud_events=True)
    with serve() as server:
        answer = post(server, "/webhooks/quickbooks/acme", body, signed_quickbooks(body))
    assert answer.status_code == 503
    assert landed(landing) == []


# --- one URL for a whole app ----------------------------------------------------------------


APP_VERIFIER = "app-wide-verifier-token"
OTHER_REALM = "9130357766900999"


def test_an_app_wide_delivery_lands_in_the_folder_of_each_company_s_tenant(
    tenants, landing, monkeypatch
):
    monkeypatch.setenv("HUB_QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN", APP_VERIFIER)
    tenants.add("beta", "quickbooks", {**OAUTH, "realm_id": OTHER_REALM})
    at = datetime(2026, 5, 1, 10, tzinfo=UTC)
    body = qbo.webhook_body(
        REALM, [qbo.WebhookChange("Invoice", "1", "Update", at)], cloud_events=True
    )
    events = json.loads(body)  # three companies in one delivery: acme's, beta's and a stranger's
    for realm, entity in ((OTHER_REALM, "Customer"), ("1111", "Invoice")):
        event = json.loads(qbo.webhook_body(realm, [qbo.WebhookChange(entity, "2", "Create", at)],
                                            cloud_events=True))[0]  # fmt: skip
        events.append({**event, "id": f"{event['id']}-{realm}"})
    body = json.dumps(events).encode()

    with serve() as server:
        forged = post(server, "/webhooks/quickbooks", body, signed_quickbooks(body, "wrong"))
        assert forged.status_code == 401 and landed(landing) == []
        assert (
            post(
                server, "/webhooks/quickbooks", body, signed_quickbooks(body, APP_VERIFIER)
            ).status_code
            == 200
        )
        assert post(server, "/webhooks/xero", b"{}", {}).status_code == 404  # no app key set

    found = {path.parent.name: read_notice(path) for path in landed(landing)}
    assert sorted(found) == ["acme", "beta", "plain"]  # plain names acme's realm too
    for tenant, realm, entity in (("acme", REALM, "invoices"), ("beta", OTHER_REALM, "customers")):
        assert {(n.account_id, n.entity) for n in found[tenant]} == {(realm, entity)}
