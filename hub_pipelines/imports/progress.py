"""Progress of one import while it runs: one log line per committed page and a run tag.

A first Zoho import of 20,000 invoices costs 20,000 detail calls: hours at 90 requests a minute,
and days of a small plan's daily quota. So after every committed page the run log gets one line
(pages, records so far, API calls, the source's remaining quota, time elapsed and left), and the
run's `hub/progress` tag is updated, at most once every `TAG_INTERVAL_SECONDS`, so the run list
and the run page of the Dagster UI show where a long import stands. The last state is always
written, also when the walk fails. Nothing here holds a secret: counts and durations only.

Time left is estimated only when the source says how many records the walk yields
(`Page.walk_total`), from the pace so far. Zoho's list answers carry no count (`page_context` has
`page`, `per_page`, `has_more_page`, the report name, filter and sort), and a page is committed
after its detail calls, so at that moment nothing is known to be left: the line says "unknown"
rather than invent a number.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol

from hub_pipelines.canonical import Page
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.warehouse.loader import LoadCounts

PROGRESS_TAG = "hub/progress"
TAG_INTERVAL_SECONDS = 5.0


# --- pure functions: estimate and wording ----------------------------------------------------


def estimate_seconds_left(done: int, total: int | None, elapsed: float) -> float | None:
    """Seconds left at the pace so far (`elapsed` seconds for `done` of `total` records); None
    when the total is unknown or nothing is done yet, 0 once `done` reaches `total`."""
    if total is None or done <= 0:
        return None
    if done >= total:
        return 0.0
    return max(elapsed, 0.0) * (total - done) / done


def format_duration(seconds: float) -> str:
    """`4.2s`, `42s`, `7m 05s`, `3h 07m`, `2d 5h`: two units at most, for a log line."""
    seconds = max(seconds, 0.0)
    if seconds < 9.95:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where one import stands after a committed page."""

    entity: str
    pages: int
    fetched: int  # records read (loaded or failed)
    loaded: int
    failed: int
    api_calls: int
    elapsed: float  # seconds since the import started
    quota_remaining: int | None = None  # what the source says is left of its API quota
    total: int | None = None  # records the walk yields in all, when the source says

    def time_left(self) -> str:
        if self.total is None:
            return "time left unknown"
        seconds = estimate_seconds_left(self.fetched, self.total, self.elapsed)
        if seconds is None:
            return "time left unknown"
        return f"~{format_duration(seconds)} left"


def log_line(s: Snapshot) -> str:
    """One line per committed page, e.g. `invoices: page 3 committed; 600 records so far (598
    loaded, 2 failed); 612 API calls; quota 9,388 left; 6m 48s elapsed; time left unknown (the
    source gives no record count)`."""
    records = f"{s.fetched:,}" if s.total is None else f"{s.fetched:,} of {s.total:,}"
    parts = [
        f"{s.entity}: page {s.pages:,} committed",
        f"{records} records so far ({s.loaded:,} loaded, {s.failed:,} failed)",
        f"{s.api_calls:,} API calls",
    ]
    if s.quota_remaining is not None:
        parts.append(f"quota {s.quota_remaining:,} left")
    parts.append(f"{format_duration(s.elapsed)} elapsed")
    left = s.time_left()
    if s.total is None:
        left += " (the source gives no record count)"
    elif s.fetched <= 0:
        left += " (no record read yet)"
    parts.append(left)
    return "; ".join(parts)


def tag_value(s: Snapshot, ending: str | None = None) -> str:
    """The run tag, e.g. `invoices: 400 records, 12 pages, 420 calls, quota 9,580 left, ~3m 05s
    left`; `ending` replaces the time left once the walk is over."""
    parts = [
        f"{s.entity}: {s.fetched:,} records",
        f"{s.pages:,} page{'s' if s.pages != 1 else ''}",
        f"{s.api_calls:,} calls",
    ]
    if s.quota_remaining is not None:
        parts.append(f"quota {s.quota_remaining:,} left")
    parts.append(ending or s.time_left())
    return ", ".join(parts)


# --- the tracker -----------------------------------------------------------------------------


class ProgressLog(Protocol):
    """Dagster's `context.log` (or a `logging.Logger`)."""

    def info(self, msg: str, *args: Any) -> None: ...

    def warning(self, msg: str, *args: Any) -> None: ...


class Metered(Protocol):
    """What the tracker reads from a connector (see `canonical.Connector`)."""

    @property
    def api_calls(self) -> int: ...


class ImportProgress:
    """Counts committed pages of one import and reports after each: a log line every page, the
    run tag when `tag_interval` seconds have passed since the last one (and always at the end).

    Use as a context manager around the page loop; call `page_committed` after each commit.
    `counts` is the import's running `LoadCounts`, read, never changed.
    """

    def __init__(
        self,
        entity: str,
        counts: LoadCounts,
        connector: Metered,
        *,
        log: ProgressLog,
        set_tags: Callable[[Mapping[str, str]], None],
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        tag_interval: float = TAG_INTERVAL_SECONDS,
    ) -> None:
        self.entity, self.counts, self.connector = entity, counts, connector
        self._log, self._set_tags = log, set_tags
        self._clock = clock
        self.started = clock() if started is None else started
        self.tag_interval = tag_interval
        self.pages = 0
        self.total: int | None = None
        self._tag_written_at: float | None = None
        self._tags_broken = False

    @classmethod
    def for_run(cls, context, entity: str, counts: LoadCounts, connector: Metered, **kwargs):
        """A tracker logging to `context.log` and tagging the context's run."""
        run_id = context.run.run_id
        return cls(
            entity,
            counts,
            connector,
            log=context.log,
            set_tags=lambda tags: context.instance.add_run_tags(run_id, dict(tags)),
            **kwargs,
        )

    @property
    def quota_remaining(self) -> int | None:
        # Connectors that do not subclass `canonical.Connector` may not have it.
        return getattr(self.connector, "quota_remaining", None)

    def snapshot(self) -> Snapshot:
        counts = self.counts
        return Snapshot(
            entity=self.entity,
            pages=self.pages,
            fetched=counts.fetched,
            loaded=counts.inserted + counts.updated + counts.unchanged,
            failed=counts.failed,
            api_calls=self.connector.api_calls,
            elapsed=self._clock() - self.started,
            quota_remaining=self.quota_remaining,
            total=self.total,
        )

    def page_committed(self, page: Page) -> None:
        self.pages += 1
        if page.walk_total is not None:
            self.total = page.walk_total
        snapshot = self.snapshot()
        self._log.info(log_line(snapshot))
        now = self._clock()
        if self._tag_written_at is None or now - self._tag_written_at >= self.tag_interval:
            self._tag(tag_value(snapshot), now)

    def finish(self, completed: bool, resume_at: datetime | None = None) -> None:
        """The final tag: every page read, or where the walk stopped (and, when the source's
        quota stopped it, when it resumes)."""
        snapshot = self.snapshot()
        took = format_duration(snapshot.elapsed)
        ending = f"all pages read in {took}" if completed else f"stopped after {took}"
        if resume_at is not None:
            ending += f", resumes after {resume_at:%Y-%m-%d %H:%M} UTC"
            self._log.warning(
                f"{self.entity}: stopped by the source's API limits after {snapshot.fetched:,} "
                f"records; what was read is loaded; resumes after {resume_at:%Y-%m-%d %H:%M} UTC"
            )
        self._tag(tag_value(snapshot, ending), self._clock())

    def metadata(self) -> dict[str, int]:
        """For the materialization: `pages`, and `quota_remaining` when the source reports it."""
        metadata = {"pages": self.pages}
        quota = self.quota_remaining
        if quota is not None:
            metadata["quota_remaining"] = quota
        return metadata

    def __enter__(self) -> ImportProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(completed=exc_type is None, resume_at=_resume_at(exc))

    def _tag(self, value: str, now: float) -> None:
        """A progress display must not stop an import: a tag that cannot be written is reported
        once, and no further one is tried."""
        if self._tags_broken:
            return
        try:
            self._set_tags({PROGRESS_TAG: value})
        except Exception as exc:
            self._tags_broken = True
            self._log.warning(f"could not update the run tag {PROGRESS_TAG}: {exc}")
        self._tag_written_at = now


def _resume_at(exc: BaseException | None) -> datetime | None:
    """When an import stopped by the source's API quota (a RATE_LIMIT error with a wait) can go
    on; None for any other ending."""
    if not isinstance(exc, SyncError) or exc.category != Category.RATE_LIMIT:
        return None
    if exc.retry_after is None:
        return None
    return datetime.now(UTC) + timedelta(seconds=exc.retry_after)
