"""Xero webhooks: signature check, the intent-to-receive handshake, and change notices.

Xero signs each delivery with `x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)).
A receiver checks it on the raw bytes before parsing, answers 200 with an empty body within
5 seconds when it matches and 401 when it does not, and processes afterwards: Xero retries for up
to 24 hours and then disables the webhook. On subscription Xero sends intent-to-receive payloads
(`"events": []`), some deliberately mis-signed, and activates the webhook only when every answer
is right. Payloads carry ids only (CREATE and UPDATE; archiving is an UPDATE, there is no DELETE):
the import re-fetches the records, and keeps polling as a safety net.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hub_pipelines.canonical import Entity
from hub_pipelines.connectors.webhooks import ChangeNotice, Operation, WebhookProtocol
from hub_pipelines.xero.protocol import SYSTEM

ENTITIES: dict[str, Entity] = {"CONTACT": "customers", "INVOICE": "invoices"}
OPERATIONS: dict[str, Operation] = {"CREATE": "created", "UPDATE": "updated"}
SIGNATURE_HEADER = "x-xero-signature"
# What names an event: Xero gives no event id.
EVENT_FIELDS = ("tenantId", "eventCategory", "resourceId", "eventDateUtc", "eventType")


def signature(key: str, body: bytes) -> str:
    """The `x-xero-signature` Xero sends with `body` (for tests and simulators)."""
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(key: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is Xero's signature of the raw `body` under the app's webhook key;
    compared in constant time. No key or no header never verifies."""
    if not key or not header:
        return False
    expected = signature(key, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8"))


def is_intent_to_receive(payload: Mapping[str, Any]) -> bool:
    """Xero's intent-to-receive test delivery: a payload whose `events` is an empty list."""
    return payload.get("events") == []


def parse_notices(body: bytes) -> list[ChangeNotice]:
    """The deliveries' events as change notices: CONTACT → customers, INVOICE → invoices, other
    categories (CREDITNOTE, SUBSCRIPTION …) with entity None; `tenantId` is the account.
    ValueError naming the problem for a body that is not JSON or not Xero's shape."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"Xero webhook body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ValueError(f"Xero webhook body: expected an object, got {type(payload).__name__}")
    events = payload.get("events")
    if not isinstance(events, list):
        raise ValueError(f"events: expected a list, got {events!r}")
    return [_notice(event, index) for index, event in enumerate(events)]


def _notice(event: Any, index: int) -> ChangeNotice:
    where = f"events[{index}]"
    if not isinstance(event, dict):
        raise ValueError(f"{where}: expected an object, got {event!r}")
    category = _required(event, "eventCategory", where).upper()
    event_type = _required(event, "eventType", where).upper()
    return ChangeNotice(
        system=SYSTEM,
        account_id=_required(event, "tenantId", where),
        entity=ENTITIES.get(category),
        external_id=_required(event, "resourceId", where),
        # Only CREATE and UPDATE are documented; whatever else comes, the answer is the same:
        # re-fetch the record, which tells what it has become.
        operation=OPERATIONS.get(event_type, "updated"),
        occurred_at=_event_time(event.get("eventDateUtc"), where),
    )


def _required(event: Mapping[str, Any], field: str, where: str) -> str:
    value = event.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}.{field}: expected a non-empty string, got {value!r}")
    return value.strip()


def _event_time(value: Any, where: str) -> datetime | None:
    """`eventDateUtc` (`2024-06-21T01:15:39.902`, UTC without an offset) as an aware datetime."""
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{where}.eventDateUtc: not a timestamp: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def event_ids(payload: Any) -> list[str]:
    return ["|".join(str(e.get(f, "")) for f in EVENT_FIELDS) for e in payload.get("events", [])]


PROTOCOL = WebhookProtocol(
    system=SYSTEM,
    signing_field="webhook_key",
    account_field="xero_tenant_id",
    signature_header=SIGNATURE_HEADER,
    verify=verify_signature,
    parse=lambda body, _account: parse_notices(body),  # each event names its organisation
    event_ids=event_ids,
    app_signing_variable="HUB_XERO_WEBHOOK_KEY",
)
