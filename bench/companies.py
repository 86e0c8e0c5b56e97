"""The generated company every benchmark serves: `Books` of N invoices, the same for a seed.

`hub_pipelines.simulation.books.generate` numbers each sale by counting the sales already
numbered in its fiscal year (`Books._next_number`), which is quadratic: 10,000 invoices take 9 s,
100,000 would take a quarter of an hour and 1,000,000 days. While generating, the count is kept
per fiscal year instead, which gives the very same numbers (sales are numbered as they are made,
none is deleted during generation), so the company is the one `generate` describes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from hub_pipelines import gst
from hub_pipelines.simulation import books as generated

SEED = 7
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)  # fixed, so the same seed gives the same company
MAX_LINES = 3  # 1 to 3 lines, about 2 per invoice


def customers_for(invoices: int) -> int:
    """A customer for every 10 invoices, between 50 and 2,000 (the organisation of the API
    calls benchmark: 2,000 customers). More would cost the simulators' rendering dearly: the
    QuickBooks one sums each customer's balance over every sale (customers × invoices)."""
    return max(50, min(2_000, invoices // 10))


@contextmanager
def _numbering_by_counter() -> Iterator[None]:
    counted: Counter[str] = Counter()
    original = generated.Books._next_number

    def next_number(_books: generated.Books, issued) -> str:
        year = gst.fiscal_year(issued)
        counted[year] += 1
        return generated.invoice_number(year, counted[year])

    generated.Books._next_number = next_number
    try:
        yield
    finally:
        generated.Books._next_number = original


def company(invoices: int, customers: int | None = None, seed: int = SEED) -> generated.Books:
    """Books of `invoices` sales over two years, to `customers` (default customers_for(invoices))
    customers."""
    with _numbering_by_counter():
        return generated.generate(
            seed=seed,
            parties=customers or customers_for(invoices),
            sales=invoices,
            max_lines=MAX_LINES,
            as_of=AS_OF,
        )
