"""Where the warehouse is: HUB_DATABASE_URL, the guide's DATABASE_* parts, or embedded."""

import pytest
import sqlalchemy as sa

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
            "DATABASE_PORT must be a number",
        ),
        ({"HUB_DATABASE_URL": "not a url"}, "HUB_DATABASE_URL is not a database URL"),
    ],
)
def test_incomplete_or_malformed_settings_name_the_variable(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(db.DatabaseConfigError, match=message):
        db.configured_url()


def test_nothing_set_means_the_embedded_server():
    assert db.configured_url() is None


def test_one_helper_gives_sqlalchemy_and_psycopg_the_same_database(warehouse_url):
    with db.engine(warehouse_url).connect() as conn:
        via_sqlalchemy = conn.execute(sa.text("SELECT current_database()")).scalar()
    with db.connect(warehouse_url) as conn:
        via_psycopg = conn.execute("SELECT current_database()").fetchone()[0]
    assert via_sqlalchemy == via_psycopg
    assert db.sqlalchemy_url(warehouse_url).startswith("postgresql+psycopg://")
