"""Client-side rate limiting: a token bucket per organisation, shared across the process.

The sources' limits are sliding-window limits ("100 requests per minute per organisation"), so the
bucket is sized to guarantee that **no window of `window` seconds ever contains more than `limit`
acquisitions**:

* A classic bucket holding `burst` tokens and refilling at `limit / window` allows
  `burst + limit` calls in one window (a full bucket, then a window of refills), which is over.
* This bucket refills at `(limit - burst) / window` instead. In any window the calls are bounded by
  the tokens present at its start (≤ burst) plus the refill during it (limit - burst): ≤ limit.

`burst` therefore trades start-up speed for sustained throughput (`limit - burst` per window). The
default `burst=1` spaces calls evenly at `window / (limit - 1)`, which also keeps per-second
limits (QuickBooks: 10/s) satisfied and gives the highest sustained rate.

Acquisitions are reservations: a caller takes its slot under the lock and sleeps outside it, so
waiting threads queue in order without holding the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`bucket.acquire()` before each request; blocks until the request may be sent."""

    def __init__(
        self,
        limit: float,
        burst: int = 1,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if burst < 1 or limit <= burst:
            raise ValueError(f"rate limit needs 1 ≤ burst < limit, got limit={limit} burst={burst}")
        if window <= 0:
            raise ValueError(f"rate limit window must be positive, got {window}")
        self.limit = limit
        self.burst = burst
        self.window = window
        self._refill_per_second = (limit - burst) / window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated_at = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it exists; returns the seconds waited."""
        with self._lock:
            wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def _reserve(self) -> float:
        now = self._clock()
        elapsed = now - self._updated_at
        self._tokens = min(float(self.burst), self._tokens + elapsed * self._refill_per_second)
        self._updated_at = now
        # Negative tokens are slots promised to callers that are still sleeping.
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._refill_per_second


_registry: dict[str, TokenBucket] = {}
_registry_lock = threading.Lock()


def bucket_for(key: str, limit: float, *, window: float = 60.0) -> TokenBucket:
    """The process-wide bucket for one organisation, e.g. `bucket_for("zoho_books:6000123", 90)`.

    Every connector talking to the same organisation must pass the same key so they share one
    budget. A call with another limit (the tenant's config changed, or a process serving several
    runs meets a new one) gets a new bucket with that limit: the latest config wins, instead of a
    long-lived process pacing a tenant at a limit it no longer has.
    """
    with _registry_lock:
        bucket = _registry.get(key)
        if bucket is None or bucket.limit != limit:
            bucket = _registry[key] = TokenBucket(limit, window=window)
        return bucket


def registered_bucket(key: str) -> TokenBucket | None:
    """The bucket the process paces an organisation with now, if any."""
    with _registry_lock:
        return _registry.get(key)


_turns: dict[str, threading.Lock] = {}
_turns_guard = threading.Lock()


def one_at_a_time(address: str) -> threading.Lock:
    """The process-wide turn for a source that serves one request at a time (Tally and BUSY are
    desktop programs: a second request waits or stalls the first), shared by every connector
    of this process calling `address`."""
    with _turns_guard:
        return _turns.setdefault(address, threading.Lock())
