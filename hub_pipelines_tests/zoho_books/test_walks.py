"""Walks that cannot skip rows, contact walks that stop at the cursor, reconciliation that does not
list the books every run, the daily quota as a budget, and the real payloads found anywhere
(issue 8, points 8–11 and 13): against the simulator over loopback HTTP, through Dagster."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub_pipelines.connectors.base import OverlappingWindows
from hub_pipelines.imports.progress import PROGRESS_TAG
from hub_pipelines.zoho_books.connector import ZohoBooksResource
from hub_pipelines_tests import conftest as root
from hub_pipelines_tests.zoho_books.conftest import (
    TENANT,
    checks,
    customers,
    invoices,
    metadata,
    record_failure,
)

IST = ZoneInfo("Asia/Kolkata")
SMALL_PAGES = ZohoBooksResource(page_size=20)
INVOICE_LIST, CONTACT_LIST = "/books/v3/invoices", "/books/v3/contacts"


def requests_to(zoho, path: str) -> list:
    return [e for e in zoho.simulator.request_log if e.path == path]


def details(zoho, path: str) -> list[str]:
    return [e.path for e in zoho.simulator.request_log if e.path.startswith(path + "/")]


def live_ids(zoho, entity: str = "invoices") -> set[str]:
    rows = zoho.query(
        f"SELECT external_id FROM accounting.{entity} WHERE tenant_id = %s AND deleted_at IS NULL",
        (TENANT,),
    )
    return {r[0] for r in rows}


def references(zoho) -> dict[str, str | None]:
    rows = zoho.query(
        "SELECT external_id, raw->>'reference_number' FROM accounting.invoices "
        "WHERE tenant_id = %s AND deleted_at IS NULL",
        (TENANT,),
    )
    return dict(rows)


def first_row(key: str):
    """An `after_page` action's view of the page just served: the id of its first row."""
    id_field = {"invoices": "invoice_id", "contacts": "contact_id"}[key]
    return lambda body: body[key][0][id_field]


# --- 8. walks that cannot skip a row -------------------------------------------------------------


def test_a_deletion_during_a_first_import_does_not_skip_the_row_it_moves(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=60)
    assert zoho.materialize(customers).success
    sim = zoho.simulator
    gone = []

    def delete_first_row(body):  # someone deletes an invoice the walk has just read
        gone.append(first_row("invoices")(body))
        sim.delete_invoice(zoho.org_id, gone[-1])

    sim.faults.after_page(INVOICE_LIST, 1, delete_first_row)
    result = zoho.materialize(invoices, zoho_books=SMALL_PAGES)
    assert result.success and len(gone) == 1
    # Every invoice that still exists is in the warehouse: none slid onto the page already read.
    assert live_ids(zoho) == set(sim.invoice_ids(zoho.org_id))
    assert metadata(result, "invoices")["records_inserted"] == 59
    # Oldest created first: new invoices join the end of the walk, not its front.
    walk = requests_to(zoho, INVOICE_LIST)
    assert {(e.params["sort_column"], e.params["sort_order"]) for e in walk} == {
        ("created_time", "A")
    }


def test_deletions_during_an_incremental_walk_skip_no_edit(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=60)
    assert zoho.materialize(customers, invoices).success
    sim = zoho.simulator
    for invoice_id in sim.invoice_ids(zoho.org_id):
        sim.edit_invoice(zoho.org_id, invoice_id, reference_number="v2")
    # After each of the first two pages one of its invoices is deleted.
    for page in (1, 2):
        sim.faults.after_page(
            INVOICE_LIST,
            page,
            lambda body: sim.delete_invoice(zoho.org_id, first_row("invoices")(body)),
        )
    assert zoho.materialize(invoices, zoho_books=SMALL_PAGES).success
    surviving = set(sim.invoice_ids(zoho.org_id))
    assert len(surviving) == 58
    seen = references(zoho)
    assert {i for i in surviving if seen.get(i) != "v2"} == set()  # every edit was read


def test_rows_added_and_deleted_mid_walk_cost_a_re_read_not_a_row(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=60)
    assert zoho.materialize(customers).success
    sim = zoho.simulator
    at_start = set(sim.invoice_ids(zoho.org_id))
    template = sim.get_invoice(zoho.org_id, sorted(at_start)[0])
    old = sorted(sim.get_invoice(zoho.org_id, i)["created_time"] for i in at_start)[5]

    def churn(body):
        for row in body["invoices"][3:5]:  # two rows read go: later rows move forward
            sim.delete_invoice(zoho.org_id, row["invoice_id"])
        sim.add_invoice(zoho.org_id)  # created now: joins the end
        backdated = {k: v for k, v in template.items() if k not in ("invoice_id", "invoice_number")}
        sim.add_invoice(zoho.org_id, {**backdated, "created_time": old})  # lands on a read page

    sim.faults.after_page(INVOICE_LIST, 1, churn)
    sim.faults.after_page(
        INVOICE_LIST,
        2,
        lambda body: sim.delete_invoice(zoho.org_id, body["invoices"][-1]["invoice_id"]),
    )
    assert zoho.materialize(invoices, zoho_books=SMALL_PAGES).success
    survivors = at_start & set(sim.invoice_ids(zoho.org_id))
    assert survivors <= live_ids(zoho)  # nothing that existed at the start was skipped
    walk = requests_to(zoho, INVOICE_LIST)
    windows = [(int(e.params["page"]), int(e.params["per_page"])) for e in walk]
    starts = [(page - 1) * size for page, size in windows]
    assert len(windows) > len(set(windows)) or starts != sorted(starts)  # it read back
    # The next run reads the invoice added on an already-read page (created and changed after
    # the walk started, so the cursor stayed before it).
    assert zoho.materialize(invoices, zoho_books=SMALL_PAGES).success
    assert live_ids(zoho) == set(sim.invoice_ids(zoho.org_id))


class ChurningList:
    """An in-memory sorted list that loses rows, gains rows at the end and in the middle after
    every page it serves, as people edit the books while a walk pages through them."""

    def __init__(self, seed: int, descending: bool, size: int = 600) -> None:
        self.rng, self.descending, self.size = random.Random(seed), descending, size
        self.rows = [{"id": str(i), "k": i} for i in range(size)]
        self.at_start = {row["id"] for row in self.rows}
        self.deleted: set[str] = set()
        self.added = 0

    def fetch(self, page: int, per_page: int) -> dict:
        ordered = sorted(self.rows, key=lambda r: (r["k"], r["id"]), reverse=self.descending)
        first = (page - 1) * per_page
        body = {"rows": ordered[first : first + per_page], "more": len(ordered) > first + per_page}
        for _ in range(self.rng.randint(0, 3)):
            if self.rng.random() < 0.5 and self.rows:
                self.deleted.add(self.rows.pop(self.rng.randrange(len(self.rows)))["id"])
            else:
                at_end = self.rng.random() < 0.5
                key = self.size + self.added if at_end else self.rng.randrange(self.size) + 0.5
                self.rows.append({"id": f"n{self.added}", "k": key})
                self.added += 1
        return body


@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
def test_overlapping_windows_never_lose_a_row_under_random_churn(descending):
    """The walker alone: adjacent pages lose rows in every one of these runs."""
    for seed in range(12):
        source = ChurningList(seed, descending)
        walk = OverlappingWindows(
            source.fetch,
            lambda body: body["rows"],
            lambda body: body["more"],
            key=lambda row: row["k"],
            identity=lambda row: row["id"],
            page_size=40,
            max_page_size=200,
            descending=descending,
            max_rereads=10_000,
        )
        read = {row["id"] for window in walk for row in window}
        assert (source.at_start - source.deleted) - read == set(), seed
        assert walk.rereads < walk.calls


def test_windows_overlap_the_last_row_read():
    walk = OverlappingWindows(
        lambda page, size: {},
        lambda body: [],
        lambda body: False,
        key=lambda row: None,
        identity=lambda row: None,
        page_size=200,
        max_page_size=200,
    )
    for frontier in (200, 398, 1000, 19_999):
        page, size = walk.window(frontier)
        first = (page - 1) * size
        assert first <= frontier - 1 < first + size - 1  # starts at or before the last row read
        assert size >= 150  # and still reads mostly new rows


# --- 9. contacts: newest-modified first, stop at the cursor --------------------------------------


def _contacts_with_two_edits(zoho) -> list[str]:
    zoho.simulator.seed_generated(zoho.org_id, customers=100, invoices=0)
    assert zoho.materialize(customers, zoho_books=SMALL_PAGES).success
    edited = zoho.simulator.contact_ids(zoho.org_id)[40:42]
    for contact_id in edited:
        zoho.simulator.edit_contact(zoho.org_id, contact_id, email=f"{contact_id}@new.example")
    zoho.simulator.request_log.clear()
    return edited


def test_an_incremental_contact_walk_stops_at_the_cursor(zoho):
    edited = _contacts_with_two_edits(zoho)
    result = zoho.materialize(customers, zoho_books=SMALL_PAGES)
    assert result.success
    walk = [e for e in requests_to(zoho, CONTACT_LIST) if e.params.get("page") == "1"]
    assert walk and walk[0].params["sort_column"] == "last_modified_time"
    assert walk[0].params["sort_order"] == "D"
    # One window of the walk and one call counting the source, instead of 5 + 5 pages.
    assert len(requests_to(zoho, CONTACT_LIST)) == 2
    assert sorted(details(zoho, CONTACT_LIST)) == sorted(f"{CONTACT_LIST}/{c}" for c in edited)
    emails = dict(zoho.query("SELECT external_id, email FROM accounting.customers"))
    assert all(emails[c] == f"{c}@new.example" for c in edited)
    assert metadata(result, "customers")["listing"] == "changes"
    assert checks(result)["customers.matches_source"].passed


def test_a_source_that_ignores_the_sort_is_listed_to_the_end(zoho):
    edited = _contacts_with_two_edits(zoho)
    zoho.simulator.sort_honoured = False  # answers by contact_name, whatever was asked
    assert zoho.materialize(customers, zoho_books=SMALL_PAGES).success
    assert len(requests_to(zoho, CONTACT_LIST)) >= 5  # no early stop on an order not kept
    emails = dict(zoho.query("SELECT external_id, email FROM accounting.customers"))
    assert all(emails[c] == f"{c}@new.example" for c in edited)


@pytest.mark.real_fixtures
def test_the_recordings_show_the_sort_parameters_honoured():
    """The real answers behind the walk orders: contacts by `last_modified_time` and invoices by
    `created_time`, both `sort_order=A`, echoed in `page_context` and in that order."""
    folder = root.REAL_FIXTURES / "zoho_books"
    for name, key, column in (
        ("nango_contacts.test.json", "contacts", "last_modified_time"),
        ("nango_invoices.test.json", "invoices", "created_time"),
    ):
        (answer,) = _answers(json.loads((folder / name).read_text()))
        assert answer["request"]["params"]["sort_column"] == column
        assert answer["request"]["params"]["sort_order"] == "A"
        context = answer["response"]["page_context"]
        assert (context["sort_column"], context["sort_order"]) == (column, "A")
        stamps = [
            datetime.strptime(r[column], "%Y-%m-%dT%H:%M:%S%z") for r in answer["response"][key]
        ]
        assert stamps == sorted(stamps) and len(stamps) > 3


def _answers(recording: dict) -> list[dict]:
    (answers,) = recording["api"]["get"].values()
    return answers if isinstance(answers, list) else [answers]


# --- 10. reconciliation that does not list the books every run -----------------------------------


def test_an_unchanged_run_counts_the_source_instead_of_listing_it(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=100)
    assert zoho.materialize(customers, invoices, zoho_books=SMALL_PAGES).success
    zoho.simulator.request_log.clear()
    result = zoho.materialize(invoices, zoho_books=SMALL_PAGES)
    assert result.success
    calls = [e for e in zoho.simulator.request_log if e.path.startswith("/books/v3")]
    assert len(calls) == 2  # one window of changes, one count; not 1 + 100 / 20 listing pages
    evaluation = checks(result)["invoices.matches_source"]
    assert evaluation.passed
    assert evaluation.metadata["source_count"].value == 100
    assert evaluation.metadata["source_total"].value == "not compared this run"
    assert "count" in evaluation.metadata["counted_by"].value
    assert metadata(result, "invoices")["listing"] == "changes"


def test_a_deletion_fails_the_count_of_an_incremental_run(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=100)
    assert zoho.materialize(customers, invoices, zoho_books=SMALL_PAGES).success
    for invoice_id in zoho.simulator.invoice_ids(zoho.org_id)[:30]:
        zoho.simulator.delete_invoice(zoho.org_id, invoice_id)
    evaluation = checks(zoho.materialize(invoices, zoho_books=SMALL_PAGES))[
        "invoices.matches_source"
    ]
    assert not evaluation.passed
    assert "warehouse 100, source 70" in evaluation.description


def test_no_entity_is_listed_twice_in_a_run(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=60, invoices=60)
    for full_refresh in (False, True):  # a first import, then a full refresh
        zoho.simulator.request_log.clear()
        result = zoho.materialize(full_refresh=full_refresh, zoho_books=SMALL_PAGES)
        assert result.success
        for path in (CONTACT_LIST, INVOICE_LIST):
            windows = [(e.params["page"], e.params["per_page"]) for e in requests_to(zoho, path)]
            assert len(windows) == len(set(windows)) <= 4, (path, windows)
        for entity in ("customers", "invoices"):
            assert metadata(result, entity)["listing"] == "complete"
            evaluation = checks(result)[f"{entity}.matches_source"]
            assert evaluation.passed and evaluation.metadata["source_count"].value == 60
    assert "not compared" not in str(checks(result)["invoices.matches_source"].metadata)


def test_the_complete_listing_comes_back_on_its_own_cadence(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=100)
    assert zoho.materialize(customers, invoices, zoho_books=SMALL_PAGES).success
    zoho.query(  # the last complete listing was 8 days ago (the default cadence is 7)
        "UPDATE hub.accounting_sync_logs SET completed_at = completed_at - interval '8 days' "
        "RETURNING 1"
    )
    zoho.simulator.request_log.clear()
    due = zoho.materialize(invoices, zoho_books=SMALL_PAGES)
    walk = requests_to(zoho, INVOICE_LIST)
    assert all("last_modified_time" not in e.params for e in walk) and len(walk) >= 5
    assert metadata(due, "invoices")["listing"] == "complete"
    evaluation = checks(due)["invoices.matches_source"]
    source_total = sum(
        Decimal(str(zoho.simulator.get_invoice(zoho.org_id, i)["total"]))
        for i in zoho.simulator.invoice_ids(zoho.org_id)
    )
    assert evaluation.passed and Decimal(evaluation.metadata["source_total"].value) == source_total

    zoho.simulator.request_log.clear()
    after = zoho.materialize(invoices, zoho_books=SMALL_PAGES)
    assert metadata(after, "invoices")["listing"] == "changes"
    assert len(requests_to(zoho, INVOICE_LIST)) == 2


def test_a_count_that_fails_leaves_the_check_unevaluated_and_says_why(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=30)
    assert zoho.materialize(customers, invoices, zoho_books=SMALL_PAGES).success
    sim = zoho.simulator
    # Once the walk's only window is served, the list endpoint fails for the count.
    sim.faults.after_page(INVOICE_LIST, 1, lambda _: sim.faults.fail_next(10, 503, INVOICE_LIST))
    result = zoho.materialize(invoices, zoho_books=SMALL_PAGES)
    assert result.success  # the import itself is sound
    evaluation = checks(result)["invoices.matches_source"]
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert evaluation.description.startswith("not evaluated this run: the source could not be")
    assert "503" in evaluation.description


# --- 11. the daily quota as a budget ------------------------------------------------------------


def test_a_first_import_larger_than_the_days_quota_stops_short_and_resumes_after_the_reset(zoho):
    sim = zoho.simulator
    day = datetime.combine(date(2026, 3, 15), time(12, 0), tzinfo=IST)
    sim.clock = lambda: day - timedelta(days=1)
    sim.seed_generated(zoho.org_id, customers=3, invoices=150, as_of=day)
    assert zoho.materialize(customers).success  # yesterday's quota
    sim.clock = lambda: day
    sim.daily_limit = 100  # a tenth is kept in reserve: 10 requests
    sim.request_log.clear()

    stopped = zoho.materialize(invoices, zoho_books=SMALL_PAGES)
    assert not stopped.success
    assert sim.requests_throttled == 0  # stopped before Zoho had to refuse anything
    first_details = details(zoho, INVOICE_LIST)
    loaded = live_ids(zoho)
    assert 0 < len(loaded) == len(first_details)  # everything read was kept
    assert len([e for e in sim.request_log if e.path.startswith("/books/v3")]) == 90
    record_failure(zoho, stopped)
    category, retry_after, message, seconds = zoho.query(
        "SELECT e.category, (l.metadata->>'retry_after')::numeric, e.error_message, "
        "extract(epoch FROM e.next_retry_at - now()) FROM hub.accounting_sync_errors e "
        "JOIN hub.accounting_sync_logs l ON l.dagster_run_id = e.dagster_run_id "
        "WHERE e.scope = 'run'"
    )[0]
    assert category == "RATE_LIMIT"
    assert 12 * 3600 - 120 < retry_after <= 12 * 3600  # midnight IST, as Zoho's reset says
    assert 12 * 3600 - 300 < seconds <= 12 * 3600
    assert "10 kept in reserve" in message and "resumes after" in message
    resume_at = zoho.scalar(
        "SELECT metadata->>'resume_at' FROM hub.accounting_sync_logs WHERE metadata ? 'resume_at'"
    )
    assert (
        resume_at
        and "resumes after " in zoho.instance.get_run_by_id(stopped.run_id).tags[PROGRESS_TAG]
    )

    sim.clock = lambda: day + timedelta(hours=12, minutes=30)  # after midnight: a new day
    resumed = zoho.materialize(invoices, zoho_books=SMALL_PAGES)
    assert resumed.success
    again = details(zoho, INVOICE_LIST)[len(first_details) :]
    assert set(again).isdisjoint(first_details)  # nothing fetched twice
    assert live_ids(zoho) == set(sim.invoice_ids(zoho.org_id))


def test_a_reserve_of_nothing_leaves_the_stop_to_zoho(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=40)
    zoho.simulator.daily_limit = 25
    result = zoho.materialize(
        customers, invoices, zoho_books=ZohoBooksResource(page_size=20, quota_reserve_percent=0)
    )
    assert not result.success and zoho.simulator.requests_throttled == 1


# --- 13. the real payloads, wherever they are -----------------------------------------------------


def test_the_real_payloads_may_live_where_an_environment_variable_says(tmp_path):
    assert root.real_fixtures_dir({"HUB_REAL_FIXTURES": str(tmp_path)}) == tmp_path
    assert root.real_fixtures_dir({}) == root.SHARED / "fixtures" / "real"
    assert root.real_fixtures_dir({"HUB_REAL_FIXTURES": ""}) == root.SHARED / "fixtures" / "real"


def test_without_them_the_skip_says_in_one_line_how_to_get_them(tmp_path):
    reason = root.real_fixtures_skip_reason(tmp_path / "absent")
    assert "\n" not in reason and len(reason) < 240
    assert str(tmp_path / "absent") in reason
    assert "HUB_REAL_FIXTURES" in reason and "../shared" in reason
    assert Path(root.REAL_FIXTURES) == root.real_fixtures_dir()
