"""Reading one page ahead: the order, the errors and the stop are those of the plain loop."""

from __future__ import annotations

import threading

import pytest

from hub_pipelines.imports.read_ahead import ReadAhead

WAIT = 10  # seconds; only reached when the behaviour under test is missing


def test_items_arrive_in_order_and_the_reader_ends_with_the_source():
    with ReadAhead(iter(range(50))) as ahead:
        assert list(ahead) == list(range(50))


def test_the_next_item_is_read_while_the_consumer_still_holds_the_current_one():
    second_started = threading.Event()

    def pages():
        yield 1
        second_started.set()
        yield 2

    with ReadAhead(pages()) as ahead:
        items = iter(ahead)
        assert next(items) == 1
        # The consumer has not asked for the second page, yet it is being read.
        assert second_started.wait(WAIT)
        assert next(items) == 2


def test_the_reader_holds_at_most_one_item_ahead():
    produced = []
    handed = threading.Event()

    def pages():
        for number in range(10):
            produced.append(number)
            if number == 2:
                handed.set()  # the third item: one consumed, one queued, this one waiting
            yield number

    with ReadAhead(pages()) as ahead:
        items = iter(ahead)
        assert next(items) == 0
        assert handed.wait(WAIT)
        threading.Event().wait(0.3)  # a reader not bounded by the queue would read on
        assert produced == [0, 1, 2]


def test_an_error_reaches_the_consumer_after_the_items_before_it():
    def pages():
        yield "page 1"
        yield "page 2"
        raise ValueError("the source broke on page 3")

    seen = []
    with ReadAhead(pages()) as ahead, pytest.raises(ValueError, match="page 3"):
        for page in ahead:
            seen.append(page)
    assert seen == ["page 1", "page 2"]


def test_a_consumer_that_stops_early_stops_the_reader_and_closes_the_source_in_its_thread():
    closed_in = []

    def pages():
        try:
            yield from range(1_000_000)
        finally:
            closed_in.append(threading.current_thread().name)

    ahead = ReadAhead(pages())
    for number in ahead:
        if number == 3:
            break
    ahead.close()
    assert closed_in == ["read-ahead"]
    assert not ahead._thread.is_alive()
