"""`hub analysts grant / revoke / list`: read-only login roles that see only their tenants.

A role made here is a LOGIN member of the group `hub_analyst` (sql/0013_analyst_access.sql), which
holds every read grant analysts get; the role's tenants are its rows in `hub.analyst_grants`, and
row-level security and the views' filters (`hub.can_see_tenant`) show it those tenants' rows only.
`hub.analyst_roles` lists the roles made here: the hub changes and drops only those.

`grant` states a role's whole access: its tenants become exactly the ones given (a tenant left out
is taken away), and it gets a new password every time, so granting again is how a password is
rotated. The password exists in the returned URL only: it is generated here, sent to the server
as a SCRAM verifier (hub_pipelines/warehouse/passwords.py) and stored nowhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from hub_pipelines.settings import TENANT_SLUG_PATTERN
from hub_pipelines.warehouse import db
from hub_pipelines.warehouse.passwords import new_password, scram_verifier

GROUP_ROLE = "hub_analyst"
# Lowercase so that the name needs no quoting in psql or a BI tool; 63 bytes is PostgreSQL's limit.
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
RESERVED_ROLE_NAMES = frozenset(
    {GROUP_ROLE, "public", "none", "current_user", "current_role", "session_user", "user"}
)
_LOCK_ID = 0x48554213  # "HUB" + 0x13: serialises grant/revoke against each other
_ROLE_NAME_RULE = (
    "use 1 to 63 lowercase letters, digits and underscores, starting with a letter or an "
    "underscore, e.g. acme_analyst"
)


class AnalystAccessError(ValueError):
    """Bad input or a role the hub may not touch; the message names the value and the fix."""


@dataclass(frozen=True)
class Grant:
    role: str
    created: bool  # False: an existing role of the hub's, given a new password
    tenants: tuple[str, ...]
    previous_tenants: tuple[str, ...]
    url: str  # holds the password: print it once, log it never


@dataclass(frozen=True)
class AnalystRole:
    role: str
    tenants: tuple[str, ...]
    created_at: datetime
    password_set_at: datetime
    on_server: bool  # False after a restore onto another server: grant again to re-create it


def check_role_name(role: str) -> str:
    if not ROLE_NAME.fullmatch(role):
        raise AnalystAccessError(f"role name {role!r} is not allowed: {_ROLE_NAME_RULE}")
    if role in RESERVED_ROLE_NAMES or role.startswith("pg_"):
        raise AnalystAccessError(
            f"role name {role!r} is reserved (PostgreSQL's or the hub's own): choose another, "
            "e.g. acme_analyst"
        )
    return role


def check_tenant_slugs(tenants: Iterable[str]) -> tuple[str, ...]:
    """The tenants, each a well-formed slug, sorted, without repeats; at least one."""
    wanted = sorted(set(tenants))
    if not wanted:
        raise AnalystAccessError("give at least one --tenant (a tenant slug from hub tenants list)")
    for tenant in wanted:
        if not re.fullmatch(TENANT_SLUG_PATTERN, tenant):
            raise AnalystAccessError(
                f"tenant {tenant!r} is not a tenant slug (lowercase letters, digits, - and _); "
                "`hub tenants list` shows the registered ones"
            )
    return tuple(wanted)


def grant(role: str, tenants: Iterable[str], url: str | None = None) -> Grant:
    """Create the analyst role (or give the hub's existing one a new password) and make
    `tenants` exactly the tenants it sees. All or nothing: one transaction."""
    role = check_role_name(role)
    wanted = check_tenant_slugs(tenants)
    password = new_password()
    with db.connect(url) as conn:
        _lock(conn)
        _check_tenants_registered(conn, wanted)
        ours = _is_ours(conn, role)
        on_server = _role_exists(conn, role)
        if on_server and not ours:
            raise AnalystAccessError(
                f"role {role!r} already exists and was not created by `hub analysts grant` in this "
                "database; the hub does not change roles it did not make: choose another name"
            )
        if on_server:
            _refuse_wider_powers(conn, role)
            _set_login_password(conn, role, password)
        else:
            _create_login_role(conn, role, password)
        previous = _tenants_of(conn, role)
        _record(conn, role, wanted)
    return Grant(role, not on_server, wanted, previous, db.login_url(role, password, url))


def revoke(role: str, url: str | None = None) -> tuple[str, ...]:
    """Take the role's tenants away and drop the role; returns the tenants it had."""
    role = check_role_name(role)
    with db.connect(url) as conn:
        _lock(conn)
        if not _is_ours(conn, role):
            raise AnalystAccessError(
                f"role {role!r} was not created by `hub analysts grant` in this database, so the "
                "hub leaves it alone; `hub analysts list` shows the roles it made"
            )
        tenants = _tenants_of(conn, role)
        conn.execute("DELETE FROM hub.analyst_roles WHERE role_name = %s", (role,))  # cascades
        if _role_exists(conn, role):
            _drop_role(conn, role)
    return tenants


def list_roles(url: str | None = None) -> list[AnalystRole]:
    with db.connect(url) as conn:
        _require_migration(conn)
        rows = conn.execute(
            """
            SELECT r.role_name,
                   coalesce(array_agg(g.tenant_id ORDER BY g.tenant_id)
                            FILTER (WHERE g.tenant_id IS NOT NULL), '{}'),
                   r.created_at, r.password_set_at,
                   EXISTS (SELECT FROM pg_roles p WHERE p.rolname = r.role_name)
            FROM hub.analyst_roles r
            LEFT JOIN hub.analyst_grants g ON g.role_name = r.role_name
            GROUP BY r.role_name, r.created_at, r.password_set_at
            ORDER BY r.role_name
            """
        ).fetchall()
    return [AnalystRole(name, tuple(tenants), *rest) for name, tenants, *rest in rows]


def _lock(conn: psycopg.Connection) -> None:
    _require_migration(conn)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))


def _require_migration(conn: psycopg.Connection) -> None:
    (present,) = conn.execute("SELECT to_regclass('hub.analyst_roles') IS NOT NULL").fetchone()
    if not present:
        raise AnalystAccessError(
            "the warehouse has no analyst access tables yet: run `hub db upgrade` first"
        )


def _check_tenants_registered(conn: psycopg.Connection, wanted: tuple[str, ...]) -> None:
    known = [
        tenant
        for (tenant,) in conn.execute(
            "SELECT DISTINCT tenant_id FROM hub.accounting_configs ORDER BY tenant_id"
        )
    ]
    unknown = [tenant for tenant in wanted if tenant not in known]
    if unknown:
        raise AnalystAccessError(
            f"unknown tenant {', '.join(repr(t) for t in unknown)}: not in "
            f"hub.accounting_configs (registered: {', '.join(known) or 'none'}); check the "
            "spelling, or register it first with `hub tenants add`"
        )


def _is_ours(conn: psycopg.Connection, role: str) -> bool:
    found = conn.execute("SELECT FROM hub.analyst_roles WHERE role_name = %s", (role,)).fetchone()
    return found is not None


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _refuse_wider_powers(conn: psycopg.Connection, role: str) -> None:
    """A role of the hub's that someone made superuser, BYPASSRLS or a member of the tables'
    owner would see every tenant: refuse rather than hand out a password for it."""
    (wider,) = conn.execute(
        """
        SELECT r.rolsuper OR r.rolbypassrls
               OR pg_has_role(r.oid, c.relowner, 'USAGE')
        FROM pg_roles r, pg_class c
        WHERE r.rolname = %s AND c.oid = 'accounting.invoices'::regclass
        """,
        (role,),
    ).fetchone()
    if wider:
        raise AnalystAccessError(
            f"role {role!r} has been given more than analyst access by hand (superuser, "
            "BYPASSRLS or membership of the tables' owner) and would see every tenant: take that "
            f"away, or `hub analysts revoke {role}` and grant again"
        )


def _create_login_role(conn: psycopg.Connection, role: str, password: str) -> None:
    statement = sql.SQL("CREATE ROLE {role} LOGIN PASSWORD {verifier} IN ROLE {group}").format(
        role=sql.Identifier(role),
        verifier=sql.Literal(scram_verifier(conn, role, password)),
        group=sql.Identifier(GROUP_ROLE),
    )
    _execute_as_role_admin(conn, statement)
    # A role of the hub's can be missing from the server: a restore onto another server
    # brings back the database's rows, not the server's roles.
    conn.execute(
        "INSERT INTO hub.analyst_roles (role_name) VALUES (%s) "
        "ON CONFLICT (role_name) DO UPDATE SET password_set_at = now()",
        (role,),
    )


def _set_login_password(conn: psycopg.Connection, role: str, password: str) -> None:
    statement = sql.SQL("ALTER ROLE {role} LOGIN PASSWORD {verifier}").format(
        role=sql.Identifier(role), verifier=sql.Literal(scram_verifier(conn, role, password))
    )
    _execute_as_role_admin(conn, statement)
    if not conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (role, GROUP_ROLE)).fetchone()[0]:
        _execute_as_role_admin(
            conn,
            sql.SQL("GRANT {group} TO {role}").format(
                group=sql.Identifier(GROUP_ROLE), role=sql.Identifier(role)
            ),
        )
    conn.execute(
        "UPDATE hub.analyst_roles SET password_set_at = now() WHERE role_name = %s", (role,)
    )


def _drop_role(conn: psycopg.Connection, role: str) -> None:
    try:
        _execute_as_role_admin(conn, sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    except psycopg.errors.DependentObjectsStillExist as exc:
        raise AnalystAccessError(
            f"role {role!r} still owns objects ({exc.diag.message_primary}; {exc.diag.detail}): "
            "temporary ones go when its open sessions end; otherwise, as an administrator, "
            f"run `DROP OWNED BY {role}` in that database; then `hub analysts revoke {role}` again"
        ) from None


def _execute_as_role_admin(conn: psycopg.Connection, statement: sql.Composed) -> None:
    """Role statements need CREATEROLE and ADMIN OPTION on hub_analyst: say so when missing."""
    try:
        with conn.transaction():  # a savepoint: the error below leaves the connection usable
            conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege as exc:
        (user,) = conn.execute("SELECT current_user").fetchone()
        raise AnalystAccessError(
            f"the hub's database user {user!r} may not manage analyst roles "
            f"({exc.diag.message_primary}): as an administrator run `ALTER ROLE {user} "
            f"CREATEROLE` and `GRANT {GROUP_ROLE} TO {user} WITH ADMIN OPTION`"
        ) from None


def _tenants_of(conn: psycopg.Connection, role: str) -> tuple[str, ...]:
    rows = conn.execute(
        "SELECT tenant_id FROM hub.analyst_grants WHERE role_name = %s ORDER BY tenant_id",
        (role,),
    ).fetchall()
    return tuple(tenant for (tenant,) in rows)


def _record(conn: psycopg.Connection, role: str, tenants: tuple[str, ...]) -> None:
    conn.execute(
        "DELETE FROM hub.analyst_grants WHERE role_name = %s AND tenant_id <> ALL(%s)",
        (role, list(tenants)),
    )
    conn.execute(
        "INSERT INTO hub.analyst_grants (role_name, tenant_id) SELECT %s, unnest(%s::text[]) "
        "ON CONFLICT DO NOTHING",
        (role, list(tenants)),
    )


def grant_report(done: Grant) -> list[str]:
    """What `hub analysts grant` prints; the URL, which holds the password, is the last line."""
    tenants = ", ".join(done.tenants)
    if done.created:
        lines = [f"analyst role {done.role} created: it reads tenants {tenants}"]
    else:
        before = ", ".join(done.previous_tenants) or "none"
        lines = [f"analyst role {done.role} updated: it reads tenants {tenants} (before: {before})"]
    if make_url(done.url).host is None:
        where = "through the Unix socket, from this machine only"
        if db.configured_url() is None:
            where += f" (for other machines: {db.LISTEN_VARIABLE}, docs/operations.md)"
        lines.append(f"the URL reaches PostgreSQL {where}")
    lines.append("connection URL, its password shown this once (grant again for a new one):")
    lines.append(done.url)
    return lines


def list_report(roles: list[AnalystRole]) -> list[str]:
    if not roles:
        return ["no analyst roles; create one with `hub analysts grant ROLE --tenant TENANT`"]
    width = max(len(item.role) for item in roles)
    lines = [f"{'ROLE':{width}}  {'PASSWORD SET':20}  TENANTS"]
    for item in roles:
        rotated = f"{item.password_set_at:%Y-%m-%d %H:%M %Z}"
        missing = "" if item.on_server else "  (no such role on this server: grant again)"
        lines.append(f"{item.role:{width}}  {rotated:20}  {', '.join(item.tenants)}{missing}")
    return lines
