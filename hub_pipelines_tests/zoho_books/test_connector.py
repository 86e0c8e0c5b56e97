"""The Zoho connector's own surface: connection test, data centres, token storage, secrecy."""

import threading

import pytest

from hub_pipelines.tenants.models import ZohoBooksConfig
from hub_pipelines.tenants.token_store import ConfigTokenStore
from hub_pipelines.zoho_books.connector import ACCOUNTS_HOSTS, API_HOSTS, ZohoBooksConnector
from hub_pipelines_tests.zoho_books.conftest import TENANT


def _connector(zoho, **overrides) -> ZohoBooksConnector:
    config = zoho.registry.get(TENANT, "zoho_books")
    connection = config.connection.model_copy(update=overrides)
    return ZohoBooksConnector(
        connection, ConfigTokenStore(zoho.registry, config), versions=lambda _e, _ids: {}
    )


def test_connection_test_names_the_organisation_or_the_problem(zoho):
    result = _connector(zoho).test_connection()
    assert result.success and result.organisation and result.latency_ms >= 0
    wrong = _connector(zoho, organization_id="999").test_connection()
    assert not wrong.success and "999" in wrong.message


@pytest.mark.parametrize("region", ["in", "com", "eu", "com.au", "jp", "ca", "sa"])
def test_every_data_centre_selects_its_own_hosts(region):
    config = ZohoBooksConfig(
        region=region, organization_id="1", client_id="c", client_secret="s", refresh_token="r"
    )
    connector = ZohoBooksConnector(config, token_store=None, versions=lambda _e, _ids: {})
    assert str(connector.http._client.base_url) == f"{API_HOSTS[region]}/books/v3/"
    assert ACCOUNTS_HOSTS["in"] == "https://accounts.zoho.in"
    assert ACCOUNTS_HOSTS["ca"] == "https://accounts.zohocloud.ca"  # not zoho.ca
    connector.close()


def test_access_tokens_are_cached_encrypted_and_refreshed_once_across_workers(zoho):
    connectors = [_connector(zoho) for _ in range(4)]
    start = threading.Barrier(len(connectors))

    def connect(connector: ZohoBooksConnector) -> None:
        start.wait()  # all four need a token at the same moment
        connector.test_connection()

    threads = [threading.Thread(target=connect, args=(c,)) for c in connectors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    token_calls = [e for e in zoho.simulator.request_log if e.path == "/oauth/v2/token"]
    assert len(token_calls) == 1  # one refresh under the advisory lock; the others reuse it
    stored = zoho.registry.get(TENANT, "zoho_books").connection
    assert stored.access_token is not None and stored.access_token_expires_at is not None
    sealed = zoho.scalar("SELECT connection_config FROM hub.accounting_configs")
    assert stored.access_token.get_secret_value() not in sealed
    _connector(zoho).test_connection()  # a later run reuses the cached token
    assert len([e for e in zoho.simulator.request_log if e.path == "/oauth/v2/token"]) == 1


def test_no_secret_reaches_the_run_log_or_the_audit_tables(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=5)
    zoho.simulator.faults.fail_next(100, status=500)  # failing token calls log their URLs
    result = zoho.materialize()
    assert not result.success
    zoho.simulator.faults.clear()
    assert zoho.materialize().success
    secrets = [zoho.simulator.client_secret, zoho.simulator.refresh_token]
    secrets.append(
        zoho.registry.get(TENANT, "zoho_books").connection.access_token.get_secret_value()
    )
    logged = "\n".join(
        str(entry.user_message) + str(entry.dagster_event)
        for run_id in (result.run_id,)
        for entry in zoho.instance.all_logs(run_id)
    )
    audit = str(zoho.query("SELECT * FROM hub.accounting_sync_logs")) + str(
        zoho.query("SELECT * FROM hub.accounting_sync_errors")
    )
    for secret in secrets:
        assert secret not in logged and secret not in audit
    assert "refresh_token=***" in logged  # the failing token URL was logged, redacted


def test_zoho_401_with_its_own_code_is_an_auth_failure_and_a_revoked_grant_stops_the_run(zoho):
    import httpx

    from hub_pipelines.connectors.http import status_failure
    from hub_pipelines.zoho_books.connector import response_check

    unauthorised = httpx.Response(401, json={"code": 57, "message": "not authorized"})
    assert response_check(unauthorised) is None
    assert status_failure(unauthorised).category == "AUTH"

    zoho.simulator.seed_generated(zoho.org_id, customers=2, invoices=2)
    zoho.register(refresh_token="1000.revoked-or-mistyped-token")
    result = zoho.materialize()
    assert not result.success
    (message, metadata) = zoho.query(
        "SELECT error_message, metadata FROM hub.accounting_sync_logs WHERE status = 'failed'"
    )[0]
    assert metadata["category"] == "AUTH" and "invalid_code" in message
    assert "Re-authorise" in metadata["suggested_fix"]


def test_hub_tenants_test_reports_and_records_the_outcome(zoho, capsys):
    from hub_pipelines import cli

    assert cli.main(["tenants", "test", TENANT, "zoho_books"]) == 0
    assert "connected to" in capsys.readouterr().out
    assert zoho.scalar("SELECT last_connection_status FROM hub.accounting_configs") == "ok"

    zoho.register(refresh_token="1000.revoked-or-mistyped-token")
    assert cli.main(["tenants", "test", TENANT, "zoho_books"]) == 1
    err = capsys.readouterr().err
    assert "connection failed: AUTH" in err and "fix: Re-authorise" in err
    assert "revoked-or-mistyped" not in err
    status = zoho.scalar("SELECT last_connection_status FROM hub.accounting_configs")
    assert status.startswith("AUTH") and zoho.scalar(
        "SELECT last_connection_test IS NOT NULL FROM hub.accounting_configs"
    )
