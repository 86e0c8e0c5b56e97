"""`hub db backup` / `hub db restore` against a real PostgreSQL: a backup restored into a scratch
database holds the same rows; a restore over changed data brings the backup's rows back."""

from __future__ import annotations

import psycopg
import pytest

from hub_pipelines import cli
from hub_pipelines.warehouse import backup, migrations
from hub_pipelines_tests.conftest import create_database, drop_database

ROWS = "SELECT tenant_id, system, external_id, name FROM accounting.customers ORDER BY external_id"


def _add_customers(url: str, *ids: str) -> None:
    with psycopg.connect(url) as conn:
        for external_id in ids:
            conn.execute(
                "INSERT INTO accounting.customers (tenant_id, system, external_id, name, raw) "
                "VALUES ('acme', 'tally', %s, %s, '{}')",
                (external_id, f"Party {external_id}"),
            )


def _rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(ROWS).fetchall()


@pytest.fixture
def scratch(pg_server_url):
    url = create_database(pg_server_url)
    yield url
    drop_database(pg_server_url, url)


def test_a_backup_restores_into_a_scratch_database_with_the_same_rows(
    empty_database_url, scratch, tmp_path, monkeypatch, capsys
):
    migrations.upgrade(empty_database_url)
    _add_customers(empty_database_url, "g-1", "g-2")
    monkeypatch.setenv("HUB_DATABASE_URL", empty_database_url)
    from hub_pipelines.warehouse import db

    db.database_url.cache_clear()
    dump = tmp_path / "hub.dump"
    assert cli.main(["db", "backup", str(dump)]) == 0
    assert "backup written" in capsys.readouterr().out and dump.stat().st_size > 0
    assert not list(tmp_path.glob(".*.partial"))

    backup.restore(scratch, dump)

    assert _rows(scratch) == _rows(empty_database_url)
    assert [m.checksum_matches for m in migrations.status(scratch)] == [True] * len(
        migrations.status(scratch)
    )
    db.database_url.cache_clear()


def test_a_restore_over_changed_data_brings_the_backup_back_and_needs_yes(
    empty_database_url, tmp_path, monkeypatch, capsys
):
    migrations.upgrade(empty_database_url)
    _add_customers(empty_database_url, "g-1")
    dump = backup.backup(empty_database_url, tmp_path / "before.dump")
    _add_customers(empty_database_url, "g-9")
    monkeypatch.setenv("HUB_DATABASE_URL", empty_database_url)
    from hub_pipelines.warehouse import db

    db.database_url.cache_clear()
    assert cli.main(["db", "restore", str(dump)]) == 2
    assert "--yes" in capsys.readouterr().err
    assert cli.main(["db", "restore", str(dump), "--yes"]) == 0

    assert [row[2] for row in _rows(empty_database_url)] == ["g-1"]
    assert cli.main(["db", "restore", str(tmp_path / "missing.dump"), "--yes"]) == 2
    assert "no such backup file" in capsys.readouterr().err
    db.database_url.cache_clear()
