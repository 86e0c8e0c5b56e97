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

from hub_pipelines.connectors.webhooks import ChangeNotice
from hub_pipelines.webhook_systems import WEBHOOKS

FORMAT = "hub.webhook-notice/1"


def parse_body(system: str, body: bytes, account_id: str) -> list[ChangeNotice]:
    """The change notices of a sender's raw body, by the system's own parser; ValueError naming
    the problem when the body is not the system's shape. `account_id` is the tenant's configured
    account, used where the payload names none (Zoho Books)."""
    protocol = WEBHOOKS.get(system)
    if protocol is None:
        raise ValueError(f"no webhook parser for system {system!r}")
    return protocol.parse(body, account_id)


def event_key(system: str, body: bytes) -> str:
    """The sender's identity of the events in a (verified, parseable) body: the same events sent
    again give the same key. Events are sorted, so their order in a delivery does not matter."""
    payload = json.loads(body)
    ids = WEBHOOKS[system].event_ids(payload)
    if not ids:  # nothing to name the events by: the body is its own identity
        return hashlib.sha256(body).hexdigest()
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


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
    if system not in WEBHOOKS:
        raise ValueError(f"{path}: system {system!r} is not one of {', '.join(WEBHOOKS)}")
    if not isinstance(body, str):
        raise ValueError(f"{path}: body: expected the raw body as text, got {type(body).__name__}")
    account = str(document.get("account_id") or "")
    try:
        found = parse_body(system, body.encode(), account)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    # An app-wide delivery names several companies: the tenant's own events only.
    return [notice for notice in found if not account or notice.account_id == account]
