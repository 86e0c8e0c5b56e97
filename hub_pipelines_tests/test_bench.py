"""`make bench` at tiny sizes: the harness runs every contender of the load stage and of two
systems end to end (one with a dlt pipeline, one without), writes its results files, and each
contender loads exactly the rows generated. No timing is asserted."""

from __future__ import annotations

import json

import pytest

from bench import pooler
from bench.__main__ import main as bench_main

SIZE = 200


@pytest.fixture(scope="module")
def smoke(warehouse_url, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("bench_results")
    systems = "zoho_books,tally"
    code = bench_main(
        ["--smoke", "--only", "load,e2e", "--systems", systems, "--results", str(folder)]
    )
    written = sorted(folder.iterdir())
    assert code == 0
    assert [path.suffix for path in written] == [".json", ".md"]
    return {
        "results": json.loads(written[0].read_text()),
        "markdown": written[1].read_text(),
    }


def test_the_results_name_the_machine_and_hold_one_sample_per_contender(smoke):
    results = smoke["results"]
    machine = results["machine"]
    assert machine["cpus"] >= 1 and machine["postgresql"] and machine["commit"]
    assert set(machine["packages"]) >= {"dagster", "dlt", "psycopg"}
    assert results["failed"] == {}
    assert set(results["sections"]) == {"load", "e2e"}
    load = results["sections"]["load"][str(SIZE)]["samples"]
    assert set(load) == {"read", "floor", "hub", "hub_reload", "dlt"}
    e2e = results["sections"]["e2e"]
    deployed = {"hub_deployed"} if pooler.available() else set()  # .ci/run installs pgbouncer
    assert set(e2e["zoho_books"][str(SIZE)]["samples"]) == {"hub", "dlt", *deployed}
    assert set(e2e["tally"][str(SIZE)]["samples"]) == {"hub", *deployed}
    for samples in [*load.values(), *e2e["zoho_books"][str(SIZE)]["samples"].values()]:
        (sample,) = samples
        assert sample["seconds"] > 0
        assert sample["peak_rss_mb"] >= sample["rss_at_start_mb"] > 0


def test_every_load_stage_contender_writes_the_generated_rows(smoke):
    figures = smoke["results"]["sections"]["load"][str(SIZE)]
    generated = figures["rows"]
    assert generated["invoices"] == SIZE and generated["lines"] > SIZE
    samples = {name: runs[0]["rows"] for name, runs in figures["samples"].items()}
    assert samples["read"] == samples["floor"] == generated
    assert samples["hub"]["inserted"] == SIZE
    assert samples["hub_reload"]["inserted"] + samples["hub_reload"]["updated"] == 0
    assert samples["hub_reload"]["unchanged"] == SIZE
    assert samples["dlt"] == {"invoices": SIZE, "invoices__lines": generated["lines"]}


def test_every_end_to_end_contender_loads_what_the_simulator_serves(smoke):
    e2e = smoke["results"]["sections"]["e2e"]
    zoho = e2e["zoho_books"][str(SIZE)]
    truth = zoho["truth"]
    wanted = {key: truth[key] for key in ("customers", "invoices", "lines")}
    for contender in zoho["samples"]:  # hub, dlt, and hub as deployed when PgBouncer is there
        assert zoho["samples"][contender][0]["rows"] == wanted, contender
    # The same calls: a list page each and a detail call per record (the hub adds its tax master).
    hub_calls = zoho["samples"]["hub"][0]["by_path"]
    dlt_calls = zoho["samples"]["dlt"][0]["by_path"]
    assert dlt_calls["/books/v3/invoices/{id}"] == hub_calls["/books/v3/invoices/{id}"] == SIZE
    tally = e2e["tally"][str(SIZE)]
    # A cancelled Tally voucher has no entries: void invoices arrive without lines.
    truth = tally["truth"]
    for samples in tally["samples"].values():
        assert samples[0]["rows"] == {
            "customers": truth["customers"],
            "invoices": truth["invoices"],
            "lines": truth["lines_not_void"],
        }


def test_the_table_has_the_issues_layout(smoke):
    markdown = smoke["markdown"]
    assert "| what | figure | reference | goal |" in markdown
    assert "load stage, first load, 200 invoices" in markdown
    assert "end to end, tally, 200 invoices" in markdown and "no dlt pipeline" in markdown
    assert ("as deployed (Dagster's storage in PostgreSQL" in markdown) == pooler.available()
    assert "- machine: " in markdown and "PostgreSQL" in markdown
