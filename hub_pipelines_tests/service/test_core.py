"""The service core: health and readiness, Prometheus metrics from the audit trail, the admin
bearer token, request ids in JSON logs, and test-connection against a simulator.

The app runs on real HTTP over loopback; the database is a real PostgreSQL and the source a
simulator, registered as the contract suite registers it.
"""

from __future__ import annotations

import io
import json
import logging
import math
import socket
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.imports import audit
from hub_pipelines.service import security
from hub_pipelines.service.app import build_app
from hub_pipelines.service.metrics import DURATION_BUCKETS
from hub_pipelines.warehouse import db
from hub_pipelines_tests.contract.conftest import TENANT, small_books, tenant_of  # noqa: F401

ADMIN_TOKEN = "test-admin-token-4f9c2a"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TEST_CONNECTION = "/api/accounting/test-connection"


@pytest.fixture
def service_env(warehouse, encryption_key, tmp_path, monkeypatch) -> str:
    """The service's environment: the test warehouse, its own landing folder and Dagster home,
    and an admin token."""
    monkeypatch.setenv("HUB_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv(security.TOKEN_ENV, ADMIN_TOKEN)
    return warehouse


@pytest.fixture
def client(service_env) -> Iterator[httpx.Client]:
    """The service on a loopback port, and an HTTP client for it."""
    with LoopbackServer(build_app()) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The service's JSON log, as `hub serve` configures it, captured."""
    loggers = [logging.getLogger(name) for name in ("hub.service", "uvicorn", "uvicorn.error")]
    access = logging.getLogger("uvicorn.access")
    before = [(logger.level, logger.propagate) for logger in loggers], access.disabled
    stream = io.StringIO()
    handler = security.configure_logging(stream=stream)
    yield stream
    for logger, (level, propagate) in zip(loggers, before[0], strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    access.disabled = before[1]


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://hub:hub@127.0.0.1:{port}/hub"


@pytest.fixture
def database_down(service_env, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("HUB_DATABASE_URL", closed_port_url())
    db.database_url.cache_clear()
    yield
    db.database_url.cache_clear()  # monkeypatch restores the variable; the cache must follow


# --- health ------------------------------------------------------------------------------------


def test_health_with_every_part_up_is_healthy_with_timings(client):
    answer = client.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "healthy"
    assert set(body["parts"]) == {"database", "landing", "dagster"}
    for part in body["parts"].values():
        assert part["status"] == "up"
        assert part["ms"] >= 0
    assert body["parts"]["dagster"]["queued_runs"] == 0


def test_the_landing_probe_leaves_nothing_behind(client, tmp_path):
    assert client.get("/health").json()["parts"]["landing"]["status"] == "up"
    assert list((tmp_path / "landing").iterdir()) == []


def test_unwritable_landing_folder_or_missing_dagster_is_degraded_not_down(
    client, tmp_path, monkeypatch
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HUB_LANDING_DIR", str(blocker / "landing"))
    monkeypatch.setenv("DAGSTER_HOME", str(blocker / "dagster"))
    answer = client.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "degraded"
    assert body["parts"]["database"]["status"] == "up"
    assert body["parts"]["landing"]["status"] == "down"
    assert "HUB_LANDING_DIR" in body["parts"]["landing"]["detail"]
    assert body["parts"]["dagster"]["status"] == "down"
    assert "DAGSTER_HOME" in body["parts"]["dagster"]["detail"]


def test_database_down_is_unhealthy_503_and_not_ready(client, database_down):
    answer = client.get("/health")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unhealthy"
    assert body["parts"]["database"]["status"] == "down"
    assert body["parts"]["landing"]["status"] == "up"
    # no host, port or credentials of the database in a public answer
    assert "127.0.0.1" not in answer.text and "hub:hub" not in answer.text
    assert client.get("/health/database").status_code == 503
    assert client.get("/ready").status_code == 503
    assert client.get("/metrics").status_code == 503


def test_health_database_and_ready_with_a_migrated_warehouse(client):
    answer = client.get("/health/database")
    assert answer.status_code == 200
    assert answer.json()["database"]["status"] == "up"
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["parts"]["migrations"]["status"] == "up"


def test_not_ready_while_migrations_are_pending(client, empty_database_url, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", empty_database_url)
    db.database_url.cache_clear()
    try:
        answer = client.get("/ready")
        assert client.get("/health").json()["status"] == "healthy"
    finally:
        db.database_url.cache_clear()
    assert answer.status_code == 503
    detail = answer.json()["parts"]["migrations"]["detail"]
    assert "0001_platform.sql" in detail and "hub db upgrade" in detail


# --- the admin token, request ids, logs --------------------------------------------------------


def test_admin_endpoint_needs_the_bearer_token(client):
    body = {"tenant": "acme", "system": "zoho_books"}
    assert client.post(TEST_CONNECTION, json=body).status_code == 401
    wrong = {"Authorization": f"Bearer {ADMIN_TOKEN}x"}
    refused = client.post(TEST_CONNECTION, json=body, headers=wrong)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    basic = {"Authorization": f"Basic {ADMIN_TOKEN}"}
    assert client.post(TEST_CONNECTION, json=body, headers=basic).status_code == 401
    assert ADMIN_TOKEN not in refused.text
    # the right token passes the check (and reaches the registry: no such tenant)
    assert client.post(TEST_CONNECTION, json=body, headers=ADMIN).status_code == 404


def test_admin_endpoint_without_a_configured_token_is_503_naming_the_variable(client, monkeypatch):
    monkeypatch.delenv(security.TOKEN_ENV)
    answer = client.post(TEST_CONNECTION, json={}, headers=ADMIN)
    assert answer.status_code == 503
    assert "HUB_API_TOKEN" in answer.json()["error"]["message"]


def test_request_id_is_echoed_and_in_one_json_log_line_per_request(service_env, log_lines):
    with LoopbackServer(build_app()) as server:
        given = httpx.get(
            f"{server.url}/health/database?code=oauth-code-secret",
            headers={"X-Request-Id": "caller-id-123", "Authorization": "Bearer some-secret"},
        )
        made = httpx.get(f"{server.url}/health/database")
        forged = httpx.get(f"{server.url}/ready", headers={"X-Request-Id": "a b\tc" + "x" * 200})
    assert given.headers["x-request-id"] == "caller-id-123"
    assert len(made.headers["x-request-id"]) == 32
    assert forged.headers["x-request-id"] not in ("a b\tc" + "x" * 200,)
    requests = [line for line in parsed(log_lines) if line["message"] == "request"]
    assert forged.status_code == 200, forged.text
    assert [(line["method"], line["path"], line["status"]) for line in requests] == [
        ("GET", "/health/database", 200),
        ("GET", "/health/database", 200),
        ("GET", "/ready", 200),
    ]
    assert [line["request_id"] for line in requests] == [
        "caller-id-123",
        made.headers["x-request-id"],
        forged.headers["x-request-id"],
    ]
    assert all(isinstance(line["ms"], float) for line in requests)
    text = log_lines.getvalue()
    assert "oauth-code-secret" not in text and "some-secret" not in text


def test_an_unknown_route_answers_json_with_the_request_id(client):
    missing = client.get("/nowhere", headers={"X-Request-Id": "r-1"})
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "r-1"
    assert "error" in missing.json()


# --- metrics -----------------------------------------------------------------------------------


def scraped(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape: (name, sorted labels) → value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_equal_what_the_sync_log_rows_say(service_env, tenant_of):  # noqa: F811
    good = tenant_of("zoho_books", small_books())
    assert good.materialize().success
    assert good.materialize("invoices").success  # a second, incremental sync
    good.register(refresh_token="1000.revoked.token")  # the next sync fails on AUTH
    failed = good.materialize("customers")
    assert not failed.success
    # What the run-failure sensor writes for a failed run (it runs in the daemon, not here).
    with psycopg.connect(good.warehouse_url) as conn:
        audit.record_run_failure(
            conn,
            run_id=failed.run_id,
            partition_key=TENANT,
            tenant_id=TENANT,
            system="zoho_books",
            error=SyncError(Category.AUTH, "the refresh token was revoked"),
            entity="customers",
        )

    with LoopbackServer(build_app()) as server:
        answer = httpx.get(f"{server.url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples = scraped(answer.text)

    rows = good.query(
        "SELECT system, entity_type, status, records_inserted + records_updated, "
        "extract(epoch FROM completed_at - started_at), tenant_id, "
        "extract(epoch FROM completed_at) FROM hub.accounting_sync_logs"
    )
    assert {row[2] for row in rows} == {"success", "failed"}
    finished = [row for row in rows if row[2] != "running"]

    syncs = {key: value for key, value in samples.items() if key[0] == "accounting_sync_total"}
    expected_syncs: dict = {}
    for system, entity, status, *_ in finished:
        key = (
            "accounting_sync_total",
            (("entity", entity), ("status", status), ("system", system)),
        )
        expected_syncs[key] = expected_syncs.get(key, 0) + 1
    assert syncs == expected_syncs

    records: dict = {}
    for _, entity, _, synced, *_ in rows:
        key = ("accounting_records_synced_total", (("entity", entity),))
        records[key] = records.get(key, 0) + synced
    assert {k: v for k, v in samples.items() if k[0] == "accounting_records_synced_total"} == (
        records
    )
    assert records[("accounting_records_synced_total", (("entity", "invoices"),))] > 0

    durations = [float(row[4]) for row in finished]
    for bound in DURATION_BUCKETS:
        key = ("accounting_sync_duration_seconds_bucket", (("le", str(float(bound))),))
        assert samples[key] == sum(1 for d in durations if d <= bound)
    assert samples[("accounting_sync_duration_seconds_bucket", (("le", "+Inf"),))] == len(durations)
    assert samples[("accounting_sync_duration_seconds_count", ())] == len(durations)
    assert math.isclose(samples[("accounting_sync_duration_seconds_sum", ())], sum(durations))

    errors = good.query("SELECT category, count(*) FROM hub.accounting_sync_errors GROUP BY 1")
    assert dict(errors)["AUTH"] == 1
    assert {k: v for k, v in samples.items() if k[0] == "accounting_sync_errors_total"} == {
        ("accounting_sync_errors_total", (("category", c),)): n for c, n in errors
    }

    last = max(row[6] for row in rows if row[2] == "success")
    key = ("accounting_last_success_timestamp", (("system", "zoho_books"), ("tenant", TENANT)))
    assert math.isclose(samples[key], float(last))
    assert samples[("accounting_queue_size", ())] == 0


def test_metrics_of_an_empty_audit_trail(client):
    samples = scraped(client.get("/metrics").text)
    assert samples[("accounting_sync_duration_seconds_count", ())] == 0
    assert samples[("accounting_queue_size", ())] == 0
    assert not [key for key in samples if key[0] == "accounting_sync_total"]


# --- test-connection ---------------------------------------------------------------------------


def test_test_connection_reaches_the_simulator_and_records_it(client, tenant_of):  # noqa: F811
    tenant = tenant_of("zoho_books", small_books())
    answer = client.post(
        TEST_CONNECTION, json={"tenant": TENANT, "system": "zoho_books"}, headers=ADMIN
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True
    assert set(body) == {"success", "latency_ms", "version", "organisation"}
    assert body["organisation"]
    assert isinstance(body["latency_ms"], int)
    (status,) = tenant.query(
        "SELECT last_connection_status FROM hub.accounting_configs WHERE tenant_id = %s",
        (TENANT,),
    )[0]
    assert status == "ok"


def test_test_connection_failure_is_classified_with_a_fix_and_leaks_nothing(
    client,
    tenant_of,  # noqa: F811
    log_lines,
):
    tenant = tenant_of("zoho_books", small_books())
    tenant.register(refresh_token="1000.revoked.token")
    answer = client.post(
        TEST_CONNECTION, json={"tenant": TENANT, "system": "zoho_books"}, headers=ADMIN
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is False
    assert body["error"]["category"] == "AUTH"
    assert body["error"]["suggested_fix"]
    (status,) = tenant.query(
        "SELECT last_connection_status FROM hub.accounting_configs WHERE tenant_id = %s",
        (TENANT,),
    )[0]
    assert status != "ok"
    config = tenant.simulated.connection_config(tenant.server.url)
    for secret in (config["client_secret"], "1000.revoked.token", ADMIN_TOKEN):
        assert secret not in answer.text
        assert secret not in log_lines.getvalue()
    lines = parsed(log_lines)
    assert any(line.get("success") is False and line["system"] == "zoho_books" for line in lines)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"system": "zoho_books"}', 400, "tenant"),
        (b'{"tenant": "Acme Traders", "system": "zoho_books"}', 400, "tenant"),
        (b'{"tenant": "acme", "system": "sap"}', 400, "system"),
        (b'{"tenant": "nobody", "system": "zoho_books"}', 404, "tenant"),
        (b"x" * 5000, 413, None),
    ],
)
def test_test_connection_refuses_what_it_cannot_act_on(client, body, status, field):
    answer = client.post(TEST_CONNECTION, content=body, headers=ADMIN)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error.get("field") == field
    assert error["message"]


def test_routes_see_the_request_id_the_middleware_settled_on():
    """`security.request_id(request)` inside a route (webhooks, onboarding) is the echoed id."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from hub_pipelines.service.app import RequestContext

    async def echo(request):
        return PlainTextResponse(security.request_id(request))

    app = Starlette(routes=[Route("/", echo)], middleware=[Middleware(RequestContext)])
    with LoopbackServer(app) as server:
        given = httpx.get(server.url, headers={"X-Request-Id": "abc-1"})
        made = httpx.get(server.url)
    assert given.text == given.headers["x-request-id"] == "abc-1"
    assert made.text == made.headers["x-request-id"]


def test_an_unhandled_error_is_a_json_500_with_the_request_id_logged(log_lines):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from hub_pipelines.service.app import RequestContext

    async def broken(request):
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/", broken)], middleware=[Middleware(RequestContext)])
    with LoopbackServer(app) as server:
        answer = httpx.get(server.url, headers={"X-Request-Id": "r-500"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "r-500"
    assert "r-500" in answer.json()["error"]["message"]
    (line,) = [line for line in parsed(log_lines) if line["message"] == "unhandled error"]
    assert (line["request_id"], line["status"], line["path"]) == ("r-500", 500, "/")
    assert "RuntimeError: boom" in line["exception"]
