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


def leaked_fragments(secret: str, text: str, size: int = 8) -> set[str]:
    """Every `size`-character piece of `secret` that `text` shows: what a reader could recover."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)} & {
        text[i : i + size] for i in range(len(text) - size + 1)
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # names that end in a credential word, whatever comes before it
        ("GET /1.0/x?oauth_token=tk-123&y=1", "GET /1.0/x?oauth_token=***&y=1"),
        ("x_api_key=k-123; next", "x_api_key=***; next"),
        ("x-api-key=k-123&apikey=k-456", "x-api-key=***&apikey=***"),
        ("X-Api-Key: k-123, Accept: */*", "X-Api-Key: ***, Accept: */*"),
        ("X-Auth-Token: t-123", "X-Auth-Token: ***"),
        # quoted values: OAuth 1 headers, JSON with an escaped quote, Python reprs, escaped JSON
        ('OAuth oauth_token="t-1,2", oauth_nonce="n"', 'OAuth oauth_token="***", oauth_nonce="n"'),
        ('{"access_token": "abc\\"def-tail", "x": 1}', '{"access_token": "***", "x": 1}'),
        ("{'refresh_token': 'abc\\'def-tail', 'x': 1}", "{'refresh_token': '***', 'x': 1}"),
        (
            '"{\\"access_token\\":\\"abc-tail\\",\\"x\\":1}"',
            '"{\\"access_token\\":\\"***\\",\\"x\\":1}"',
        ),
        ('{"client_secret":"never-closed-tail', '{"client_secret":"***'),
        ('{"x_api_key": "k-1"}', '{"x_api_key": "***"}'),
        # token shapes without a name: a JWT, a JWE (empty key part), Zoho's 1000.<hex>.<hex>
        ("<p>eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln</p>", "<p>***</p>"),
        ("got eyJlbmMiOiJBMTI4Q0JDIn0..aXY.Y3Q.dGFn here", "got *** here"),
        ("<p>1000.0123456789abcdef0123.45</p>", "<p>***</p>"),
        # look-alikes stay readable
        ("token: expired; grant_type=refresh_token", "token: expired; grant_type=refresh_token"),
        ("partition_key: acme, sort_key=name", "partition_key: acme, sort_key=name"),
        ("total 1000.0000000000000000 INR", "total 1000.0000000000000000 INR"),
    ],
)
def test_credential_names_quoted_values_and_token_shapes_are_masked(
    text: str, expected: str
) -> None:
    assert Redactor().redact(text) == expected


CUT_SECRET = "s3cr3t-Value-0123456789-abcdefghij"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"body: {CUT_SECRET[:20]}…", "body: ***…"),
        (f"body: {CUT_SECRET[:20]}... (more)", "body: ***... (more)"),
        (f"body ends early: {CUT_SECRET[:-1]}", "body ends early: ***"),
        (f'{{"echo": "{CUT_SECRET[:9]}', '{"echo": "***'),
        # a short prefix, or a prefix the text goes on after, is ordinary text
        (f"body: {CUT_SECRET[:7]}…", f"body: {CUT_SECRET[:7]}…"),
        (f"{CUT_SECRET[:12]} and more", f"{CUT_SECRET[:12]} and more"),
    ],
)
def test_a_registered_secret_cut_short_is_masked_where_the_text_is_cut(
    text: str, expected: str
) -> None:
    redactor = Redactor([CUT_SECRET])
    assert redactor.redact(text) == expected
