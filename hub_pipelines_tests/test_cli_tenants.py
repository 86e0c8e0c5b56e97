import base64
import io
import json
import subprocess
import sys

import psycopg
import pytest

from hub_pipelines import cli

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
            ["tenants", "add", "acme", "zoho_books", "--config", _write(tmp_path, ZOHO_CONFIG)]
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
    assert cli.main(["tenants", "add", "globex", "zoho_books", "--config", "-"]) == 0
    assert _config_count(warehouse) == 1


def test_disable_enable_remove(warehouse, encryption_key, tmp_path, capsys):
    cli.main(["tenants", "add", "acme", "zoho_books", "--config", _write(tmp_path, ZOHO_CONFIG)])
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
        ("acme", "tally", {}, "connection_config.company_name: Field required"),
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


def test_unknown_subcommand_and_missing_argument_exit_2():
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tenants", "frobnicate"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tenants", "add", "acme", "zoho_books"])
    assert exit_info.value.code == 2


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
