"""QuickBooks Online Accounting API v3: what the hub knows about its protocol, as constants and
pure functions (shared/protocols/quickbooks.md; section 0 of it overrides the rest).

- Transport: `{host}/v3/company/{realmId}/…` with `minorversion=75` on every call (1–74 are
  ignored since 1 Aug 2025), `Authorization: Bearer …`, `Accept: application/json`. Responses
  carry `intuit_tid`, Intuit's trace id: quote it when asking Intuit about a failure.
- Auth: Intuit OAuth 2 with rotating refresh tokens (persist the new one before use); the token
  endpoint refuses with HTTP 400 `{"error": "invalid_grant"}` (`token_check`).
- Lists: one query text per entity, `STARTPOSITION` (1-based) / `MAXRESULTS` (≤ 1000) inside the
  text, ordered by `MetaData.LastUpdatedTime`, ending on a short page (`query_text`).
- Deletes: only Change Data Capture (≤ 30 days back, ≤ 1000 objects per answer across all
  entities) and webhooks show them (`cdc_params`, `parse_cdc`).
- Errors: three body shapes (lower-case `fault` JSON, capitalised `Fault` JSON, XML, sometimes
  malformed) and throttling as Fault code 3001 whatever the HTTP status (`response_check`).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree  # noqa: S405 - see _xml_faults for why it is safe
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from hub_pipelines.connectors.errors import Category
from hub_pipelines.connectors.http import Failure, body_excerpt, json_body, parse_retry_after
from hub_pipelines.connectors.oauth import token_response_check

SYSTEM = "quickbooks"
API_HOSTS = {
    "production": "https://quickbooks.api.intuit.com",
    "sandbox": "https://sandbox-quickbooks.api.intuit.com",
}
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"  # noqa: S105 - a URL
SCOPE = "com.intuit.quickbooks.accounting"
# Sent with a refresh, it makes Intuit add `x_refresh_token_hard_expires_in` (seconds until the
# 5-year cap; the JSON key name is (unverified)) to the answer.
HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"
HARD_EXPIRY_FIELD = "x_refresh_token_hard_expires_in"
TRACE_HEADER = "intuit_tid"

MINOR_VERSION = 75
MAX_RESULTS = 1000  # per query page ((unverified) by Intuit docs, commonly cited)
CDC_MAX_OBJECTS = 1000  # per CDC answer, shared by all the entities asked for
CDC_MAX_DAYS = 30
REQUESTS_PER_MINUTE = 500  # per realm
REQUESTS_PER_SECOND = 10  # per realm and app
THROTTLE_WAIT_SECONDS = 60  # Intuit: after a 429, wait 60 s; no Retry-After is documented

# The hub's entities and the QuickBooks entity each is read from.
STREAM_ENTITIES = {"customers": "Customer", "invoices": "Invoice"}
# Name-list entities hide inactive rows from queries unless asked for both.
INCLUDES_INACTIVE = frozenset({"Customer"})
# Entities Intuit's CDC does not serve.
CDC_UNSUPPORTED = frozenset({"JournalCode", "TaxAgency", "TaxCode", "TaxRate", "TimeActivity"})
_ENTITY_NAME = re.compile(r"[A-Z][A-Za-z]*")


def company_url(environment: str, realm_id: str) -> str:
    """The API base of one company (realm): `…/v3/company/{realmId}`."""
    return f"{API_HOSTS[environment]}/v3/company/{realm_id}"


def common_params() -> dict[str, str]:
    """Query parameters every API call carries."""
    return {"minorversion": str(MINOR_VERSION)}


# --- queries -----------------------------------------------------------------------------------


def query_timestamp(moment: datetime) -> str:
    """A timestamp literal with an explicit offset, whole seconds (rounded down, so a `>=` filter
    never misses the second it names): `2025-03-01T00:00:00+05:30`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp without a UTC offset: {moment!r}")
    return moment.replace(microsecond=0).isoformat()


def query_text(
    entity: str,
    since: datetime | None = None,
    start_position: int = 1,
    max_results: int = MAX_RESULTS,
    *,
    include_inactive: bool | None = None,
) -> str:
    """One page of an entity's rows changed at or after `since` (all rows without it), oldest
    change first: `SELECT * FROM Customer WHERE Active IN (true, false) AND
    MetaData.LastUpdatedTime >= '…' ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS
    1000`. `include_inactive` defaults to whether `entity` is a name list (Customer)."""
    if start_position < 1:
        raise ValueError(f"STARTPOSITION is 1-based, got {start_position}")
    if not 1 <= max_results <= MAX_RESULTS:
        raise ValueError(f"MAXRESULTS must be between 1 and {MAX_RESULTS}, got {max_results}")
    return (
        f"SELECT * FROM {_entity(entity)}{_where(entity, since, include_inactive)}"
        f" ORDERBY MetaData.LastUpdatedTime STARTPOSITION {start_position} MAXRESULTS {max_results}"
    )


def count_query(
    entity: str, since: datetime | None = None, *, include_inactive: bool | None = None
) -> str:
    """How many rows `query_text` would page through: its answer's `QueryResponse.totalCount`."""
    return f"SELECT COUNT(*) FROM {_entity(entity)}{_where(entity, since, include_inactive)}"


def query_records(body: Any, entity: str) -> list[dict[str, Any]]:
    """The rows of a query answer; QuickBooks omits the entity's key when there are none."""
    answer = body.get("QueryResponse") if isinstance(body, Mapping) else None
    if not isinstance(answer, Mapping):
        raise ValueError("a query answer without a QueryResponse object")
    rows = answer.get(entity)
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise ValueError(f"QueryResponse.{entity}: expected a list, got {type(rows).__name__}")
    return rows


def query_count(body: Any) -> int:
    """`totalCount` of a `count_query` answer."""
    answer = body.get("QueryResponse") if isinstance(body, Mapping) else None
    count = answer.get("totalCount") if isinstance(answer, Mapping) else None
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"QueryResponse.totalCount: expected a whole number, got {count!r}")
    return count


def _entity(entity: str) -> str:
    if not _ENTITY_NAME.fullmatch(entity):  # the name goes into query text: letters only
        raise ValueError(f"not a QuickBooks entity name: {entity!r}")
    return entity


def _where(entity: str, since: datetime | None, include_inactive: bool | None) -> str:
    if include_inactive is None:
        include_inactive = entity in INCLUDES_INACTIVE
    conditions = ["Active IN (true, false)"] if include_inactive else []
    if since is not None:
        conditions.append(f"MetaData.LastUpdatedTime >= '{query_timestamp(since)}'")
    return " WHERE " + " AND ".join(conditions) if conditions else ""


# --- change data capture -----------------------------------------------------------------------


def cdc_params(entities: Iterable[str], changed_since: datetime) -> dict[str, str]:
    """Parameters of `GET …/cdc`: the entities' changes (deletes included) since a moment at most
    `CDC_MAX_DAYS` back (`cdc_reaches`). httpx encodes the offset's `+` as `%2B`."""
    names = [_entity(entity) for entity in entities]
    if not names:
        raise ValueError("CDC needs at least one entity")
    unsupported = sorted(set(names) & CDC_UNSUPPORTED)
    if unsupported:
        raise ValueError(f"Intuit's CDC does not serve {', '.join(unsupported)}")
    return {
        "entities": ",".join(names),
        "changedSince": query_timestamp(changed_since),
        **common_params(),
    }


def cdc_reaches(changed_since: datetime, now: datetime) -> bool:
    """Whether CDC can still answer for changes since `changed_since` (30 days back at most);
    beyond that only a full listing finds deleted invoices."""
    return now - changed_since <= timedelta(days=CDC_MAX_DAYS)


def parse_cdc(body: Any) -> dict[str, list[dict[str, Any]]]:
    """A CDC answer's records by QuickBooks entity, in the order sent. Deleted records are kept:
    they are stubs with `"status": "Deleted"` (`is_deleted`). An entity without changes is
    absent. Raises ValueError, naming the place, for an answer of another shape.

    `{"CDCResponse": [{"QueryResponse": [{"Customer": […], "startPosition": 1, …},
    {"Invoice": […]}]}], "time": "…"}`"""
    responses = body.get("CDCResponse") if isinstance(body, Mapping) else None
    if not isinstance(responses, list):
        raise ValueError("CDCResponse: expected a list")
    changes: dict[str, list[dict[str, Any]]] = {}
    for index, response in enumerate(responses):
        answers = response.get("QueryResponse") if isinstance(response, Mapping) else None
        if not isinstance(answers, list):
            raise ValueError(f"CDCResponse[{index}].QueryResponse: expected a list")
        for position, answer in enumerate(answers):
            if not isinstance(answer, Mapping):
                raise ValueError(f"CDCResponse[{index}].QueryResponse[{position}]: not an object")
            for entity, records in answer.items():
                if not isinstance(records, list):
                    continue  # startPosition, maxResults, totalCount
                where = f"CDCResponse[{index}].QueryResponse[{position}].{entity}"
                if not all(isinstance(record, Mapping) for record in records):
                    raise ValueError(f"{where}: every record must be an object")
                changes.setdefault(entity, []).extend(records)
    return changes


def is_deleted(record: Mapping[str, Any]) -> bool:
    """A CDC stub of a deleted record (`"status": "Deleted"`, its id and `MetaData` only)."""
    return record.get("status") == "Deleted"


def cdc_is_full(changes: Mapping[str, list[Any]]) -> bool:
    """Whether a CDC answer hit its 1000-object cap: changes may be missing, so ask again per
    entity or from a later `changedSince`."""
    return sum(len(records) for records in changes.values()) >= CDC_MAX_OBJECTS


# --- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """One error of a QuickBooks fault body, whichever of its shapes it came in."""

    type: str | None  # AUTHENTICATION, AuthenticationFault, SERVICE, ValidationFault, …
    code: str | None
    message: str | None
    detail: str | None

    def describe(self) -> str:
        text = " — ".join(part for part in (self.message, self.detail) if part)
        kind = f" ({self.type})" if self.type else ""
        return f"QuickBooks fault {self.code or '?'}{kind}: {text or 'no message'}"


# Faults are small; a body beyond this is not parsed whole (nor kept in memory twice).
MAX_FAULT_BODY = 64 * 1024


def read_faults(response: httpx.Response) -> list[Fault]:
    """The errors of a fault body: JSON `fault.error[]` (401/403 envelope), JSON `Fault.Error[]`
    (validation), or XML `<Fault><Error code=…>` (throttling, some auth paths), also when the XML
    is malformed. Empty for any other body."""
    text = response.text[:MAX_FAULT_BODY]
    if text.lstrip().startswith("<"):
        return _xml_faults(text)
    try:
        body = json.loads(text)
    except ValueError:
        return []
    return _json_faults(body)


def _json_faults(body: Any) -> list[Fault]:
    if not isinstance(body, Mapping):
        return []
    fault = body.get("Fault") or body.get("fault")
    if not isinstance(fault, Mapping):
        return []
    errors = fault.get("Error") or fault.get("error") or []
    kind = _text(fault.get("type"))
    return [
        Fault(
            kind,
            _text(error.get("code")),
            _text(error.get("Message") or error.get("message")),
            _text(error.get("Detail") or error.get("detail")),
        )
        for error in (errors if isinstance(errors, list) else [errors])
        if isinstance(error, Mapping)
    ]


_XML_FAULT_TYPE = re.compile(r"<(?:\w+:)?Fault\b[^>]*\btype=\"([^\"]*)\"")
_XML_ERROR = re.compile(r"<(?:\w+:)?Error\b[^>]*\bcode=\"([^\"]*)\"[^>]*>", re.S)
_XML_MESSAGE = re.compile(r"<(?:\w+:)?Message>(.*?)</(?:\w+:)?Message>", re.S)
_XML_DETAIL = re.compile(r"<(?:\w+:)?Detail>(.*?)</(?:\w+:)?Detail>", re.S)


def _xml_faults(text: str) -> list[Fault]:
    """XML faults with the standard library's parser: lxml is not a dependency of the hub, and
    these bodies need no more. It is safe on a source's body: ElementTree never fetches external
    entities, expat ≥ 2.4.1 (Python 3.11 ships 2.5) stops entity-expansion bombs, and the body is
    cut to `MAX_FAULT_BODY`. Intuit has sent malformed faults (a missing `</Error>`): then each
    `<Error>` is read with patterns, up to the next one."""
    try:
        root = ElementTree.fromstring(text)  # noqa: S314 - see the docstring
    except ElementTree.ParseError:
        return _salvaged_xml_faults(text)
    faults = []
    for fault in (e for e in root.iter() if _local(e.tag) == "Fault"):
        for error in (e for e in fault if _local(e.tag) == "Error"):
            parts = {_local(child.tag): _text(child.text) for child in error}
            faults.append(
                Fault(
                    _text(fault.get("type")),
                    _text(error.get("code")),
                    parts.get("Message"),
                    parts.get("Detail"),
                )
            )
    return faults


def _salvaged_xml_faults(text: str) -> list[Fault]:
    kind = _XML_FAULT_TYPE.search(text)
    starts = list(_XML_ERROR.finditer(text))
    faults = []
    for index, start in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        chunk = text[start.end() : end]
        message, detail = _XML_MESSAGE.search(chunk), _XML_DETAIL.search(chunk)
        faults.append(
            Fault(
                _text(kind.group(1)) if kind else None,
                _text(start.group(1)),
                _text(message.group(1)) if message else None,
                _text(detail.group(1)) if detail else None,
            )
        )
    return faults


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


# --- response checks ---------------------------------------------------------------------------

THROTTLE_CODE = "3001"
AUTHORIZATION_CODE = "3100"
WRONG_CLUSTER_CODE = "130"
NOT_FOUND_CODE = "610"

RECONNECT = (
    "Reconnect the QuickBooks company: Intuit no longer accepts the hub's authorisation for "
    "this realm (revoked, disconnected in QuickBooks, past the refresh token's 100-day or 5-year "
    "expiry, or a rotated refresh token was lost). A QuickBooks admin of the company authorises "
    "the app again (docs/connectors/quickbooks.md, section 1); store the new refresh token with "
    "`hub tenants add TENANT quickbooks --config FILE`, check it with "
    "`hub tenants test TENANT quickbooks`, then re-run a failed import with `hub errors retry ID`."
)


def response_check(response: httpx.Response) -> Failure | None:
    """QuickBooks' failures, read from the fault in the body (any of its shapes): throttling is
    Fault code 3001 whatever the status (429, or 403 on older answers) and waits 60 s; 401 is AUTH
    (the HTTP client re-authenticates once first), except code 130, a token of the other
    environment (CONFIG); 403 is AUTH (3100: scope or realm not authorised); 400 ValidationFault
    is CONFIG (our query is wrong), 610 SOURCE_DATA (the record is gone); 5xx retry. A 2xx body
    that is not JSON (truncated) is retried. None: the default status rules."""
    status = response.status_code
    faults = read_faults(response) if status >= 300 or _looks_like_fault(response) else []
    if status < 400 and not faults:  # a success: no excerpt of a body of megabytes
        if status < 300 and not _is_json(response):
            return Failure(Category.SERVER, _not_json(response))
        return None
    described = "; ".join(fault.describe() for fault in faults) or body_excerpt(response)
    described += _trace(response)
    if status == 429 or any(_is_throttle(fault) for fault in faults):
        wait = parse_retry_after(response.headers.get("Retry-After")) or THROTTLE_WAIT_SECONDS
        return Failure(Category.RATE_LIMIT, described, retry_after=wait, code=THROTTLE_CODE)
    if status >= 500:
        return None  # SERVER, retried with backoff
    codes = {fault.code for fault in faults}
    if status == 401 or _is_authentication(faults):
        if WRONG_CLUSTER_CODE in codes or "wrong cluster" in described.lower():
            return Failure(
                Category.CONFIG,
                described,
                retryable=False,
                code=WRONG_CLUSTER_CODE,
                suggested_fix="The token belongs to the other Intuit environment (a sandbox "
                "company's token on the production host, or the reverse): set "
                "connection_config.environment to match the app keys and the company "
                "(docs/connectors/quickbooks.md, section 9), store it with "
                "`hub tenants add TENANT quickbooks --config FILE`, then re-run a failed import "
                "with `hub errors retry ID`.",
            )
        return Failure(Category.AUTH, described, code=_first_code(faults), suggested_fix=RECONNECT)
    if status == 403 or AUTHORIZATION_CODE in codes:
        return Failure(
            Category.AUTH,
            described,
            code=_first_code(faults) or "403",
            suggested_fix="QuickBooks refused this realm to the app (AuthorizationFailed): the "
            "company was disconnected, the connecting user lost admin rights, or the grant lacks "
            "the com.intuit.quickbooks.accounting scope. " + RECONNECT,
        )
    if status in (404, 410) or NOT_FOUND_CODE in codes:
        return Failure(Category.SOURCE_DATA, described, code=_first_code(faults) or str(status))
    if faults and all(_code_number(fault) >= 10_000 for fault in faults):
        return Failure(Category.SERVER, described, code=_first_code(faults))
    return Failure(
        Category.CONFIG,
        described,
        retryable=False,
        code=_first_code(faults) or str(status),
        suggested_fix="QuickBooks refused the hub's request as invalid (a query it does not "
        "accept, or a minorversion it no longer serves): see the fault's message with "
        "`hub errors show ID` and report it; docs/connectors/quickbooks.md, section 9, lists "
        "the known causes.",
    )


def token_check(response: httpx.Response) -> Failure | None:
    """Intuit's token endpoint: 400 `invalid_grant` (the refresh token is revoked, expired, or
    was rotated and the new one lost) needs a person to reconnect the realm; `invalid_client`
    (HTTP 401 (unverified)) means the app's client id or secret is wrong. Others as the kit's
    `token_response_check`."""
    if response.status_code == 429 or response.status_code >= 500:
        return None
    try:
        body = json_body(response)
    except ValueError:
        body = None
    error = _text(body.get("error")) if isinstance(body, Mapping) else None
    description = _text(body.get("error_description")) if isinstance(body, Mapping) else None
    said = f"{error}: {description}" if description else str(error)
    if error == "invalid_grant":
        return Failure(
            Category.AUTH,
            f"Intuit refused the refresh token ({said}){_trace(response)}",
            retryable=False,
            code=error,
            suggested_fix=RECONNECT,
        )
    if error == "invalid_client":
        return Failure(
            Category.CONFIG,
            f"Intuit refused the app's client credentials ({said}){_trace(response)}",
            retryable=False,
            code=error,
            suggested_fix="Check connection_config.client_id and connection_config.client_secret "
            "against the app's keys in the Intuit developer portal (production keys for a "
            "production company, development keys for a sandbox one: "
            "docs/connectors/quickbooks.md, section 1), store them with "
            "`hub tenants add TENANT quickbooks --config FILE`, then re-run a failed import with "
            "`hub errors retry ID`.",
        )
    return token_response_check(response)


def _looks_like_fault(response: httpx.Response) -> bool:
    """A 2xx answer that is a fault after all (the API has answered faults with 200)."""
    head = response.text[:200].lstrip()
    return head.startswith("<") or '"Fault"' in head or '"fault"' in head


def _is_throttle(fault: Fault) -> bool:
    return fault.code == THROTTLE_CODE or "throttleexceeded" in (fault.message or "").lower()


def _is_authentication(faults: list[Fault]) -> bool:
    return any(
        (fault.type or "").lower() in ("authentication", "authenticationfault") for fault in faults
    )


def _code_number(fault: Fault) -> int:
    return int(fault.code) if fault.code and fault.code.isdigit() else 0


def _first_code(faults: list[Fault]) -> str | None:
    return next((fault.code for fault in faults if fault.code), None)


def _is_json(response: httpx.Response) -> bool:
    try:
        json_body(response)
    except ValueError:
        return False
    return True


def _not_json(response: httpx.Response) -> str:
    return f"QuickBooks answered a body that is not JSON (truncated?): {body_excerpt(response)}"


def _trace(response: httpx.Response) -> str:
    trace = response.headers.get(TRACE_HEADER)
    return f" [intuit_tid {trace}]" if trace else ""
