"""`hub demo` (what `make demo` runs): a working hub on embedded defaults, ending in a summary."""

from __future__ import annotations

import os

from hub_pipelines import settings
from hub_pipelines.vault import KEY_VARIABLE, generate_key
from hub_pipelines.warehouse import db, migrations


def ensure_demo_key() -> None:
    """Give the local demo an encryption key, kept in $HUB_HOME/hub.env (owner-only)."""
    if os.environ.get(KEY_VARIABLE):
        return
    key = generate_key()
    path = settings.write_local_env(KEY_VARIABLE, key)
    os.environ[KEY_VARIABLE] = key
    print(f"generated a development encryption key in {path} (production: set {KEY_VARIABLE})")


def run_demo() -> None:
    ensure_demo_key()
    url = db.database_url()
    applied = migrations.upgrade(url)
    print(f"warehouse: {url}")
    print(f"migrations applied now: {len(applied)}; all: {len(migrations.discover())}")
    with db.connect(url) as conn:
        for schema, table in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('hub', 'accounting') ORDER BY 1, 2"
        ).fetchall():
            (count,) = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
            print(f"  {schema}.{table}: {count} rows")
