"""The QuickBooks connector against its simulator over loopback HTTP, without Dagster: CDC's
1,000-object cap, throttling, minorversion gating, the query language, signed webhooks and
replay's refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.quickbooks import webhooks
from hub_pipelines.quickbooks.simulator import replay, send_webhook, simulate
from hub_pipelines.simulation.books import generate
from hub_pipelines.simulation.replay import ReplayError
from hub_pipelines_tests.contract.conftest import small_books
from hub_pipelines_tests.quickbooks.conftest import calls, connector_to


def test_a_cdc_answer_at_its_1000_object_cap_falls_back_to_the_query():
    books = generate(seed=8, parties=10, sales=1100, as_of=datetime.now(UTC))
    simulated = simulate(books)
    for sale in simulated.books.live_sales(drafts=False):
        books.pay(sale.key, 100)  # every invoice changed in the last minutes
    served = simulated.simulator.records["Invoice"]
    assert len(served) > 1000
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    with LoopbackServer(simulated.app) as server:
        connector = connector_to(simulated, server)
        pages = list(connector.invoices(since))

    assert calls(simulated)[0] == "cdc" and set(calls(simulated)[1:]) == {"query"}
    read = {record.external_id for page in pages for record in page.records}
    assert read == set(served)
    assert not connector.listed("invoices").complete  # a change walk: deletes are not judged


def test_a_throttle_is_waited_out_and_a_request_without_a_token_gets_the_401_fault(monkeypatch):
    monkeypatch.setenv("RETRY_MAX_DELAY", "50")
    simulated = simulate(small_books())
    query = f"/v3/company/{simulated.simulator.realm_id}/query"
    simulated.faults.throttle_next(1, path=query)

    with LoopbackServer(simulated.app) as server:
        connector = connector_to(simulated, server)
        counted = connector.count("customers")
        throttle = httpx.get(f"{server.url}{query}")  # no token: 401, the lower-case fault

    assert counted == len(simulated.books.parties)
    assert connector.retries == 1
    assert [entry.status for entry in simulated.request_log][-3:-1] == [429, 200]
    assert throttle.status_code == 401 and throttle.json()["fault"]["error"][0]["code"] == "3200"


def test_the_throttle_body_is_xml_that_the_protocol_reads_as_throttling():
    simulated = simulate(small_books())
    simulated.simulator.requests_per_second = 1
    with LoopbackServer(simulated.app) as server:
        token = simulated.simulator.oauth.issue_access_token(simulated.refresh_token())
        url = f"{server.url}/v3/company/{simulated.simulator.realm_id}/query"
        headers = {"Authorization": f"Bearer {token}"}
        params = {"query": "SELECT COUNT(*) FROM Invoice", "minorversion": "75"}
        answers = [httpx.get(url, params=params, headers=headers) for _ in range(2)]

    assert [answer.status_code for answer in answers] == [200, 429]
    assert answers[1].headers["content-type"].startswith("application/xml")
    assert "ThrottleExceeded" in answers[1].text and answers[1].headers["intuit_tid"]


def query(simulated, server, text: str, **params) -> httpx.Response:
    token = simulated.simulator.oauth.issue_access_token(simulated.refresh_token())
    return httpx.get(
        f"{server.url}/v3/company/{simulated.simulator.realm_id}/query",
        params={"query": text, **params},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )


def test_india_fields_only_from_minorversion_33_and_the_query_language_refuses_or():
    simulated = simulate(small_books())
    simulated.simulator.minor_version_floor = 1  # as before Intuit's floor of 75 (Aug 2025)
    registered = [p for p in simulated.books.parties.values() if p.gstin]
    text = "SELECT * FROM Customer WHERE Active IN (true, false) STARTPOSITION 1 MAXRESULTS 1000"

    with LoopbackServer(simulated.app) as server:
        old = query(simulated, server, text, minorversion="32").json()["QueryResponse"]
        new = query(simulated, server, text, minorversion="75").json()["QueryResponse"]
        refused = query(simulated, server, "SELECT * FROM Invoice WHERE Id = '1' OR Id = '2'")

    assert not any("GSTIN" in row for row in old["Customer"])
    assert not any("CountrySubDivisionCode" in row["BillAddr"] for row in old["Customer"])
    assert {row["GSTIN"] for row in new["Customer"] if "GSTIN" in row} == {
        party.gstin for party in registered
    }
    assert refused.status_code == 400
    assert refused.json()["Fault"]["type"] == "ValidationFault"


def test_a_change_between_two_query_pages_reaches_the_next_page_and_the_count():
    """A walk's pages are slices of one listing the simulator keeps between requests (it does
    not filter and sort every record for each): a Books change in between must still show."""
    simulated = simulate(small_books())
    books = simulated.books
    page = "SELECT * FROM Invoice ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS {}"

    def numbers(size: int) -> list[str]:
        answer = query(simulated, server, page.format(size)).json()["QueryResponse"]
        return [row["DocNumber"] for row in answer["Invoice"]]

    def count() -> int:
        answer = query(simulated, server, "SELECT COUNT(*) FROM Invoice").json()
        return answer["QueryResponse"]["totalCount"]

    with LoopbackServer(simulated.app) as server:
        first, counted = numbers(5), count()
        by_number = {sale.number: sale for sale in books.sales.values()}
        edited = books.edit_sale(by_number[first[0]].key)  # now the latest change
        added = books.add_sale(edited.party_key, [edited.lines[0]])
        again, recounted, everything = numbers(5), count(), numbers(1000)

    assert again[:4] == first[1:] and edited.number not in again
    assert recounted == counted + 1 == len(everything)
    assert everything[-2:] == [edited.number, added.number]  # a tie in time goes by Id


def test_the_simulator_sends_signed_webhooks_in_both_shapes():
    books = small_books()
    simulated = simulate(books)
    sale = simulated.books.live_sales(drafts=False)[0]
    books.void_sale(sale.key)
    change = simulated.simulator.change("sale", sale.key, "Void")
    received: list[tuple[bytes, str | None]] = []

    async def hook(request: Request) -> Response:
        received.append((await request.body(), request.headers.get(webhooks.SIGNATURE_HEADER)))
        return Response(status_code=200)

    realm = simulated.simulator.realm_id
    with LoopbackServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as server:
        for cloud_events in (False, True):
            answer = send_webhook(
                f"{server.url}/hook", "verifier", realm, [change], cloud_events=cloud_events
            )
            assert answer.status_code == 200

    for body, signature in received:
        assert webhooks.verify_signature("verifier", body, signature)
        assert not webhooks.verify_signature("another token", body, signature)
        (notice,) = webhooks.parse_notices(body)
        assert (notice.account_id, notice.entity, notice.operation) == (realm, "invoices", "voided")
        assert notice.external_id == change.id and notice.occurred_at == sale.updated_at
    assert received[0][0].startswith(b'{"eventNotifications"') and received[1][0].startswith(b"[")


def test_replay_refuses_a_file_that_is_not_a_quickbooks_answer(tmp_path):
    not_quickbooks, cut = tmp_path / "contacts.json", tmp_path / "cut.json"
    not_quickbooks.write_text('{"Contacts": []}')
    cut.write_text('{"QueryResponse": {"Invoice": [')
    without_id = tmp_path / "no_id.json"
    without_id.write_text('{"QueryResponse": {"Invoice": [{"DocNumber": "1"}]}}')

    for path, problem in (
        (not_quickbooks, "not a QuickBooks answer"),
        (cut, "invalid JSON at line 1"),
        (without_id, "Invoice record without an Id"),
    ):
        with pytest.raises(ReplayError, match=f"{path.name}: {problem}"):
            replay([path])
