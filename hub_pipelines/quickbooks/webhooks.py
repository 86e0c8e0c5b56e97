"""QuickBooks Online webhooks: signature check and payload parsing into `ChangeNotice`s.

Intuit signs the raw body: header `intuit-signature` = base64(HMAC-SHA256(verifier token, body)).
Verify before parsing. Two payload shapes are in use (both parsed):

- legacy: `{"eventNotifications": [{"realmId": "…", "dataChangeEvent": {"entities": [{"name":
  "Customer", "id": "1", "operation": "Create", "lastUpdated": "…"}]}}]}`;
- CloudEvents (mandatory from 15 May 2026 per Intuit, reportedly extended to 31 Jul 2026): a JSON
  array of `{"specversion": "1.0", "type": "qbo.invoice.created.v1", "intuitaccountid": "…",
  "intuitentityid": "…", "time": "…", …}`. One array can mix companies: each event is routed by
  its own `intuitaccountid`.

Payloads carry ids only; the import re-fetches the records. Duplicates happen: be idempotent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from hub_pipelines.canonical import Entity
from hub_pipelines.connectors.base import parse_timestamp
from hub_pipelines.connectors.webhooks import ChangeNotice, Operation, WebhookProtocol

SIGNATURE_HEADER = "intuit-signature"
SYSTEM = "quickbooks"
# The hub's entities by lower-cased QuickBooks entity name.
ENTITIES: dict[str, Entity] = {"customer": "customers", "invoice": "invoices"}
# Legacy operation names; CloudEvents types carry the canonical ones already.
OPERATIONS: dict[str, Operation] = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "void": "voided",
    "merge": "merged",
    "emailed": "emailed",
}
_CLOUD_EVENT_TYPE = re.compile(r"qbo\.(?P<entity>[a-z0-9_]+)\.(?P<operation>[a-z]+)\.v\d+", re.I)


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` (the `intuit-signature` value) is the body's signature under the app's
    verifier token. Missing or not base64: False. Compared in constant time."""
    if not header or not secret:
        return False
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


def parse_notices(body: bytes) -> list[ChangeNotice]:
    """The change notices of a webhook body, in the order sent, either shape. Raises ValueError
    naming the problem for a body that is not JSON or not one of the shapes."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"webhook body is not JSON: {exc}") from None
    if isinstance(payload, list):
        return [_cloud_event(event, f"[{index}]") for index, event in enumerate(payload)]
    if isinstance(payload, Mapping) and "specversion" in payload:
        return [_cloud_event(payload, "")]  # a single event, not wrapped in an array
    if isinstance(payload, Mapping) and "eventNotifications" in payload:
        return _legacy(payload["eventNotifications"])
    raise ValueError(
        "webhook body is neither a CloudEvents array nor an object with eventNotifications"
    )


def _cloud_event(event: Any, where: str) -> ChangeNotice:
    if not isinstance(event, Mapping):
        raise ValueError(f"{where or 'event'}: not an object")
    kind = _required(event, "type", where)
    match = _CLOUD_EVENT_TYPE.fullmatch(kind)
    if not match:
        raise ValueError(f"{where}.type: {kind!r} is not qbo.<entity>.<operation>.v<n>")
    operation = match["operation"].lower()
    if operation not in OPERATIONS.values():
        raise ValueError(f"{where}.type: unknown operation {operation!r} in {kind!r}")
    return ChangeNotice(
        system=SYSTEM,
        account_id=_required(event, "intuitaccountid", where),
        entity=_entity(match["entity"]),
        external_id=_required(event, "intuitentityid", where),
        operation=cast(Operation, operation),
        occurred_at=_time(event, "time", where),
    )


def _legacy(notifications: Any) -> list[ChangeNotice]:
    if not isinstance(notifications, list):
        raise ValueError("eventNotifications: expected a list")
    notices = []
    for index, notification in enumerate(notifications):
        where = f"eventNotifications[{index}]"
        if not isinstance(notification, Mapping):
            raise ValueError(f"{where}: not an object")
        realm = _required(notification, "realmId", where)
        event = notification.get("dataChangeEvent")
        entities = event.get("entities") if isinstance(event, Mapping) else None
        if not isinstance(entities, list):
            raise ValueError(f"{where}.dataChangeEvent.entities: expected a list")
        for position, change in enumerate(entities):
            place = f"{where}.dataChangeEvent.entities[{position}]"
            notices.append(_legacy_change(realm, change, place))
    return notices


def _legacy_change(realm: str, change: Any, where: str) -> ChangeNotice:
    if not isinstance(change, Mapping):
        raise ValueError(f"{where}: not an object")
    name = _required(change, "name", where)
    operation = _required(change, "operation", where)
    if operation.lower() not in OPERATIONS:
        raise ValueError(f"{where}.operation: unknown operation {operation!r} for {name}")
    return ChangeNotice(
        system=SYSTEM,
        account_id=realm,
        entity=_entity(name),
        external_id=_required(change, "id", where),
        operation=OPERATIONS[operation.lower()],
        occurred_at=_time(change, "lastUpdated", where),
    )


def _entity(name: str) -> Entity | None:
    """The hub's entity for a QuickBooks one; None for an entity the hub does not import."""
    return ENTITIES.get(name.lower())


def _required(record: Mapping[str, Any], field: str, where: str) -> str:
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise ValueError(f"{where}.{field}: expected a non-empty string, got {value!r}")
    return str(value).strip()


def _time(record: Mapping[str, Any], field: str, where: str) -> datetime | None:
    value = record.get(field)
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(str(value))
    except ValueError:
        raise ValueError(f"{where}.{field}: not a timestamp with an offset: {value!r}") from None


def event_ids(payload: Any) -> list[str]:
    """The events' identities: a CloudEvent's `id` (unique per event, the spec's rule); a legacy
    change by its company, entity, id and time."""
    if isinstance(payload, dict) and "specversion" in payload:
        payload = [payload]
    if isinstance(payload, list):
        return [f"ce|{event.get('id')}" for event in payload]
    return [
        "|".join(
            (
                "legacy",
                str(n.get("realmId")),
                str(e.get("name")),
                str(e.get("id")),
                str(e.get("lastUpdated")),
            )
        )
        for n in payload.get("eventNotifications", [])
        for e in n["dataChangeEvent"]["entities"]
    ]


PROTOCOL = WebhookProtocol(
    system=SYSTEM,
    signing_field="webhook_verifier_token",
    account_field="realm_id",
    signature_header=SIGNATURE_HEADER,
    verify=verify_signature,
    parse=lambda body, _account: parse_notices(body),  # each event names its company
    event_ids=event_ids,
    app_signing_variable="HUB_QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN",
)
