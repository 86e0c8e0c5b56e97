"""Where the warehouse is: HUB_DATABASE_URL, the guide's DATABASE_* parts, or embedded."""

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from hub_pipelines.warehouse import db


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in (
        "HUB_DATABASE_URL",
        "DATABASE_HOST",
        "DATABASE_PORT",
        "DATABASE_NAME",
        "DATABASE_USER",
        "DATABASE_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)


def test_url_wins_and_is_normalised_for_libpq(monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", "postgresql+psycopg://hub:s%40cret@db:5433/books")
    monkeypatch.setenv("DATABASE_HOST", "ignored")
    assert db.configured_url() == "postgresql://hub:s%40cret@db:5433/books"


def test_parts_build_a_url_with_the_password_escaped(monkeypatch):
    for name, value in {
        "HOST": "db.internal",
        "PORT": "6432",
        "NAME": "hub",
        "USER": "app",
        "PASSWORD": "p@ss/word",
    }.items():
        monkeypatch.setenv(f"DATABASE_{name}", value)
    assert db.configured_url() == "postgresql://app:p%40ss%2Fword@db.internal:6432/hub"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_HOST": "db"}, "DATABASE_NAME, DATABASE_USER is not"),
        (
            {
                "DATABASE_HOST": "db",
                "DATABASE_NAME": "h",
                "DATABASE_USER": "u",
                "DATABASE_PORT": "x",
            },
            "DATABASE_PORT must be a port number from 1 to 65535, got 'x'",
        ),
        (
            {
                "DATABASE_HOST": "db",
                "DATABASE_NAME": "h",
                "DATABASE_USER": "u",
                "DATABASE_PORT": "70000",
            },
            "DATABASE_PORT must be a port number from 1 to 65535, got '70000'",
        ),
        ({"HUB_DATABASE_URL": "not a url"}, "HUB_DATABASE_URL is not a database URL"),
    ],
)
def test_incomplete_or_malformed_settings_name_the_variable(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(db.DatabaseConfigError, match=message):
        db.configured_url()


def _set_parts(monkeypatch, **parts: str) -> None:
    for name, value in parts.items():
        monkeypatch.setenv(f"DATABASE_{name.upper()}", value)


# Each part exactly as libpq (psycopg, psql) and SQLAlchemy read the URL back: the URL used to be
# assembled by string formatting, which an IPv6 host, a `?` in the name or a socket directory broke.
@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({"host": "::1"}, {"host": "::1", "port": "5432", "dbname": "hub"}),
        ({"name": "hub?sslmode=disable"}, {"host": "db", "dbname": "hub?sslmode=disable"}),
        ({"name": "books#2026/q1 %x"}, {"dbname": "books#2026/q1 %x"}),
        ({"host": "/var/run/postgresql"}, {"host": "/var/run/postgresql", "dbname": "hub"}),
        ({"host": "/tmp/my sockets+1"}, {"host": "/tmp/my sockets+1"}),
        ({"password": "p@ss/w:rd?# +"}, {"password": "p@ss/w:rd?# +", "user": "app"}),
        ({"user": "app@corp", "port": "6432"}, {"user": "app@corp", "port": "6432"}),
    ],
)
def test_parts_are_read_back_as_given(monkeypatch, parts, expected):
    _set_parts(monkeypatch, **{"host": "db", "name": "hub", "user": "app", **parts})
    url = db.configured_url()
    assert conninfo_to_dict(url).items() >= expected.items()
    parsed = make_url(url)  # what db.engine() and the tests' helpers read
    assert (parsed.query.get("host") or parsed.host) == expected.get("host", "db")
    assert parsed.database == expected.get("dbname", "hub")
    assert parsed.password == expected.get("password", None)


def test_parts_reach_a_real_server_through_its_socket_directory(monkeypatch, pg_server_url):
    """A database name with `?`, `#` and `/`, through a socket directory (the embedded server
    listens on one) or the test server's host, connects to that very database."""
    server = make_url(pg_server_url)
    name = "hub?odd#name/1 +x"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        _set_parts(
            monkeypatch,
            host=server.query.get("host") or server.host,
            port=str(server.port or 5432),
            name=name,
            user=server.username,
            password=server.password or "",
        )
        with psycopg.connect(db.configured_url()) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == name
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_target_is_described_without_its_password(monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://hub:s3cret@db:5433/books")
    assert db.describe_target() == "postgresql://hub:***@db:5433/books (from HUB_DATABASE_URL)"


def test_nothing_set_means_the_embedded_server():
    assert db.configured_url() is None


def test_one_helper_gives_sqlalchemy_and_psycopg_the_same_database(warehouse_url):
    with db.engine(warehouse_url).connect() as conn:
        via_sqlalchemy = conn.execute(sa.text("SELECT current_database()")).scalar()
    with db.connect(warehouse_url) as conn:
        via_psycopg = conn.execute("SELECT current_database()").fetchone()[0]
    assert via_sqlalchemy == via_psycopg
    assert db.sqlalchemy_url(warehouse_url).startswith("postgresql+psycopg://")


@pytest.mark.parametrize(
    ("variable", "read", "default"),
    [
        ("HUB_SCHEDULE_TIMEZONE", "schedule_timezone", "Asia/Kolkata"),
        ("HUB_LANDING_SETTLE_SECONDS", "settle_seconds", 10.0),
        ("HUB_RUN_SILENCE_SECONDS", "silence", 600),
    ],
)
def test_a_blank_setting_means_unset_and_a_bad_one_names_its_variable(
    monkeypatch, variable, read, default
):
    from hub_pipelines import settings
    from hub_pipelines.imports import run_health
    from hub_pipelines.landing import folder

    reader = {
        "schedule_timezone": settings.schedule_timezone,
        "settle_seconds": folder.settle_seconds,
        "silence": run_health.silence,
    }[read]
    monkeypatch.setenv(variable, "  ")  # as Compose passes `${VAR:-}` through
    assert reader() == default
    monkeypatch.setenv(variable, "Mars/Olympus" if "TIMEZONE" in variable else "-3")
    with pytest.raises(ValueError, match=variable):
        reader()
