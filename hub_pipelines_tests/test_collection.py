"""The collector's threshold while an import allocates in bulk (imports/collection.py)."""

import gc
import threading

import pytest

from hub_pipelines.imports.collection import BULK_THRESHOLD, bulk_allocation


@pytest.fixture
def default_threshold():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_the_threshold_is_raised_inside_and_restored_after(default_threshold):
    with bulk_allocation():
        assert gc.get_threshold() == (BULK_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_imports_restore_the_threshold_when_the_last_one_ends(default_threshold):
    first_inside, second_ends, first_ends = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first() -> None:
        with bulk_allocation():
            first_inside.set()
            second_ends.wait(10)
            seen["after the second ended"] = gc.get_threshold()
        first_ends.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_inside.wait(10)
    with bulk_allocation():
        assert gc.get_threshold()[0] == BULK_THRESHOLD
    second_ends.set()
    thread.join(10)
    assert seen["after the second ended"][0] == BULK_THRESHOLD
    assert gc.get_threshold() == (700, 10, 10)


def test_a_threshold_set_higher_by_the_operator_is_kept(default_threshold):
    gc.set_threshold(BULK_THRESHOLD * 2, 10, 10)
    with bulk_allocation():
        assert gc.get_threshold()[0] == BULK_THRESHOLD * 2
    assert gc.get_threshold() == (BULK_THRESHOLD * 2, 10, 10)


def test_the_block_ending_in_an_error_restores_the_threshold(default_threshold):
    with pytest.raises(RuntimeError), bulk_allocation():
        raise RuntimeError("the import failed")
    assert gc.get_threshold() == (700, 10, 10)
