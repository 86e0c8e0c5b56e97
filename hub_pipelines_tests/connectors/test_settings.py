"""HttpSettings from the environment: defaults, mapping to httpx, errors naming the variable."""

from __future__ import annotations

import pytest

from hub_pipelines.connectors.settings import HttpSettings, SettingsError


def test_defaults_and_httpx_mapping() -> None:
    settings = HttpSettings.from_env({})
    assert settings == HttpSettings()
    limits = settings.limits()
    assert (limits.max_connections, limits.max_keepalive_connections) == (10, 2)
    assert limits.keepalive_expiry == 30.0
    assert settings.timeout.read == 30.0
    assert (
        settings.retry_max_attempts,
        settings.retry_initial_delay,
        settings.retry_max_delay,
    ) == (
        5,
        1.0,
        30.0,
    )


def test_values_are_read_in_milliseconds() -> None:
    env = {
        "ACCOUNTING_POOL_MAX_SIZE": "4",
        "ACCOUNTING_POOL_MIN_SIZE": "1",
        "ACCOUNTING_POOL_MAX_IDLE": "1500",
        "ACCOUNTING_HTTP_TIMEOUT": " 2500 ",
        "RETRY_MAX_ATTEMPTS": "2",
        "RETRY_INITIAL_DELAY": "10",
        "RETRY_MAX_DELAY": "",  # blank keeps the default
    }
    settings = HttpSettings.from_env(env)
    assert settings.limits().max_connections == 4 and settings.limits().keepalive_expiry == 1.5
    assert settings.timeout.connect == 2.5
    assert settings.retry_initial_delay == 0.01 and settings.retry_max_delay == 30.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ACCOUNTING_HTTP_TIMEOUT", "30s"),
        ("RETRY_MAX_ATTEMPTS", "0"),
        ("RETRY_INITIAL_DELAY", "-5"),
        ("ACCOUNTING_POOL_MAX_SIZE", "1.5"),
        ("RETRY_MAX_ATTEMPTS", "abc"),
        ("RETRY_MAX_ATTEMPTS", "101"),  # a typo, not a policy: 100 attempts is already hours
        ("RETRY_MAX_ATTEMPTS", "٥"),  # int() would read it as 5
        ("RETRY_MAX_DELAY", "99999999999999"),
        ("ACCOUNTING_HTTP_TIMEOUT", "600001"),
    ],
)
def test_bad_values_name_the_variable_and_the_accepted_range(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{name} must be a whole number .*from \d+ to \d"):
        HttpSettings.from_env({name: value})


def test_the_message_gives_the_unit_and_the_default() -> None:
    with pytest.raises(SettingsError) as raised:
        HttpSettings.from_env({"ACCOUNTING_HTTP_TIMEOUT": "30s"})
    assert str(raised.value) == (
        "ACCOUNTING_HTTP_TIMEOUT must be a whole number of milliseconds from 1 to 600,000, "
        "got '30s'; fix it or unset it for the default (30,000)"
    )


def test_settings_errors_are_still_value_errors() -> None:
    """Code that classifies a connector's construction failure by ValueError keeps working."""
    assert issubclass(SettingsError, ValueError)


def test_keepalive_pool_cannot_exceed_the_pool() -> None:
    env = {"ACCOUNTING_POOL_MAX_SIZE": "2", "ACCOUNTING_POOL_MIN_SIZE": "3"}
    with pytest.raises(ValueError, match="ACCOUNTING_POOL_MIN_SIZE"):
        HttpSettings.from_env(env)
