"""Shared fixtures: a real PostgreSQL for every test that needs one.

`HUB_TEST_DATABASE_URL` points at a server to use (the tests create and drop their own databases
on it); without it an embedded server is started in a temporary HUB_HOME for the session.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from hub_pipelines.vault import KEY_VARIABLE, OLD_KEYS_VARIABLE, generate_key
from hub_pipelines.warehouse import db, migrations

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_FIXTURES_VARIABLE = "HUB_REAL_FIXTURES"


def real_fixtures_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the real third-party payloads are: the folder `HUB_REAL_FIXTURES` names, else
    `../shared/fixtures/real` beside the clone."""
    named = (os.environ if environ is None else environ).get(REAL_FIXTURES_VARIABLE, "").strip()
    return Path(named).expanduser() if named else SHARED / "fixtures" / "real"


def real_fixtures_skip_reason(folder: Path) -> str:
    """One line: what is missing and the two ways to provide it."""
    return (
        f"real payloads not found in {folder}: put the shared folder beside the clone "
        f"(../shared/fixtures/real) or set {REAL_FIXTURES_VARIABLE}=/path/to/fixtures/real"
    )


REAL_FIXTURES = real_fixtures_dir()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `real_fixtures` read third-party payloads that this repository does not
    redistribute (their licences do not allow it), from `real_fixtures_dir()`. CI has ../shared
    beside the clone and runs them; a clone without them skips them, saying in one line how to
    get them, and passes the rest."""
    if REAL_FIXTURES.is_dir():
        return
    skip = pytest.mark.skip(reason=real_fixtures_skip_reason(REAL_FIXTURES))
    for item in items:
        if "real_fixtures" in item.keywords:
            item.add_marker(skip)


def _database_url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("HUB_TEST_DATABASE_URL")
    if given:
        yield given
        return
    home = tmp_path_factory.mktemp("hub")
    previous = os.environ.get("HUB_HOME")
    os.environ["HUB_HOME"] = str(home)
    try:
        yield db.start_embedded()
    finally:
        db.stop_embedded()
        if previous is None:
            os.environ.pop("HUB_HOME", None)
        else:
            os.environ["HUB_HOME"] = previous


def create_database(server_url: str) -> str:
    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _database_url(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    db.engine.cache_clear()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def warehouse_url(pg_server_url: str) -> Iterator[str]:
    """A migrated database for the session; also exported as HUB_DATABASE_URL for the code."""
    url = create_database(pg_server_url)
    migrations.upgrade(url)
    previous = os.environ.get("HUB_DATABASE_URL")
    os.environ["HUB_DATABASE_URL"] = url
    db.database_url.cache_clear()
    try:
        yield url
    finally:
        if previous is None:
            os.environ.pop("HUB_DATABASE_URL", None)
        else:
            os.environ["HUB_DATABASE_URL"] = previous
        db.database_url.cache_clear()
        drop_database(pg_server_url, url)


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    url = create_database(pg_server_url)
    try:
        yield url
    finally:
        drop_database(pg_server_url, url)


def empty_tables(url: str) -> None:
    """Delete every row of the hub's tables; the schema and the migrations record stay."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname IN ('hub', 'accounting') AND tablename <> 'schema_migrations'"
        ).fetchall()
        conn.execute(f"TRUNCATE {', '.join(t for (t,) in tables)} RESTART IDENTITY CASCADE")


@pytest.fixture
def warehouse(warehouse_url: str) -> str:
    """The session database, emptied of data (the schema stays)."""
    empty_tables(warehouse_url)
    return warehouse_url


@contextmanager
def one_migration_behind(url: str) -> Iterator[migrations.Migration]:
    """The warehouse as code one migration newer would see it (the newest one's record gone),
    restored afterwards; yields that migration."""
    newest = migrations.discover()[-1]
    with psycopg.connect(url) as conn:
        recorded = conn.execute(
            "DELETE FROM hub.schema_migrations WHERE version = %s RETURNING *", (newest.version,)
        ).fetchone()
    try:
        yield newest
    finally:
        with psycopg.connect(url) as conn:
            marks = ", ".join(["%s"] * len(recorded))
            conn.execute(f"INSERT INTO hub.schema_migrations VALUES ({marks})", recorded)


def assert_failed_naming_the_upgrade(result, migration: migrations.Migration) -> None:
    """The run failed as CONFIG, naming the migration not applied and `hub db upgrade`."""
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert migration.path.name in failure.step_failure_data.error.message
    user = failure.step_failure_data.user_failure_data
    assert user.metadata["category"].value == "CONFIG"
    assert "hub db upgrade" in user.metadata["suggested_fix"].value


@pytest.fixture
def encryption_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = generate_key()
    monkeypatch.setenv(KEY_VARIABLE, key)
    monkeypatch.delenv(OLD_KEYS_VARIABLE, raising=False)
    return key


@pytest.fixture(scope="module")
def chromium():
    """Headless Debian chromium through Playwright; a clear failure when it cannot run."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Debian's chromium is not installed: apt-get install -y --no-install-recommends "
            "chromium (.ci/run does it when missing)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"Playwright is missing ({exc}): pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
        except Exception as exc:
            pytest.fail(f"chromium at {executable} could not start headless: {exc}")
        yield browser
        browser.close()
