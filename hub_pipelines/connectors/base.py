"""Building blocks for system connectors: paginated list endpoints and value parsing.

In the spirit of Singer SDK REST streams, a system *declares* a list endpoint (path, fixed params,
where the records are, how pages advance) and `ListEndpoint.pages()` walks it, holding one page
in memory at a time:

    invoices = ListEndpoint(
        "/invoices",
        records_at("invoices"),
        lambda: PageNumberPaginator(page_size=200, max_page_size=200,
                                    has_more=lambda body, _: body["page_context"]["has_more_page"]),
        params={"organization_id": org_id},
    )
    for page in invoices.pages(lambda path, params: http.get_json(path, params=params, ...)): ...

A sorted page-numbered list that may change during the walk is read with `OverlappingWindows`
instead: each window overlaps the rows already read, so no row is skipped when others move.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

from hub_pipelines.canonical import ListedTotals

JsonFetch = Callable[[str, dict[str, Any]], Any]
RecordsSelector = Callable[[Any], list[dict[str, Any]]]
HasMore = Callable[[Any, list[dict[str, Any]]], bool]

# "1,23,456.50" or "123,456.50"; a lone comma ("1,5") is not stripped, so it fails loudly.
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{2,3})+(?:\.\d+)?")


class Paginator(Protocol):
    """The page-dependent request params and the rule for moving to the next page."""

    def params(self) -> dict[str, Any]:
        """Params selecting the current page."""
        ...

    def advance(self, body: Any, records: list[dict[str, Any]]) -> bool:
        """Move past the page just read; False when it was the last."""
        ...


class PageNumberPaginator:
    """`page=1,2,…` with a page size (Zoho `page`/`per_page`, Xero `page`/`pageSize`).

    `has_more(body, records)` reads the source's own flag (Zoho `page_context.has_more_page`, Xero
    `pagination.page < pagination.pageCount`); without it a short page means the end.
    """

    def __init__(
        self,
        *,
        page_size: int,
        page_param: str = "page",
        size_param: str | None = "per_page",
        first_page: int = 1,
        max_page_size: int | None = None,
        has_more: HasMore | None = None,
    ) -> None:
        _check_page_size(page_size, max_page_size)
        self.page = first_page
        self.page_size = page_size
        self._page_param = page_param
        self._size_param = size_param
        self._has_more = has_more or _full_page(page_size)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {self._page_param: self.page}
        if self._size_param:
            params[self._size_param] = self.page_size
        return params

    def advance(self, body: Any, records: list[dict[str, Any]]) -> bool:
        self.page += 1
        return self._has_more(body, records)


class OffsetPaginator:
    """A start position plus a page size, ending on a short page (QuickBooks `STARTPOSITION`
    (1-based) / `MAXRESULTS`, which a QuickBooks connector formats into its query text)."""

    def __init__(
        self,
        *,
        page_size: int,
        position_param: str = "STARTPOSITION",
        size_param: str = "MAXRESULTS",
        first_position: int = 1,
        max_page_size: int | None = None,
    ) -> None:
        _check_page_size(page_size, max_page_size)
        self.position = first_position
        self.page_size = page_size
        self._position_param = position_param
        self._size_param = size_param

    def params(self) -> dict[str, Any]:
        return {self._position_param: self.position, self._size_param: self.page_size}

    def advance(self, body: Any, records: list[dict[str, Any]]) -> bool:
        self.position += len(records)
        return len(records) >= self.page_size


SortKey = Callable[[dict[str, Any]], Any]  # a row's sort key, None when it cannot be read
RowId = Callable[[dict[str, Any]], str | None]
WindowFetch = Callable[[int, int], Any]  # (page, per_page) -> decoded body


MIN_WINDOW_SIZES = 20


class OverlappingWindows:
    """The rows of a sorted, page-numbered list, read so that no row is skipped while the list
    changes under the walk.

    Page-number pagination has no keyset: page p of size q is rows (p−1)·q … p·q−1 *as the list is
    at that moment*. When a row on a page already read is deleted, every later row moves one place
    toward the front and the first row of the next page lands on the page just read: adjacent
    pages skip it. So every window is chosen to overlap the rows already read: its size q (any
    size up to `max_page_size` may be asked for) is picked so that its start (p−1)·q is at or
    before the last row read, as far forward as possible. A window is accepted only when its
    first row sorts at or before the last row read (or is a row already read): then nothing can
    hide between them. Otherwise rows moved toward the front (deletions, or an edit that moved a
    row out of the way): the window is dropped and the walk steps back (one window, then two,
    four…) and reads forward again. Rows that move backwards (an insertion before the frontier)
    are read twice, never skipped; rows already read in this walk are not yielded again.

    Iterating yields, per accepted window, its rows not yielded before (list order, duplicates
    and rows without an id kept as sent); `last` is the sort key of the last row read. `ordered`
    stays True while every accepted window is in
    the declared order (a source that ignores the sort parameters makes it False: callers must
    not stop early on the order then). `calls` and `rereads` count list calls and dropped
    windows. A list that keeps shifting (more than `max_rereads` plus one per two accepted windows
    dropped) raises a retryable SERVER error.
    """

    def __init__(
        self,
        fetch: WindowFetch,
        records: RecordsSelector,
        has_more: Callable[[Any], bool],
        *,
        key: SortKey,
        identity: RowId,
        page_size: int,
        max_page_size: int,
        descending: bool = False,
        max_rereads: int = 20,
    ) -> None:
        _check_page_size(page_size, max_page_size)
        if max_page_size < MIN_WINDOW_SIZES:
            # A window must end past the last row read: the sizes 2..max_page_size fail only when
            # the rows read are a multiple of all of them, and lcm(2..20) is 232,792,560 rows.
            raise ValueError(
                f"overlapping windows need a max_page_size of at least {MIN_WINDOW_SIZES}"
            )
        self._fetch, self._records, self._has_more = fetch, records, has_more
        self._key, self._identity = key, identity
        self.page_size, self.max_page_size = max(page_size, 2), max_page_size
        self.descending = descending
        self.max_rereads = max_rereads
        # The ids yielded so far, kept on disk as a listing is: a million-row walk must not hold
        # a million ids in memory. (Values unused.)
        self.seen = ListedTotals()
        self.ordered = True
        self.last: Any = None  # the sort key of the last row of the last accepted window
        self.calls = self.rereads = self.accepted = 0

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        frontier, last = 0, None  # rows [0, frontier) read; `last`: the key of row frontier−1
        back = 0  # windows dropped in a row
        while True:
            page, per_page = (1, self.page_size) if frontier == 0 else self.window(frontier)
            body = self._fetch(page, per_page)
            self.calls += 1
            rows = self._records(body)
            start = (page - 1) * per_page
            if frontier and not self._joins(rows, last):
                self.rereads += 1
                if self.rereads > self.max_rereads + self.accepted // 2:
                    from hub_pipelines.connectors.errors import Category, SyncError

                    raise SyncError(
                        Category.SERVER,
                        f"the list kept changing under the walk ({self.rereads} windows read "
                        "again); stopped rather than risk skipping rows",
                        retryable=True,
                    )
                back += 1
                frontier = max(0, start - per_page * 2 ** (back - 1))
                continue
            back = 0
            self.accepted += 1
            self._check_order(rows)
            if rows:
                frontier, last = start + len(rows), self._key(rows[-1])
                self.last = last
            yield self._fresh(rows)
            if not rows or not self._has_more(body):
                return

    def window(self, frontier: int) -> tuple[int, int]:
        """(page, per_page) of the window that starts at or before row `frontier − 1` (the last
        row read) and reaches furthest past it. Sizes up to `page_size` first; the larger ones up
        to `max_page_size` only when none of those reaches past it (`frontier` divisible by
        every size)."""
        best: tuple[int, int, int] | None = None
        sizes = [*range(self.page_size, 1, -1), *range(self.page_size + 1, self.max_page_size + 1)]
        for per_page in sizes:
            if best is not None and (best[2] >= per_page - 1 or per_page > self.page_size):
                break  # no smaller window reaches further; a larger one is not needed
            page = (frontier - 1) // per_page + 1
            reach = page * per_page - frontier  # rows past the frontier
            if reach > 0 and (best is None or reach > best[2]):
                best = (page, per_page, reach)
        if best is None:  # only past lcm(2..max_page_size) rows: see MIN_WINDOW_SIZES
            raise ValueError(f"no window overlaps row {frontier - 1}")
        return best[0], best[1]

    def _before(self, key: Any, other: Any) -> bool:
        return key > other if self.descending else key < other

    def _joins(self, rows: list[dict[str, Any]], last: Any) -> bool:
        """Whether the window starts at or before the last row read: its first row is a row
        already read, or a new one (added meanwhile) that sorts strictly before the last row
        read. A new row tied with it could sit on either side: not accepted."""
        if not rows:
            return False  # the list shrank below the window: rows may have moved forward
        first = rows[0]
        if self._identity(first) in self.seen:
            return True
        key = self._key(first)
        if key is None or last is None:
            return False
        try:
            return bool(self._before(key, last))
        except TypeError:
            return False

    def _check_order(self, rows: list[dict[str, Any]]) -> None:
        keys = [k for k in (self._key(row) for row in rows) if k is not None]
        try:
            if any(self._before(b, a) for a, b in zip(keys, keys[1:], strict=False)):
                self.ordered = False
        except TypeError:
            self.ordered = False

    def _fresh(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows not yielded before (a row without an id cannot be recognised: it is
        yielded, and becomes a record error)."""
        ids = [self._identity(row) for row in rows]
        already = self.seen.among(row_id for row_id in ids if row_id is not None)
        fresh, new_ids = [], []
        for row, row_id in zip(rows, ids, strict=True):
            if row_id is not None:
                if row_id in already:
                    continue
                already.add(row_id)
                new_ids.append(row_id)
            fresh.append(row)
        self.seen.update(dict.fromkeys(new_ids))
        return fresh


@dataclass(frozen=True, slots=True)
class SourcePage:
    """One page as the source sent it: `records` to map, `body` for page-level fields."""

    number: int  # 1-based count of pages read in this walk
    records: list[dict[str, Any]]
    body: Any


@dataclass(frozen=True)
class ListEndpoint:
    """A paginated list endpoint declared by a system connector.

    `params` are merged with the paginator's; pass a function instead to build the request params
    from the page params yourself (QuickBooks puts them into its query text).
    """

    path: str
    records: RecordsSelector
    paginator: Callable[[], Paginator]  # a factory: each walk starts at the first page
    params: Mapping[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] = field(
        default_factory=dict
    )

    def pages(self, fetch: JsonFetch) -> Iterator[SourcePage]:
        """Yield pages in order; `fetch(path, params)` returns a decoded body (e.g. a bound
        `HttpClient.get_json` with auth and rate key). An empty page always ends the walk, so a
        source that keeps saying "more" without records cannot loop forever."""
        paginator = self.paginator()
        number = 0
        while True:
            body = fetch(self.path, self._request_params(paginator.params()))
            records = self.records(body)
            number += 1
            yield SourcePage(number, records, body)
            if not records or not paginator.advance(body, records):
                return

    def _request_params(self, page_params: dict[str, Any]) -> dict[str, Any]:
        if callable(self.params):
            return self.params(page_params)
        return {**self.params, **page_params}


def records_at(*keys: str) -> RecordsSelector:
    """Select the record list at a key path, e.g. `records_at("QueryResponse", "Customer")`;
    a missing key or null is an empty page (QuickBooks omits the key when there are no rows)."""

    def select(body: Any) -> list[dict[str, Any]]:
        value = body
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"expected a list at {'.'.join(keys)}, got {type(value).__name__}")
        return value

    return select


def _full_page(page_size: int) -> HasMore:
    return lambda _body, records: len(records) >= page_size


def _check_page_size(page_size: int, max_page_size: int | None) -> None:
    if page_size < 1 or (max_page_size is not None and page_size > max_page_size):
        raise ValueError(f"page size must be between 1 and {max_page_size}, got {page_size}")


_QUANTA = {places: Decimal(1).scaleb(-places) for places in range(7)}  # built once, not per amount


def _parsed_decimal(value: Any) -> Decimal | None:
    """A Decimal, a numeric string (with Indian or Western digit grouping) or any other number
    as Decimal; None for blank text."""
    text = str(value).strip()
    if not text:
        return None
    if "," in text and _GROUPED_NUMBER.fullmatch(text):
        text = text.replace(",", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def to_decimal(value: Any, places: int | None = 2) -> Decimal | None:
    """Money/quantity to Decimal without float artefacts (`Decimal(str(0.1))` is 0.1).

    Accepts int, float, Decimal and numeric strings, also with Indian or Western digit grouping
    ("1,23,456.50"); None and "" give None. `places` rounds half-up (as GST amounts are rounded);
    None keeps every digit.
    """
    kind = type(value)
    if kind is float:  # a JSON number, most amounts: no text to clean
        number = Decimal(repr(value))
    elif kind is int:
        number = Decimal(value)
    elif value is None:
        return None
    elif isinstance(value, bool):  # bool is an int subclass; True is no amount
        raise ValueError(f"not a number: {value!r}")
    else:
        number = _parsed_decimal(value)
        if number is None:
            return None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    if places is None:
        return number
    quantum = _QUANTA.get(places) or Decimal(1).scaleb(-places)
    try:
        # `rounding` positional: as a keyword, _decimal parses it at twice the cost of the
        # quantize itself (150 ns against 65), on every amount of every record.
        return number.quantize(quantum, ROUND_HALF_UP)
    except InvalidOperation:  # more digits than Decimal's 28 of precision: no real amount
        raise ValueError(f"out of range: {value!r}") from None


def parse_timestamp(value: str | None, default_tz: tzinfo | None = None) -> datetime | None:
    """An ISO-8601 timestamp to an aware datetime: Zoho `2025-03-01T02:17:40-0800`, `+05:30`, `Z`.

    A timestamp without an offset is ambiguous: it takes `default_tz`, or is refused.
    """
    if value is None or not value.strip():
        return None
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        if default_tz is None:
            raise ValueError(f"timestamp without a UTC offset: {value!r}")
        parsed = parsed.replace(tzinfo=default_tz)
    return parsed


def parse_date(value: str | None) -> date | None:
    """`YYYY-MM-DD` (or the date part of a timestamp) to a date."""
    if value is None or not value.strip():
        return None
    return date.fromisoformat(value.strip()[:10])


class MappingError(ValueError):
    """A source value that cannot be mapped; the message names the field (the walk turns it into
    a MAPPING record error with the record's raw payload)."""


def money(
    record: Mapping[str, Any], field: str, *, required: bool = False, places: int | None = 2
) -> Decimal | None:
    """A record's amount as Decimal (`to_decimal`): None when absent or blank, unless required."""
    try:
        amount = to_decimal(record.get(field), places=places)  # absent or blank: None
    except ValueError as exc:
        raise MappingError(f"{field}: {exc}") from None
    if amount is None and required:
        raise MappingError(f"{field}: missing")
    return amount
