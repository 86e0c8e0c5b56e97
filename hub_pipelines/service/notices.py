"""Webhook notice files: what the receiver lands and the landing sensor reads back.

A landed notice is a small JSON envelope around the sender's raw body, written by
`service/webhooks.py` into `<landing>/<system>/<tenant>/notice-<sha256>.json`:

    {"format": "hub.webhook-notice/1", "system": "xero", "tenant": "acme",
     "account_id": "<the tenant's configured realm / Xero tenant / Zoho organisation id>",
     "received_at": "2026-05-01T10:00:00.123456+00:00",
     "headers": {"content-type": "application/json", "user-agent": "…"},
     "body": "<the raw body, as sent, as text>"}

The body is kept byte for byte (as text), so the signature could be checked again and each system's
own parser reads it exactly as the receiver did. Signature headers and secrets are never stored.

The file name is the sender's event identity (`event_key`), so a delivery the sender repeats lands
no second file: QuickBooks CloudEvents by their `id`, legacy QuickBooks notifications by realm,
entity, id and `lastUpdated`, Xero events by tenant, category, resource, time and type, and Zoho
Books, whose default payload carries no event id, by the hash of the body.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hub_pipelines.canonical import Entity
from hub_pipelines.connectors.base import parse_timestamp
from hub_pipelines.connectors.webhooks import ChangeNotice, Operation
from hub_pipelines.quickbooks import webhooks as quickbooks
from hub_pipelines.xero import webhooks as xero

FORMAT = "hub.webhook-notice/1"
WEBHOOK_SYSTEMS = ("zoho_books", "quickbooks", "xero")
# Zoho Books' default payload names the module as its one top-level key.
ZOHO_ENTITIES: dict[str, Entity] = {"invoice": "invoices", "contact": "customers"}


def parse_body(system: str, body: bytes, account_id: str) -> list[ChangeNotice]:
    """The change notices of a sender's raw body, with the system's own parser; ValueError naming
    the problem when the body is not the system's shape. `account_id` is the tenant's configured
    account, used where the payload names none (Zoho Books)."""
    if system == "quickbooks":
        return quickbooks.parse_notices(body)
    if system == "xero":
        return xero.parse_notices(body)
    if system == "zoho_books":
        return parse_zoho_notices(body, account_id)
    raise ValueError(f"no webhook parser for system {system!r}")


def parse_zoho_notices(body: bytes, organization_id: str) -> list[ChangeNotice]:
    """Zoho Books' "Default Payload" (`{"invoice": {...}}`, `{"contact": {...}}`) as one notice.

    The payload says neither the event nor the organisation: the notice is "updated" (a void
    invoice "voided"), for the organisation of the tenant whose URL received it. The import
    re-fetches the record, which tells what it has become (a 404: deleted)."""
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
            entity=ZOHO_ENTITIES.get(module),
            external_id=str(record_id).strip(),
            operation=_zoho_operation(record),
            occurred_at=_zoho_time(record, module),
        )
    ]


def _zoho_operation(record: Mapping[str, Any]) -> Operation:
    return "voided" if str(record.get("status", "")).lower() == "void" else "updated"


def _zoho_time(record: Mapping[str, Any], module: str) -> datetime | None:
    value = record.get("last_modified_time")
    try:
        return parse_timestamp(value) if isinstance(value, str) else None
    except ValueError:
        raise ValueError(f"{module}.last_modified_time: not a timestamp: {value!r}") from None


def event_key(system: str, body: bytes) -> str:
    """The sender's identity of the events in a (verified, parseable) body: the same events sent
    again give the same key. Events are sorted, so their order in a delivery does not matter."""
    payload = json.loads(body)
    ids = _event_ids(system, payload)
    if not ids:  # nothing to name the events by: the body is its own identity
        return hashlib.sha256(body).hexdigest()
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def _event_ids(system: str, payload: Any) -> list[str]:
    if system == "quickbooks":
        return _quickbooks_ids(payload)
    if system == "xero":
        return [
            "|".join(str(e.get(f, "")) for f in _XERO_EVENT_FIELDS)
            for e in payload.get("events", [])
        ]
    return []  # Zoho Books: no event id in the payload


_XERO_EVENT_FIELDS = ("tenantId", "eventCategory", "resourceId", "eventDateUtc", "eventType")


def _quickbooks_ids(payload: Any) -> list[str]:
    if isinstance(payload, dict) and "specversion" in payload:
        payload = [payload]
    if isinstance(payload, list):  # CloudEvents: `id` is unique per event (the spec's rule)
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


def notice_name(system: str, body: bytes) -> str:
    return f"notice-{event_key(system, body)}.json"


def envelope(
    *,
    system: str,
    tenant: str,
    account_id: str,
    received_at: datetime,
    headers: Mapping[str, str],
    body: str,
) -> bytes:
    """The landed file's bytes (see the module docstring)."""
    document = {
        "format": FORMAT,
        "system": system,
        "tenant": tenant,
        "account_id": account_id,
        "received_at": received_at.isoformat(),
        "headers": dict(headers),
        "body": body,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def read_notice(path: Path) -> list[ChangeNotice]:
    """The change notices of a landed notice file, parsed by its system's own parser. ValueError
    naming the file and the problem when it is not a notice or its body is not parseable."""
    try:
        document = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable JSON notice file: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f'{path}: not a hub webhook notice (no "format": "{FORMAT}")')
    system, body = document.get("system"), document.get("body")
    if system not in WEBHOOK_SYSTEMS:
        raise ValueError(f"{path}: system {system!r} is not one of {', '.join(WEBHOOK_SYSTEMS)}")
    if not isinstance(body, str):
        raise ValueError(f"{path}: body: expected the raw body as text, got {type(body).__name__}")
    account = str(document.get("account_id") or "")
    try:
        found = parse_body(system, body.encode(), account)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    # An app-wide delivery names several companies: the tenant's own events only.
    return [notice for notice in found if not account or notice.account_id == account]
