"""Redaction of secrets in text, URLs, log records and exception messages."""

from __future__ import annotations

import logging

import pytest

from hub_pipelines.connectors.redact import Redactor

SECRET = "1000.d3adb33f/+secret"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "POST https://accounts.zoho.in/oauth/v2/token?refresh_token=1000.86a0&client_id=1000.G"
            "&client_secret=122c&grant_type=refresh_token",
            "POST https://accounts.zoho.in/oauth/v2/token?refresh_token=***&client_id=1000.G"
            "&client_secret=***&grant_type=refresh_token",
        ),
        ("GET /oauth/callback?code=abc123&state=xyz", "GET /oauth/callback?code=***&state=xyz"),
        ("access_token=a&password=b&Pwd=c", "access_token=***&password=***&Pwd=***"),
        (
            '{"access_token":"eyJ","token_type":"Bearer"}',
            '{"access_token":"***","token_type":"Bearer"}',
        ),
        ("Authorization: Zoho-oauthtoken 1000.41d9c2d1", "Authorization: Zoho-oauthtoken ***"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer ***"),
        ("Pwd: hunter2, UserName: admin", "Pwd: ***, UserName: admin"),
        # Things that look alike but are not credentials stay readable.
        ('{"code":57,"message":"Invalid token"}', '{"code":57,"message":"Invalid token"}'),
        ("error_code=5; basic rate applies", "error_code=5; basic rate applies"),
    ],
)
def test_credential_shaped_text_is_masked(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_registered_secrets_are_masked_also_percent_encoded() -> None:
    redactor = Redactor([SECRET, "", None])
    text = f"raw {SECRET} quoted 1000.d3adb33f%2F%2Bsecret"
    assert redactor.redact(text) == "raw *** quoted ***"


def test_logging_filter_masks_messages_args_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redactor = Redactor([SECRET])
    caplog.handler.addFilter(redactor.logging_filter())
    logger = logging.getLogger("hub_pipelines_tests.redact")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("refreshing with %s", SECRET)
        try:
            raise RuntimeError(f"token endpoint said no to {SECRET}")
        except RuntimeError:
            logger.exception("refresh failed")
    assert SECRET not in caplog.text
    assert "refreshing with ***" in caplog.text
    assert "RuntimeError: token endpoint said no to ***" in caplog.text


def test_describe_redacts_exception_messages() -> None:
    redactor = Redactor([SECRET])
    error = ValueError(f"bad refresh_token {SECRET} in https://x/?client_secret=abc")
    assert (
        redactor.describe(error)
        == "ValueError: bad refresh_token *** in https://x/?client_secret=***"
    )


def test_very_short_values_are_not_registered_because_they_would_garble_every_message():
    redactor = Redactor()
    redactor.register("r", "s3", "long-enough-secret")
    assert redactor.redact("refresh with long-enough-secret") == "refresh with ***"
