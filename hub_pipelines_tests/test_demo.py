"""`hub demo` as a newcomer runs it: three tenants over the five systems, imported through Dagster
on the persistent instance, the landing sensor at work on a dropped Tally export and a Xero
webhook, a summary; then run again, which changes no row."""

from __future__ import annotations

import socket
from decimal import Decimal
from types import SimpleNamespace

import dagster as dg
import psycopg
import pytest

from hub_pipelines import cli
from hub_pipelines.demo import simulators
from hub_pipelines.demo.plan import FILE_PAIR, PAIRS, WEBHOOK_PAIR, books_as_of, port_of
from hub_pipelines.landing.notices import NOTICE_TAG
from hub_pipelines.partitions import tenant_partitions
from hub_pipelines_tests.demo_hub import demo_hub

TABLES = ("accounting.customers", "accounting.invoices", "accounting.invoice_lines")


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def table_digest(url: str) -> dict[str, str]:
    """Every row of the synced tables, bookkeeping columns included, as one hash per table."""
    digest = "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t"
    return {table: query(url, digest.format(table))[0][0] for table in TABLES}


@pytest.fixture(scope="module")
def demo(warehouse_url, tmp_path_factory):
    from hub_pipelines.demo.run import run_demo

    home = tmp_path_factory.mktemp("demo-hub")
    with demo_hub(warehouse_url, home) as base_port:
        first = run_demo(size="small", base_port=base_port)
        after_first = table_digest(warehouse_url)
        second = run_demo(size="small", base_port=base_port)
        instance = dg.DagsterInstance.from_config(str(home / "dagster"))
        yield SimpleNamespace(
            first=first,
            second=second,
            after_first=after_first,
            base_port=base_port,
            home=home,
            url=warehouse_url,
            instance=instance,
        )
        instance.dispose()


def truth(pair, base_port: int):
    """What the pair's system shows of its books, built in-process from the same seed and day."""
    served = simulators.build(pair, "small", books_as_of(), port_of(pair, base_port))
    if pair == WEBHOOK_PAIR:  # the demo's payment, as its simulator made it
        served.simulated.books.pay(simulators.first_open_sale(served.simulated), 100)
    return served.simulated


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.key)
def test_every_pair_holds_exactly_what_its_system_shows(demo, pair):
    """Every invoice by number, with its status and total (a void's amounts are the system's
    own business: QuickBooks and Tally zero them), and every customer."""
    simulated = truth(pair, demo.base_port)
    rows = query(
        demo.url,
        "SELECT invoice_number, status, total FROM accounting.invoices "
        "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL",
        (pair.tenant, pair.system),
    )
    held = {number: (status, None if status == "void" else total) for number, status, total in rows}
    expected = {
        number: (sale.status, None if sale.status == "void" else sale.total)
        for number, sale in simulated.truth_invoices().items()
    }
    assert held == expected
    customers = query(
        demo.url,
        "SELECT count(*) FROM accounting.customers "
        "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL",
        (pair.tenant, pair.system),
    )[0][0]
    assert customers == len(simulated.truth_customers())


def test_all_five_systems_over_three_tenants_are_partitions_of_the_persistent_instance(demo):
    systems = {pair.system for pair in PAIRS}
    assert systems == {"zoho_books", "quickbooks", "xero", "tally", "busy"}
    assert len({pair.tenant for pair in PAIRS}) == 3
    for system in systems:
        tenants = {pair.tenant for pair in PAIRS if pair.system == system}
        assert set(demo.instance.get_dynamic_partitions(tenant_partitions(system).name)) == tenants
    for pair in PAIRS:
        for entity in ("customers", "invoices"):
            key = dg.AssetKey([pair.system, entity])
            assert pair.tenant in demo.instance.get_materialized_partitions(key)


def test_the_dropped_export_was_imported_by_the_landing_sensor_once(demo):
    rows = query(
        demo.url,
        "SELECT status, dagster_run_id FROM hub.landed_files WHERE tenant_id = %s AND system = %s",
        (FILE_PAIR.tenant, FILE_PAIR.system),
    )
    assert len(rows) == 1 and rows[0][0] == "processed"  # the same content twice: one import
    run = demo.instance.get_run_by_id(rows[0][1])
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/sensor_name"] == "landing_sensor"
    processed = demo.home / "landing" / "tally" / FILE_PAIR.tenant / "processed"
    assert len(list(processed.iterdir())) == 2  # each drop filed away, none overwritten


def test_the_webhook_payment_reached_the_warehouse_through_a_notice_run(demo):
    unpaid = simulators.build(WEBHOOK_PAIR, "small", books_as_of(), 0).simulated
    sale = unpaid.books.sales[simulators.first_open_sale(unpaid)]
    (status, balance) = query(
        demo.url,
        "SELECT status, balance_due FROM accounting.invoices "
        "WHERE tenant_id = %s AND system = %s AND invoice_number = %s",
        (WEBHOOK_PAIR.tenant, WEBHOOK_PAIR.system, sale.number),
    )[0]
    assert (status, balance) == ("paid", Decimal("0.00"))
    notice_runs = [
        run
        for run in demo.instance.get_runs()
        if NOTICE_TAG in run.tags and run.tags["dagster/partition"] == WEBHOOK_PAIR.tenant
    ]
    assert len(notice_runs) == 2  # one per demo run, each from one delivered notice
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in notice_runs)
    first_notice_run = min(notice_runs, key=lambda run: demo.instance.get_run_record_by_id(
        run.run_id).create_timestamp)  # fmt: skip
    assert first_notice_run.run_id in {o.result.run_id for o in demo.first.runs}


def test_every_run_and_check_of_the_first_demo_passed(demo):
    assert demo.first.success and demo.first.views_ok
    checks = [check for outcome in demo.first.runs for check in outcome.checks]
    assert checks and all(check.passed for check in checks)
    assert len(demo.first.runs) == len(PAIRS) + 1  # five API imports, the file, the notice


def test_a_second_run_changes_no_row(demo):
    assert demo.second.success
    assert table_digest(demo.url) == demo.after_first
    for outcome in demo.second.runs:
        for event in outcome.result.get_asset_materialization_events():
            meta = event.materialization.metadata
            assert (meta["records_inserted"].value, meta["records_updated"].value) == (0, 0)


def test_the_summary_shows_rows_checks_errors_time_and_next_commands(demo, capsys):
    from hub_pipelines.demo.summary import print_summary

    print_summary(demo.url, demo.first, demo.base_port)
    out = capsys.readouterr().out
    for pair in PAIRS:
        (count,) = query(
            demo.url,
            "SELECT count(*) FROM accounting.invoices WHERE tenant_id = %s AND system = %s "
            "AND deleted_at IS NULL",
            (pair.tenant, pair.system),
        )[0]
        line = next(
            ln.split() for ln in out.splitlines() if ln.split()[:2] == [pair.tenant, pair.system]
        )
        assert line[3] == f"{count:,}" and line[5] == "0"  # invoices, open errors
    checks = sum(len(outcome.checks) for outcome in demo.first.runs)
    assert f"asset checks: {checks} passed, 0 failed" in out
    assert "summary (small books, " in out
    assert ".venv/bin/hub dev" in out and "hub db psql" in out
    assert f"hub demo --stop --base-port {demo.base_port}" in out


def test_stop_ends_the_simulators_and_a_busy_port_is_named(demo, capsys):
    assert simulators.running(demo.base_port) is not None
    assert cli.main(["demo", "--stop", "--base-port", str(demo.base_port)]) == 0
    assert simulators.running(demo.base_port) is None
    assert "demo simulators stopped" in capsys.readouterr().out
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        assert cli.main(["demo", "--base-port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} is in use" in err and "--base-port" in err


def test_a_base_port_without_room_for_every_pair_is_refused_before_anything_starts(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["demo", "--base-port", "65533"])  # its pairs would need ports up to 65539
    assert exited.value.code == 2
    assert "--base-port: must be a whole number from 1 to 65529" in capsys.readouterr().err


@pytest.mark.parametrize("books_changed", [True, False], ids=["new-books", "same-books"])
def test_new_books_clear_the_demo_tenants_rows_and_nothing_else(
    warehouse, tmp_path, monkeypatch, books_changed
):
    """`hub demo --size large` after a small demo (or a new month's books) serves another
    business under the same ids: its tenants' old rows and cursors go first, or the two mix."""
    from hub_pipelines.demo.run import _keep_books_apart, _remember

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    held = {"size": "small", "as_of": "2026-11-01T00:00:00+00:00", "pid": 1}
    _remember("small", 8090, held)
    serving = {**held, "size": "large"} if books_changed else held
    demo_pair, other = (PAIRS[0].tenant, PAIRS[0].system), ("acme", PAIRS[0].system)
    with psycopg.connect(warehouse) as conn:
        for tenant, system in (demo_pair, other):
            conn.execute(
                "INSERT INTO accounting.customers (tenant_id, system, external_id, name, raw) "
                "VALUES (%s, %s, 'c1', 'A', '{}')",
                (tenant, system),
            )
            conn.execute(
                "INSERT INTO hub.sync_state (tenant_id, system, entity, cursor) "
                "VALUES (%s, %s, 'customers', 'x')",
                (tenant, system),
            )

    _keep_books_apart(warehouse, serving)

    left = "SELECT tenant_id FROM {} ORDER BY 1"
    expected = [("acme",)] if books_changed else [("acme",), (demo_pair[0],)]
    assert query(warehouse, left.format("accounting.customers")) == expected
    assert query(warehouse, left.format("hub.sync_state")) == expected


def test_what_changed_in_the_books_is_named():
    from hub_pipelines.demo.run import _changes

    november = {"size": "small", "as_of": "2026-11-01T00:00:00+00:00"}
    assert _changes({}, november) == []  # never ran here: nothing to clear
    assert _changes({"size": "small", "books": november}, november) == []
    assert _changes({"size": "large", "books": {**november, "size": "large"}}, november) == [
        "large to small"
    ]
    october = {**november, "as_of": "2026-10-01T00:00:00+00:00"}
    assert _changes({"size": "small", "books": october}, november) == [
        "ending 2026-10-01 to 2026-11-01"
    ]
    assert _changes({"size": "large", "base_port": 8090}, november) == ["large to small"]
    assert _changes({"size": "small", "base_port": 8090}, november) == []
