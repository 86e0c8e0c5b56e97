"""The tenant filter of the analyst views (the contract migration 0013 builds on): a role sees
the tenants hub.analyst_grants lists for it, the hub sees all; the filter costs one check per
query, and a tenant_id condition still reaches the materialized view's index."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from hub_pipelines_tests.analytics.conftest import ANALYST_VIEWS

STORE = {  # the materialized view behind each analyst view
    "customer_360": "customer_360",
    "customer_360_records": "customer_match",
    "customer_directory": "customer_360",
    "gst_sales_summary": "gst_sales_summary",
    "receivables_ageing": "receivables_ageing",
    "sync_health": "sync_health",
}


@dataclass(frozen=True)
class Analyst:
    role: str
    url: str  # logs in as the role


@pytest.fixture
def analyst(imported) -> Iterator[Analyst]:
    """A login role granted the tenant beta, with SELECT on the analyst views only (not on the
    tables: these tests are about the views' own filter)."""
    role = f"h5_analyst_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    name = sql.Identifier(role)
    with psycopg.connect(imported.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(name, password))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA accounting, hub TO {}").format(name))
        for view in ANALYST_VIEWS:
            conn.execute(
                sql.SQL("GRANT SELECT ON accounting.{} TO {}").format(sql.Identifier(view), name)
            )
        if conn.execute("SELECT to_regclass('hub.analyst_roles')").fetchone()[0]:
            # migration 0013: only the roles `hub analysts grant` made may hold grants
            conn.execute("INSERT INTO hub.analyst_roles (role_name) VALUES (%s)", (role,))
        conn.execute(
            "INSERT INTO hub.analyst_grants (role_name, tenant_id) VALUES (%s, 'beta')", (role,)
        )
        url = make_url(imported.url).set(username=role, password=password)
        try:
            yield Analyst(role, url.render_as_string(hide_password=False))
        finally:
            conn.execute("DELETE FROM hub.analyst_grants WHERE role_name = %s", (role,))
            if conn.execute("SELECT to_regclass('hub.analyst_roles')").fetchone()[0]:
                conn.execute("DELETE FROM hub.analyst_roles WHERE role_name = %s", (role,))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(name))
            conn.execute(sql.SQL("DROP ROLE {}").format(name))


def as_role(conn: psycopg.Connection, role: str | None) -> None:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)) if role else "RESET ROLE")


def test_a_granted_role_sees_only_its_tenants_and_the_hub_sees_all(imported, analyst):
    with (
        psycopg.connect(imported.url, autocommit=True) as hub,
        psycopg.connect(analyst.url, autocommit=True) as reader,
    ):
        for view in sorted(ANALYST_VIEWS):
            counts = f"SELECT tenant_id, count(*) FROM accounting.{view} GROUP BY 1 ORDER BY 1"
            every = hub.execute(counts).fetchall()
            seen = reader.execute(counts).fetchall()
            assert [tenant for tenant, _ in every] == ["acme", "beta"], view
            assert seen == [row for row in every if row[0] == "beta"], view


def test_the_store_and_the_grants_are_out_of_an_analysts_reach(imported, analyst):
    with psycopg.connect(analyst.url, autocommit=True) as conn:
        for store in sorted(set(STORE.values())):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM analytics_store.{store} LIMIT 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT 1 FROM hub.analyst_grants")
        answers = conn.execute(
            "SELECT hub.can_see_tenant('beta'), hub.can_see_tenant('acme'), "
            "hub.can_see_tenant(NULL), hub.sees_every_tenant(), hub.granted_tenants()"
        ).fetchone()
        assert answers == (True, False, False, False, ["beta"])
        # Asking on behalf of another role (the hub's) reveals nothing.
        (owner,) = conn.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class "
            "WHERE oid = 'accounting.invoices'::regclass"
        ).fetchone()
        spoofed = conn.execute(
            "SELECT hub.can_see_tenant('acme', %s), hub.sees_every_tenant(%s), "
            "hub.granted_tenants(%s)",
            (owner, owner, owner),
        ).fetchone()
        assert spoofed == (False, False, [])
    with psycopg.connect(imported.url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT hub.can_see_tenant('acme'), hub.sees_every_tenant(), "
            "hub.can_see_tenant('beta', %s), hub.can_see_tenant('acme', %s)",
            (analyst.role, analyst.role),
        ).fetchone() == (True, True, True, False)  # the hub may ask about its analysts


def test_a_member_of_the_owning_role_sees_every_tenant(imported):
    role = sql.Identifier(f"h5_member_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(imported.url, autocommit=True) as conn:
        (owner,) = conn.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class "
            "WHERE oid = 'accounting.invoices'::regclass"
        ).fetchone()
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
        try:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), role))
            conn.execute(sql.SQL("SET ROLE {}").format(role))
            assert conn.execute(
                "SELECT hub.sees_every_tenant(), count(DISTINCT tenant_id) "
                "FROM accounting.gst_sales_summary"
            ).fetchone() == (True, 2)
        finally:
            conn.execute("RESET ROLE")
            conn.execute(sql.SQL("DROP ROLE {}").format(role))


def _plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("view", sorted(ANALYST_VIEWS))
@pytest.mark.parametrize("role", ["hub", "analyst"])
def test_a_tenant_filter_reaches_the_materialized_views_index(imported, analyst, view, role):
    with psycopg.connect(imported.url if role == "hub" else analyst.url) as conn:
        conn.execute("SET enable_seqscan = off")  # these tables are tiny: show the index use
        (plan,) = conn.execute(
            f"EXPLAIN (FORMAT JSON) SELECT * FROM accounting.{view} WHERE tenant_id = 'beta'"
        ).fetchone()
        conn.rollback()
    nodes = list(_plan_nodes(plan[0]["Plan"]))
    scans = [node for node in nodes if node.get("Relation Name") == STORE[view]]
    assert len(scans) == 1, json.dumps(plan)
    (scan,) = scans
    assert "tenant_id = 'beta'" in scan.get("Index Cond", scan.get("Recheck Cond", "")), scan
    assert not any(node["Node Type"] == "Subquery Scan" for node in nodes)


@pytest.mark.parametrize(
    ("role", "calls"),
    [
        ("hub", {"sees_every_tenant": 1}),
        ("analyst", {"sees_every_tenant": 1, "granted_tenants": 1}),
    ],
)
def test_the_tenant_check_runs_once_per_query_not_once_per_row(imported, analyst, role, calls):
    """Row by row, a security-definer check costs microseconds (seconds over a large view): the
    views evaluate it once per query, whatever the number of rows."""
    with psycopg.connect(imported.url) as conn:
        conn.execute("SET LOCAL track_functions = 'all'")
        if role == "analyst":
            as_role(conn, analyst.role)
        (rows,) = conn.execute("SELECT count(*) FROM accounting.customer_360_records").fetchone()
        as_role(conn, None)
        counted = conn.execute(
            "SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE schemaname = 'hub'"
        ).fetchall()
        conn.rollback()
    assert rows >= 12
    assert dict(counted) == calls
