"""The next page is fetched while the current one is mapped and loaded.

An import alternates two kinds of waiting: for the source's answer, and for the warehouse's
COPY and commit. Reading one page ahead overlaps them, so a run takes about the longer of the
two rather than their sum. Only one page is held ahead, so memory stays bounded by pages.

What makes this safe: a `Page` carries its own cursor, fixed when the connector yielded it, so
the cursor stored with a committed page never runs ahead of what was committed, and the
connector's walk state (its listing, its cursor) is read only once the walk has ended. The walk
never touches the loader's connection: the versions it looks up come from a connection of
their own (see `imports/sync.py`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_PUT_WAIT_SECONDS = 0.1  # how soon a stopped reader notices, when the consumer is gone


class ReadAhead(Generic[T]):
    """Iterates `source` in a thread, `depth` items ahead of the consumer. An exception the
    source raises reaches the consumer where the source raised it: after the items before it.
    Closing (or leaving the `with` block) stops the reader and closes the source in its own
    thread; a read in progress is not waited for longer than `join_seconds`."""

    def __init__(self, source: Iterator[T], *, depth: int = 1, join_seconds: float = 5.0):
        self._items: queue.Queue = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()
        self._join_seconds = join_seconds
        self._thread = threading.Thread(
            target=self._read, args=(source,), name="read-ahead", daemon=True
        )
        self._thread.start()

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._items.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        self._stopped.set()
        while True:  # unblock a reader waiting to hand over an item
            try:
                self._items.get_nowait()
            except queue.Empty:
                break
        self._thread.join(self._join_seconds)

    def _read(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._hand_over("item", item):
                    return
            self._hand_over("end", None)
        except BaseException as exc:  # handed to the consumer, who raises it
            self._hand_over("error", exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's `finally` blocks run here, in the reader's thread

    def _hand_over(self, kind: str, value) -> bool:
        while not self._stopped.is_set():
            try:
                self._items.put((kind, value), timeout=_PUT_WAIT_SECONDS)
                return True
            except queue.Full:
                continue
        return False
