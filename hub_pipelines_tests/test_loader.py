"""The loader's promises, on the real warehouse: an unchanged record writes nothing, a record
that reappears is revived, the delete guard refuses a suspicious answer, a record failing again
keeps one open error row, and a page's cursor commits with its rows or not at all."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from hub_pipelines.canonical import Customer, Invoice, InvoiceLine, Page, RecordFailure
from hub_pipelines.connectors.errors import SyncError
from hub_pipelines.warehouse.encoding import RecordEncoder
from hub_pipelines.warehouse.loader import (
    ANALYZE_AFTER,
    STATISTICS_FLOOR,
    LoadCounts,
    PartitionLoader,
)

TENANT = "loadtest"
SYSTEM = "zoho_books"
EDITED = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def customer(external_id: str, name: str | None = None) -> Customer:
    return Customer(
        external_id=external_id,
        name=name or f"Customer {external_id}",
        raw={"contact_id": external_id},
        source_updated_at=EDITED,
    )


def invoice(external_id: str, total: str = "118.00", lines: int = 1) -> Invoice:
    """As every connector maps one: each line's raw payload is a part of the invoice's."""
    items = [{"n": n} for n in range(1, lines + 1)]
    return Invoice(
        external_id=external_id,
        raw={"invoice_id": external_id, "items": items},
        status="open",
        total=Decimal(total),
        source_updated_at=EDITED,
        lines=[
            InvoiceLine(line_number=item["n"], raw=item, taxable_amount=Decimal("100.00"))
            for item in items
        ],
    )


def loader(conn, run_id: str, entity: str = "customers", sync_log_id=None) -> PartitionLoader:
    return PartitionLoader(
        conn,
        tenant_id=TENANT,
        system=SYSTEM,
        entity=entity,
        run_id=run_id,
        partition_key=TENANT,
        sync_log_id=sync_log_id,
    )


def load(url: str, run_id: str, records, entity: str = "customers", **page) -> LoadCounts:
    with psycopg.connect(url) as conn:
        return loader(conn, run_id, entity).load_page(Page(list(records), **page))


def rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def customer_rows(url: str) -> dict[str, tuple]:
    """external_id → (name, synced_at, sync_run_id, deleted_at)."""
    found = rows(
        url,
        "SELECT external_id, name, synced_at, sync_run_id, deleted_at FROM accounting.customers "
        "WHERE tenant_id = %s",
        (TENANT,),
    )
    return {external_id: tuple(rest) for external_id, *rest in found}


def stored_cursor(url: str, entity: str = "customers") -> str | None:
    """The cursor as any other connection sees it (committed or not there)."""
    found = rows(
        url,
        "SELECT cursor FROM hub.sync_state WHERE tenant_id = %s AND entity = %s",
        (TENANT, entity),
    )
    return found[0][0] if found else None


def counts_of(counts: LoadCounts) -> tuple[int, int, int]:
    return counts.inserted, counts.updated, counts.unchanged


# --- the merge writes only what changed ----------------------------------------------------------


def test_an_unchanged_record_writes_nothing_and_keeps_its_run_and_time(warehouse):
    assert counts_of(load(warehouse, "run-1", [customer("a"), customer("b")])) == (2, 0, 0)
    before = customer_rows(warehouse)

    again = load(warehouse, "run-2", [customer("a"), customer("b")])
    assert counts_of(again) == (0, 0, 2)
    assert customer_rows(warehouse) == before  # synced_at and sync_run_id untouched

    edited = load(warehouse, "run-3", [customer("a"), customer("b", name="Renamed")])
    assert counts_of(edited) == (0, 1, 1)
    after = customer_rows(warehouse)
    assert after["a"] == before["a"]
    assert after["b"][0] == "Renamed" and after["b"][2] == "run-3"
    assert after["b"][1] > before["b"][1]


def test_a_change_in_the_raw_payload_alone_is_written(warehouse):
    """The fingerprint covers the raw payload: an edit the mapping does not read still reaches
    the warehouse's copy of the source record."""
    load(warehouse, "run-1", [customer("a")])
    edited = customer("a")
    edited.raw = {"contact_id": "a", "notes": "new"}
    assert counts_of(load(warehouse, "run-2", [edited])) == (0, 1, 0)
    assert rows(warehouse, "SELECT raw->>'notes' FROM accounting.customers") == [("new",)]


def test_fingerprints_are_the_ones_earlier_releases_stored():
    """Every stored `content_hash` was made this way: a fingerprint that changed with a release
    would rewrite every row of every tenant once (and stamp each with that run)."""
    invoices = RecordEncoder("acme", "zoho_books", Invoice)
    customers = RecordEncoder("acme", "zoho_books", Customer)
    assert invoices.encode(invoice("INV-1", lines=2)).fingerprint.hex() == (
        "559524630a773fee2678ac3c6d81e045"
    )
    assert customers.encode(customer("C-1")).fingerprint.hex() == (
        "eece5860d90af96f74bea44bbfdf6979"
    )


def test_a_row_written_before_fingerprints_is_rewritten_once_then_recognised(warehouse):
    load(warehouse, "run-1", [invoice("i1", lines=2)], entity="invoices")
    rows(warehouse, "UPDATE accounting.invoices SET content_hash = NULL RETURNING 1")
    assert counts_of(load(warehouse, "run-2", [invoice("i1", lines=2)], entity="invoices")) == (
        0,
        1,
        0,
    )
    assert counts_of(load(warehouse, "run-3", [invoice("i1", lines=2)], entity="invoices")) == (
        0,
        0,
        1,
    )
    assert rows(warehouse, "SELECT count(*) FROM accounting.invoice_lines") == [(2,)]


def test_the_loader_analyses_a_table_that_outgrew_its_statistics(warehouse):
    """A first import into a fresh warehouse: the planner's statistics are refreshed as the
    table grows, so the lines' foreign-key check is planned on the table's real size."""
    with psycopg.connect(warehouse) as conn:
        writer = loader(conn, "run-1", "invoices")
        for start in range(0, 1500, 100):
            writer.load_page(Page([invoice(f"i{n}") for n in range(start, start + 100)]))
    analysed = rows(
        warehouse,
        "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
        "WHERE relname IN ('invoices', 'invoice_lines') ORDER BY relname",
    )
    assert analysed == [("invoice_lines", True), ("invoices", True)]


def test_a_large_first_page_is_analysed_before_its_own_lines_go_in(warehouse):
    """A first QuickBooks or Xero page holds 1,000 invoices: the planner must know of them before
    their lines' foreign keys are checked, in that page's transaction, not from the next page."""

    def planned() -> tuple[int, int]:
        """What the planner believes the invoices table holds, and how often it was analysed."""
        (row,) = rows(
            warehouse,
            "SELECT c.reltuples::int, s.analyze_count FROM pg_class c JOIN pg_stat_user_tables s "
            "ON s.relid = c.oid WHERE c.oid = 'accounting.invoices'::regclass",
        )
        return row

    _, analyses = planned()
    with psycopg.connect(warehouse) as conn:
        writer = loader(conn, "run-1", "invoices")
        writer.load_page(Page([invoice(f"a{n}", lines=2) for n in range(ANALYZE_AFTER)]))
        assert planned()[1] == analyses  # a small first page is not worth an analysis
        writer.load_page(Page([invoice(f"b{n}", lines=2) for n in range(STATISTICS_FLOOR)]))
    assert planned() == (ANALYZE_AFTER + STATISTICS_FLOOR, analyses + 1)


def test_an_unchanged_invoice_keeps_its_lines_and_a_changed_one_gets_new_ones(warehouse):
    load(warehouse, "run-1", [invoice("i1"), invoice("i2")], entity="invoices")
    lines_sql = (
        "SELECT invoice_external_id, count(*), min(sync_run_id) FROM accounting.invoice_lines "
        "WHERE tenant_id = %s GROUP BY 1 ORDER BY 1"
    )
    assert rows(warehouse, lines_sql, (TENANT,)) == [("i1", 1, "run-1"), ("i2", 1, "run-1")]
    counts = load(
        warehouse, "run-2", [invoice("i1"), invoice("i2", "354.00", lines=3)], entity="invoices"
    )
    assert counts_of(counts) == (0, 1, 1)
    assert rows(warehouse, lines_sql, (TENANT,)) == [("i1", 1, "run-1"), ("i2", 3, "run-2")]


def test_a_page_repeating_a_record_loads_its_last_version_once(warehouse):
    counts = load(warehouse, "run-1", [customer("a", "First"), customer("a", "Second")])
    assert (counts.fetched, counts.inserted) == (2, 1)
    assert customer_rows(warehouse)["a"][0] == "Second"


# --- soft deletes and revival --------------------------------------------------------------------


def soft_delete(url: str, run_id: str, source_ids, max_fraction: float | None = None) -> int:
    """The delete detection with its default fraction (a half) unless one is given."""
    with psycopg.connect(url) as conn:
        if max_fraction is None:
            return loader(conn, run_id).soft_delete_missing(source_ids)
        return loader(conn, run_id).soft_delete_missing(source_ids, max_fraction)


def deleted(url: str) -> set[str]:
    return {i for i, (_, _, _, gone) in customer_rows(url).items() if gone is not None}


def test_a_record_that_reappears_in_the_source_is_revived(warehouse):
    load(warehouse, "run-1", [customer(c) for c in "abcd"])
    assert soft_delete(warehouse, "run-2", ["a", "b", "c"]) == 1
    assert deleted(warehouse) == {"d"}
    assert customer_rows(warehouse)["d"][2] == "run-2"

    counts = load(warehouse, "run-3", [customer("d")])  # the same content, back in the source
    assert counts_of(counts) == (0, 1, 0)
    assert deleted(warehouse) == set()
    assert customer_rows(warehouse)["d"][2] == "run-3"
    with psycopg.connect(warehouse) as conn:
        assert loader(conn, "run-4").versions(["d"]) == {"d": EDITED}


def test_the_delete_guard_allows_up_to_the_fraction_and_refuses_more(warehouse):
    load(warehouse, "run-1", [customer(str(n)) for n in range(10)])
    with pytest.raises(SyncError, match="refusing to mark 6 as deleted") as refused:
        soft_delete(warehouse, "run-2", [str(n) for n in range(4)])  # 6 of 10 missing > 0.5
    assert refused.value.category == "SOURCE_DATA"
    assert "max_delete_fraction" in refused.value.suggested_fix
    assert deleted(warehouse) == set()  # nothing was marked

    assert soft_delete(warehouse, "run-3", [str(n) for n in range(5)]) == 5  # exactly half
    assert deleted(warehouse) == {"5", "6", "7", "8", "9"}


def test_a_raised_fraction_lets_a_real_mass_deletion_through(warehouse):
    load(warehouse, "run-1", [customer(str(n)) for n in range(10)])
    assert soft_delete(warehouse, "run-2", ["0", "1"], max_fraction=0.8) == 8
    assert len(deleted(warehouse)) == 8


def test_an_empty_source_answer_is_refused_whatever_the_fraction(warehouse):
    assert soft_delete(warehouse, "run-0", []) == 0  # nothing loaded yet: nothing to refuse
    load(warehouse, "run-1", [customer("a")])
    with pytest.raises(SyncError, match="the source lists 0 customers but the warehouse has 1"):
        soft_delete(warehouse, "run-2", [], max_fraction=1.0)
    assert deleted(warehouse) == set()


def test_already_deleted_rows_count_neither_as_live_nor_as_missing(warehouse):
    load(warehouse, "run-1", [customer(str(n)) for n in range(4)])
    assert soft_delete(warehouse, "run-2", ["0", "1"]) == 2  # 2 of 4: allowed
    # Live rows are now 0 and 1; losing one of two is at the fraction, not over it.
    assert soft_delete(warehouse, "run-3", ["0"]) == 1
    assert deleted(warehouse) == {"1", "2", "3"}


# --- record failures -----------------------------------------------------------------------------


def failure(entity_id: str, message: str = "rate: not a number") -> RecordFailure:
    return RecordFailure(entity_id, "MAPPING", message, {"invoice_id": entity_id, "run": message})


def error_rows(url: str) -> list[tuple]:
    """(entity_id, dagster_run_id, raw_payload, resolved, category, scope, refreshed)."""
    return rows(
        url,
        "SELECT entity_id, dagster_run_id, raw_payload, resolved, category, scope, "
        "updated_at > created_at FROM hub.accounting_sync_errors ORDER BY id",
    )


def record(url: str, run_id: str, failures: list[RecordFailure]) -> None:
    with psycopg.connect(url) as conn, conn.transaction():
        loader(conn, run_id, "invoices").record_failures(failures)


def test_a_record_failing_in_two_runs_keeps_one_open_error_row_refreshed(warehouse):
    record(warehouse, "run-1", [failure("x", "rate: not a number")])
    assert [r[:2] + r[3:] for r in error_rows(warehouse)] == [
        ("x", "run-1", False, "MAPPING", "record", False)
    ]
    x = failure("x", "rate: not a number")
    x.raw = {"invoice_id": "x", "seen": "again"}
    record(warehouse, "run-2", [x, failure("y")])
    assert [r[:2] + r[3:] for r in error_rows(warehouse)] == [
        ("x", "run-2", False, "MAPPING", "record", True),  # the same row, refreshed
        ("y", "run-2", False, "MAPPING", "record", False),
    ]
    assert error_rows(warehouse)[0][2] == {"invoice_id": "x", "seen": "again"}


def test_a_resolved_error_that_happens_again_opens_a_new_row(warehouse):
    record(warehouse, "run-1", [failure("x")])
    rows(warehouse, "UPDATE hub.accounting_sync_errors SET resolved = true RETURNING 1")
    record(warehouse, "run-2", [failure("x")])
    assert [(r[0], r[1], r[3]) for r in error_rows(warehouse)] == [
        ("x", "run-1", True),
        ("x", "run-2", False),
    ]


def test_another_problem_of_the_same_record_is_its_own_row(warehouse):
    record(warehouse, "run-1", [failure("x", "rate: not a number")])
    record(warehouse, "run-2", [failure("x", "total: missing")])
    assert [r[:2] for r in error_rows(warehouse)] == [("x", "run-1"), ("x", "run-2")]


def test_a_record_failure_keeps_the_connectors_own_fix(warehouse):
    own = RecordFailure("x", "MAPPING", "rate: not a number", {}, suggested_fix="Fix the rate.")
    record(warehouse, "run-1", [own])
    assert rows(warehouse, "SELECT suggested_fix FROM hub.accounting_sync_errors") == [
        ("Fix the rate.",)
    ]


def test_a_record_the_warehouse_cannot_store_is_a_record_error_naming_the_field(warehouse):
    bad = customer("nul", name="Acme\x00 Traders")
    bad.raw = {"contact_name": "Acme\x00 Traders"}
    counts = load(warehouse, "run-1", [customer("a"), bad])
    assert (counts.inserted, counts.failed) == (1, 1)
    (entity_id, message, payload) = rows(
        warehouse, "SELECT entity_id, error_message, raw_payload FROM hub.accounting_sync_errors"
    )[0]
    assert entity_id == "nul"
    assert message == (
        "customers nul: name holds a character PostgreSQL cannot store (NUL or a lone surrogate)"
    )
    assert payload == {"contact_name": "Acme\ufffd Traders"}  # kept, the NUL replaced


def with_value(external_id: str, where: str, name: str, value: str) -> Invoice:
    record = invoice(external_id)
    setattr(record if where == "invoice" else record.lines[0], name, Decimal(value))
    return record


NUMBERS_AT_AND_BEYOND = [  # each column's largest value, then the first it cannot hold
    ("invoice", "total", "9999999999999999.99", "-1E+16"),
    ("invoice", "exchange_rate", "999999999999.999999", "1000000000000"),
    ("line", "quantity", "-99999999999999.9999", "1E+14"),
    ("line", "tax_rate", "99999.9999", "100000"),
]


@pytest.mark.parametrize(("where", "name", "largest", "beyond"), NUMBERS_AT_AND_BEYOND)
def test_a_number_beyond_its_columns_digits_is_a_record_error_and_its_largest_is_stored(
    warehouse, where, name, largest, beyond
):
    """The loader screens every number against its own column (money, quantities, rates and
    tax rates hold different digits before the point), negative ones too."""
    fits, too_large = (
        with_value("fits", where, name, largest),
        with_value("no", where, name, beyond),
    )
    counts = load(warehouse, "run-1", [fits, too_large], entity="invoices")
    assert (counts.inserted, counts.failed) == (1, 1)
    ((entity_id, message),) = rows(
        warehouse, "SELECT entity_id, error_message FROM hub.accounting_sync_errors"
    )
    assert entity_id == "no"
    assert f"{name} = " in message and "beyond the warehouse's range" in message
    table = "accounting.invoices" if where == "invoice" else "accounting.invoice_lines"
    key = "external_id" if where == "invoice" else "invoice_external_id"
    assert rows(warehouse, f"SELECT {name} FROM {table} WHERE {key} = 'fits'") == [
        (Decimal(largest),)
    ]


def test_a_change_in_a_lines_raw_payload_alone_rewrites_the_invoice_and_its_lines(warehouse):
    """The invoice's fingerprint covers its lines' raw payloads through its own."""
    load(warehouse, "run-1", [invoice("i1", lines=2)], entity="invoices")
    edited = invoice("i1", lines=2)
    edited.lines[1].raw["note"] = "re-packed"  # the same object as in the invoice's raw payload

    assert counts_of(load(warehouse, "run-2", [edited], entity="invoices")) == (0, 1, 0)
    assert rows(
        warehouse, "SELECT line_number, raw->>'note' FROM accounting.invoice_lines ORDER BY 1"
    ) == [(1, None), (2, "re-packed")]


def test_a_line_whose_raw_payload_cannot_be_json_refuses_its_invoice_alone(warehouse):
    bad = invoice("bad", lines=2)
    bad.lines[1].raw["name"] = "Caf\ud800"

    counts = load(warehouse, "run-1", [invoice("good"), bad], entity="invoices")

    assert (counts.inserted, counts.failed) == (1, 1)
    ((entity_id, message),) = rows(
        warehouse, "SELECT entity_id, error_message FROM hub.accounting_sync_errors"
    )
    assert entity_id == "bad" and "lone surrogate" in message and "items[1].name" in message


def test_a_line_payload_outside_its_invoices_that_cannot_be_json_still_refuses_it_alone(
    warehouse,
):
    """A connector breaking the rule that a line's raw payload is a part of its invoice's: its
    lines are encoded once the invoice is to be written, and refused there."""
    bad = invoice("bad")
    bad.lines[0].raw = {"name": "Caf\ud800"}

    counts = load(warehouse, "run-1", [invoice("good"), bad], entity="invoices")

    assert (counts.inserted, counts.failed) == (1, 1)
    assert rows(warehouse, "SELECT entity_id FROM hub.accounting_sync_errors") == [("bad",)]


def test_a_nul_in_a_mapped_text_alone_is_screened_and_named(warehouse):
    """The raw payload is clean; the NUL is only in what the mapping made (a line's text): the
    screen finds it in the values' JSON and the error names the field, not the database's
    refusal."""
    bad = invoice("bad")
    bad.lines[0].description = "Tyre\x00"

    counts = load(warehouse, "run-1", [invoice("good"), bad], entity="invoices")

    assert (counts.inserted, counts.failed) == (1, 1)
    ((message,),) = rows(warehouse, "SELECT error_message FROM hub.accounting_sync_errors")
    assert message.startswith("invoices bad: lines[1].description holds a character")


def test_a_page_counts_its_failures_with_what_it_fetched(warehouse):
    with psycopg.connect(warehouse) as conn:
        counts = loader(conn, "run-1", "invoices").load_page(
            Page([invoice("i1")], failures=[failure("bad")])
        )
    assert (counts.fetched, counts.inserted, counts.failed) == (2, 1, 1)
    assert [r[0] for r in error_rows(warehouse)] == ["bad"]


def test_a_record_the_database_refuses_is_a_record_error_and_the_rest_of_the_page_loads(warehouse):
    bad = invoice("bad")
    bad.status = "bogus"  # passes the pre-check, refused by the table's CHECK constraint
    with psycopg.connect(warehouse) as conn:
        counts = loader(conn, "run-1", "invoices").load_page(
            Page([invoice("good"), bad], cursor="c1")
        )
    assert (counts.fetched, counts.inserted, counts.failed) == (2, 1, 1)
    assert [r[0] for r in rows(warehouse, "SELECT external_id FROM accounting.invoices")] == [
        "good"
    ]
    (entity_id, message, payload, fix) = rows(
        warehouse,
        "SELECT entity_id, error_message, raw_payload, suggested_fix "
        "FROM hub.accounting_sync_errors",
    )[0]
    assert entity_id == "bad" and payload == bad.raw and fix
    assert message.startswith("invoices bad: the warehouse refused it: ")
    assert "violates check constraint" in message and "DETAIL" not in message  # primary only
    assert "hub errors show" in fix
    assert stored_cursor(warehouse, "invoices") == "c1"


# --- the cursor commits with its page ------------------------------------------------------------


def test_a_committed_page_and_its_cursor_are_visible_together(warehouse):
    with psycopg.connect(warehouse) as conn:
        page_loader = loader(conn, "run-1")
        assert page_loader.cursor() is None
        page_loader.load_page(Page([customer("a")], cursor="2026-03-01T10:00:00+00:00"))
        # Seen from another connection while this one is still open: committed with the page.
        assert stored_cursor(warehouse) == "2026-03-01T10:00:00+00:00"
        assert set(customer_rows(warehouse)) == {"a"}
        page_loader.load_page(Page([], cursor="2026-03-02T10:00:00+00:00"))
        assert stored_cursor(warehouse) == "2026-03-02T10:00:00+00:00"
        assert page_loader.cursor() == "2026-03-02T10:00:00+00:00"


def test_a_page_that_fails_after_its_merge_moves_neither_its_rows_nor_the_cursor(warehouse):
    """A crash between a page's rows and its cursor: here the page's failure row violates a
    foreign key (a sync log that does not exist) after the merge has run."""
    load(warehouse, "run-1", [customer("a")], cursor="2026-03-01T10:00:00+00:00")
    with psycopg.connect(warehouse) as conn:
        broken = loader(conn, "run-2", sync_log_id=10**9)
        page = Page(
            [customer("b"), customer("a", "Renamed")],
            failures=[failure("c")],
            cursor="2026-03-05T10:00:00+00:00",
        )
        with pytest.raises(psycopg.IntegrityError):
            broken.load_page(page)
    assert stored_cursor(warehouse) == "2026-03-01T10:00:00+00:00"
    assert {k: v[0] for k, v in customer_rows(warehouse).items()} == {"a": "Customer a"}
    assert error_rows(warehouse) == []


def test_the_cursor_is_per_tenant_system_and_entity(warehouse):
    load(warehouse, "run-1", [customer("a")], cursor="c-customers")
    load(warehouse, "run-1", [invoice("i")], entity="invoices", cursor="c-invoices")
    with psycopg.connect(warehouse) as conn:
        other = PartitionLoader(
            conn,
            tenant_id="other",
            system=SYSTEM,
            entity="customers",
            run_id="run-1",
            partition_key="other",
        )
        assert other.cursor() is None
        assert loader(conn, "run-2", "invoices").cursor() == "c-invoices"
        assert loader(conn, "run-2", "customers").cursor() == "c-customers"


def test_versions_are_the_live_rows_of_this_partition_only(warehouse):
    load(warehouse, "run-1", [customer("a"), customer("b")])
    soft_delete(warehouse, "run-2", ["a"])
    with psycopg.connect(warehouse) as conn:
        assert loader(conn, "run-3").versions(["a", "b", "zzz"]) == {"a": EDITED}


def test_load_counts_add_up_field_by_field():
    total = LoadCounts(fetched=1, inserted=2, updated=3, unchanged=4, failed=5, deleted=6)
    total.add(LoadCounts(fetched=10, inserted=20, updated=30, unchanged=40, failed=50, deleted=60))
    assert total == LoadCounts(11, 22, 33, 44, 55, 66)


def test_a_tombstone_marks_its_record_deleted_once_with_the_page(warehouse):
    load(warehouse, "run-1", [invoice("T1"), invoice("T2")], "invoices")

    counts = load(warehouse, "run-2", [], "invoices", deleted=["T1", "never-loaded"], cursor="c2")
    again = load(warehouse, "run-3", [], "invoices", deleted=["T1"])

    assert (counts.deleted, again.deleted) == (1, 0)
    with psycopg.connect(warehouse) as conn:
        rows = conn.execute(
            "SELECT external_id, deleted_at IS NOT NULL, sync_run_id FROM accounting.invoices "
            "WHERE tenant_id = %s ORDER BY external_id",
            (TENANT,),
        ).fetchall()
        (cursor,) = conn.execute(
            "SELECT cursor FROM hub.sync_state WHERE tenant_id = %s AND entity = 'invoices'",
            (TENANT,),
        ).fetchone()
    assert rows == [("T1", True, "run-2"), ("T2", False, "run-1")]
    assert cursor == "c2"
