"""Per-tenant analyst access (issue 13) on a real PostgreSQL: a role made by `hub analysts grant`
sees its tenants' rows and no other in every table and view of schema `accounting` (enumerated
from the catalog, so a new object that does not filter fails here), writes nothing, cannot read
the platform tables or the unfiltered store, and `revoke` takes all of it away.

The last test starts its own embedded server listening on TCP (HUB_EMBEDDED_LISTEN): passwords
are required there, and the URL `grant` prints works, also when the hub's database user is not a
superuser but has CREATEROLE, as on a managed PostgreSQL.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from datetime import date, timedelta

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from hub_pipelines import cli
from hub_pipelines.warehouse import analyst_access, db, migrations
from hub_pipelines.warehouse.passwords import scram_verifier
from hub_pipelines_tests.conftest import create_database, drop_database

TENANTS = ("acme", "globex", "initech")  # initech: granted to no one
RELATIONS = """
    SELECT format('%%I.%%I', n.nspname, c.relname), c.relkind::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    ORDER BY 1
"""


# --- data and roles ---------------------------------------------------------------------------


def _seed(url: str) -> None:
    """Each tenant: configs, customers, invoices (open, paid, void) with lines, sync logs and
    errors, as the loader and the sync log would write them; then the analyst store refreshed."""
    today = date.today()
    with psycopg.connect(url) as conn:
        for number, tenant in enumerate(TENANTS, start=1):
            for system in ("zoho_books", "tally"):
                conn.execute(
                    "INSERT INTO hub.accounting_configs (tenant_id, system, connection_config) "
                    "VALUES (%s, %s, 'not-a-real-envelope')",
                    (tenant, system),
                )
                log_id = _sync_log(conn, tenant, system)
                conn.execute(
                    "INSERT INTO hub.accounting_sync_errors (sync_log_id, tenant_id, system, "
                    "entity_type, category, error_message) VALUES (%s, %s, %s, 'invoices', "
                    "'SOURCE_DATA', 'bad record')",
                    (log_id, tenant, system),
                )
                _customer_and_invoices(conn, tenant, system, number, today)
        _refresh_store(conn)


def _sync_log(conn: psycopg.Connection, tenant: str, system: str) -> int:
    for status in ("success", "failed"):
        (log_id,) = conn.execute(
            "INSERT INTO hub.accounting_sync_logs (tenant_id, system, entity_type, status, "
            "started_at, completed_at, records_fetched) "
            "VALUES (%s, %s, 'invoices', %s, now() - interval '2 hours', now() - interval "
            "'1 hour', 3) RETURNING id",
            (tenant, system, status),
        ).fetchone()
    return log_id


def _customer_and_invoices(conn, tenant: str, system: str, number: int, today: date) -> None:
    gstin = f"29ABCDE{number:04d}F1Z5"
    conn.execute(
        "INSERT INTO accounting.customers (tenant_id, system, external_id, name, email, phone, "
        "gstin, pan, gst_treatment, state_code, place_of_supply, currency, outstanding_balance, "
        "raw) VALUES (%s, %s, 'c-1', %s, %s, '+91 98450 0000' || %s, %s, %s, "
        "'registered_regular', '29', '29', 'INR', 1180.00, '{}')",
        (tenant, system, f"{tenant} customer", f"ap@{tenant}.example", number, gstin, gstin[2:12]),
    )
    for external_id, status, balance, days_ago in [
        ("i-open", "open", "1180.00", 95),
        ("i-paid", "paid", "0.00", 40),
        ("i-part", "partially_paid", "500.00", 10),
        ("i-void", "void", "0.00", 5),
    ]:
        issued = today - timedelta(days=days_ago)
        conn.execute(
            "INSERT INTO accounting.invoices (tenant_id, system, external_id, invoice_number, "
            "customer_external_id, customer_name, issue_date, due_date, status, currency, "
            "subtotal, taxable_amount, cgst, sgst, tax_total, total, balance_due, "
            "place_of_supply, gst_treatment, raw) VALUES (%s, %s, %s, %s, 'c-1', %s, %s, %s, %s, "
            "'INR', 1000.00, 1000.00, 90.00, 90.00, 180.00, 1180.00, %s, '29', "
            "'registered_regular', '{}')",
            (tenant, system, external_id, f"INV-{external_id}", f"{tenant} customer", issued,
             issued + timedelta(days=15), status, balance),
        )  # fmt: skip
        conn.execute(
            "INSERT INTO accounting.invoice_lines (tenant_id, system, invoice_external_id, "
            "line_number, item_name, hsn_sac, quantity, rate, taxable_amount, tax_rate, cgst, "
            "sgst, line_total, raw) VALUES (%s, %s, %s, 1, 'Widget', '8471', 10, 100.00, "
            "1000.00, 18, 90.00, 90.00, 1180.00, '{}')",
            (tenant, system, external_id),
        )


def _refresh_store(conn: psycopg.Connection) -> None:
    """Every materialized view of the analyst store, oldest first (a later one may read an
    earlier one)."""
    views = conn.execute(
        "SELECT format('%I.%I', schemaname, matviewname) FROM pg_matviews "
        "WHERE schemaname = 'analytics_store' ORDER BY (schemaname || '.' || matviewname)"
        "::regclass::oid"
    ).fetchall()
    for (view,) in views:
        conn.execute(f"REFRESH MATERIALIZED VIEW {view}")


@pytest.fixture
def seeded(warehouse):
    _seed(warehouse)
    return warehouse


@pytest.fixture
def made_roles(pg_server_url):
    """Names of the roles a test makes; dropped afterwards, whatever the test did (roles belong
    to the server, which outlives the test's database)."""
    names: list[str] = []
    yield names
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def analyst(seeded, made_roles):
    """grant(tenants...) -> (role, URL): a new analyst role of the seeded warehouse."""

    def make(*tenants: str) -> tuple[str, str]:
        role = f"analyst_{'_'.join(tenants)}_{uuid.uuid4().hex[:8]}"
        made_roles.append(role)
        granted = analyst_access.grant(role, tenants, url=seeded)
        return role, granted.url

    return make


def _relations(url: str, *schemas: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(RELATIONS, (list(schemas),)).fetchall()


def _rows(conn: psycopg.Connection, relation: str, tenants: tuple[str, ...] | None) -> list:
    """The relation's rows as text, sorted; only `tenants`' when given. Interval columns are
    left out: they are ages computed when read (sync_health.freshness), different each time."""
    columns = conn.execute(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "AND atttypid <> 'interval'::regtype",
        (relation,),
    ).fetchone()[0]
    where = "" if tenants is None else " WHERE tenant_id = ANY(%s)"
    query = f"SELECT row({columns})::text FROM {relation}{where} ORDER BY 1"  # noqa: S608
    return [row for (row,) in conn.execute(query, () if tenants is None else (list(tenants),))]


def _has_tenant_column(conn: psycopg.Connection, relation: str) -> bool:
    found = conn.execute(
        "SELECT FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'tenant_id' "
        "AND NOT attisdropped",
        (relation,),
    ).fetchone()
    return found is not None


# --- what an analyst sees ---------------------------------------------------------------------


def test_each_role_sees_exactly_its_tenants_rows_in_every_table_and_view(seeded, analyst):
    roles = {tenants: analyst(*tenants) for tenants in [("acme",), ("globex",), ("acme", "globex")]}
    relations = _relations(seeded, "accounting")
    names = {name for name, _ in relations}
    assert {"accounting.customers", "accounting.invoices", "accounting.invoice_lines"} <= names

    with psycopg.connect(seeded) as hub:
        for relation, kind in relations:
            assert kind != "m", (
                f"{relation} is a materialized view in schema accounting: it cannot filter rows "
                "by tenant; keep it in analytics_store behind a security_barrier view"
            )
            assert _has_tenant_column(hub, relation), (
                f"{relation} has no tenant_id column: nothing shows it is filtered by tenant"
            )
            tenants_seen = f"SELECT array_agg(DISTINCT tenant_id::text) FROM {relation}"  # noqa: S608
            seen_by_hub = sorted(hub.execute(tenants_seen).fetchone()[0])
            assert seen_by_hub == sorted(TENANTS), f"the hub's own role, in {relation}"
            for tenants, (role, url) in roles.items():
                expected = _rows(hub, relation, tenants)
                assert expected, f"{relation}: no rows of {tenants} to compare with"
                with psycopg.connect(url) as conn:
                    assert conn.execute("SELECT current_user").fetchone() == (role,)
                    seen = _rows(conn, relation, None)
                assert seen == expected, f"{role} ({', '.join(tenants)}) in {relation}"


def test_a_leaky_function_in_the_query_sees_no_other_tenants_row(analyst, seeded):
    """RLS quals and security_barrier filters run before the reader's own (not leakproof)
    functions: a function that reports every value it is shown reports only acme's."""
    _, url = analyst("acme")
    shown: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.add_notice_handler(lambda notice: shown.append(notice.message_primary))
        conn.execute(
            "CREATE FUNCTION pg_temp.peek(tenant text) RETURNS boolean LANGUAGE plpgsql "
            "COST 0.0001 AS $$ BEGIN RAISE NOTICE '%', tenant; RETURN true; END $$"
        )
        for relation, _ in _relations(seeded, "accounting"):
            conn.execute(f"SELECT * FROM {relation} WHERE pg_temp.peek(tenant_id::text)")  # noqa: S608
        conn.execute("DROP FUNCTION pg_temp.peek")  # else the role cannot be dropped until it ends
    assert shown and set(shown) == {"acme"}


def test_analysts_write_nothing_anywhere(analyst, seeded):
    role, url = analyst("acme")
    with psycopg.connect(seeded) as hub:
        writable = hub.execute(
            "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%%' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND has_table_privilege(%s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, "
            "TRIGGER')",
            (role,),
        ).fetchall()
        creatable = hub.execute(
            "SELECT nspname FROM pg_namespace WHERE has_schema_privilege(%s, oid, 'CREATE')",
            (role,),
        ).fetchall()
    assert writable == [] and creatable == []

    statements = [
        "INSERT INTO accounting.customers (tenant_id, system, external_id, name, raw) "
        "VALUES ('acme', 'tally', 'x', 'x', '{}')",
        "UPDATE accounting.invoices SET total = 0 WHERE tenant_id = 'acme'",
        "DELETE FROM accounting.invoice_lines WHERE tenant_id = 'acme'",
        "TRUNCATE accounting.customers",
        "CREATE TABLE accounting.mine (x int)",
        "CREATE TABLE public.mine (x int)",
        "REFRESH MATERIALIZED VIEW analytics_store.gst_sales_summary",
    ]
    for statement in statements:
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_platform_tables_and_the_unfiltered_store_are_out_of_reach(analyst, seeded):
    _, url = analyst("acme")
    private = _relations(seeded, "hub", "analytics_store")
    names = {name for name, _ in private}
    assert {"hub.accounting_configs", "hub.analyst_grants", "hub.analyst_roles"} <= names
    assert any(name.startswith("analytics_store.") for name in names)
    for relation, _ in private:
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT * FROM {relation} LIMIT 1")  # noqa: S608
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO hub.analyst_grants (role_name, tenant_id) VALUES ('x', 'y')")


def test_revoke_drops_the_role_and_an_open_session_is_refused_at_once(analyst, seeded, capsys):
    role, url = analyst("acme")
    session = psycopg.connect(url, autocommit=True)
    assert session.execute("SELECT count(*) FROM accounting.invoices").fetchone()[0] > 0

    assert cli.main(["analysts", "revoke", role]) == 0
    assert f"analyst role {role} dropped; it read tenants acme" in capsys.readouterr().out

    with psycopg.connect(seeded) as hub:
        assert hub.execute("SELECT FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None
        assert hub.execute(
            "SELECT count(*) FROM hub.analyst_grants WHERE role_name = %s", (role,)
        ).fetchone() == (0,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5)
    with session, pytest.raises(psycopg.errors.InsufficientPrivilege):
        session.execute("SELECT count(*) FROM accounting.invoices")  # membership went with it


# --- the command ------------------------------------------------------------------------------


def test_grant_prints_a_working_url_last_and_the_password_nowhere_else(seeded, made_roles, capsys):
    role = f"cli_{uuid.uuid4().hex[:8]}"
    made_roles.append(role)
    assert cli.main(["analysts", "grant", role, "--tenant", "acme"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    url = out[-1]
    password = make_url(url).password
    assert password and len(password) >= 32
    assert not any(password in line for line in out[:-1])
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role,)
        tenants = conn.execute("SELECT DISTINCT tenant_id FROM accounting.invoices").fetchall()
    assert tenants == [("acme",)]

    # Granting again states the whole access (globex replaces acme) with a new password.
    assert cli.main(["analysts", "grant", role, "--tenant", "globex"]) == 0
    again = capsys.readouterr().out.strip().splitlines()
    assert f"analyst role {role} updated: it reads tenants globex (before: acme)" in again
    assert make_url(again[-1]).password != password
    with psycopg.connect(again[-1]) as conn:
        tenants = conn.execute("SELECT DISTINCT tenant_id FROM accounting.invoices").fetchall()
    assert tenants == [("globex",)]

    assert cli.main(["analysts", "list"]) == 0
    listing = capsys.readouterr().out
    assert role in listing and "globex" in listing
    assert password not in listing and make_url(again[-1]).password not in listing


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["Robert';DROP", "--tenant", "acme"], 'role name "Robert\';DROP" is not allowed'),
        (["pg_reader", "--tenant", "acme"], "role name 'pg_reader' is reserved"),
        (["hub_analyst", "--tenant", "acme"], "role name 'hub_analyst' is reserved"),
        (["x" * 64, "--tenant", "acme"], "is not allowed: use 1 to 63 lowercase letters"),
        (["ok_role", "--tenant", "nosuch"], "unknown tenant 'nosuch': not in hub.accounting_"),
        (["ok_role", "--tenant", "Acme Inc"], "tenant 'Acme Inc' is not a tenant slug"),
    ],
)
def test_bad_input_is_refused_naming_the_value_and_the_fix(seeded, arguments, message, capsys):
    assert cli.main(["analysts", "grant", *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error
    with psycopg.connect(seeded) as conn:
        assert conn.execute("SELECT count(*) FROM hub.analyst_roles").fetchone() == (0,)
        made = conn.execute("SELECT FROM pg_roles WHERE rolname = %s", (arguments[0],))
        assert made.fetchone() is None or arguments[0] == "hub_analyst"  # the group itself


def test_roles_the_hub_did_not_make_are_left_alone(seeded, made_roles, capsys):
    role = f"by_hand_{uuid.uuid4().hex[:8]}"
    made_roles.append(role)
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    assert cli.main(["analysts", "grant", role, "--tenant", "acme"]) == 2
    assert "already exists and was not created by `hub analysts grant`" in capsys.readouterr().err
    assert cli.main(["analysts", "revoke", role]) == 2
    assert "the hub leaves it alone" in capsys.readouterr().err
    with psycopg.connect(seeded) as conn:
        assert conn.execute("SELECT FROM pg_roles WHERE rolname = %s", (role,)).fetchone() == ()
        assert not conn.execute(
            "SELECT pg_has_role(%s, 'hub_analyst', 'MEMBER')", (role,)
        ).fetchone()[0]


# --- what gets granted ------------------------------------------------------------------------


@pytest.fixture
def fresh_warehouse(pg_server_url):
    url = create_database(pg_server_url)
    migrations.upgrade(url)
    yield url
    drop_database(pg_server_url, url)


def test_new_objects_are_granted_only_when_they_filter_by_tenant(fresh_warehouse, made_roles):
    """What hub.grant_analyst_reads() decides for objects a later migration might add: a plain
    view, a security_barrier view that filters nothing and a materialized view stay unreadable;
    a security_invoker view and a new table (given row-level security) are readable, filtered."""
    _seed(fresh_warehouse)
    with psycopg.connect(fresh_warehouse) as conn:
        conn.execute("CREATE VIEW accounting.plain AS SELECT * FROM accounting.invoices")
        conn.execute(
            "CREATE VIEW accounting.barrier_unfiltered WITH (security_barrier) AS "
            "SELECT * FROM accounting.invoices"
        )
        conn.execute(
            "CREATE MATERIALIZED VIEW accounting.stored AS SELECT * FROM accounting.invoices"
        )
        conn.execute(
            "CREATE VIEW accounting.invoker WITH (security_invoker) AS "
            "SELECT * FROM accounting.invoices"
        )
        conn.execute(
            "CREATE TABLE accounting.notes (tenant_id text, note text); "
            "INSERT INTO accounting.notes VALUES ('acme', 'a'), ('globex', 'g')"
        )
        decided = dict(conn.execute("SELECT * FROM hub.grant_analyst_reads()").fetchall())
    assert decided["accounting.plain"].startswith("none")
    assert decided["accounting.barrier_unfiltered"].startswith("none")
    assert decided["accounting.stored"].startswith("none")
    assert decided["accounting.invoker"].startswith("SELECT")
    assert decided["accounting.notes"].startswith("SELECT")

    role = f"fresh_{uuid.uuid4().hex[:8]}"
    made_roles.append(role)
    url = analyst_access.grant(role, ["acme"], url=fresh_warehouse).url
    for relation in ("plain", "barrier_unfiltered", "stored"):
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT * FROM accounting.{relation}")  # noqa: S608
    with psycopg.connect(url) as conn:
        for relation in ("invoker", "notes"):
            tenants = conn.execute(f"SELECT DISTINCT tenant_id FROM accounting.{relation}")  # noqa: S608
            assert tenants.fetchall() == [("acme",)]
    # Running it again changes nothing (every migration that adds objects runs it).
    with psycopg.connect(fresh_warehouse) as conn:
        assert dict(conn.execute("SELECT * FROM hub.grant_analyst_reads()").fetchall()) == decided


# --- the embedded server on TCP ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _hub(env: dict[str, str], *arguments: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "hub_pipelines.cli", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def _refused(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        return "password" in str(exc)
    return False


def _add_tenant(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO hub.accounting_configs (tenant_id, system, connection_config) "
            "VALUES ('acme', 'tally', 'x'), ('globex', 'tally', 'x')"
        )
        conn.execute(
            "INSERT INTO accounting.customers (tenant_id, system, external_id, name, raw) "
            "VALUES ('acme', 'tally', '1', 'A', '{}'), ('globex', 'tally', '1', 'G', '{}')"
        )


@pytest.fixture
def tcp_hub(tmp_path):
    """A hub whose embedded server listens on 127.0.0.1 besides its socket."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_DATABASE", "DATABASE_"))}
    env |= {"HUB_HOME": str(tmp_path), "HUB_EMBEDDED_LISTEN": f"127.0.0.1:{port}"}
    env.pop("HUB_EMBEDDED_PASSWORD", None)
    _hub(env, "db", "start")
    yield env, port
    _hub(env, "db", "stop")


def test_the_embedded_server_wants_a_password_on_tcp_and_analyst_urls_work(tcp_hub, tmp_path):
    env, port = tcp_hub
    tcp = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    superuser_password = (tmp_path / "hub.env").read_text().split("HUB_EMBEDDED_PASSWORD=")[1]
    superuser_password = superuser_password.split()[0]
    assert _refused(tcp)
    assert _refused(tcp.replace("postgres@", "postgres:wrong@", 1))
    psycopg.connect(tcp.replace("postgres@", f"postgres:{superuser_password}@", 1)).close()
    (socket_url,) = _hub(env, "db", "url")
    with psycopg.connect(socket_url, autocommit=True) as conn:  # the socket: no password
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        # A managed PostgreSQL's situation: the hub's user has CREATEROLE, not superuser, and
        # is the first on this server to run the migrations (it creates hub_analyst itself).
        owner_password = "owner-" + uuid.uuid4().hex
        conn.execute(
            sql.SQL("CREATE ROLE hub_owner LOGIN CREATEROLE PASSWORD {}").format(
                sql.Literal(scram_verifier(conn, "hub_owner", owner_password))
            )
        )
        conn.execute("CREATE DATABASE hubdb OWNER hub_owner")

    managed = env | {
        "HUB_DATABASE_URL": f"postgresql://hub_owner:{owner_password}@127.0.0.1:{port}/hubdb"
    }
    _hub(managed, "db", "upgrade")
    _add_tenant(managed["HUB_DATABASE_URL"])
    first = _hub(managed, "analysts", "grant", "ana", "--tenant", "acme")[-1]
    assert make_url(first).host == "127.0.0.1" and make_url(first).database == "hubdb"
    with psycopg.connect(first) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("ana",)
        assert conn.execute("SELECT tenant_id FROM accounting.customers").fetchall() == [("acme",)]
    assert _refused(first.replace(make_url(first).password, "wrong"))
    rotated = _hub(managed, "analysts", "grant", "ana", "--tenant", "acme")[-1]
    assert _refused(first)  # the old password no longer works
    psycopg.connect(rotated).close()
    _hub(managed, "analysts", "revoke", "ana")
    assert _refused(rotated)  # the role is gone (PostgreSQL says only "password … failed")

    # The embedded default: the superuser over the socket; the printed URL is the TCP address.
    _hub(env, "db", "upgrade")
    _add_tenant(socket_url)
    url = _hub(env, "analysts", "grant", "emb", "--tenant", "globex")[-1]
    assert (make_url(url).host, make_url(url).port) == ("127.0.0.1", port)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT tenant_id FROM accounting.customers").fetchall() == [
            ("globex",)
        ]
    assert _refused(url.replace(f":{make_url(url).password}@", "@"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5433", ("127.0.0.1", 5433)),
        ("0.0.0.0:6543", ("0.0.0.0", 6543)),  # noqa: S104
        ("[::1]:5433", ("::1", 5433)),
        ("db.internal:5432", ("db.internal", 5432)),
    ],
)
def test_listen_addresses_read(monkeypatch, value, expected):
    monkeypatch.setenv(db.LISTEN_VARIABLE, value)
    assert db.embedded_listen() == db.ListenAddress(*expected)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5433", "HUB_EMBEDDED_LISTEN must be HOST:PORT with one address"),
        ("a,b:5433", "HUB_EMBEDDED_LISTEN must be HOST:PORT with one address"),
        ("127.0.0.1:", "HUB_EMBEDDED_LISTEN must be a port number from 1 to 65535, got ''"),
        ("127.0.0.1:70000", "HUB_EMBEDDED_LISTEN must be a port number from 1 to 65535"),
        ("'host; rm -rf /':1", "HUB_EMBEDDED_LISTEN must be HOST:PORT with one address"),
    ],
)
def test_bad_listen_addresses_are_refused_naming_the_variable(monkeypatch, value, message):
    monkeypatch.setenv(db.LISTEN_VARIABLE, value)
    with pytest.raises(db.DatabaseConfigError, match=re.escape(message)):
        db.embedded_listen()
