"""Progress while an import runs: a log line per committed page, the `hub/progress` run tag, and
`pages` / `quota_remaining` in the materialization, against the simulator through Dagster."""

from __future__ import annotations

import re

import dagster as dg
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub_pipelines.canonical import Page
from hub_pipelines.connectors.http import HttpClient
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.imports.progress import (
    PROGRESS_TAG,
    ImportProgress,
    Snapshot,
    estimate_seconds_left,
    format_duration,
    log_line,
    tag_value,
)
from hub_pipelines.tenants.token_store import ConfigTokenStore
from hub_pipelines.warehouse.loader import LoadCounts
from hub_pipelines.zoho_books.connector import ZohoBooksConnector, ZohoBooksResource
from hub_pipelines_tests.zoho_books.conftest import TENANT

DAILY_LIMIT = 1000  # Zoho's free plan
LINE = re.compile(
    r"^(?P<entity>customers|invoices): page (?P<page>\d+) committed; "
    r"(?P<records>[\d,]+) records so far \((?P<loaded>[\d,]+) loaded, (?P<failed>[\d,]+) failed\); "
    r"(?P<calls>[\d,]+) API calls; quota (?P<quota>[\d,]+) left; (?P<elapsed>\S+( \S+)?) elapsed; "
    r"time left unknown \(the source gives no record count\)$"
)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _materializations(result: dg.ExecuteInProcessResult) -> list[tuple[str, dict]]:
    """(entity, metadata) in the order the assets were materialized."""
    return [
        (e.asset_key.path[-1], {k: v.value for k, v in e.materialization.metadata.items()})
        for e in result.get_asset_materialization_events()
    ]


def _books_calls(zoho) -> int:
    """Requests the simulator counted against the organisation's daily quota (token requests go
    to the accounts host and do not count)."""
    return sum(1 for e in zoho.simulator.request_log if e.path.startswith("/books/v3"))


# --- through Dagster, against the simulator ------------------------------------------------------


def test_progress_is_logged_per_page_tagged_on_the_run_and_kept_in_the_metadata(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=15, invoices=60)
    zoho.simulator.daily_limit = DAILY_LIMIT
    result = zoho.materialize(zoho_books=ZohoBooksResource(page_size=20))
    assert result.success

    lines: dict[str, list[re.Match]] = {"customers": [], "invoices": []}
    for entry in zoho.instance.all_logs(result.run_id):
        match = LINE.match(entry.user_message or "")
        if match:
            lines[match["entity"]].append(match)
    materialized = _materializations(result)
    assert sorted(entity for entity, _ in materialized) == ["customers", "invoices"]
    for entity, meta in materialized:
        seen = lines[entity]
        # One line per committed page: the list pages and the closing page with the cursor.
        assert [_int(m["page"]) for m in seen] == list(range(1, meta["pages"] + 1))
        # 60 invoices in windows of up to 20 rows, each overlapping the last row read: 4.
        assert meta["pages"] == {"customers": 1, "invoices": 4}[entity] + 1
        records = [_int(m["records"]) for m in seen]
        assert records == sorted(records) and records[-1] == meta["records_fetched"]
        assert _int(seen[-1]["loaded"]) == meta["records_inserted"] and seen[-1]["failed"] == "0"
        calls = [_int(m["calls"]) for m in seen]
        quotas = [_int(m["quota"]) for m in seen]
        assert calls == sorted(calls) and calls[-1] <= meta["api_calls"]
        assert quotas == sorted(quotas, reverse=True)
        assert DAILY_LIMIT > quotas[0] >= quotas[-1] >= meta["quota_remaining"]
    # Each answer says what is left of the day's quota: after the last asset, the day's total.
    (first, first_meta), (last, last_meta) = materialized
    assert last_meta["quota_remaining"] == DAILY_LIMIT - _books_calls(zoho)
    assert first_meta["quota_remaining"] > last_meta["quota_remaining"]

    # The run tag holds the last asset's final state, written when its pages were all read.
    tag = zoho.instance.get_run_by_id(result.run_id).tags[PROGRESS_TAG]
    expected = re.compile(
        rf"^{last}: {last_meta['records_fetched']} records, {last_meta['pages']} pages, "
        r"(\d+) calls, quota (\d+) left, all pages read in \S+( \S+)?$"
    )
    match = expected.match(tag)
    assert match, tag
    assert int(match[2]) >= last_meta["quota_remaining"]
    for secret in (zoho.simulator.client_secret, zoho.simulator.refresh_token):
        assert secret not in tag and secret not in str(first_meta) + str(last_meta)


def test_a_run_stopped_by_the_daily_quota_says_where_it_stopped(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=60)
    zoho.simulator.daily_limit = 30  # used up in the middle of the invoice details
    result = zoho.materialize(zoho_books=ZohoBooksResource(page_size=20))
    assert not result.success
    tag = zoho.instance.get_run_by_id(result.run_id).tags[PROGRESS_TAG]
    assert re.match(r"^(customers|invoices): \d+ records, \d+ pages?, \d+ calls, ", tag), tag
    # Stopped with a tenth of the day's 30 requests left in reserve, naming the reset.
    assert ", quota 3 left, stopped after " in tag and ", resumes after " in tag
    failures = zoho.query("SELECT metadata->>'category' FROM hub.accounting_sync_logs")
    assert ("RATE_LIMIT",) in failures


def test_the_connector_keeps_the_quota_of_the_last_api_answer(zoho):
    zoho.simulator.daily_limit = DAILY_LIMIT
    config = zoho.registry.get(TENANT, "zoho_books")
    connector = ZohoBooksConnector(
        config.connection, ConfigTokenStore(zoho.registry, config), versions=lambda _e, _i: {}
    )
    try:
        assert connector.quota_remaining is None  # nothing asked yet
        connector.test_connection()  # a token request (no quota headers), then /organizations
        assert connector.api_calls == 2
        assert connector.quota_remaining == DAILY_LIMIT - 1 == DAILY_LIMIT - _books_calls(zoho)
        list(connector.all_ids("customers"))
        assert connector.quota_remaining == DAILY_LIMIT - _books_calls(zoho)
    finally:
        connector.close()


def test_answers_without_a_whole_quota_number_leave_the_last_one_standing():
    quotas = iter(["41", "", "soon", "40"])

    async def answer(_request):
        value = next(quotas)
        return JSONResponse({}, headers={"X-Rate-Limit-Remaining": value} if value else {})

    app = Starlette(routes=[Route("/", answer)])
    with (
        LoopbackServer(app) as server,
        HttpClient(base_url=server.url, quota_header="X-Rate-Limit-Remaining") as client,
    ):
        seen = []
        for _ in range(4):
            client.request("GET", "/")
            seen.append(client.quota_remaining)
    assert seen == [41, 41, 41, 40]


# --- the tracker, with a controlled clock ---------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.tags: list[str] = []

    def info(self, msg: str, *args) -> None:
        self.infos.append(msg)

    def warning(self, msg: str, *args) -> None:
        self.warnings.append(msg)

    def set_tags(self, tags) -> None:
        self.tags.append(tags[PROGRESS_TAG])


class Calls:
    api_calls = 0


def _tracker(recorder: Recorder, now: list[float], counts: LoadCounts, connector=None):
    return ImportProgress(
        "invoices",
        counts,
        connector or Calls(),
        log=recorder,
        set_tags=recorder.set_tags,
        started=0.0,
        clock=lambda: now[0],
        tag_interval=5.0,
    )


def test_the_tag_is_written_at_most_every_interval_and_always_at_the_end():
    recorder, now, counts = Recorder(), [0.0], LoadCounts()
    with _tracker(recorder, now, counts) as progress:
        for second in range(12):  # a page a second
            now[0] = float(second)
            counts.add(LoadCounts(fetched=10, inserted=10))
            progress.page_committed(Page([]))
    assert len(recorder.infos) == 12  # every page is logged
    assert [t.split(",")[0] for t in recorder.tags] == [
        "invoices: 10 records",  # the first page, at once
        "invoices: 60 records",  # 5 s later
        "invoices: 110 records",  # 10 s
        "invoices: 120 records",  # the end
    ]
    assert recorder.tags[-1].endswith("all pages read in 11s")
    assert progress.metadata() == {"pages": 12}  # this connector reports no quota


def test_a_failed_walk_tags_where_it_stopped_and_a_broken_tag_store_does_not_stop_it():
    recorder, now, counts = Recorder(), [3.0], LoadCounts()
    with pytest.raises(RuntimeError), _tracker(recorder, now, counts) as progress:
        counts.add(LoadCounts(fetched=5, inserted=4, failed=1))
        progress.page_committed(Page([]))
        raise RuntimeError("the source went away")
    assert recorder.tags[-1] == "invoices: 5 records, 1 page, 0 calls, stopped after 3.0s"

    def broken(_tags):
        raise ConnectionError("run storage unavailable")

    progress = ImportProgress("invoices", counts, Calls(), log=recorder, set_tags=broken)
    progress.page_committed(Page([]))
    progress.page_committed(Page([]))
    progress.finish(completed=True)
    assert recorder.warnings == [
        "could not update the run tag hub/progress: run storage unavailable"
    ]


def test_a_source_that_gives_its_total_gets_an_estimate():
    class Quota(Calls):
        api_calls, quota_remaining = 42, 9580

    recorder, now, counts = Recorder(), [0.0], LoadCounts()
    progress = _tracker(recorder, now, counts, Quota())
    now[0] = 60.0
    counts.add(LoadCounts(fetched=400, inserted=400))
    progress.page_committed(Page([], walk_total=2000))
    assert recorder.infos[-1] == (
        "invoices: page 1 committed; 400 of 2,000 records so far (400 loaded, 0 failed); "
        "42 API calls; quota 9,580 left; 1m 00s elapsed; ~4m 00s left"
    )
    assert (
        recorder.tags[-1]
        == "invoices: 400 records, 1 page, 42 calls, quota 9,580 left, ~4m 00s left"
    )
    assert progress.metadata() == {"pages": 1, "quota_remaining": 9580}


# --- pure functions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "expected"),
    [
        (0, None, 10.0, None),  # nothing known
        (500, None, 10.0, None),  # Zoho: no total, whatever the pace
        (0, 1000, 10.0, None),  # a total, but no pace yet
        (250, 1000, 60.0, 180.0),  # a quarter in a minute: three more
        (1000, 1000, 60.0, 0.0),
        (1010, 1000, 60.0, 0.0),  # records added during the walk
        (10, 20, -1.0, 0.0),  # a clock that went backwards is no negative time
    ],
)
def test_estimate_seconds_left(done, total, elapsed, expected):
    assert estimate_seconds_left(done, total, elapsed) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.0s"),
        (-3, "0.0s"),
        (4.24, "4.2s"),
        (9.96, "10s"),
        (42.4, "42s"),
        (59.6, "1m 00s"),
        (425, "7m 05s"),
        (3599.6, "1h 00m"),
        (11_220, "3h 07m"),
        (190_800, "2d 5h"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_unknown_total_and_unknown_quota_are_said_not_invented():
    zoho_like = Snapshot("invoices", 12, 2400, 2398, 2, 2413, 1600.0, quota_remaining=7587)
    assert log_line(zoho_like) == (
        "invoices: page 12 committed; 2,400 records so far (2,398 loaded, 2 failed); "
        "2,413 API calls; quota 7,587 left; 26m 40s elapsed; "
        "time left unknown (the source gives no record count)"
    )
    assert tag_value(zoho_like) == (
        "invoices: 2,400 records, 12 pages, 2,413 calls, quota 7,587 left, time left unknown"
    )
    no_quota = Snapshot("customers", 1, 0, 0, 0, 3, 0.5, total=200)
    assert log_line(no_quota) == (
        "customers: page 1 committed; 0 of 200 records so far (0 loaded, 0 failed); "
        "3 API calls; 0.5s elapsed; time left unknown (no record read yet)"
    )
    assert tag_value(no_quota, "all pages read in 0.5s") == (
        "customers: 0 records, 1 page, 3 calls, all pages read in 0.5s"
    )
