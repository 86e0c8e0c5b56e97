"""Database passwords the hub generates: the embedded server's superuser and analysts' roles.

The server is given a SCRAM-SHA-256 verifier, never the password itself, as psql's `\\password`
does: a password in `CREATE ROLE … PASSWORD '…'` could otherwise reach the server log
(`log_statement`), pg_stat_statements or an error report. libpq computes the verifier
(`PQencryptPasswordConn`, through psycopg), and PostgreSQL stores it as it is given.
"""

from __future__ import annotations

import secrets

import psycopg


def new_password() -> str:
    """32 URL-safe characters (192 random bits): nothing to escape in a URL or a .env file."""
    return secrets.token_urlsafe(24)


def scram_verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of `role`'s `password`, computed by libpq on this side."""
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
