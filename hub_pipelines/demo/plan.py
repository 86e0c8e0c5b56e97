"""What the demo serves and imports: three tenants over the five systems, each (tenant, system)
pair its own simulated company on its own loopback port.

The books are generated from fixed seeds up to the first day of the current month (UTC), and the
simulators' clocks stand still an hour after it, so every demo run in a month serves the same
companies and the demo's one change (a Xero payment) lands with the same timestamp: a second run
imports nothing new and changes no row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Delivery = Literal["api", "file"]  # read over the system's API, or from dropped export files

BASE_PORT = 8090  # the simulators' control endpoint; the pairs take the ports after it
# Real systems allow 60-500 requests a minute; the demo raises every limit (on both sides) so it
# finishes in seconds. The connectors' token buckets and the simulators' limiters still apply.
DEMO_LIMITS = {"requests_per_minute": 30_000, "daily_limit": 10**7}


@dataclass(frozen=True)
class DemoPair:
    """One configured (tenant, system) pair: a partition of that system's assets."""

    tenant: str
    system: str
    seed: int
    seller_state: str  # GST state code of the tenant's registration
    customers: int  # at size "small"; "large" multiplies
    invoices: int
    delivery: Delivery = "api"

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.system}"


PAIRS: tuple[DemoPair, ...] = (
    DemoPair("demo-traders", "zoho_books", 42, "29", 200, 1000),  # a Bengaluru distributor
    DemoPair("demo-traders", "tally", 43, "29", 60, 300, delivery="file"),  # its branch's Tally
    DemoPair("demo-textiles", "tally", 44, "24", 120, 600),  # a Surat mill, Tally on the LAN
    DemoPair("demo-textiles", "busy", 45, "24", 80, 400),  # its trading arm on BUSY
    DemoPair("demo-exports", "quickbooks", 46, "27", 150, 700),  # a Mumbai exporter
    DemoPair("demo-exports", "xero", 47, "27", 100, 500),  # its services company on Xero
)
TENANTS = tuple(dict.fromkeys(pair.tenant for pair in PAIRS))
SIZES = {"small": 1, "large": 20}  # large: 20x, about 70,000 invoices in all
# The pair whose simulator sends a signed webhook after a change, to show the notice sensor.
WEBHOOK_PAIR = next(pair for pair in PAIRS if pair.system == "xero")
# The pair whose Day Book export is dropped into the landing folder, to show the file sensor.
FILE_PAIR = next(pair for pair in PAIRS if pair.delivery == "file")


def scaled(pair: DemoPair, size: str) -> tuple[int, int]:
    """(customers, invoices) of a pair at a size."""
    factor = SIZES[size]
    return pair.customers * factor, pair.invoices * factor


def books_as_of(now: datetime | None = None) -> datetime:
    """The day the demo's books end: the first of the current month, midnight UTC."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def still_clock(as_of: datetime) -> datetime:
    """The simulators' time for changes made during the demo: one hour after the books end."""
    return as_of + timedelta(hours=1)


def port_of(pair: DemoPair, base_port: int = BASE_PORT) -> int:
    return base_port + 1 + PAIRS.index(pair)
