"""What a source's webhook says changed, in one shape for every system.

A webhook carries ids, not records: each notice names a record and what happened to it, and the
import re-fetches the record (or marks it deleted). Each system's own module verifies the
signature and parses its payloads into `ChangeNotice`s (QuickBooks: `quickbooks/webhooks.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

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
