"""The rows of a simulator's list requests, kept between requests until its records change.

A walk asks for page after page of one listing; filtering and sorting every record for each page
made a page at 100k records cost a second. Kept here, a page costs its own rows. The owner calls
`clear()` on every change to its records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_LISTINGS = 16  # listings kept between changes; the oldest goes first


class Listings:
    """Rows by what selects and orders them (a key the simulator makes from the request)."""

    def __init__(self, limit: int = MAX_LISTINGS) -> None:
        self.limit = limit
        self._rows: dict[tuple, list[Any]] = {}

    def get(self, key: tuple, build: Callable[[], list[Any]]) -> list[Any]:
        """The rows under `key`, built by `build()` when not kept."""
        rows = self._rows.get(key)
        if rows is None:
            rows = build()  # may itself keep a listing (a sorted one from a filtered one)
            if len(self._rows) >= self.limit:
                del self._rows[next(iter(self._rows))]
            self._rows[key] = rows
        return rows

    def clear(self) -> None:
        self._rows.clear()
