"""Zoho Books webhooks: the signature as the hub assumes it, and the Default Payload as a notice.

A Books workflow rule's webhook posts the record it fired on (`{"invoice": {...}}`,
`{"contact": {...}}`): neither the event nor the organisation is named, so the notice is for the
organisation of the tenant whose URL received it, and the import re-fetches the record, which
tells what it has become (a 404: deleted).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hub_pipelines.canonical import Entity
from hub_pipelines.connectors.base import parse_timestamp
from hub_pipelines.connectors.webhooks import ChangeNotice, Operation, WebhookProtocol

SIGNATURE_HEADER = "x-zoho-webhook-signature"
# The Default Payload names the module as its one top-level key.
ENTITIES: dict[str, Entity] = {"invoice": "invoices", "contact": "customers"}


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Zoho Books' signature, as the hub assumes it (unverified: Zoho does not document it for
    Books): `X-Zoho-Webhook-Signature` = hex HMAC-SHA256 of the raw body with the webhook's
    secret, as Zoho Billing signs (without Billing's sorted-parameter prefix: Books' default
    payload has no parameters). Hex case is ignored; compared in constant time."""
    if not secret or not header:
        return False
    expected = hmac.new(secret.encode(), body, "sha256").hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode("utf-8"))


def parse_notices(body: bytes, organization_id: str) -> list[ChangeNotice]:
    """The Default Payload as one notice for the receiving tenant's organisation: "updated" (a
    void invoice "voided"). ValueError naming the problem for any other shape."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"Zoho Books webhook body is not JSON: {exc}") from None
    if not isinstance(payload, dict) or len(payload) != 1:
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            "Zoho Books webhook body: expected the Default Payload, one top-level key naming the "
            f"module (e.g. {{'invoice': {{…}}}}), got {keys}"
        )
    ((module, record),) = payload.items()
    if not isinstance(record, dict):
        raise ValueError(f"{module}: expected an object, got {type(record).__name__}")
    record_id = record.get(f"{module}_id")
    if isinstance(record_id, bool) or not isinstance(record_id, str | int) or not str(record_id):
        raise ValueError(f"{module}.{module}_id: expected the record's id, got {record_id!r}")
    return [
        ChangeNotice(
            system="zoho_books",
            account_id=organization_id,
            entity=ENTITIES.get(module),
            external_id=str(record_id).strip(),
            operation=_operation(record),
            occurred_at=_time(record, module),
        )
    ]


def _operation(record: Mapping[str, Any]) -> Operation:
    return "voided" if str(record.get("status", "")).lower() == "void" else "updated"


def _time(record: Mapping[str, Any], module: str) -> datetime | None:
    value = record.get("last_modified_time")
    try:
        return parse_timestamp(value) if isinstance(value, str) else None
    except ValueError:
        raise ValueError(f"{module}.last_modified_time: not a timestamp: {value!r}") from None


# One URL per tenant (Books has no app-wide webhooks); no event ids: the body is its identity.
PROTOCOL = WebhookProtocol(
    system="zoho_books",
    signing_field="webhook_secret",
    account_field="organization_id",
    signature_header=SIGNATURE_HEADER,
    verify=verify_signature,
    parse=parse_notices,
)
