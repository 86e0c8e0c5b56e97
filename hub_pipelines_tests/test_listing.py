"""A walk's listing keeps its ids and totals out of the process's memory and behaves as a dict."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hub_pipelines.canonical import ListedTotals, Listing


def test_listed_totals_behave_as_a_dict_of_exact_decimals():
    totals = ListedTotals({"a": Decimal("0.10"), "b": None})
    totals["c"] = Decimal("0.20")
    totals["a"] = Decimal("100.10")  # listed again: the later total wins
    totals.setdefault("b", Decimal("5"))  # kept: already listed
    totals.update({"d": Decimal("1E+2"), "e": Decimal("-0.30")})
    assert totals.pop("e") == Decimal("-0.30")
    assert totals.pop("missing", None) is None
    with pytest.raises(KeyError):
        del totals["missing"]
    assert dict(totals.items()) == {
        "a": Decimal("100.10"),
        "b": None,
        "c": Decimal("0.20"),
        "d": Decimal("1E+2"),
    }
    assert sorted(totals) == ["a", "b", "c", "d"] and len(totals) == 4 and "c" in totals
    assert totals.sum() == Decimal("200.30")  # exact, None skipped


def test_a_listing_counts_and_sums_what_it_holds():
    listing = Listing(complete=True)
    for number in range(10_000):
        listing.totals[f"INV-{number}"] = Decimal("0.01")
    listing.totals.pop("INV-0")
    assert (listing.count, listing.total) == (9_999, Decimal("99.99"))


def test_each_listing_has_its_own_store():
    first, second = Listing(), Listing()
    first.totals["x"] = Decimal("1")
    assert len(second.totals) == 0


def test_a_page_of_ids_goes_in_and_is_found_exactly_whatever_its_characters():
    odd = ['INV-"7"', "INV\\8", "बीजक-9", "INV 10\n", "", "[1]"]
    page = {f"INV-{n}": Decimal(f"{n}.05") for n in range(1200)} | dict.fromkeys(odd)
    totals = ListedTotals()
    totals.update(page)
    assert dict(totals.items()) == page
    asked = [*odd, "INV-5", "INV-5", "INV-1199", "INV-1200", "missing"]
    assert totals.among(asked) == {*odd, "INV-5", "INV-1199"}
    assert totals.among(f"INV-{n}" for n in range(1200)) == {f"INV-{n}" for n in range(1200)}
    assert totals.among([]) == set()
