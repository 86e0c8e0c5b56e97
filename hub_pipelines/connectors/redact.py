"""Keep credentials out of logs, error messages and the errors table.

Two layers, because either alone leaks:
* registered secrets (tokens, client secrets, passwords) are replaced wherever they appear, also
  percent-encoded, since they travel in URLs and form bodies;
* credential-shaped text is replaced even when the value was never registered: query or form
  parameters such as `refresh_token=…`, JSON members such as `"access_token": "…"`, headers such
  as `Pwd: …` and `Authorization` schemes (`Bearer …`, `Zoho-oauthtoken …`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_LENGTH = 6

SENSITIVE_NAMES = (
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "passwd",
    "pwd",
    "code",
    "api_key",
    "apikey",
    "secret",
    "token",
)
_NAMES = "|".join(SENSITIVE_NAMES)
# Names also masked in "name: value" form (headers such as BUSY's `Pwd` echoed in text); `code` is
# left out there because error bodies say "code: 57", which helps a person.
_HEADER_NAMES = "access_token|refresh_token|client_secret|password|passwd|pwd"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # name=value in URLs and form bodies
    (re.compile(rf"(?i)(?<![\w-])({_NAMES})=[^&\s#\"',;]+"), rf"\1={MASK}"),
    # name: value
    (re.compile(rf"(?i)(?<![\w-])({_HEADER_NAMES}):\s*(?![\"'])[^\s,;]+"), rf"\1: {MASK}"),
    # "name": "value" in JSON bodies
    (re.compile(rf"(?i)([\"']({_NAMES})[\"']\s*:\s*[\"'])[^\"']*"), rf"\1{MASK}"),
    # Authorization header values (case-sensitive and long, so prose like "basic rate" survives)
    (re.compile(r"\b(Bearer|Basic|Zoho-oauthtoken)\s+[\w.~+/=-]{8,}"), rf"\1 {MASK}"),
)


class Redactor:
    """Masks registered secrets and credential-shaped text; safe to share between threads."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.register(*secrets)

    def register(self, *secrets: str | None) -> None:
        """Add values to hide. Values shorter than MIN_SECRET_LENGTH are ignored: masking every
        "r" or "1234" would garble every message while hiding nothing (the redactor is shared
        by every connector of the process)."""
        forms = {
            form
            for secret in secrets
            if secret and len(secret) >= MIN_SECRET_LENGTH
            for form in _encoded_forms(secret)
        }
        with self._lock:
            if forms <= self._secrets:
                return
            self._secrets |= forms
            # Longest first so a secret that contains another is masked whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: object) -> str:
        text = str(text)
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        for regex, replacement in _PATTERNS:
            text = regex.sub(replacement, text)
        return text

    def describe(self, exc: BaseException) -> str:
        """`Type: message` of an exception, redacted: for logs and `SyncError` messages."""
        return self.redact(f"{type(exc).__name__}: {exc}")

    def logging_filter(self) -> RedactingFilter:
        return RedactingFilter(self)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback text) with the redactor applied.

    Attach it to handlers: a logger's own filters do not see records propagated from children.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redactor.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)
        return True


def _encoded_forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret, safe="")}


_default = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor the HTTP client and OAuth manager register secrets with."""
    return _default
