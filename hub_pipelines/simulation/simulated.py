"""A system's simulator serving Books, as `hub simulate`, the demo and the contract suite drive it.

Each system's simulator module offers `simulate(books, **limits) -> Simulated`; registering the
module in `hub_pipelines.systems` is all a new system needs to get the contract suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from hub_pipelines.simulation.books import Books


@dataclass
class Simulated:
    system: str
    simulator: Any  # the system's Shape: `.app` (ASGI), `.faults`, `.request_log`
    books: Books | None  # None when it serves replayed files
    # The tenant connection config that reaches the simulator at a base URL.
    connection_config: Callable[[str], dict[str, Any]]
    # The refresh token the simulator honours now (rotating systems change it on refresh).
    refresh_token: Callable[[], str]
    rotates_refresh_tokens: bool
    # While entered, every list answers empty (a wrong company, an emptied org, a stub).
    answer_empty: Callable[[], AbstractContextManager[None]]
    # Arms the engine's `malformed_page` so that the next invoice list answer carries one broken
    # record (the shape's `break_record`), once: each system knows its own list path and paging.
    break_an_invoice: Callable[[], None]
    # False for a system without draft invoices (QuickBooks Online's v3 API): Books' drafts are
    # not rendered there, and the truth leaves them out.
    holds_drafts: bool = True
    # False for a system whose sale document carries no payment state (Tally, BUSY): payments
    # are receipt vouchers of their own, so the truth holds every issued sale open, owing its total.
    records_payments: bool = True
    # False for a system without an inactive flag on parties (Tally): archiving changes nothing.
    archives_parties: bool = True

    def truth_invoices(self) -> dict[str, Any]:
        """What the warehouse must hold of the books' sales, as this system can show them."""
        return self.books.truth_invoices(drafts=self.holds_drafts, payments=self.records_payments)

    def truth_customers(self) -> dict[str, Any]:
        return self.books.truth_customers(archives=self.archives_parties)

    @property
    def app(self) -> Any:
        return self.simulator.app

    @property
    def faults(self) -> Any:
        return self.simulator.faults

    @property
    def request_log(self) -> Any:
        return self.simulator.request_log


@contextmanager
def switched_on(target: Any, flag: str) -> Iterator[None]:
    """`target.flag` True while inside: how a Shape answers empty for `Simulated.answer_empty`."""
    setattr(target, flag, True)
    try:
        yield
    finally:
        setattr(target, flag, False)
