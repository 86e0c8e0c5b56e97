"""What a source's webhook says changed, in one shape for every system.

A webhook carries ids, not records: each notice names a record and what happened to it, and the
import re-fetches the record (or marks it deleted). Each system's own module verifies the
signature and parses its payloads into `ChangeNotice`s (QuickBooks: `quickbooks/webhooks.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from hub_pipelines.canonical import Entity

Operation = Literal["created", "updated", "deleted", "voided", "merged", "emailed"]


@dataclass(frozen=True, slots=True)
class ChangeNotice:
    """One record changed in one source account (QuickBooks realm, Xero tenant).

    `entity` is None for an entity the hub does not import (a payment, an item): the notice is
    kept so a receiver can count and acknowledge it, and the import ignores it. `occurred_at` is
    when the source says the change happened (None when it does not say)."""

    system: str
    account_id: str
    entity: Entity | None
    external_id: str
    operation: Operation
    occurred_at: datetime | None


def no_event_ids(payload: Any) -> list[str]:
    """For a system whose payloads name no event: the body is its own identity."""
    return []


@dataclass(frozen=True)
class WebhookProtocol:
    """One system's webhooks as the hub service takes them (docs/webhooks.md)."""

    system: str
    # The tenant config's field holding the webhook's signing secret, and the one naming the
    # account (organisation, company) its events are for.
    signing_field: str
    account_field: str
    signature_header: str
    # (secret, raw body, signature header) -> whether the sender signed it; constant time.
    verify: Callable[[str, bytes, str | None], bool]
    # (raw body, the receiving tenant's account id) -> its notices; ValueError naming the problem.
    parse: Callable[[bytes, str], list[ChangeNotice]]
    # The sender's identities of the events in a parsed payload: a redelivery has the same ones.
    event_ids: Callable[[Any], list[str]] = no_event_ids
    # An app that names ONE URL for every company it reaches signs with this variable's secret.
    app_signing_variable: str | None = None
