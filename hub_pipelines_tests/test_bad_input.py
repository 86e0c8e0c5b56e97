"""Bad input at the command line, in the config file and in the environment (issue 7, points 9,
10 and 15): every case exits with code 2, names the field, variable or option, prints no
traceback, leaks no secret and writes nothing. One line per case.

Each case runs `hub` in a subprocess, as an operator would: a traceback, a hang or an exit code
other than 2 is what this table exists to catch, and only a real process shows all three.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from hub_pipelines.tenants import registry
from hub_pipelines.tenants.models import TenantConfigError, parse_connection_config
from hub_pipelines.vault import Vault

PASSWORD = "s3cret-db-password"  # must never be printed
GOOD = {
    "organization_id": "60012345678",
    "client_id": "1000.CLIENT",
    "client_secret": "very-secret-client-value",
    "refresh_token": "1000.very-secret-refresh",
}


def zoho(**changes: object) -> str:
    """A Zoho Books connection config with some fields changed (None removes a field)."""
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not None}, ensure_ascii=False)


def offline(**changes: object) -> str:
    """A valid config pointing at a loopback port nobody serves: a connection test, if one
    runs, contacts nothing real."""
    loopback = "http://127.0.0.1:{closed_port}"
    return zoho(api_base_url=loopback, accounts_url=loopback, **changes)


ADD = ["tenants", "add", "acme", "zoho_books", "--config", "{config}", "--no-test"]
ADD_AND_TEST = ADD[:-1]
REPLAY = ["simulate", "zoho_books", "--port", "{closed_port}", "--from", "{config}"]
UNREACHABLE = f"postgresql://hub:{PASSWORD}@127.0.0.1:{{closed_port}}/hub"

# (argv, environment changes (None unsets), config file content (sent on stdin for `--config -`),
#  fragments of stderr)
CASES = [
    # --- the config file (point 9) ---
    pytest.param(ADD, {}, zoho(client_id="Société").encode("latin-1"), ["--config", "UTF-8"], id="latin-1-file"),
    pytest.param(ADD, {}, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ["--config", "UTF-8"], id="binary-file"),
    pytest.param(ADD, {}, "[" * 100_000 + "]" * 100_000, ["--config", "nested"], id="deeply-nested-json"),
    pytest.param(ADD, {}, '{"client_id": "a", "client_id": "b"}', ["--config", "duplicate key 'client_id'"], id="duplicate-json-key"),
    pytest.param(["tenants", "add", "acme", "zoho_books", "--config", "-", "--no-test"], {}, zoho(client_id="Société").encode("latin-1"), ["--config", "UTF-8"], id="latin-1-stdin"),
    # --- the fields of the config (points 10 and 15) ---
    pytest.param(ADD, {}, lambda: zoho(client_id="x" * 30_000_000), ["connection_config.client_id", "at most"], id="30-MB-client-id"),
    pytest.param(ADD, {}, zoho(client_secret=""), ["connection_config.client_secret", "empty"], id="empty-client-secret"),
    pytest.param(ADD, {}, zoho(refresh_token="   "), ["connection_config.refresh_token", "empty"], id="blank-refresh-token"),
    pytest.param(ADD, {}, zoho(refresh_token="1000.abc\n1000.def"), ["connection_config.refresh_token", "ASCII"], id="two-line-refresh-token"),
    pytest.param(ADD, {}, zoho(organization_id="١٢٣"), ["connection_config.organization_id", "0-9"], id="arabic-indic-digits"),
    pytest.param(ADD, {}, zoho(api_base_url="https://www.zohoapis.in/books/v3"), ["connection_config.api_base_url", "host only"], id="api-url-with-path"),
    pytest.param(ADD, {}, zoho(accounts_url="https://accounts.zoho.in/oauth/v2/token"), ["connection_config.accounts_url", "host only"], id="accounts-url-with-path"),
    pytest.param(ADD, {}, zoho(access_token="1000.user-supplied"), ["connection_config.access_token", "refresh_token"], id="user-access-token"),
    pytest.param(ADD, {}, zoho(access_token_expires_at="2026-11-26T10:00:00"), ["connection_config.access_token_expires_at", "remove access_token_expires_at"], id="naive-token-expiry"),
    # --- arguments (point 9) ---
    pytest.param(["tenants", "add", "acme\n", "zoho_books", "--config", "{config}", "--no-test"], {}, zoho(), ["is not a valid slug"], id="slug-with-newline"),
    pytest.param(["errors", "list", "--limit", "-1"], {}, None, ["--limit", "1 to"], id="negative-limit"),
    pytest.param(["errors", "show", "99999999999999999999"], {}, None, ["argument id", "1 to"], id="id-beyond-bigint"),
    pytest.param(["simulate", "zoho_books", "--port", "99999"], {}, None, ["--port", "1 to 65535"], id="port-out-of-range"),
    pytest.param(["simulate", "zoho_books", "--port", "{busy_port}"], {}, None, ["--port", "in use"], id="port-in-use"),
    pytest.param(REPLAY, {}, '{"invoices": [{"total": 5}]}', ["--from", "config.json", "invoices[0] has no invoice_id"], id="replay-row-without-id"),
    pytest.param(REPLAY, {}, '{"Invoices": [{"InvoiceID": "x"}]}', ["--from", "config.json", "no Zoho Books records"], id="replay-another-systems-file"),
    pytest.param(REPLAY, {}, '{"invoices": [', ["--from", "config.json", "invalid JSON"], id="replay-truncated-file"),
    pytest.param(["simulate", "zoho_books", "--port", "{closed_port}", "--from", "{tmp}/nowhere"], {}, None, ["--from", "nowhere: no such folder"], id="replay-missing-folder"),
    # --- the environment (point 9) ---
    pytest.param(ADD_AND_TEST, {"RETRY_MAX_ATTEMPTS": "abc"}, offline(), ["RETRY_MAX_ATTEMPTS", "from 1 to"], id="retry-attempts-not-a-number"),
    pytest.param(ADD_AND_TEST, {"RETRY_MAX_DELAY": "99999999999999"}, offline(), ["RETRY_MAX_DELAY", "from 0 to"], id="retry-delay-too-large"),
    pytest.param(ADD_AND_TEST, {"ACCOUNTING_HTTP_TIMEOUT": "30s"}, offline(), ["ACCOUNTING_HTTP_TIMEOUT", "milliseconds"], id="timeout-with-unit"),
    pytest.param(["tenants", "list"], {"HUB_DATABASE_URL": UNREACHABLE}, None, ["HUB_DATABASE_URL", "127.0.0.1:{closed_port}", "hub db"], id="unreachable-database"),
    pytest.param(["tenants", "list"], {"HUB_DATABASE_URL": None, "DATABASE_HOST": "db", "DATABASE_PORT": "70000", "DATABASE_NAME": "hub", "DATABASE_USER": "hub"}, None, ["DATABASE_PORT", "1 to 65535"], id="database-port-out-of-range"),
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _fill(text: str, values: dict[str, object]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", str(value))
    return text


def _environment(changes: dict[str, str | None], values: dict[str, object]) -> dict[str, str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env["DAGSTER_HOME"] = str(values["tmp"] / "no-instance")  # never the developer's instance
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = _fill(value, values)
    return env


def _config_file(content: str | bytes | Callable[[], str] | None, values: dict) -> Path:
    path = values["tmp"] / "config.json"
    content = content() if callable(content) else content
    if isinstance(content, str):
        content = _fill(content, values).encode()
    path.write_bytes(content or b"")
    return path


def _config_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM hub.accounting_configs").fetchone()[0]


@pytest.mark.parametrize(("argv", "env", "config", "fragments"), CASES)
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(
    warehouse, encryption_key, tmp_path, busy_port, argv, env, config, fragments
):
    values = {"tmp": tmp_path, "closed_port": _free_port(), "busy_port": busy_port}
    values["config"] = _config_file(config, values)
    stdin = values["config"].read_bytes() if "-" in argv else None
    result = subprocess.run(
        [sys.executable, "-m", "hub_pipelines.cli", *(_fill(arg, values) for arg in argv)],
        input=stdin,
        env=_environment(env, values),
        capture_output=True,
        timeout=90,
    )
    err = result.stderr.decode("utf-8", "replace")
    output = result.stdout.decode("utf-8", "replace") + err
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for fragment in fragments:
        assert _fill(fragment, values) in err, err[-3000:]
    for secret in (PASSWORD, "Failing row", GOOD["client_secret"], GOOD["refresh_token"]):
        assert secret not in output
    assert _config_rows(warehouse) == 0


# --- the same rules below the command line --------------------------------------------------


def test_a_stored_token_expiry_without_a_time_zone_is_refused() -> None:
    """The hub's own token cache goes through the same model (`update_connection`): a naive
    expiry used to fail only inside a run, as an "unexpected" MAPPING error (point 15)."""
    naive = {**GOOD, "access_token": "1000.cached", "access_token_expires_at": "2026-11-26T10:00"}
    with pytest.raises(TenantConfigError, match="access_token_expires_at: has no time zone"):
        parse_connection_config("zoho_books", naive)
    aware = parse_connection_config(
        "zoho_books", {**naive, "access_token_expires_at": "2026-11-26T10:00:00+05:30"}
    )
    assert aware.access_token_expires_at.utcoffset() is not None


def test_the_bounds_accept_real_values() -> None:
    jwt_access_token = "eyJ" + "a" * 2_000 + ".b.c"  # Xero's and Intuit's are JWTs of 1-2 KB
    config = parse_connection_config(
        "zoho_books",
        {
            **GOOD,
            "refresh_token": "  1000.pasted-with-a-newline\n",
            "access_token": jwt_access_token,
            "access_token_expires_at": "2026-11-26T04:30:00Z",
            "api_base_url": "http://127.0.0.1:8091/",
            "accounts_url": "https://accounts.zoho.in",
        },
    )
    assert config.refresh_token.get_secret_value() == "1000.pasted-with-a-newline"
    assert config.access_token.get_secret_value() == jwt_access_token
    xero = {**GOOD, "xero_tenant_id": "4a5b1c2d-0000-4000-8000-1234567890ab"}
    del xero["organization_id"]
    assert parse_connection_config("xero", xero).xero_tenant_id.startswith("4a5b")
    busy = {"username": "u", "password": " pass phrase ", "company_code": "Comp0001"}
    assert parse_connection_config("busy", busy).password.get_secret_value() == " pass phrase "


def test_a_row_the_database_refuses_is_reported_without_the_row(
    warehouse, encryption_key, monkeypatch
) -> None:
    """Defence in depth behind the slug check: PostgreSQL's message repeats the failing row,
    ciphertext included, so only the constraint's name may reach the operator."""
    monkeypatch.setattr(registry, "validate_tenant_slug", lambda tenant: tenant)  # as before
    with pytest.raises(TenantConfigError) as raised:
        registry.TenantRegistry(Vault.from_env()).add("acme\n", "zoho_books", GOOD)
    assert "constraint accounting_configs_tenant_id_check" in str(raised.value)
    assert "Failing row" not in str(raised.value) and "ciphertext" not in str(raised.value)
    assert _config_rows(warehouse) == 0
