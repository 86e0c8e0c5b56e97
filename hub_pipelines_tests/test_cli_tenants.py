import base64
import io
import json
import re
import socket
import subprocess
import sys

import dagster as dg
import psycopg
import pytest

from hub_pipelines import cli
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import Vault
from hub_pipelines.zoho_books.simulator import ZohoBooksSimulator

ZOHO_CONFIG = {
    "connection_config": {
        "region": "in",
        "organization_id": "60012345678",
        "client_id": "1000.CLIENT",
        "client_secret": "very-secret-client-value",
        "refresh_token": "1000.very-secret-refresh",
    },
    "sync_config": {"entities": ["customers", "invoices"], "invoices_frequency": "hourly"},
}
SECRETS = ("very-secret-client-value", "1000.very-secret-refresh")


@pytest.fixture(autouse=True)
def no_dagster_instance(tmp_path, monkeypatch):
    """`hub tenants add` updates the partitions of the Dagster instance in DAGSTER_HOME (default
    $HUB_HOME/dagster): never the developer's own. Tests that want one create this folder."""
    home = tmp_path / "dagster-home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _write(tmp_path, document, name="config.json"):
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def _config_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM hub.accounting_configs").fetchone()[0]


def test_add_list_show_never_print_secrets(warehouse, encryption_key, tmp_path, capsys):
    assert (
        cli.main(
            [
                "tenants",
                "add",
                "acme",
                "zoho_books",
                "--config",
                _write(tmp_path, ZOHO_CONFIG),
                "--no-test",
            ]
        )
        == 0
    )
    assert cli.main(["tenants", "list"]) == 0
    assert cli.main(["tenants", "show", "acme", "zoho_books"]) == 0
    out = capsys.readouterr().out
    assert "registered acme/zoho_books" in out
    assert "acme" in out and "customers,invoices" in out
    assert '"organization_id": "60012345678"' in out
    assert '"invoices_frequency": "hourly"' in out
    assert not any(secret in out for secret in SECRETS)
    assert "**********" in out


def test_add_reads_stdin(warehouse, encryption_key, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(ZOHO_CONFIG["connection_config"])))
    assert cli.main(["tenants", "add", "globex", "zoho_books", "--config", "-", "--no-test"]) == 0
    assert _config_count(warehouse) == 1


def test_disable_enable_remove(warehouse, encryption_key, tmp_path, capsys):
    config = _write(tmp_path, ZOHO_CONFIG)
    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", config, "--no-test"]) == 0
    assert cli.main(["tenants", "disable", "acme", "zoho_books"]) == 0
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("SELECT is_enabled FROM hub.accounting_configs").fetchone()[0] is False
    assert cli.main(["tenants", "enable", "acme", "zoho_books"]) == 0
    assert cli.main(["tenants", "remove", "acme", "zoho_books"]) == 0
    with psycopg.connect(warehouse) as conn:
        row = conn.execute("SELECT is_enabled, deleted_at FROM hub.accounting_configs").fetchone()
    assert row[0] is False and row[1] is not None  # soft delete keeps the row
    capsys.readouterr()
    assert cli.main(["tenants", "show", "acme", "zoho_books"]) == 2
    assert "no config for tenant 'acme'" in capsys.readouterr().err


def _has_partition(home, system: str, tenant: str) -> bool:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.has_dynamic_partition(f"{system}_tenants", tenant)


def test_add_makes_the_partition_exist_at_once_and_remove_takes_it_away(
    warehouse, encryption_key, tmp_path, no_dagster_instance, capsys
):
    """`dagster asset materialize --partition acme` right after `hub tenants add` used to fail
    with a subset error until the tenant sensor's next tick (issue 7)."""
    home = no_dagster_instance
    home.mkdir()
    add = ["tenants", "add", "acme", "zoho_books", "--config", _write(tmp_path, ZOHO_CONFIG)]
    assert cli.main([*add, "--no-test"]) == 0
    assert "partition 'acme' of zoho_books_tenants added" in capsys.readouterr().out
    assert _has_partition(home, "zoho_books", "acme")
    assert not _has_partition(home, "busy", "acme")  # one partition set per system

    assert cli.main(["tenants", "disable", "acme", "zoho_books"]) == 0  # paused: it stays
    assert _has_partition(home, "zoho_books", "acme")
    assert cli.main(["tenants", "remove", "acme", "zoho_books"]) == 0
    assert "partition 'acme' of zoho_books_tenants removed" in capsys.readouterr().out
    assert not _has_partition(home, "zoho_books", "acme")


def test_without_a_dagster_instance_add_says_the_sensor_will_add_the_partition(
    warehouse, encryption_key, tmp_path, no_dagster_instance, capsys
):
    config = _write(tmp_path, ZOHO_CONFIG)
    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", config, "--no-test"]) == 0
    out = capsys.readouterr().out
    assert f"no Dagster instance at {no_dagster_instance}" in out
    assert "tenant_registry_sensor" in out
    assert not no_dagster_instance.exists()  # registering creates no instance
    assert _config_count(warehouse) == 1


def test_the_default_instance_is_hub_homes(
    warehouse, encryption_key, tmp_path, monkeypatch, capsys
):
    """Without DAGSTER_HOME, the instance of `hub dev`, `hub sync` and `hub demo`."""
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "hub"))
    (tmp_path / "hub" / "dagster").mkdir(parents=True)
    xero = {
        "xero_tenant_id": "4a5b1c2d-0000-4000-8000-1234567890ab",
        "client_id": "C" * 32,
        "client_secret": "s",
        "refresh_token": "r",
    }
    add = ["tenants", "add", "acme", "xero", "--no-test", "--config", _write(tmp_path, xero)]
    assert cli.main(add) == 0
    assert _has_partition(tmp_path / "hub" / "dagster", "xero", "acme")


@pytest.mark.parametrize(
    ("tenant", "system", "document", "message"),
    [
        ("acme", "sage", ZOHO_CONFIG, "unknown system 'sage'"),
        ("Acme Corp", "zoho_books", ZOHO_CONFIG, "tenant 'Acme Corp' is not a valid slug"),
        ("_acme", "zoho_books", ZOHO_CONFIG, "is not a valid slug"),
        ("a" * 64, "zoho_books", ZOHO_CONFIG, "is not a valid slug"),
        (
            "acme",
            "zoho_books",
            {
                "connection_config": {
                    k: v
                    for k, v in ZOHO_CONFIG["connection_config"].items()
                    if k != "refresh_token"
                }
            },
            "connection_config.refresh_token: Field required",
        ),
        (
            "acme",
            "zoho_books",
            {"connection_config": {**ZOHO_CONFIG["connection_config"], "region": "mars"}},
            "connection_config.region",
        ),
        (
            "acme",
            "zoho_books",
            {**ZOHO_CONFIG, "sync_config": {"entities": ["payments"]}},
            "sync_config.entities.0",
        ),
        ("acme", "tally", {}, "connection_config.company_name: required for a live connection"),
        (
            "acme",
            "busy",
            {"username": "u", "password": "p", "company_code": "C", "port": 70000},
            "connection_config.port",
        ),
        (
            "acme",
            "quickbooks",
            {"client_id": "c", "client_secret": "s", "refresh_token": "r"},
            "connection_config.realm_id",
        ),
        (
            "acme",
            "xero",
            {
                "xero_tenant_id": "nope",
                "client_id": "c",
                "client_secret": "s",
                "refresh_token": "r",
            },
            "connection_config.xero_tenant_id",
        ),
        ("acme", "zoho_books", "{not json", "--config: invalid JSON at line 1"),
        ("acme", "zoho_books", "[1, 2]", "the config must be a JSON object"),
    ],
)
def test_bad_input_exits_2_names_the_field_and_writes_nothing(
    warehouse, encryption_key, tmp_path, capsys, tenant, system, document, message
):
    code = cli.main(["tenants", "add", tenant, system, "--config", _write(tmp_path, document)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert _config_count(warehouse) == 0


def test_missing_config_file_is_reported(warehouse, encryption_key, capsys):
    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", "/nonexistent.json"]) == 2
    assert "--config: cannot read /nonexistent.json" in capsys.readouterr().err


def test_missing_encryption_key_names_the_variable(warehouse, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("CREDENTIAL_ENCRYPTION_KEY", raising=False)
    monkeypatch.setenv("HUB_HOME", str(tmp_path))  # no hub.env there either
    assert (
        cli.main(
            ["tenants", "add", "acme", "zoho_books", "--config", _write(tmp_path, ZOHO_CONFIG)]
        )
        == 2
    )
    assert "CREDENTIAL_ENCRYPTION_KEY is not set" in capsys.readouterr().err
    assert _config_count(warehouse) == 0


def test_unknown_subcommand_and_missing_argument_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tenants", "frobnicate"])
    assert exit_info.value.code == 2
    assert cli.main(["tenants", "add", "acme", "zoho_books"]) == 2
    assert "--config FILE is required" in capsys.readouterr().err


def test_bad_database_url_names_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("HUB_DATABASE_URL", "mysql://x@y/z")
    from hub_pipelines.warehouse import db

    db.database_url.cache_clear()
    try:
        assert cli.main(["db", "status"]) == 2
    finally:
        db.database_url.cache_clear()
    assert "HUB_DATABASE_URL must point at PostgreSQL" in capsys.readouterr().err


def test_console_script_is_installed_with_help_for_every_group():
    hub = [sys.executable, "-m", "hub_pipelines.cli"]
    out = subprocess.run([*hub, "--help"], capture_output=True, text=True, check=True).stdout
    for group in ("db", "keys", "tenants", "demo"):
        assert group in out
    keys = subprocess.run([*hub, "keys", "generate"], capture_output=True, text=True, check=True)
    assert len(base64.b64decode(keys.stdout.strip())) == 32


# --- `hub tenants add` tests the connection ----------------------------------------------------

SIM_ORG = "60098765432"
SIM_ORG_NAME = "Acme Traders Pvt Ltd"
BAD_REFRESH = "1000.revoked-or-mistyped-refresh"


@pytest.fixture
def zoho_server(warehouse, encryption_key, monkeypatch):
    """A Zoho Books simulator over loopback HTTP with one organisation."""
    monkeypatch.setenv("RETRY_INITIAL_DELAY", "5")
    monkeypatch.setenv("RETRY_MAX_DELAY", "50")
    simulator = ZohoBooksSimulator(requests_per_minute=100_000, daily_limit=10**8)
    simulator.add_organisation(SIM_ORG, name=SIM_ORG_NAME)
    with LoopbackServer(simulator.app) as server:
        yield simulator, server


def _sim_config(simulator, base_url: str, **overrides) -> dict:
    return {
        "connection_config": {
            "organization_id": SIM_ORG,
            "client_id": simulator.client_id,
            "client_secret": simulator.client_secret,
            "refresh_token": simulator.refresh_token,
            "api_base_url": base_url,
            "accounts_url": base_url,
            "requests_per_minute": 100_000,
            **overrides,
        }
    }


def _connection_columns(url: str):
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT last_connection_test, last_connection_status FROM hub.accounting_configs "
            "WHERE deleted_at IS NULL"
        ).fetchone()


def _list_line(out: str, tenant: str) -> str:
    (line,) = [line for line in out.splitlines() if line.startswith(f"{tenant} ")]
    return line


def test_add_tests_the_connection_and_list_and_show_report_it(
    warehouse, zoho_server, tmp_path, capsys
):
    simulator, server = zoho_server
    config = _write(tmp_path, _sim_config(simulator, server.url))
    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "registered acme/zoho_books (config id" in out
    assert f"acme/zoho_books: connected to {SIM_ORG_NAME!r} (API v3)" in out
    tested_at, status = _connection_columns(warehouse)
    assert status == "ok" and tested_at is not None
    # The test ran with the stored config: the access token it obtained was sealed into the row.
    stored = TenantRegistry(Vault.from_env()).get("acme", "zoho_books")
    assert stored.connection.access_token is not None
    secrets = (
        simulator.client_secret,
        simulator.refresh_token,
        stored.connection.access_token.get_secret_value(),
    )

    assert cli.main(["tenants", "list"]) == 0
    listing = capsys.readouterr().out
    assert "last test" in listing.splitlines()[0]
    assert f" ok {tested_at:%Y-%m-%d %H:%M} " in _list_line(listing, "acme")

    assert cli.main(["tenants", "show", "acme", "zoho_books"]) == 0
    shown_text = capsys.readouterr().out
    shown = json.loads(shown_text)
    assert shown["last_connection_status"] == "ok"
    assert shown["last_connection_test"] == str(tested_at)
    assert not any(secret in out + listing + shown_text for secret in secrets)


def test_add_with_rejected_credentials_keeps_the_config_and_exits_1(
    warehouse, zoho_server, tmp_path, capsys
):
    simulator, server = zoho_server
    config = _write(tmp_path, _sim_config(simulator, server.url, refresh_token=BAD_REFRESH))
    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", config]) == 1
    captured = capsys.readouterr()
    assert "registered acme/zoho_books" in captured.out
    assert "the config is registered, but the connection failed: AUTH" in captured.err
    assert "fix: Re-authorise" in captured.err
    assert "`hub tenants test acme zoho_books`" in captured.err
    assert "docs/connectors/zoho_books.md" in captured.err
    assert BAD_REFRESH not in captured.out + captured.err
    assert simulator.client_secret not in captured.out + captured.err
    assert _config_count(warehouse) == 1  # registered: fix it and re-run the test
    tested_at, status = _connection_columns(warehouse)
    assert tested_at is not None and status.startswith("AUTH: ")

    assert cli.main(["tenants", "list"]) == 0
    assert f" failed {tested_at:%Y-%m-%d %H:%M} " in _list_line(capsys.readouterr().out, "acme")
    assert cli.main(["tenants", "show", "acme", "zoho_books"]) == 0
    shown = capsys.readouterr().out
    assert json.loads(shown)["last_connection_status"].startswith("AUTH: ")
    assert BAD_REFRESH not in shown

    # The suggested way out works: register the right token (the add tests it again) ...
    good = _write(tmp_path, _sim_config(simulator, server.url), name="good.json")
    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", good]) == 0
    assert "connected to" in capsys.readouterr().out
    assert _connection_columns(warehouse)[1] == "ok"
    # ... and `hub tenants test` agrees.
    assert cli.main(["tenants", "test", "acme", "zoho_books"]) == 0


def test_add_for_an_organisation_the_login_cannot_see_says_how_to_fix_it(
    warehouse, zoho_server, tmp_path, capsys
):
    simulator, server = zoho_server
    config = _write(tmp_path, _sim_config(simulator, server.url, organization_id="60011111111"))
    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", config]) == 1
    err = capsys.readouterr().err
    assert "connection failed: CONFIG: organization_id 60011111111 is not among" in err
    assert "fix: Fix the tenant's connection config" in err
    assert _connection_columns(warehouse)[1].startswith("CONFIG: organization_id 60011111111")


def test_add_to_an_unreachable_system_fails_unless_no_test(
    warehouse, encryption_key, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "1")
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    simulator = ZohoBooksSimulator()  # only for its credentials; it is not served
    config = _write(tmp_path, _sim_config(simulator, closed))

    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", config, "--no-test"]) == 0
    out = capsys.readouterr().out
    assert "registered acme/zoho_books" in out
    assert (
        "connection not tested (--no-test)" in out and "`hub tenants test acme zoho_books`" in out
    )
    assert _connection_columns(warehouse) == (None, None)
    assert cli.main(["tenants", "list"]) == 0
    assert re.search(r" never +never +0$", _list_line(capsys.readouterr().out, "acme"))

    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", config]) == 1
    err = capsys.readouterr().err
    assert "the config is registered, but the connection failed: NETWORK" in err
    assert _connection_columns(warehouse)[1].startswith("NETWORK: ")
    assert _config_count(warehouse) == 1


def test_replacing_a_config_forgets_the_old_test(warehouse, zoho_server, tmp_path, capsys):
    simulator, server = zoho_server
    config = _write(tmp_path, _sim_config(simulator, server.url))
    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", config]) == 0
    assert _connection_columns(warehouse)[1] == "ok"
    assert cli.main(["tenants", "add", "acme", "zoho_books", "--config", config, "--no-test"]) == 0
    assert _connection_columns(warehouse) == (None, None)  # untested credentials are not "ok"


def test_a_file_drop_tenant_registers_without_a_connection_test(
    warehouse, encryption_key, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("HUB_LANDING_DIR", str(tmp_path / "landing"))
    assert cli.main(["tenants", "add", "acme", "tally", "--file-drop"]) == 0
    out = capsys.readouterr().out
    assert "registered acme/tally" in out and "file drop" in out
    assert _connection_columns(warehouse) == (None, None)  # nothing to test: no connection
    assert cli.main(["tenants", "show", "acme", "tally"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["connection_config"]["file_drop"] is True
    assert shown["sync_config"]["invoices_frequency"] == "manual"  # no schedule runs it
