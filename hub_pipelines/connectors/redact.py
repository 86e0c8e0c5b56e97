"""Keep credentials out of logs, error messages and the errors table.

Two layers, because either alone leaks:
* registered secrets (tokens, client secrets, passwords) are replaced wherever they appear, also
  percent-encoded, since they travel in URLs and form bodies, and also cut short where a text was
  truncated (a body excerpt's "…"), since a token missing its tail is still most of a token;
* credential-shaped text is replaced even when the value was never registered, as in a token
  endpoint's answer: parameters such as `refresh_token=…` or `x_api_key=…`, JSON members such as
  `"access_token": "…"` (escaped quotes and an unterminated string included), headers such as
  `Pwd: …`, `Authorization` schemes (`Bearer …`, `Zoho-oauthtoken …`) and token shapes (JWTs,
  Zoho's `1000.…`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_LENGTH = 6
# A registered secret cut short (an excerpt's "…", a body that ended early) is masked from this
# many characters on: shorter prefixes of real tokens ("1000.") are common text.
MIN_CUT_PREFIX = 8

# Words that make a parameter, member or header name a credential wherever they end it:
# `token` covers access_token, refresh_token, id_token, oauth_token; `api_key` x_api_key, X-Api-Key.
_CREDENTIAL_WORDS = (
    r"token|secret|password|passwd|pwd|api[_-]?key|(?:access|private|secret)[_-]?key"
)
# name=value and "name": "value". OAuth's `code` (a grant code) only as the whole name, so that
# "error_code=5" stays readable.
_NAMES = rf"[\w-]*(?:{_CREDENTIAL_WORDS})|code"
# name: value (headers such as BUSY's `Pwd` echoed in text): a bare "token" or "secret" needs a
# prefix here, because prose says "token: expired"; `code` is left out, since error bodies say
# "code: 57", which helps a person.
_HEADER_NAMES = (
    r"[\w-]+[_-](?:token|secret)|password|passwd|pwd|[\w-]*api[_-]?key|(?:access|private)[_-]?key"
)
# The rest of a quoted string opened by group `q`: escaped quotes (`\"`) do not end it, and a
# string that never closes (a truncated body) is masked to the end.
_QUOTED_REST = r"(?:(?!(?P=q))(?:\\.|[^\\]))*"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # name=value in URLs, form bodies and OAuth 1 headers (oauth_token="…")
    (
        re.compile(
            rf"""(?i)(?<![\w-])(?P<name>{_NAMES})=(?:(?P<q>\\*["']){_QUOTED_REST}|[^&\s#"',;]+)"""
        ),
        rf"\g<name>=\g<q>{MASK}",
    ),
    # name: value
    (
        re.compile(rf"""(?i)(?<![\w-])(?P<name>{_HEADER_NAMES}):\s*(?!\\*["'])[^\s,;]+"""),
        rf"\g<name>: {MASK}",
    ),
    # "name": "value" in JSON bodies (also escaped JSON inside a string, and Python reprs)
    (
        re.compile(
            rf"""(?i)(?P<key>(?P<kq>\\*["'])(?:{_NAMES})(?P=kq)\s*:\s*(?P<q>\\*["'])){_QUOTED_REST}"""
        ),
        rf"\g<key>{MASK}",
    ),
    # Authorization header values (case-sensitive and long, so prose like "basic rate" survives)
    (re.compile(r"\b(Bearer|Basic|Zoho-oauthtoken)\s+[\w.~+/=-]{8,}"), rf"\1 {MASK}"),
    # Tokens without a name, e.g. echoed in an HTML error page: JWTs and JWEs (QuickBooks, Xero)
    # and Zoho's `1000.<hex>.<hex>`, also cut short.
    (re.compile(r"\beyJ[\w-]{10,}\.[\w.-]*"), MASK),
    # (a hex letter is required, so an amount such as 1000.0000000000000000 stays readable)
    (re.compile(r"\b1000\.(?=[0-9]*[a-f])[0-9a-f]{16,}(?:\.[0-9a-f]*)?"), MASK),
)
# Where a text may have been cut: an excerpt's ellipsis, or its end.
_CUT_MARK = re.compile(r"…|\.\.\.|$")


class Redactor:
    """Masks registered secrets and credential-shaped text; safe to share between threads."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._ordered: tuple[str, ...] = ()
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
            ordered = tuple(sorted(self._secrets, key=len, reverse=True))
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            self._ordered = ordered

    def redact(self, text: object) -> str:
        text = str(text)
        pattern, secrets = self._pattern, self._ordered
        if pattern is not None:
            text = _mask_cut_secrets(pattern.sub(MASK, text), secrets)
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


def _mask_cut_secrets(text: str, secrets: tuple[str, ...]) -> str:
    """Mask a registered secret's prefix where the text is cut (before "…" or at its end): a
    token whose tail was cut off no longer matches whole, yet most of it would still be shown."""
    for end in reversed([m.start() for m in _CUT_MARK.finditer(text)]):
        start = min((_cut_start(text, end, s) for s in secrets), default=end)
        if start < end:
            text = text[:start] + MASK + text[end:]
    return text


def _cut_start(text: str, end: int, secret: str) -> int:
    """Where `text[:end]` ends with a proper prefix of `secret` (MIN_CUT_PREFIX or longer): its
    start, else `end`."""
    head = secret[:MIN_CUT_PREFIX]
    start = text.find(head, max(0, end - len(secret) + 1), end)
    while start != -1:
        if secret.startswith(text[start:end]):
            return start
        start = text.find(head, start + 1, end)
    return end


def _encoded_forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret, safe="")}


_default = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor the HTTP client and OAuth manager register secrets with."""
    return _default
