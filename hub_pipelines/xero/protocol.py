"""Xero Accounting API 2.0: what the hub knows about the protocol (shared/protocols/xero.md, whose
section 0 overrides the rest), as constants and pure functions a connector and a simulator share.

- Auth: OAuth 2 authorisation code with `offline_access`; access tokens last 30 minutes and every
  refresh returns a new refresh token that replaces the old one (single use; the previous one is
  accepted for a 30-minute grace period). Unused refresh tokens die after 60 days. Every API call
  carries `Authorization: Bearer …`, `Xero-Tenant-Id: <organisation>` and `Accept:
  application/json` (without it answers, errors included, are XML).
- Lists: `page` (1-based) and `pageSize`, always both: without `page` the list omits line items.
  `pagination.pageCount` says when to stop. Changes: `If-Modified-Since` (UTC, whole seconds)
  with `order=UpdatedDateUTC ASC`.
- Limits per organisation: 60 calls/minute, 5 concurrent, 5,000/day (1,000 on the entry tier,
  reportedly); 10,000/minute per app across all organisations. A 429 names the limit hit in
  `X-Rate-Limit-Problem`; the `day` one cannot be waited out inside a run.
- Dates are MS-JSON: `/Date(1539993600000+0000)/` (epoch milliseconds, UTC; the suffix is the
  local offset) or `/Date(1552326816230)/`.
"""

from __future__ import annotations

import functools
import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

import httpx

from hub_pipelines.connectors.errors import Category
from hub_pipelines.connectors.http import Failure, body_excerpt, json_body, parse_retry_after
from hub_pipelines.connectors.oauth import token_response_check

SYSTEM = "xero"

# --- where ----------------------------------------------------------------------------------------

API_BASE_URL = "https://api.xero.com/api.xro/2.0"
CONNECTIONS_URL = "https://api.xero.com/connections"
AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
TOKEN_URL = "https://identity.xero.com/connect/token"  # noqa: S105 (a URL, not a secret)

CONTACTS_PATH = "/Contacts"
INVOICES_PATH = "/Invoices"
TAX_RATES_PATH = "/TaxRates"  # the tax rates and their components (GST heads: mapping.py)
ORGANISATION_PATH = "/Organisation"  # a cheap call for a connection test

TENANT_HEADER = "Xero-Tenant-Id"
MODIFIED_SINCE_HEADER = "If-Modified-Since"
JSON_HEADERS = {"Accept": "application/json"}  # without it Xero answers XML

# Granular scopes: apps created since 2 Mar 2026 are refused the broad
# accounting.transactions(.read). accounting.settings.read is not deprecated and is what
# `GET /TaxRates` (the GST heads) and `GET /Organisation` require (Xero-OpenAPI: getTaxRates'
# security is accounting.settings / accounting.settings.read); offline_access yields a refresh
# token.
SCOPES = "accounting.invoices.read accounting.contacts.read accounting.settings.read offline_access"

# --- tokens ---------------------------------------------------------------------------------------

ACCESS_TOKEN_LIFETIME = timedelta(minutes=30)
# A refresh whose answer was lost may repeat the previous refresh token within this grace period.
REFRESH_TOKEN_GRACE = timedelta(minutes=30)
# Unused refresh tokens expire (current Xero FAQ; an older reply said 30 days) ...
REFRESH_TOKEN_IDLE_EXPIRY = timedelta(days=60)
# ... so an idle connection is refreshed at least this often (with room for a missed week).
REFRESH_AT_LEAST_EVERY = timedelta(days=7)

# --- paging ---------------------------------------------------------------------------------------

DOCUMENTED_PAGE_SIZE = 100  # Xero's reference: "up to 100 invoices ... with line items"
# pageSize is accepted up to 1000 (Xero added it to the paged endpoints in 2025, per OdataLink's
# notes; Airbyte's source-xero pages by 1000; CData's driver allows 1 to 1000). Not in Xero's own
# reference we hold (unverified), so an answer served at another size stops the walk, naming it
# (`served_page_size`). Pages of 1000 cost a tenth of the calls of Xero's 5,000 a day.
MAX_PAGE_SIZE = 1000
PAGE_SIZE = MAX_PAGE_SIZE
# `IDs=` lists break above about 52 GUIDs (URL length: Xero-OpenAPI issue #534).
IDS_PER_REQUEST = 50

# --- limits ---------------------------------------------------------------------------------------

REQUESTS_PER_MINUTE = 60  # per organisation (tenant), per app
CONCURRENT_REQUESTS = 5  # per organisation
DAILY_REQUESTS = 5_000  # per organisation, rolling 24 h
ENTRY_TIER_DAILY_REQUESTS = 1_000  # the Starter tier since 2 Mar 2026 (reportedly; unverified)
APP_REQUESTS_PER_MINUTE = 10_000  # per app, all organisations together
# What a client paces itself to: under the limits, so the source never has to throttle.
SAFE_REQUESTS_PER_MINUTE = 55
SAFE_CONCURRENT_REQUESTS = 4

DAY_REMAINING_HEADER = "X-DayLimit-Remaining"  # the HttpClient's `quota_header`
MINUTE_REMAINING_HEADER = "X-MinLimit-Remaining"
APP_MINUTE_REMAINING_HEADER = "X-AppMinLimit-Remaining"
RATE_LIMIT_PROBLEM_HEADER = "X-Rate-Limit-Problem"

# --- webhooks -------------------------------------------------------------------------------------

SIGNATURE_HEADER = "x-xero-signature"

# Fixes name only what exists (hub_pipelines_tests/test_suggested_fixes.py checks them).
_RECONNECT = (
    "Reconnect the organisation: authorise the hub's Xero app again with the scopes "
    f"`{SCOPES}` (docs/connectors/xero.md, section 2), store the new refresh token with "
    "`hub tenants add TENANT xero --config FILE`, check it with `hub tenants test TENANT xero`, "
    "and re-run the failed import with `hub errors retry ID`."
)
SINGLE_USE_REFRESH = (
    "Xero refresh tokens are single use: each refresh returns a new one, and the old one works "
    "only for 30 minutes more. A token that was used elsewhere (another copy of this connection "
    "config, another tool), left unused for 60 days, or revoked by disconnecting the app can no "
    "longer be refreshed. " + _RECONNECT
)
TENANT_NOT_CONNECTED = (
    "Check connection_config.xero_tenant_id: it must be the `tenantId` of an organisation this "
    f"connection is authorised for, as `GET {CONNECTIONS_URL}` lists it with the connection's "
    "access token (docs/connectors/xero.md, section 3). If the organisation was disconnected from "
    "the app, reconnect it. Store the corrected config with "
    "`hub tenants add TENANT xero --config FILE`."
)
DAILY_LIMIT_FIX = (
    "The retry sensor re-runs the import after Xero's daily window resets. The daily limit is per "
    "organisation and shared by every app connected to it; if it repeats, make the tenant's "
    "sync_config.invoices_frequency or sync_config.customers_frequency less frequent "
    "(docs/connectors/xero.md, section 4)."
)
REQUEST_REFUSED_FIX = (
    "Xero refused the hub's request as invalid. The connector built a request Xero does not "
    "accept: report it with the message (`hub errors show ID` shows it)."
)


# --- MS-JSON dates --------------------------------------------------------------------------------

_MS_JSON = re.compile(r"/Date\((?P<ms>-?\d+)(?P<offset>[+-]\d{4})?\)/")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms_json_parts(text: Any) -> tuple[datetime, timedelta]:
    """The UTC instant and the local offset of `/Date(ms±hhmm)/`; ValueError for anything else."""
    if not isinstance(text, str):
        raise ValueError(f"not an MS-JSON date such as /Date(1539993600000+0000)/: {text!r}")
    return _parsed_ms_json(text)


# An invoice's `UpdatedDateUTC` is read three times (the window's order check, the walk's version
# and the mapping), and invoices share their `Date`s: parsed once, a lookup after (2 µs a parse).
@functools.lru_cache(maxsize=4096)
def _parsed_ms_json(text: str) -> tuple[datetime, timedelta]:
    match = _MS_JSON.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an MS-JSON date such as /Date(1539993600000+0000)/: {text!r}")
    instant = _EPOCH + timedelta(milliseconds=int(match["ms"]))
    offset = match["offset"]
    if not offset:
        return instant, timedelta(0)
    sign = -1 if offset[0] == "-" else 1
    return instant, sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))


def ms_json_date(text: Any) -> datetime:
    """`/Date(1539993600000+0000)/` or `/Date(1552326816230)/` as an aware UTC datetime.

    The milliseconds count from the epoch in UTC whatever the suffix says: the suffix is the
    local offset of the moment (the .NET convention), so it does not move the instant."""
    return _ms_json_parts(text)[0]


def ms_json_calendar_date(text: Any) -> date:
    """An invoice `Date` / `DueDate` (`/Date(1539993600000+0000)/`, midnight UTC) as a calendar
    date: the day at the stated local offset."""
    instant, offset = _ms_json_parts(text)
    return (instant + offset).date()


def ms_json_text(moment: datetime, *, with_offset: bool = True) -> str:
    """The MS-JSON form Xero writes (for simulators): `/Date(1539993600000+0000)/`, or without
    the offset as in `DateTimeUTC`."""
    if moment.tzinfo is None:
        raise ValueError("an MS-JSON date needs a timezone-aware datetime")
    delta = moment.astimezone(UTC) - _EPOCH
    milliseconds = delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    return f"/Date({milliseconds}{'+0000' if with_offset else ''})/"


def if_modified_since(moment: datetime) -> str:
    """`If-Modified-Since` as Xero reads it: UTC, whole seconds, no offset
    (`2025-03-01T00:00:00`). Fractions are dropped (rounding down), so a record changed within
    that second is sent again rather than missed; the caller subtracts its overlap first."""
    if moment.tzinfo is None:
        raise ValueError("If-Modified-Since needs a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# --- list requests --------------------------------------------------------------------------------


def _paging(page: int, page_size: int) -> dict[str, Any]:
    """`page` and `pageSize`, always both: a list without `page` omits the line items."""
    if page < 1:
        raise ValueError(f"Xero pages start at 1, got page={page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"pageSize must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return {"page": page, "pageSize": page_size}


def contacts_params(page: int, page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """Every contact, archived ones included (otherwise silently hidden), oldest change first.
    Contacts are never filtered by `IsCustomer`: Xero sets it only once an AR invoice exists."""
    return {
        **_paging(page, page_size),
        "includeArchived": "true",
        "order": "UpdatedDateUTC ASC",
    }


def contacts_by_id_params(
    contact_ids: Sequence[str], page: int = 1, page_size: int = PAGE_SIZE
) -> dict[str, Any]:
    """Named contacts (`IDs=`), e.g. those referenced by new invoices whose `UpdatedDateUTC` did
    not move; at most `IDS_PER_REQUEST` ids per call (longer URLs fail)."""
    if not contact_ids:
        raise ValueError("contacts_by_id_params needs at least one contact id")
    if len(contact_ids) > IDS_PER_REQUEST:
        raise ValueError(f"at most {IDS_PER_REQUEST} ids per request, got {len(contact_ids)}")
    return {**contacts_params(page, page_size), "IDs": ",".join(contact_ids)}


def invoices_params(page: int, page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """Sales invoices only (`Type=="ACCREC"`: never a bill), every status (DELETED and VOIDED
    included), oldest change first."""
    return {
        **_paging(page, page_size),
        "where": 'Type=="ACCREC"',
        "order": "UpdatedDateUTC ASC",
    }


def has_more_pages(body: Any, records: Sequence[Any], page_size: int) -> bool:
    """Whether another page follows: `pagination.page < pagination.pageCount`, or, when the
    block is missing, a page of at least Xero's documented size. (A recorded walk that asked for
    one page more got an empty one.)"""
    pagination = _pagination(body)
    page, count = pagination.get("page"), pagination.get("pageCount")
    if isinstance(page, int) and isinstance(count, int):
        return page < count
    # Without the block a page of Xero's documented size may be a full one served smaller.
    return len(records) >= min(page_size, DOCUMENTED_PAGE_SIZE)


def served_page_size(body: Any) -> int | None:
    """The `pagination.pageSize` a list answer was served at (None when it does not say)."""
    size = _pagination(body).get("pageSize")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _pagination(body: Any) -> dict[str, Any]:
    pagination = body.get("pagination") if isinstance(body, dict) else None
    return pagination if isinstance(pagination, dict) else {}


def item_count(body: Any) -> int | None:
    """`pagination.itemCount`: how many records the whole list holds (progress estimates)."""
    pagination = body.get("pagination") if isinstance(body, dict) else None
    count = pagination.get("itemCount") if isinstance(pagination, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def connected_tenant(connections: Any, tenant_id: str) -> dict[str, Any] | None:
    """The `GET /connections` entry of an organisation, None when the token cannot reach it."""
    wanted = tenant_id.strip().lower()
    for connection in connections if isinstance(connections, list) else []:
        if isinstance(connection, dict) and str(connection.get("tenantId", "")).lower() == wanted:
            return connection
    return None


# --- limits ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """An organisation's call limits; `per_day` depends on the app's tier (configurable)."""

    per_minute: int = REQUESTS_PER_MINUTE
    concurrent: int = CONCURRENT_REQUESTS
    per_day: int = DAILY_REQUESTS


DEFAULT_LIMITS = Limits()
ENTRY_TIER_LIMITS = Limits(per_day=ENTRY_TIER_DAILY_REQUESTS)


@dataclass(frozen=True, slots=True)
class RemainingLimits:
    """What Xero's last answer said is left; None for a header the answer did not carry (calls
    without a tenant, such as `/connections`, carry only the app-wide one)."""

    day: int | None = None
    minute: int | None = None
    app_minute: int | None = None


def remaining_limits(headers: Mapping[str, str]) -> RemainingLimits:
    """`X-DayLimit-Remaining`, `X-MinLimit-Remaining`, `X-AppMinLimit-Remaining`, whatever the
    case of the header names."""
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}

    def number(name: str) -> int | None:
        value = lowered.get(name.lower(), "").strip()
        return int(value) if value.isdigit() else None

    return RemainingLimits(
        day=number(DAY_REMAINING_HEADER),
        minute=number(MINUTE_REMAINING_HEADER),
        app_minute=number(APP_MINUTE_REMAINING_HEADER),
    )


# --- response checks ------------------------------------------------------------------------------


def response_check(response: httpx.Response, now: datetime | None = None) -> Failure | None:
    """Xero's error shapes, for `HttpClient(check=…)`; None leaves a response to the status rules.

    - 401: problem-details JSON whose `Detail` names the cause. The client re-authenticates once
      on any 401 before this failure counts (as for Zoho), which is what an expired access token
      (`TokenExpired`) needs; a 401 after that is AUTH, not retried.
    - 403: the organisation is not connected to this token (wrong `Xero-Tenant-Id`): CONFIG.
    - 400: `ValidationException` and other API exceptions, JSON or XML: CONFIG, naming Xero's
      messages.
    - 429: `X-Rate-Limit-Problem` names the limit. `day` cannot be waited out within the run:
      RATE_LIMIT, not retried, `retry_after` the reset; any other is retried after `Retry-After`.
    - 503: maintenance or legacy throttling, retried after `Retry-After`.
    `now` (default: the answer's `Date`, else the clock) dates the daily reset in messages."""
    status = response.status_code
    if status == 401:
        return _unauthorised(response)
    if status == 403:
        return _forbidden(response)
    if status == 400:
        return _refused_request(response)
    if status == 429:
        return _rate_limited(response, now)
    if status == 503:
        return _unavailable(response)
    return None


def _problem_detail(response: httpx.Response) -> str | None:
    """`Detail` of a problem-details body (`{"Title":"Unauthorized","Status":401,"Detail":…}`)."""
    body = _json_object(response)
    detail = (body.get("Detail") or body.get("detail")) if body else None
    return str(detail).strip() if detail else None


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json_body(response)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _unauthorised(response: httpx.Response) -> Failure:
    detail = _problem_detail(response) or body_excerpt(response)
    if detail.startswith("TokenExpired"):
        return Failure(
            Category.AUTH,
            f"Xero refused the access token as expired ({detail}), also after a refresh",
            code="TokenExpired",
            suggested_fix="A fresh access token was refused as expired too. " + _RECONNECT,
        )
    if detail.startswith("AuthorizationUnsuccessful"):
        return Failure(
            Category.AUTH,
            "Xero refused the connection's authorisation (AuthorizationUnsuccessful): the app "
            "was disconnected, or the token lacks the scopes or the organisation's entitlement",
            code="AuthorizationUnsuccessful",
            suggested_fix=_RECONNECT,
        )
    return Failure(Category.AUTH, f"Xero answered 401: {detail}", suggested_fix=_RECONNECT)


def _forbidden(response: httpx.Response) -> Failure:
    detail = _problem_detail(response) or body_excerpt(response)
    return Failure(
        Category.CONFIG,
        f"Xero refused access to the organisation named by {TENANT_HEADER} (403: {detail}): it "
        "is not connected to this authorisation",
        retryable=False,
        code="403",
        suggested_fix=TENANT_NOT_CONNECTED,
    )


def _refused_request(response: httpx.Response) -> Failure | None:
    """A 400 with Xero's API exception, JSON (`Type`, `Message`, `Elements[].ValidationErrors`)
    or XML (`<ApiException>`); None for any other body (the status rules: CONFIG)."""
    found = _json_exception(response) or _xml_exception(response)
    if found is None:
        return None
    kind, messages = found
    return Failure(
        Category.CONFIG,
        f"Xero refused the request ({kind}): {'; '.join(messages) or body_excerpt(response)}",
        retryable=False,
        code=kind,
        suggested_fix=REQUEST_REFUSED_FIX,
    )


def _json_exception(response: httpx.Response) -> tuple[str, list[str]] | None:
    body = _json_object(response)
    if not body or not body.get("Type"):
        return None
    messages = [str(body["Message"])] if body.get("Message") else []
    for element in body.get("Elements") or []:
        errors = element.get("ValidationErrors") if isinstance(element, dict) else None
        for error in errors or []:
            if isinstance(error, dict) and error.get("Message"):
                messages.append(str(error["Message"]))
    return str(body["Type"]), messages


def _xml_exception(response: httpx.Response) -> tuple[str, list[str]] | None:
    text = response.text.lstrip("\ufeff \r\n\t")
    if not text.startswith("<"):
        return None
    try:
        # Xero's own error body, small; expat (≥ 2.4 here) refuses entity expansion bombs and
        # ElementTree never fetches external entities.
        root = ElementTree.fromstring(text)  # noqa: S314
    except ElementTree.ParseError:
        return None
    if _local_name(root.tag) != "ApiException":
        return None
    messages = [_child_text(root, "Message")]
    messages += [
        _child_text(error, "Message")
        for error in root.iter()
        if _local_name(error.tag) == "ValidationError"
    ]
    kind = _child_text(root, "Type") or "ApiException"
    return kind, [message for message in messages if message]


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # "{namespace}Message" -> "Message"


def _child_text(element: ElementTree.Element, name: str) -> str:
    for child in element:
        if _local_name(child.tag) == name:
            return (child.text or "").strip()
    return ""


def _rate_limited(response: httpx.Response, now: datetime | None) -> Failure:
    problem = response.headers.get(RATE_LIMIT_PROBLEM_HEADER, "").strip()
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if problem.lower().startswith("day"):
        return Failure(
            Category.RATE_LIMIT,
            "Xero's daily API limit for this organisation is reached "
            f"({RATE_LIMIT_PROBLEM_HEADER}: {problem}); " + _reset_text(response, retry_after, now),
            retryable=False,
            retry_after=retry_after,
            code="day",
            suggested_fix=DAILY_LIMIT_FIX,
        )
    limit = _limit_name(problem)
    wait = f"retrying after {retry_after:g} s" if retry_after is not None else "retrying"
    return Failure(
        Category.RATE_LIMIT,
        f"Xero throttled the request: the {limit} was hit; {wait}",
        retry_after=retry_after,
        code=problem.lower() or "429",
    )


def _limit_name(problem: str) -> str:
    """The limit an `X-Rate-Limit-Problem` value names, matched by prefix whatever its case
    (`minute` and `day` are seen; third-party code also spells `Concurrent`, `AppMinute`)."""
    lowered = problem.lower()
    for prefix, name in (
        ("minute", "per-minute limit (60 calls)"),
        ("concurrent", "concurrent-call limit (5 calls)"),
        ("app", "app-wide per-minute limit"),
    ):
        if lowered.startswith(prefix):
            return name
    return f"limit {problem!r}" if problem else "rate limit (no X-Rate-Limit-Problem header)"


def _reset_text(response: httpx.Response, retry_after: float | None, now: datetime | None) -> str:
    if retry_after is None:
        return "it resets within 24 hours (Xero sent no Retry-After)"
    reset = (now or _answered_at(response)) + timedelta(seconds=retry_after)
    return f"it resets in {retry_after:g} s, at {reset:%Y-%m-%d %H:%M} UTC"


def _answered_at(response: httpx.Response) -> datetime:
    """When the answer was sent (its `Date` header), else now."""
    try:
        sent = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return datetime.now(UTC)
    return (sent if sent.tzinfo else sent.replace(tzinfo=UTC)).astimezone(UTC)


def _unavailable(response: httpx.Response) -> Failure:
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    excerpt = body_excerpt(response)
    # Older integrations were throttled with a 503 (`oauth_problem=rate%20limit%20exceeded`).
    if "rate limit" in unquote(excerpt).lower():
        return Failure(
            Category.RATE_LIMIT,
            f"Xero throttled the request (503): {excerpt}",
            retry_after=retry_after,
        )
    return Failure(
        Category.SERVER,
        f"Xero is unavailable (503, maintenance?): {excerpt}",
        retry_after=retry_after,
    )


def token_check(response: httpx.Response) -> Failure | None:
    """Xero's token endpoint: 400 `{"error":"invalid_grant"}` means the refresh token is spent,
    expired or revoked, which no retry fixes (refresh tokens are single use);
    `invalid_client` is a wrong client id or secret. Anything else: the shared token check."""
    body = _json_object(response)
    error = str(body.get("error") or "") if body else ""
    description = str(body.get("error_description") or "") if body else ""
    said = f"{error}: {description}" if description else error
    if error == "invalid_grant":
        return Failure(
            Category.AUTH,
            f"Xero refused the refresh token ({said})",
            retryable=False,
            code=error,
            suggested_fix=SINGLE_USE_REFRESH,
        )
    if error == "invalid_client":
        return Failure(
            Category.AUTH,
            f"Xero refused the app's credentials ({said})",
            retryable=False,
            code=error,
            suggested_fix="Check connection_config.client_id and connection_config.client_secret "
            "against the app in Xero's developer portal (docs/connectors/xero.md, section 1); "
            "store the corrected config with `hub tenants add TENANT xero --config FILE`.",
        )
    return token_response_check(response)


def problem_json(detail: str, status: int, title: str) -> str:
    """A problem-details body as Xero writes it (for simulators and tests)."""
    return json.dumps({"Type": None, "Title": title, "Status": status, "Detail": detail})
